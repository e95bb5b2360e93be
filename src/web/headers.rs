//! Security headers on every response, and `Cache-Control: no-store` on every dynamic one.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;

use crate::auth::http::ProviderWait;
use crate::config::Settings;
use crate::web::state::AppState;

pub struct SecurityHeaders {
    csp: HeaderValue,
    hsts: bool,
}

impl SecurityHeaders {
    pub fn new(settings: &Settings) -> Self {
        // Forms may only post here, but the sign-out POST answers with a redirect to Logto,
        // and browsers apply form-action to that redirect too.
        let logto_origin = settings.logto_endpoint.origin().ascii_serialization();
        let csp = format!(
            "default-src 'none'; style-src 'self'; img-src 'self' https:; form-action 'self' {logto_origin}; \
             frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
        );
        Self {
            csp: HeaderValue::from_str(&csp)
                .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'")),
            hsts: settings.uses_https(),
        }
    }
}

pub async fn apply(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let is_static = req.path().starts_with("/static/");
    let mut res = next.call(req).await?;
    decorate(res.headers_mut(), state.as_ref().map(|s| s.get_ref()), is_static);
    Ok(res)
}

/// Adds the security headers (and `no-store` unless `is_static`).
pub fn decorate(headers: &mut HeaderMap, state: Option<&AppState>, is_static: bool) {
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // no-referrer everywhere: the callback URL carries the code, and no page needs to leak
    // its URL to another site.
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin"));
    if let Some(state) = state {
        headers.insert(header::CONTENT_SECURITY_POLICY, state.headers.csp.clone());
        if state.headers.hsts {
            headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
        }
    }
    if !is_static {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// `Server-Timing: app;dur=<ms>, provider;dur=<ms>` (when `SERVER_TIMING=true`): time per
/// request and the part of it spent waiting for the provider, as benchmarks measure them.
pub async fn server_timing(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let enabled = req.app_data::<web::Data<AppState>>().is_some_and(|s| s.settings.server_timing);
    if !enabled {
        return next.call(req).await;
    }
    let started = std::time::Instant::now();
    let mut res = next.call(req).await?;
    {
        // A handler that called the provider says how long it waited (see `ProviderWait`).
        let provider = res.response().extensions().get::<ProviderWait>().map_or(0, ProviderWait::micros);
        // `app` is the whole request; `provider` the part spent waiting for Logto.
        let value = format!(
            "app;dur={:.3}, provider;dur={:.3}",
            started.elapsed().as_secs_f64() * 1000.0,
            provider as f64 / 1000.0
        );
        if let Ok(value) = HeaderValue::from_str(&value) {
            res.headers_mut().insert(HeaderName::from_static("server-timing"), value);
        }
    }
    Ok(res)
}
