//! The session lifecycle after the protocol checks: completing a sign-in, refreshing and
//! revalidating against Logto, and ending sessions. These services orchestrate `auth`,
//! `session` and `users`; the web layer calls them, and so do the background tasks.
//!
//! [`Services`] is what they work with: the database, the provider client, the caches and the
//! settings, built once at start.

pub mod end;
pub mod refresh;
pub mod revalidation;
pub mod sign_in;

use std::sync::Arc;

use sqlx::PgPool;
use uuid::Uuid;

use crate::admin::CountsCache;
use crate::auth::discovery::Provider;
use crate::auth::jwks::JwksCache;
use crate::cache::Caches;
use crate::config::Settings;
use crate::session::records::RecordCache;
use crate::session::repo::Lifetimes;
use crate::session::sealed::TokenCipher;
use refresh::RefreshTurns;

pub struct Services {
    pub settings: Arc<Settings>,
    pub pool: PgPool,
    pub provider: Arc<Provider>,
    pub jwks: JwksCache,
    /// Sessions and users in memory (kept fresh by LISTEN), unless `SESSION_CACHE=false`.
    pub caches: Option<Arc<Caches>>,
    /// Signed-in sessions' records (CSRF token, auth time), with the caches.
    pub records: Option<RecordCache>,
    /// Seals tokens at rest (key derived from SESSION_SECRET).
    pub token_cipher: TokenCipher,
    /// One refresh per session at a time in this instance.
    pub refresh_turns: RefreshTurns,
    pub admin_counts: Arc<CountsCache>,
    pub lifetimes: Lifetimes,
}

impl Services {
    /// Drops this instance's cached copy of a user whose profile or roles just changed (other
    /// instances hear of it through NOTIFY).
    pub fn forget_user(&self, user_id: Uuid) {
        if let Some(caches) = &self.caches {
            caches.evict_user(user_id);
        }
    }
}
