//! What every handler gets through `web::Data`.

use std::sync::Arc;

use tera::Tera;

use super::backchannel::RetryQueue;
use super::headers::SecurityHeaders;
use super::rate_limit::RateLimits;
use crate::lifecycle::Services;

/// The domain's services (dereferenced: `state.pool`, `state.settings`, …) and what only the
/// web layer uses.
pub struct AppState {
    pub services: Arc<Services>,
    pub tera: Tera,
    pub headers: SecurityHeaders,
    pub rate_limits: RateLimits,
    /// Verified back-channel logouts waiting for Postgres.
    pub logout_retries: RetryQueue,
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
}
