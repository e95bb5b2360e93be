//! `actix_session::storage::SessionStore` over Postgres.
//!
//! Rows are keyed by the SHA-256 of the session key, so the table holds no usable cookie.
//! Expiry is enforced here, server-side: an idle timeout, extended at most once a minute per
//! session (a read-only request costs one `SELECT`, not a write), and an absolute lifetime
//! counted from creation. Sessions that hold no signed-in user (a sign-in in progress) live
//! only [`PRE_AUTH_TTL`].

use std::collections::HashMap;
use std::time::Duration;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError, generate_session_key};
use actix_web::cookie::time::Duration as CookieDuration;
use anyhow::Context;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use super::cache::{Entry, SessionCache};
use super::sealed::{self, TokenCipher};
use super::{TokenSet, keys, renewal};
use std::sync::Arc;

/// How long a session without a signed-in user (a pending sign-in) lives.
pub const PRE_AUTH_TTL: Duration = Duration::from_secs(600);
/// Expiry is pushed forward at most this often per session (less with very short idle timeouts).
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct PgSessionStore {
    pool: PgPool,
    cache: Option<Arc<SessionCache>>,
    idle_timeout: Duration,
    max_lifetime: Duration,
    touch_interval: Duration,
    cipher: TokenCipher,
}

struct SealedTokens {
    id_token: Option<String>,
    access_token: Option<String>,
    access_token_expires_at: Option<f64>,
    refresh_token: Option<String>,
}

/// The columns projected out of a session's state.
struct Projection {
    session_id: Option<Uuid>,
    user_id: Option<Uuid>,
    tokens: Option<TokenSet>,
    logto_sid: Option<String>,
    user_agent: Option<String>,
    client_ip: Option<String>,
}

impl PgSessionStore {
    /// `cache`: the in-memory session cache (kept fresh by its LISTEN task), or none.
    pub fn new(
        pool: PgPool,
        idle_timeout: Duration,
        max_lifetime: Duration,
        cache: Option<Arc<SessionCache>>,
        cipher: TokenCipher,
    ) -> Self {
        let touch_interval = TOUCH_INTERVAL.min(idle_timeout / 4);
        Self { pool, cache, idle_timeout, max_lifetime, touch_interval, cipher }
    }

    /// The tokens of `p`, sealed for their columns.
    fn sealed_tokens(&self, p: &Projection) -> SealedTokens {
        let t = p.tokens.as_ref();
        SealedTokens {
            id_token: t.map(|t| self.cipher.seal(sealed::ID_TOKEN, &t.id_token)),
            access_token: t.map(|t| self.cipher.seal(sealed::ACCESS_TOKEN, &t.access_token)),
            access_token_expires_at: t.map(|t| t.access_token_expires_at as f64),
            refresh_token: t
                .and_then(|t| t.refresh_token.as_deref())
                .map(|r| self.cipher.seal(sealed::REFRESH_TOKEN, r)),
        }
    }

    fn forget(&self, key_hash: &[u8]) {
        if let Some(cache) = &self.cache {
            cache.evict_key(key_hash);
        }
    }

    fn secs(d: Duration) -> f64 {
        d.as_secs_f64()
    }

    /// Inserts a new session row (deleting the row `replaces`, a renewed session's old key, in
    /// the same statement; and writing a returning user's sign-in, if the request registered one
    /// for this session's user, see [`renewal`]). A session without a user (a sign-in in
    /// progress) goes straight into the cache: the callback that follows needs no round trip to
    /// load it.
    async fn insert(&self, state: &HashMap<String, String>, replaces: Option<Vec<u8>>) -> anyhow::Result<SessionKey> {
        let key = generate_session_key();
        let hash = key_hash(&key);
        let p = project(state);
        let t = self.sealed_tokens(&p);
        let stored = state_to_json(state);
        let sign_in = renewal::take_sign_in_write(p.user_id);
        let epoch = self.cache.as_ref().map(|c| c.epoch());
        let times: InsertedTimes = sqlx::query_as(
            "with replaced as (delete from sessions where key_hash = $14)
             insert into sessions (key_hash, state, user_id, logto_sid, user_agent, client_ip, expires_at,
                                   session_id, id_token, access_token, access_token_expires_at, refresh_token)
             select $1, $2, signed_in.user_id, $4, $5, $6::inet,
                    now() + (case when $3::uuid is null then $7 else $8 end) * interval '1 second',
                    $9, $10, $11, to_timestamp($12::float8), $13
               -- users_sign_in returns $3 or fails the statement (migrations/…07_users_sign_in_function.sql).
               from (select case when $15::text is null then $3::uuid
                                 else users_sign_in($15, $16, $17, $3, now() + $8 * interval '1 second') end
                             as user_id) signed_in
             returning extract(epoch from created_at)::float8 as created_at,
                       extract(epoch from expires_at)::float8 as expires_at",
        )
        .bind(&hash)
        .bind(&stored)
        .bind(p.user_id)
        .bind(p.logto_sid)
        .bind(p.user_agent)
        .bind(p.client_ip)
        .bind(Self::secs(PRE_AUTH_TTL))
        .bind(Self::secs(self.idle_timeout))
        .bind(p.session_id)
        .bind(t.id_token)
        .bind(t.access_token)
        .bind(t.access_token_expires_at)
        .bind(t.refresh_token)
        .bind(replaces)
        .bind(sign_in.as_ref().map(|w| w.issuer.as_str()))
        .bind(sign_in.as_ref().map(|w| w.subject.as_str()))
        .bind(sign_in.as_ref().map(|w| sqlx::types::Json(&w.profile)))
        .fetch_one(&self.pool)
        .await
        .context("inserting a session")?;
        if let (Some(cache), Some(epoch), None) = (&self.cache, epoch, p.user_id) {
            let entry = Entry {
                state: json_to_state(stored)?,
                user_id: None,
                expires_at: times.expires_at,
                created_at: times.created_at,
                last_seen_at: times.created_at,
                cached_at: std::time::Instant::now(),
            };
            cache.put(hash, entry, epoch);
        }
        Ok(key)
    }
}

