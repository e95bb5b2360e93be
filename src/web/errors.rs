//! `AppError` mapped to HTTP, and the error pages: a handler returns `Result<T, AppError>`;
//! `error_response` picks the status and attaches a [`PublicError`] (a stable code and a
//! message safe to show); `render_error_handler` turns every 4xx/5xx response into an HTML page
//! (JSON under `/api/`), with the request id shown so a user can quote it.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::{StatusCode, header};
use actix_web::middleware::{ErrorHandlerResponse, Next};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use serde::Serialize;
use tracing_actix_web::RequestId;

use crate::auth::return_to;
use crate::error::AppError;
use crate::web::state::AppState;

/// What the client is told about an error: a stable code and a human message.
#[derive(Debug, Clone)]
pub struct PublicError {
    pub code: &'static str,
    pub message: String,
    /// Where the page's main button leads, when there is a way forward (e.g. a step-up).
    pub continue_to: Option<String>,
    /// Sent as `Retry-After` (seconds).
    pub retry_after_secs: Option<u64>,
}

impl PublicError {
    /// An error the client may retry after `secs` (sent as `Retry-After`).
    fn retry_after(code: &'static str, message: String, secs: u64) -> Self {
        Self { retry_after_secs: Some(secs), ..Self::new(code, message) }
    }

    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), continue_to: None, retry_after_secs: None }
    }
}

/// The `Retry-After` of a 503 for an outage (Logto or Postgres unreachable): every 503 says
/// when to come back.
const OUTAGE_RETRY_AFTER_SECS: u64 = 5;

/// What the client is told about `err`.
fn public(err: &AppError) -> PublicError {
    let (code, message): (&'static str, String) = match err {
        AppError::NotAuthenticated => ("not_authenticated", "You need to sign in to see this page.".into()),
        AppError::Forbidden => ("forbidden", "You do not have access to this page.".into()),
        AppError::StepUpRequired { return_to } => {
            let back = url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect::<String>();
            return PublicError {
                code: "step_up_required",
                message: "For your security, admin actions need a recent sign-in. Confirm it's you, then try again."
                    .into(),
                continue_to: Some(format!("/sign-in/step-up?return_to={back}")),
                retry_after_secs: None,
            };
        }
        AppError::NotFound => ("not_found", "There is nothing here.".into()),
        AppError::TooManyRequests { retry_after_secs } => {
            return PublicError::retry_after(
                "too_many_requests",
                format!("Too many attempts from your network. Please wait {retry_after_secs} s and try again."),
                *retry_after_secs,
            );
        }
        AppError::BadRequest(msg) => ("bad_request", msg.clone()),
        AppError::SignIn { public, .. } => ("sign_in_failed", (*public).to_owned()),
        AppError::ProviderUnavailable(_) => {
            return PublicError::retry_after(
                "provider_unavailable",
                "The sign-in service is not reachable right now. Please try again in a moment.".into(),
                OUTAGE_RETRY_AFTER_SECS,
            );
        }
        AppError::ProviderBusy { retry_after_secs } => {
            return PublicError::retry_after(
                "provider_busy",
                format!("The sign-in service is busy. Please try again in {retry_after_secs} s."),
                *retry_after_secs,
            );
        }
        AppError::ProviderInvalidResponse(_) => (
            "provider_error",
            "The sign-in service answered something unexpected. Please try again in a moment.".into(),
        ),
        AppError::DatabaseUnavailable(_) => {
            return PublicError::retry_after(
                "service_unavailable",
                "The service is temporarily unavailable. Please try again in a moment.".into(),
                OUTAGE_RETRY_AFTER_SECS,
            );
        }
        AppError::Unexpected(_) => ("internal_error", "Something went wrong on our side.".into()),
    };
    PublicError::new(code, message)
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::NotAuthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::StepUpRequired { .. } => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::BadRequest(_) | Self::SignIn { .. } => StatusCode::BAD_REQUEST,
            Self::ProviderUnavailable(_) | Self::ProviderBusy { .. } | Self::DatabaseUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::ProviderInvalidResponse(_) => StatusCode::BAD_GATEWAY,
            Self::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error = ?self, "request failed");
        } else if matches!(self, Self::SignIn { .. }) {
            tracing::warn!(error = ?self, "sign-in rejected");
        }
        let mut res = HttpResponse::new(status);
        res.extensions_mut().insert(public(self));
        res
    }
}

/// Marks an error response a handler rendered itself (left alone by the error handler).
#[derive(Clone, Copy)]
pub struct Rendered;

#[derive(Serialize)]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
    request_id: Option<String>,
    show_sign_in: bool,
    continue_to: Option<&'a str>,
}

#[derive(Serialize)]
struct ErrorJson<'a> {
    error: &'a str,
    message: &'a str,
    request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    continue_to: Option<&'a str>,
}

fn default_public(status: StatusCode) -> PublicError {
    let (code, message) = match status.as_u16() {
        400 => ("bad_request", "The request was not valid."),
        401 => ("not_authenticated", "You need to sign in."),
        403 => ("forbidden", "You do not have access to this page."),
        404 => ("not_found", "There is nothing here."),
        405 => ("method_not_allowed", "This address does not accept that method."),
        413 => ("payload_too_large", "The request was too large."),
        415 => ("unsupported_media_type", "The request's content type is not accepted here."),
        503 => ("service_unavailable", "The service is temporarily unavailable. Please try again in a moment."),
        s if s >= 500 => ("internal_error", "Something went wrong on our side."),
        _ => ("error", "The request could not be completed."),
    };
    PublicError::new(code, message)
}

