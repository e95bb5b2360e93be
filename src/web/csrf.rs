//! CSRF protection for state-changing forms: a synchronizer token per session, compared in
//! constant time, plus an `Origin` check when the browser sends one.

use actix_web::HttpRequest;
use actix_web::http::header;

use crate::auth::jwt::constant_time_eq;
use crate::error::{AppError, Result};
use crate::session::repo::SessionRecord;
use crate::web::state::AppState;

/// Accepts the request only if `submitted` is this session's token and any `Origin` is ours.
pub fn verify(req: &HttpRequest, state: &AppState, session: &SessionRecord, submitted: &str) -> Result<()> {
    let token_ok = session
        .csrf_token
        .as_deref()
        .is_some_and(|expected| constant_time_eq(submitted.as_bytes(), expected.as_bytes()));
    let origin_ok = same_origin(req, state);
    if token_ok && origin_ok {
        Ok(())
    } else {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
        tracing::warn!(
            path = req.path(),
            token_ok,
            origin = header("origin"),
            sec_fetch_site = header("sec-fetch-site"),
            "CSRF check failed"
        );
        Err(AppError::Forbidden)
    }
}

/// True unless the browser says the request comes from another origin. `Origin: null` (sent
/// under some referrer policies and by sandboxed frames) proves nothing either way; then
/// `Sec-Fetch-Site`, when present, decides.
pub fn same_origin(req: &HttpRequest, state: &AppState) -> bool {
    let origin_ok = match req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None | Some("null") => true,
        Some(origin) => origin == state.settings.app_base_url.origin().ascii_serialization(),
    };
    let fetch_site_ok = match req.headers().get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        None => true,
        Some(site) => matches!(site, "same-origin" | "none"),
    };
    origin_ok && fetch_site_ok
}