#[derive(sqlx::FromRow)]
struct InsertedTimes {
    created_at: f64,
    expires_at: f64,
}

#[derive(sqlx::FromRow)]
struct LoadedRow {
    state: Value,
    stale: bool,
    user_id: Option<Uuid>,
    created_at: f64,
    expires_at: f64,
    last_seen_at: f64,
    loaded_user: Option<Value>,
}

pub fn key_hash(key: &SessionKey) -> Vec<u8> {
    Sha256::digest(key.as_ref().as_bytes()).to_vec()
}

fn project(state: &HashMap<String, String>) -> Projection {
    let string = |k: &str| state.get(k).and_then(|v| serde_json::from_str::<String>(v).ok());
    Projection {
        session_id: string(keys::SESSION_ID).and_then(|v| Uuid::parse_str(&v).ok()),
        user_id: string(keys::IDENTITY).and_then(|v| Uuid::parse_str(&v).ok()),
        tokens: state.get(keys::TOKENS).and_then(|v| serde_json::from_str(v).ok()),
        logto_sid: string(keys::LOGTO_SID),
        user_agent: string(keys::USER_AGENT),
        client_ip: string(keys::CLIENT_IP).filter(|ip| ip.parse::<std::net::IpAddr>().is_ok()),
    }
}

/// Session values are JSON texts; store them as a JSON object of values. The tokens are not
/// part of it: they have their own columns.
fn state_to_json(state: &HashMap<String, String>) -> Value {
    Value::Object(
        state
            .iter()
            .filter(|(k, _)| k.as_str() != keys::TOKENS && k.as_str() != keys::LOADED_USER)
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
        if let Some(state) = self.cache.as_ref().and_then(|c| c.get(&hash, self.touch_interval, self.max_lifetime)) {
            return Ok(Some(state));
        }
        let epoch = self.cache.as_ref().map(|c| c.epoch());
        // The signed-in user's profile comes along in the same query (one round trip per
        // request); it is handed to the request under `keys::LOADED_USER` and never stored.
        let row: Option<LoadedRow> = sqlx::query_as(
            "select s.state, s.last_seen_at < now() - $3 * interval '1 second' as stale, s.user_id,
                    extract(epoch from s.created_at)::float8 as created_at,
                    extract(epoch from s.expires_at)::float8 as expires_at,
                    extract(epoch from s.last_seen_at)::float8 as last_seen_at,
                    case when u.user_id is not null then json_build_object(
                        'user_id', u.user_id, 'issuer', u.issuer, 'subject', u.subject, 'name', u.name,
                        'username', u.username, 'email', u.email, 'email_verified', u.email_verified,
                        'picture', u.picture, 'roles', u.roles, 'identities', u.identities,
                        'hf_user_id', u.hf_user_id, 'hf_username', u.hf_username, 'hf_avatar', u.hf_avatar)::jsonb
                    end as loaded_user
               from sessions s left join users u on u.user_id = s.user_id
              where s.key_hash = $1 and s.expires_at > now() and s.created_at > now() - $2 * interval '1 second'",
        )
        .bind(&hash)
        .bind(Self::secs(self.max_lifetime))
        .bind(Self::secs(self.touch_interval))
        .fetch_optional(&self.pool)
        .await
        .context("loading a session")
        .map_err(LoadError::Other)?;
        let Some(row) = row else {
            return Ok(None);
        };
        if row.stale {
            sqlx::query(
                "update sessions
                    set last_seen_at = now(),
                        expires_at = least(
                            now() + (case when user_id is null then $2 else $3 end) * interval '1 second',
                            created_at + $4 * interval '1 second')
                  where key_hash = $1
                    -- Concurrent requests of one session all see it stale; only the first writes.
                    and last_seen_at < now() - $5 * interval '1 second'",
            )
            .bind(&hash)
            .bind(Self::secs(PRE_AUTH_TTL))
            .bind(Self::secs(self.idle_timeout))
            .bind(Self::secs(self.max_lifetime))
            .bind(Self::secs(self.touch_interval))
            .execute(&self.pool)
            .await
            .context("extending a session")
            .map_err(LoadError::Other)?;
        }
        let mut state = json_to_state(row.state).map_err(LoadError::Deserialization)?;
        if let Some(user) = row.loaded_user {
            state.insert(keys::LOADED_USER.to_owned(), user.to_string());
        }
        // A touched session is cached by its next load, with the new expiry.
        if let (Some(cache), Some(epoch), false) = (&self.cache, epoch, row.stale) {
            let entry = Entry {
                state: state.clone(),
                user_id: row.user_id,
                expires_at: row.expires_at,
                created_at: row.created_at,
                last_seen_at: row.last_seen_at,
                cached_at: std::time::Instant::now(),
            };
            cache.put(hash, entry, epoch);
        }
        Ok(Some(state))
    }

    async fn save(&self, state: HashMap<String, String>, _ttl: &CookieDuration) -> Result<SessionKey, SaveError> {
        self.insert(&state, renewal::take_deferred_delete()).await.map_err(SaveError::Other)
    }

    async fn update(
        &self,
        session_key: SessionKey,
        state: HashMap<String, String>,
        _ttl: &CookieDuration,
    ) -> Result<SessionKey, UpdateError> {
        let p = project(&state);
        let t = self.sealed_tokens(&p);
        let hash = key_hash(&session_key);
        self.forget(&hash);
        let updated = sqlx::query(
            "update sessions
                set state = $2, user_id = $3, logto_sid = $4, user_agent = $5, client_ip = $6::inet,
                    session_id = $10,
                    id_token = coalesce($11, id_token),
                    access_token = coalesce($12, access_token),
                    access_token_expires_at = coalesce(to_timestamp($13::float8), access_token_expires_at),
                    refresh_token = coalesce($14, refresh_token),
                    last_seen_at = now(),
                    expires_at = least(
                        now() + (case when $3::uuid is null then $7 else $8 end) * interval '1 second',
                        created_at + $9 * interval '1 second')
              where key_hash = $1 and expires_at > now()",
        )
        .bind(&hash)
        .bind(state_to_json(&state))
        .bind(p.user_id)
        .bind(p.logto_sid)
        .bind(p.user_agent)
        .bind(p.client_ip)
        .bind(Self::secs(PRE_AUTH_TTL))
        .bind(Self::secs(self.idle_timeout))
        .bind(Self::secs(self.max_lifetime))
        .bind(p.session_id)
        .bind(t.id_token)
        .bind(t.access_token)
        .bind(t.access_token_expires_at)
        .bind(t.refresh_token)
        .execute(&self.pool)
        .await
        .context("updating a session")
        .map_err(UpdateError::Other)?;
        if updated.rows_affected() == 0 {
            // The row expired or was revoked (back-channel logout, an admin) while this request
            // ran. Never resurrect it: start a new anonymous session that keeps only the
            // browser's login binding.
            let anonymous: HashMap<String, String> =
                state.into_iter().filter(|(k, _)| k == keys::LOGIN_BINDING).collect();
            return self.insert(&anonymous, None).await.map_err(UpdateError::Other);
        }
        Ok(session_key)
    }

    async fn update_ttl(&self, session_key: &SessionKey, _ttl: &CookieDuration) -> Result<(), anyhow::Error> {
        let hash = key_hash(session_key);
        self.forget(&hash);
        sqlx::query(
            "update sessions
                set last_seen_at = now(),
                    expires_at = least(
                        now() + (case when user_id is null then $2 else $3 end) * interval '1 second',
                        created_at + $4 * interval '1 second')
              where key_hash = $1 and expires_at > now()",
        )
        .bind(&hash)
        .bind(Self::secs(PRE_AUTH_TTL))
        .bind(Self::secs(self.idle_timeout))
        .bind(Self::secs(self.max_lifetime))
        .execute(&self.pool)
        .await
        .context("extending a session")?;
        Ok(())
    }

    async fn delete(&self, session_key: &SessionKey) -> Result<(), anyhow::Error> {
        let hash = key_hash(session_key);
        self.forget(&hash);
        if renewal::defer_delete(&hash) {
            // Deleted by the save that follows, in the same statement as the insert.
            return Ok(());
        }
        sqlx::query("delete from sessions where key_hash = $1")
            .bind(&hash)
            .execute(&self.pool)
            .await
            .context("deleting a session")?;
        Ok(())
    }
}
