//! `POST /backchannel-logout`: Logto tells us a session ended (Back-Channel Logout 1.0).
//!
//! Authenticated only by the logout token (cookies are ignored, no CSRF token). Valid → the
//! matching sessions are deleted and the answer is 200 (also when nothing matched). Invalid → 400
//! with a small JSON error, as §2.8 asks; past `BACKCHANNEL_RATE_LIMIT` invalid requests from one
//! client per minute, 429. A valid token is never refused for rate (Logto sends it once and never
//! retries). When the token cannot be checked (metadata not loaded, keys unreachable) the answer
//! is 503, a failure Logto logs. A valid logout whose sessions could not be ended (Postgres) is a
//! 400, as §2.8 asks, and is retried in the background until it succeeds (see [`RetryQueue`]).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::auth::flow::{self, unix_now};
use crate::auth::jwt::LEEWAY_SECS;
use crate::auth::logout_token;
use crate::lifecycle::end::{Outcome, Which, end};
use crate::web::errors::Rendered;
use crate::web::rate_limit::backchannel_failure;
use crate::web::state::AppState;

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

fn unavailable(description: &str) -> HttpResponse {
    let mut res = answer(
        actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
        json!({"error": "temporarily_unavailable", "error_description": description}),
    );
    res.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
    res
}

/// A refused request: 400, or 429 once this client is past its failure budget.
fn refused(req: &HttpRequest, error: &str, description: &str) -> HttpResponse {
    match backchannel_failure(req) {
        Ok(()) => bad_request(error, description),
        Err(_) => {
            let mut res = answer(
                actix_web::http::StatusCode::TOO_MANY_REQUESTS,
                json!({"error": "too_many_requests", "error_description": "too many invalid logout requests"}),
            );
            res.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
            res
        }
    }
}

pub async fn backchannel_logout(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let form_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return refused(&req, "invalid_request", "expected an application/x-www-form-urlencoded body");
    }
    let mut tokens = url::form_urlencoded::parse(&body).filter(|(k, _)| k == "logout_token").map(|(_, v)| v);
    let (Some(token), None) = (tokens.next(), tokens.next()) else {
        return refused(&req, "invalid_request", "exactly one logout_token is required");
    };
    let Some(metadata) = state.provider.metadata() else {
        return unavailable("provider metadata not loaded yet");
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
        Err(error) if error.is_outage() => {
            tracing::error!(%error, "back-channel logout token could not be checked");
            return unavailable("the provider's keys could not be fetched");
        }
        Err(error) => {
            tracing::warn!(%error, "back-channel logout token refused");
            return refused(&req, "invalid_request", "invalid logout token");
        }
    };
    let jti_hash = Sha256::digest(format!("{}\n{}", logout.iss, logout.jti).as_bytes()).to_vec();
    // The token is accepted while (whole seconds) now - LEEWAY <= exp: remember its jti for
    // longer than that, so the sweeper never forgets it while a replay could still pass.
    let jti_expires_at = i64::try_from(logout.exp).unwrap_or(i64::MAX).saturating_add(LEEWAY_SECS as i64 + 2);
    let pending = PendingLogout { jti_hash, jti_expires_at, issuer: logout.iss, subject: logout.sub, sid: logout.sid };
    match end_sessions(&state, &pending).await {
        Ok(true) => answer(actix_web::http::StatusCode::OK, json!({})),
        Ok(false) => {
            tracing::warn!("back-channel logout token replayed");
            refused(&req, "invalid_request", "logout token already used")
        }
        Err(error) => {
            // §2.8: a logout that failed is a 400. Logto will not send it again, so it is kept
            // and retried here until Postgres takes it.
            tracing::error!(%error, "back-channel logout failed: retrying in the background");
            state.logout_retries.push(pending);
            bad_request("logout_failed", "the sessions could not be ended yet (retried by the app)")
        }
    }
}

/// A verified logout, as far as ending its sessions needs it.
#[derive(Clone, Debug)]
pub struct PendingLogout {
    jti_hash: Vec<u8>,
    jti_expires_at: i64,
    issuer: String,
    subject: Option<String>,
    sid: Option<String>,
}

/// Records the `jti` and ends the sessions; `Ok(false)` for a replayed `jti`.
async fn end_sessions(state: &web::Data<AppState>, logout: &PendingLogout) -> Result<bool, sqlx::Error> {
    let which = Which::BackChannel {
        jti_hash: &logout.jti_hash,
        jti_expires_at: logout.jti_expires_at,
        issuer: &logout.issuer,
        subject: logout.subject.as_deref(),
        sid: logout.sid.as_deref(),
    };
    Ok(match end(&state.services, which).await? {
        Outcome::Ended(ended) => {
            tracing::info!(sessions = ended.len(), by_sid = logout.sid.is_some(), "back-channel logout");
            true
        }
        Outcome::Replayed => false,
    })
}

/// Verified logouts whose sessions could not be ended (Postgres unavailable), retried every
/// 2 seconds until they succeed or their token's lifetime has passed. Logto never sends a logout
/// twice, so this is what stands between a database blip and a session that lives on for days.
/// Bounded (10,000 entries; the oldest go first, logged) and in memory: a logout queued here is
/// lost if the instance stops before Postgres is back (it is logged at error level when queued).
#[derive(Default)]
pub struct RetryQueue(std::sync::Mutex<std::collections::VecDeque<PendingLogout>>);

const RETRY_QUEUE_LIMIT: usize = 10_000;

impl RetryQueue {
    fn push(&self, logout: PendingLogout) {
        let mut queue = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if queue.len() >= RETRY_QUEUE_LIMIT {
            queue.pop_front();
            tracing::error!("back-channel retry queue full: the oldest pending logout was dropped");
        }
        queue.push_back(logout);
    }

    fn take_all(&self) -> Vec<PendingLogout> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain(..).collect()
    }
}

/// Retries queued logouts until they succeed (runs for the life of the instance).
pub async fn retry_failed_logouts(state: web::Data<AppState>) {
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(2));
    loop {
        ticks.tick().await;
        for logout in state.logout_retries.take_all() {
            // A jti past its lifetime is what the replay check would have forgotten anyway;
            // its sessions must still end.
            match end_sessions(&state, &logout).await {
                Ok(_) => tracing::info!("queued back-channel logout completed"),
                Err(error) => {
                    tracing::warn!(%error, "queued back-channel logout still failing");
                    state.logout_retries.push(logout);
                }
            }
        }
    }
}
