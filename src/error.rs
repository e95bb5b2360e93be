//! The one error type of the app and its mapping to HTTP statuses.
//!
//! A handler returns `Result<T, AppError>`; `error_response` picks the status and attaches a
//! [`PublicError`] (a stable code and a message safe to show). The `render_error` handler in
//! `routes::errors` turns that into an HTML page or, under `/api/`, JSON — in one place.

use std::fmt;

use actix_web::{HttpResponse, ResponseError, http::StatusCode};

pub type Result<T, E = AppError> = std::result::Result<T, E>;

#[derive(thiserror::Error)]
pub enum AppError {
    /// No signed-in user: pages redirect to sign-in, `/api/` answers 401.
    #[error("not signed in")]
    NotAuthenticated,
    #[error("forbidden")]
    Forbidden,
    /// An admin action needs a sign-in more recent than `ADMIN_MAX_AUTH_AGE`; the page offers
    /// a step-up sign-in that comes back to `return_to`.
    #[error("a recent sign-in is required")]
    StepUpRequired { return_to: String },
    #[error("not found")]
    NotFound,
    /// A per-client rate limit was reached; the client may retry after this many seconds.
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    /// The client sent something invalid; the message is shown to it.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Sign-in could not be completed; the message is shown (it never holds provider text).
    #[error("sign-in failed: {public}")]
    SignIn {
        public: &'static str,
        #[source]
        cause: anyhow::Error,
    },
    /// Logto could not be reached or answered with a server error.
    #[error("identity provider unavailable")]
    ProviderUnavailable(#[source] anyhow::Error),
    /// Logto (or this session's refresh already under way) asks to come back later: 503 with
    /// `Retry-After`.
    #[error("identity provider busy")]
    ProviderBusy { retry_after_secs: u64 },
    /// Logto answered something unusable (not the protocol's shape): 502, never a 500.
    #[error("invalid identity provider response")]
    ProviderInvalidResponse(#[source] anyhow::Error),
    /// Postgres could not be reached.
    #[error("database unavailable")]
    DatabaseUnavailable(#[source] anyhow::Error),
    #[error("unexpected error")]
    Unexpected(#[from] anyhow::Error),
}

impl AppError {
    pub fn sign_in(public: &'static str, cause: impl Into<anyhow::Error>) -> Self {
        Self::SignIn { public, cause: cause.into() }
    }

    /// Classifies a database error: connectivity problems are an outage (503), the rest a bug.
    pub fn database(err: sqlx::Error) -> Self {
        if is_database_outage(&err) { Self::DatabaseUnavailable(err.into()) } else { Self::Unexpected(err.into()) }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        Self::database(err)
    }
}

/// True when `err` means "Postgres is not there right now" rather than a bad query.
pub fn is_database_outage(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => {
            // Class 08 (connection exception), 57P01-57P03 (admin shutdown, crash shutdown,
            // cannot connect now), 53300 (too many connections).
            db.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c == "53300")
        }
        _ => false,
    }
}

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

impl AppError {
    fn public(&self) -> PublicError {
        let (code, message): (&'static str, String) = match self {
            Self::NotAuthenticated => ("not_authenticated", "You need to sign in to see this page.".into()),
            Self::Forbidden => ("forbidden", "You do not have access to this page.".into()),
            Self::StepUpRequired { return_to } => {
                let back = url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect::<String>();
                return PublicError {
                    code: "step_up_required",
                    message:
                        "For your security, admin actions need a recent sign-in. Confirm it's you, then try again."
                            .into(),
                    continue_to: Some(format!("/sign-in/step-up?return_to={back}")),
                    retry_after_secs: None,
                };
            }
            Self::NotFound => ("not_found", "There is nothing here.".into()),
            Self::TooManyRequests { retry_after_secs } => {
                return PublicError::retry_after(
                    "too_many_requests",
                    format!("Too many attempts from your network. Please wait {retry_after_secs} s and try again."),
                    *retry_after_secs,
                );
            }
            Self::BadRequest(msg) => ("bad_request", msg.clone()),
            Self::SignIn { public, .. } => ("sign_in_failed", (*public).to_owned()),
            Self::ProviderUnavailable(_) => {
                return PublicError::retry_after(
                    "provider_unavailable",
                    "The sign-in service is not reachable right now. Please try again in a moment.".into(),
                    OUTAGE_RETRY_AFTER_SECS,
                );
            }
            Self::ProviderBusy { retry_after_secs } => {
                return PublicError::retry_after(
                    "provider_busy",
                    format!("The sign-in service is busy. Please try again in {retry_after_secs} s."),
                    *retry_after_secs,
                );
            }
            Self::ProviderInvalidResponse(_) => (
                "provider_error",
                "The sign-in service answered something unexpected. Please try again in a moment.".into(),
            ),
            Self::DatabaseUnavailable(_) => {
                return PublicError::retry_after(
                    "service_unavailable",
                    "The service is temporarily unavailable. Please try again in a moment.".into(),
                    OUTAGE_RETRY_AFTER_SECS,
                );
            }
            Self::Unexpected(_) => ("internal_error", "Something went wrong on our side.".into()),
        };
        PublicError::new(code, message)
    }
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
        res.extensions_mut().insert(self.public());
        res
    }
}

impl fmt::Debug for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        error_chain_fmt(self, f)
    }
}

/// Writes an error and its chain of causes, one per line (for logs).
pub fn error_chain_fmt(e: &impl std::error::Error, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{e}")?;
    let mut current = e.source();
    while let Some(cause) = current {
        write!(f, "\n  caused by: {cause}")?;
        current = cause.source();
    }
    Ok(())
}
