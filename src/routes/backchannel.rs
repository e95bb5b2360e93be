//! `POST /backchannel-logout`: Logto tells us a session ended (Back-Channel Logout 1.0).
//!
//! Authenticated only by the logout token (cookies are ignored, no CSRF token). Valid → the
//! matching sessions are deleted and the answer is 200 (also when nothing matched). Invalid, or
//! the deletion failed → 400 with a small JSON error, as §2.8 asks.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::auth::flow::{self, unix_now};
use crate::auth::jwt::LEEWAY_SECS;
use crate::auth::logout_token;
use crate::routes::errors::Rendered;
use crate::routes::rate_limit::BackchannelLimit;
use crate::session::repo as sessions;
use crate::startup::AppState;

/// The largest request body accepted (a logout token is about 1 KiB).
pub const MAX_BODY: usize = 64 * 1024;

fn answer(status: actix_web::http::StatusCode, body: serde_json::Value) -> HttpResponse {
    let mut res = HttpResponse::build(status).insert_header((header::CACHE_CONTROL, "no-store")).json(body);
    res.extensions_mut().insert(Rendered);
    res
}

fn bad_request(error: &str, description: &str) -> HttpResponse {
    answer(actix_web::http::StatusCode::BAD_REQUEST, json!({"error": error, "error_description": description}))
}

pub async fn backchannel_logout(
    _limit: BackchannelLimit,
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let form_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return bad_request("invalid_request", "expected an application/x-www-form-urlencoded body");
    }
    let mut tokens = url::form_urlencoded::parse(&body).filter(|(k, _)| k == "logout_token").map(|(_, v)| v);
    let (Some(token), None) = (tokens.next(), tokens.next()) else {
        return bad_request("invalid_request", "exactly one logout_token is required");
    };
    let Some(metadata) = state.provider.metadata() else {
        return bad_request("temporarily_unavailable", "provider metadata not loaded");
    };
    let verifier = flow::verifier(
        &state.settings,
        &metadata,
        state.provider.http(),
        &state.jwks,
        crate::auth::jwks::Caller::Anonymous,
    );
    let logout = match logout_token::validate(&verifier, &token, unix_now()).await {
        Ok(logout) => logout,
        Err(error) => {
            tracing::warn!(%error, "back-channel logout token refused");
            return bad_request("invalid_request", "invalid logout token");
        }
    };
    let jti_hash = Sha256::digest(format!("{}\n{}", logout.iss, logout.jti).as_bytes()).to_vec();
    // The token is accepted while (whole seconds) now - LEEWAY <= exp: remember its jti for
    // longer than that, so the sweeper never forgets it while a replay could still pass.
    let jti_expires_at = i64::try_from(logout.exp).unwrap_or(i64::MAX).saturating_add(LEEWAY_SECS as i64 + 2);
    let result = sessions::backchannel_logout(
        &state.pool,
        &jti_hash,
        jti_expires_at,
        &logout.iss,
        logout.sub.as_deref(),
        logout.sid.as_deref(),
    )
    .await;
    match result {
        Ok(Some(ended)) => {
            tracing::info!(sessions = ended.len(), by_sid = logout.sid.is_some(), "back-channel logout");
            state.end_sessions(&ended);
            answer(actix_web::http::StatusCode::OK, json!({}))
        }
        Ok(None) => {
            tracing::warn!("back-channel logout token replayed");
            bad_request("invalid_request", "logout token already used")
        }
        Err(error) => {
            tracing::error!(%error, "back-channel logout failed");
            bad_request("logout_failed", "the sessions could not be ended")
        }
    }
}