fn title(status: StatusCode, public: &PublicError) -> &'static str {
    match (status.as_u16(), public.code) {
        (_, "sign_in_failed") => "Sign-in failed",
        (_, "provider_unavailable") => "Sign-in is unavailable",
        (400, _) => "Bad request",
        (_, "step_up_required") => "Confirm it's you",
        (403, _) => "Access denied",
        (429, _) => "Too many attempts",
        (404, _) => "Page not found",
        (503, _) => "Temporarily unavailable",
        (s, _) if s >= 500 => "Something went wrong",
        _ => "Request failed",
    }
}

/// What an error page needs to know about its request (taken without cloning the request,
/// which actix forbids while routing is still to happen).
pub struct ErrorContext {
    path: String,
    query: String,
    is_get: bool,
    request_id: Option<String>,
    state: Option<web::Data<AppState>>,
}

impl ErrorContext {
    pub fn of(req: &HttpRequest) -> Self {
        Self {
            path: req.path().to_owned(),
            query: req.query_string().to_owned(),
            is_get: req.method() == actix_web::http::Method::GET,
            request_id: req.extensions().get::<RequestId>().map(ToString::to_string),
            state: req.app_data::<web::Data<AppState>>().cloned(),
        }
    }
}

/// The response for an error status.
pub fn error_response(ctx: &ErrorContext, status: StatusCode, public: Option<PublicError>) -> HttpResponse {
    let public = public.unwrap_or_else(|| default_public(status));
    let mut response = error_body(ctx, status, &public);
    if let Some(secs) = public.retry_after_secs
        && let Ok(value) = header::HeaderValue::from_str(&secs.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn error_body(ctx: &ErrorContext, status: StatusCode, public: &PublicError) -> HttpResponse {
    let request_id = ctx.request_id.clone();
    if ctx.path.starts_with("/api/") || ctx.path == "/backchannel-logout" {
        return HttpResponse::build(status).json(ErrorJson {
            error: public.code,
            message: &public.message,
            request_id,
            continue_to: public.continue_to.as_deref(),
        });
    }
    if status == StatusCode::UNAUTHORIZED {
        // Pages send anonymous users to sign in, then back here (GET pages only).
        let here = match ctx.query.as_str() {
            "" => ctx.path.clone(),
            q => format!("{}?{q}", ctx.path),
        };
        let back = if ctx.is_get { return_to::sanitize(Some(&here)) } else { "/".into() };
        let location =
            format!("/sign-in?return_to={}", url::form_urlencoded::byte_serialize(back.as_bytes()).collect::<String>());
        return HttpResponse::SeeOther().insert_header((header::LOCATION, location)).finish();
    }
    let page = ErrorPage {
        title: title(status, public),
        message: &public.message,
        request_id,
        show_sign_in: public.code == "sign_in_failed",
        continue_to: public.continue_to.as_deref(),
    };
    let html = ctx.state.as_ref().and_then(|state| crate::templates::render(&state.tera, "error.html", &page).ok());
    match html {
        Some(html) => HttpResponse::build(status).content_type("text/html; charset=utf-8").body(html),
        None => HttpResponse::build(status).content_type("text/plain; charset=utf-8").body(public.message.clone()),
    }
}

/// `ErrorHandlers` default handler: renders every error response that is not already rendered.
pub fn render_error_handler<B: MessageBody>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    if res.response().extensions().get::<Rendered>().is_some() {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let public = res.response().extensions().get::<PublicError>().cloned();
    let (req, _) = res.into_parts();
    let response = error_response(&ErrorContext::of(&req), status, public);
    Ok(ErrorHandlerResponse::Response(ServiceResponse::new(req, response).map_into_right_body()))
}

/// actix-session turns a store failure (Postgres down) into a bare 500; make it a 503 page.
/// The request is consumed by then, so the page travels inside the error.
pub async fn session_store_failure(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let ctx = ErrorContext::of(req.request());
    match next.call(req).await {
        Err(err) if is_session_store_error(&err) => {
            tracing::error!(error = %err, "session store unavailable");
            let public = PublicError::new(
                "service_unavailable",
                "The service is temporarily unavailable. Please try again in a moment.",
            );
            let mut response = error_response(&ctx, StatusCode::SERVICE_UNAVAILABLE, Some(public));
            super::headers::decorate(response.headers_mut(), ctx.state.as_ref().map(|s| s.get_ref()), false);
            Err(InternalError::from_response("session store unavailable", response).into())
        }
        other => other,
    }
}

fn is_session_store_error(err: &actix_web::Error) -> bool {
    use actix_session::storage::{SaveError, UpdateError};
    err.as_error::<InternalError<anyhow::Error>>().is_some()
        || err.as_error::<InternalError<SaveError>>().is_some()
        || err.as_error::<InternalError<UpdateError>>().is_some()
}

/// Malformed forms are a 400 with a plain message, not actix's default text.
pub fn form_config() -> web::FormConfig {
    web::FormConfig::default()
        .limit(16 * 1024)
        .error_handler(|err, _| AppError::BadRequest(format!("The form could not be read: {}", short(&err))).into())
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|err, _| AppError::BadRequest(format!("The address is not valid: {}", short(&err))).into())
}

fn short(err: &impl std::fmt::Display) -> String {
    err.to_string().chars().take(120).collect()
}
