//! Per-client rate limits (GCRA through `governor`) on the endpoints that create server-side
//! work for anyone who asks: starting a sign-in (a pending row and a pre-login session), the
//! callback, and back-channel logout (a signature check per token).
//!
//! Sign-in handlers take [`SignInLimit`] as their first extractor, so a refused request is a 429
//! page with `Retry-After` before any other work. The back-channel counts only requests that
//! fail verification ([`backchannel_failure`]): a valid logout token is never refused for rate.
//! Clients are told apart by IP: the peer address, or with `TRUST_FORWARDED_FOR=true` the
//! last `X-Forwarded-For` entry — the one the app's own reverse proxy appended.

use std::future::{Ready, ready};
use std::net::IpAddr;
use std::num::NonZeroU32;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::Settings;
use crate::error::AppError;
use crate::startup::AppState;

/// The limiters of one app instance.
pub struct RateLimits {
    sign_in: DefaultKeyedRateLimiter<IpAddr>,
    backchannel: DefaultKeyedRateLimiter<IpAddr>,
    /// `/api/access-token` per signed-in session (each miss is a refresh at Logto).
    access_token: DefaultKeyedRateLimiter<uuid::Uuid>,
}

fn per_minute<K: std::hash::Hash + Eq + Clone>(n: NonZeroU32) -> DefaultKeyedRateLimiter<K> {
    DefaultKeyedRateLimiter::keyed(Quota::per_minute(n))
}

impl RateLimits {
    pub fn new(settings: &Settings) -> Self {
        Self {
            sign_in: per_minute(settings.sign_in_rate_limit),
            backchannel: per_minute(settings.backchannel_rate_limit),
            access_token: per_minute(settings.access_token_rate_limit),
        }
    }

    /// Forgets clients whose buckets are full again (memory stays bounded by recent clients).
    pub fn forget_idle_clients(&self) {
        for limiter in [&self.sign_in, &self.backchannel] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        self.access_token.retain_recent();
        self.access_token.shrink_to_fit();
    }

    fn check<K: std::hash::Hash + Eq + Clone + std::fmt::Display>(
        limiter: &DefaultKeyedRateLimiter<K>,
        client: K,
    ) -> Result<(), AppError> {
        limiter.check_key(&client).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            tracing::warn!(%client, wait_ms = wait.as_millis() as u64, "rate limit reached");
            AppError::TooManyRequests { retry_after_secs: wait.as_secs() + 1 }
        })
    }

    /// Passes while this session is within `ACCESS_TOKEN_RATE_LIMIT` per minute.
    pub fn check_access_token(&self, session_id: uuid::Uuid) -> Result<(), AppError> {
        Self::check(&self.access_token, session_id)
    }
}

/// The client's IP address, as far as this app can know it.
pub fn client_ip(req: &HttpRequest, trust_forwarded_for: bool) -> Option<IpAddr> {
    if trust_forwarded_for {
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .last()
            .and_then(|last| last.trim().parse::<IpAddr>().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    req.peer_addr().map(|a| a.ip())
}

fn check(req: &HttpRequest, pick: impl Fn(&RateLimits) -> &DefaultKeyedRateLimiter<IpAddr>) -> Result<(), AppError> {
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return Err(AppError::Unexpected(anyhow::anyhow!("BUG: no AppState")));
    };
    match client_ip(req, state.settings.trust_forwarded_for) {
        Some(client) => RateLimits::check(pick(&state.rate_limits), client),
        // No address at all (a test harness without a socket): nothing to key on.
        None => Ok(()),
    }
}

/// Passes while this client is within `SIGN_IN_RATE_LIMIT` per minute.
pub struct SignInLimit;

impl FromRequest for SignInLimit {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(check(req, |l| &l.sign_in).map(|()| Self))
    }
}

/// Counts one back-channel request that failed verification against `BACKCHANNEL_RATE_LIMIT`
/// (per client and minute). Valid logout tokens are never counted or refused: Logto sends each
/// one once and never retries. `Err` (a 429) once the client is past the limit.
pub fn backchannel_failure(req: &HttpRequest) -> Result<(), AppError> {
    check(req, |l| &l.backchannel)
}
