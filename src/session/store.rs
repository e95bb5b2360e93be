//! `actix_session::storage::SessionStore` over Postgres: the front of the database session
//! store. It keeps actix-session's state map — and nothing else — in `sessions.state`.
//!
//! Rows are keyed by the SHA-256 of the session key, so the table holds no usable cookie.
//! Expiry is enforced here, server-side: an idle timeout, extended at most once a minute per
//! session (a read-only request costs one `SELECT`, not a write), and an absolute lifetime
//! counted from creation. Sessions that hold no signed-in user (a sign-in in progress) live
//! only [`PRE_LOGIN_TTL`].
//!
//! The store creates only pre-login rows. A signed-in session's row is written by the sign-in
//! itself (`lifecycle::sign_in::complete`, with the user, in one statement) under a key it made;
//! the renewed state then carries that key under [`keys::CREATED_KEY`], and `save` hands it to
//! actix-session (the row already holds that state: the sign-in checked it).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError, generate_session_key};
use actix_web::cookie::time::Duration as CookieDuration;
use anyhow::Context;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::keys;
use super::repo::{self, Lifetimes};
use crate::cache::{CachedSession, Caches};

/// How long a session without a signed-in user (a pending sign-in) lives.
pub const PRE_LOGIN_TTL: Duration = Duration::from_secs(600);
/// Expiry is pushed forward at most this often per session (less with very short idle timeouts).
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct PgSessionStore {
    pool: PgPool,
    cache: Option<Arc<Caches>>,
    lifetimes: Lifetimes,
    touch_interval: Duration,
}

impl PgSessionStore {
    /// `cache`: the in-memory caches (kept fresh by their LISTEN task), or none.
    pub fn new(pool: PgPool, idle_timeout: Duration, max_lifetime: Duration, cache: Option<Arc<Caches>>) -> Self {
        let touch_interval = TOUCH_INTERVAL.min(idle_timeout / 4);
        let lifetimes = Lifetimes { pre_login: PRE_LOGIN_TTL, idle: idle_timeout, max: max_lifetime };
        Self { pool, cache, lifetimes, touch_interval }
    }

    pub fn lifetimes(&self) -> Lifetimes {
        self.lifetimes
    }

    fn forget(&self, key_hash: &[u8]) {
        if let Some(cache) = &self.cache {
            cache.evict_session(key_hash);
        }
    }

    /// A new pre-login row; it goes straight into the cache (the callback that follows needs no
    /// round trip to load it).
    async fn insert_pre_login(&self, state: &HashMap<String, String>) -> anyhow::Result<SessionKey> {
        if let Some(key) = state.keys().find(|k| !keys::PRE_LOGIN.contains(&k.as_str())) {
            // Only the sign-in creates signed-in sessions (with their record); a state holding
            // more than a pre-login session may is never stored as one.
            anyhow::bail!("refusing to store `{key}` in a pre-login session");
        }
        let key = generate_session_key();
        let hash = key_hash(&key);
        let stored = state_to_json(state);
        let stamp = self.cache.as_ref().map(|c| c.stamp());
        let times =
            repo::insert_pre_login(&self.pool, &hash, &stored, self.lifetimes).await.context("inserting a session")?;
        if let (Some(cache), Some(stamp)) = (&self.cache, stamp) {
            let entry = CachedSession {
                state: state.clone(),
                expires_at: times.expires_at,
                created_at: times.created_at,
                last_seen_at: times.created_at,
            };
            cache.put_session(hash, entry, stamp);
        }
        Ok(key)
    }
}

pub fn key_hash(key: &SessionKey) -> Vec<u8> {
    Sha256::digest(key.as_ref().as_bytes()).to_vec()
}

/// Session values are JSON texts; store them as a JSON object of values.
pub fn state_to_json(state: &HashMap<String, String>) -> Value {
    Value::Object(
        state
            .iter()
            .filter(|(k, _)| k.as_str() != keys::CREATED_KEY)
            .map(|(k, v)| (k.clone(), serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.clone()))))
            .collect(),
    )
}

fn json_to_state(value: Value) -> Result<HashMap<String, String>, anyhow::Error> {
    match value {
        Value::Object(map) => Ok(map.into_iter().map(|(k, v)| (k, v.to_string())).collect()),
        _ => anyhow::bail!("session state is not a JSON object"),
    }
}

impl SessionStore for PgSessionStore {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<HashMap<String, String>>, LoadError> {
        let hash = key_hash(session_key);
        let cache = self.cache.as_ref();
        if let Some(cached) = cache.and_then(|c| c.session(&hash, self.touch_interval, self.lifetimes.max)) {
            return Ok(Some(cached.state.clone()));
        }
        let stamp = cache.map(|c| c.stamp());
        let row = repo::load(&self.pool, &hash, self.lifetimes.max, self.touch_interval)
            .await
            .context("loading a session")
            .map_err(LoadError::Other)?;
        let Some(row) = row else {
            return Ok(None);
        };
        if row.stale {
            repo::extend(&self.pool, &hash, self.lifetimes, Some(self.touch_interval))
                .await
                .context("extending a session")
                .map_err(LoadError::Other)?;
        }
        let state = json_to_state(row.state).map_err(LoadError::Deserialization)?;
        // A touched session is cached by its next load, with the new expiry.
        if let (Some(cache), Some(stamp), false) = (cache, stamp, row.stale) {
            let entry = CachedSession {
                state: state.clone(),
                expires_at: row.expires_at,
                created_at: row.created_at,
                last_seen_at: row.last_seen_at,
            };
            cache.put_session(hash, entry, stamp);
        }
        Ok(Some(state))
    }

    async fn save(&self, state: HashMap<String, String>, _ttl: &CookieDuration) -> Result<SessionKey, SaveError> {
        if let Some(created) = state.get(keys::CREATED_KEY) {
            // Written by the sign-in that made this key (see the module comment).
            let key: String =
                serde_json::from_str(created).context("the created session key").map_err(SaveError::Other)?;
            return SessionKey::try_from(key).context("the created session key").map_err(SaveError::Other);
        }
        self.insert_pre_login(&state).await.map_err(SaveError::Other)
    }

    async fn update(
        &self,
        session_key: SessionKey,
        state: HashMap<String, String>,
        _ttl: &CookieDuration,
    ) -> Result<SessionKey, UpdateError> {
        let hash = key_hash(&session_key);
        self.forget(&hash);
        let updated = repo::update_state(&self.pool, &hash, &state_to_json(&state), self.lifetimes)
            .await
            .context("updating a session")
            .map_err(UpdateError::Other)?;
        if !updated {
            // The row expired or was revoked (back-channel logout, an admin) while this request
            // ran. Never resurrect it: start a new anonymous session that keeps only the
            // browser's login binding.
            let anonymous: HashMap<String, String> =
                state.into_iter().filter(|(k, _)| k == keys::LOGIN_BINDING).collect();
            return self.insert_pre_login(&anonymous).await.map_err(UpdateError::Other);
        }
        Ok(session_key)
    }

    async fn update_ttl(&self, session_key: &SessionKey, _ttl: &CookieDuration) -> Result<(), anyhow::Error> {
        let hash = key_hash(session_key);
        self.forget(&hash);
        repo::extend(&self.pool, &hash, self.lifetimes, None).await.context("extending a session")
    }

    async fn delete(&self, session_key: &SessionKey) -> Result<(), anyhow::Error> {
        let hash = key_hash(session_key);
        self.forget(&hash);
        repo::delete_by_key(&self.pool, &hash).await.context("deleting a session")
    }
}
