//! Per-client rate limits (GCRA through `governor`) on the endpoints that create server-side
//! work for anyone who asks: starting a sign-in (a pending row and a pre-login session), the
//! callback, and back-channel logout (a signature check per token).
//!
//! Sign-in handlers take [`SignInLimit`] as their first extractor, so a refused request is a 429
//! page with `Retry-After` before any other work. The back-channel counts only requests that
//! fail verification ([`backchannel_failure`]): a valid logout token is never refused for rate.
//! Clients are told apart by IP (IPv6 by /64): the peer address, or behind trusted reverse
//! proxies (`TRUSTED_PROXY_HOPS`, or `TRUST_FORWARDED_FOR=true` for one) the `X-Forwarded-For`
//! entry the outermost trusted proxy appended.

use std::future::{Ready, ready};
use std::net::IpAddr;
use std::num::NonZeroU32;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::Settings;
use crate::error::AppError;
use crate::web::state::AppState;

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

/// The client's IP address, as far as this app can know it: the peer address, or behind
/// `hops` trusted reverse proxies (each appending the address it saw to `X-Forwarded-For`) the
/// entry `hops` places from the right. Entries further left are the client's own claims.
pub fn client_ip(req: &HttpRequest, hops: usize) -> Option<IpAddr> {
    if hops > 0 {
        let entries: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let forwarded =
            entries.len().checked_sub(hops).and_then(|i| entries.get(i)).and_then(|e| e.parse::<IpAddr>().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    req.peer_addr().map(|a| a.ip())
}

/// What a client's budget is keyed by: an IPv4 address, or an IPv6 address's /64 (a host
/// usually holds a whole /64 and could otherwise pick a fresh address per request).
fn budget_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn check(req: &HttpRequest, pick: impl Fn(&RateLimits) -> &DefaultKeyedRateLimiter<IpAddr>) -> Result<(), AppError> {
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return Err(AppError::Unexpected(anyhow::anyhow!("BUG: no AppState")));
    };
    match client_ip(req, state.settings.trusted_proxy_hops) {
        Some(client) => RateLimits::check(pick(&state.rate_limits), budget_key(client)),
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
