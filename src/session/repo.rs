//! All SQL about sessions: the rows behind actix-session's store, the record a sign-in
//! writes, tokens, listing and ending sessions.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::TokenSet;
use super::sealed::{self, TokenCipher};
use crate::users::ClaimedProfile;

/// How long sessions live; every expiry is computed by the `session_expiry` SQL function
/// (migration `…11_…`) from these.
#[derive(Clone, Copy, Debug)]
pub struct Lifetimes {
    /// A session without a signed-in user (a sign-in in progress).
    pub pre_login: Duration,
    pub idle: Duration,
    pub max: Duration,
}

/// A session row as the store loads it. Times are unix seconds.
#[derive(sqlx::FromRow)]
pub struct StoreRow {
    pub state: Value,
    /// Last seen more than the touch interval ago: the expiry must be extended.
    pub stale: bool,
    pub created_at: f64,
    pub expires_at: f64,
    pub last_seen_at: f64,
}

/// Times of a row just written, unix seconds.
#[derive(sqlx::FromRow)]
pub struct RowTimes {
    pub created_at: f64,
    pub expires_at: f64,
}

/// The live session stored under `key_hash`, if any.
pub async fn load(
    pool: &PgPool,
    key_hash: &[u8],
    max_lifetime: Duration,
    touch_interval: Duration,
) -> Result<Option<StoreRow>, sqlx::Error> {
    sqlx::query_as!(
        StoreRow,
        r#"select state, last_seen_at < now() - $3 * interval '1 second' as "stale!",
                extract(epoch from created_at)::float8 as "created_at!",
                extract(epoch from expires_at)::float8 as "expires_at!",
                extract(epoch from last_seen_at)::float8 as "last_seen_at!"
           from sessions
          where key_hash = $1 and expires_at > now() and created_at > now() - $2 * interval '1 second'"#,
        key_hash,
        max_lifetime.as_secs_f64(),
        touch_interval.as_secs_f64()
    )
    .fetch_optional(pool)
    .await
}

/// Pushes the expiry forward after activity. With `only_if_stale`, only when the session was
/// last seen more than that long ago (concurrent requests all see it stale; one writes).
pub async fn extend(
    pool: &PgPool,
    key_hash: &[u8],
    lifetimes: Lifetimes,
    only_if_stale: Option<Duration>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update sessions
            set last_seen_at = now(),
                expires_at = session_expiry(user_id is not null, created_at, $2, $3, $4)
          where key_hash = $1 and expires_at > now()
            and ($5::float8 is null or last_seen_at < now() - $5 * interval '1 second')",
        key_hash,
        lifetimes.pre_login.as_secs_f64(),
        lifetimes.idle.as_secs_f64(),
        lifetimes.max.as_secs_f64(),
        only_if_stale.map(|d| d.as_secs_f64())
    )
    .execute(pool)
    .await
    .map(|_| ())
}

/// A new session without a signed-in user (it carries the login binding of a sign-in).
pub async fn insert_pre_login(
    pool: &PgPool,
    key_hash: &[u8],
    state: &Value,
    lifetimes: Lifetimes,
) -> Result<RowTimes, sqlx::Error> {
    sqlx::query_as!(
        RowTimes,
        r#"insert into sessions (key_hash, state, expires_at)
         values ($1, $2, session_expiry(false, now(), $3, $4, $5))
         returning extract(epoch from created_at)::float8 as "created_at!",
                   extract(epoch from expires_at)::float8 as "expires_at!""#,
        key_hash,
        state,
        lifetimes.pre_login.as_secs_f64(),
        lifetimes.idle.as_secs_f64(),
        lifetimes.max.as_secs_f64()
    )
    .fetch_one(pool)
    .await
}

/// Replaces a live session's state after a request changed it, and extends it. `false`: the
/// row is gone or expired (ended while the request ran).
pub async fn update_state(
    pool: &PgPool,
    key_hash: &[u8],
    state: &Value,
    lifetimes: Lifetimes,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query!(
        "update sessions
            set state = $2, last_seen_at = now(),
                expires_at = session_expiry(user_id is not null, created_at, $3, $4, $5)
          where key_hash = $1 and expires_at > now()",
        key_hash,
        state,
        lifetimes.pre_login.as_secs_f64(),
        lifetimes.idle.as_secs_f64(),
        lifetimes.max.as_secs_f64()
    )
    .execute(pool)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Deletes the row of a session key (`delete_session_row`: a pre-login row's delete does not wait
/// for the WAL flush, see migration `…13_…`).
pub async fn delete_by_key(pool: &PgPool, key_hash: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query!("select delete_session_row($1)", key_hash).execute(pool).await.map(|_| ())
}

/// What a sign-in knows about the session it starts.
pub struct NewSession<'a> {
    pub session_id: Uuid,
    pub user_id: Uuid,
    /// Logto's session id (`sid`), for back-channel logout.
    pub logto_sid: Option<&'a str>,
    /// When the user last authenticated at Logto (unix seconds), when the ID token said so.
    pub auth_time: Option<u64>,
    pub user_agent: Option<&'a str>,
    pub client_ip: Option<std::net::IpAddr>,
    pub csrf_token: &'a str,
    pub tokens: &'a TokenSet,
}

/// The user's side of a sign-in, written with the session (the `users_sign_in` SQL function).
pub struct UserSignIn<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    pub profile: &'a ClaimedProfile,
}

/// Writes a sign-in in one statement: the user's (`users_sign_in`: profile, counters, a
/// sign-in event; a new user gets `new.user_id`, an existing one must have it, or nothing is
/// written) and the signed-in session's row under `key_hash`, with actix-session's `state` and
/// the record's columns (tokens sealed).
#[tracing::instrument(name = "sessions.insert_signed_in", skip_all)]
pub async fn insert_signed_in(
    pool: &PgPool,
    cipher: &TokenCipher,
    key_hash: &[u8],
    state: &Value,
    new: &NewSession<'_>,
    user: &UserSignIn<'_>,
    lifetimes: Lifetimes,
) -> Result<(), sqlx::Error> {
    let t = new.tokens;
    let profile = serde_json::to_value(user.profile).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query!(
        "insert into sessions (key_hash, state, session_id, user_id, logto_sid, auth_time, user_agent, client_ip,
                               csrf_token, id_token, access_token, access_token_expires_at, refresh_token, expires_at)
         select $1, $2, $3, signed_in.user_id, $5, to_timestamp($6::float8), $7, $8::text::inet, $9, $10, $11,
                to_timestamp($12::float8), $13, signed_in.expires_at
           from (select users_sign_in($17, $18, $19, $4, expiry) as user_id, expiry as expires_at
                   from session_expiry(true, now(), $14, $15, $16) expiry) signed_in",
        key_hash,
        state,
        new.session_id,
        new.user_id,
        new.logto_sid,
        new.auth_time.map(|t| t as f64),
        new.user_agent.map(|ua| ua.chars().take(512).collect::<String>()),
        new.client_ip.map(|ip| ip.to_string()),
        new.csrf_token,
        cipher.seal(sealed::ID_TOKEN, &t.id_token),
        cipher.seal(sealed::ACCESS_TOKEN, &t.access_token),
        t.access_token_expires_at as f64,
        t.refresh_token.as_deref().map(|r| cipher.seal(sealed::REFRESH_TOKEN, r)),
        lifetimes.pre_login.as_secs_f64(),
        lifetimes.idle.as_secs_f64(),
        lifetimes.max.as_secs_f64(),
        user.issuer,
        user.subject,
        profile,
    )
    .execute(pool)
    .await
    .map(|_| ())
}

/// What a request may need to know about its signed-in session beyond who the user is.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRecord {
    pub session_id: Uuid,
    pub user_id: Uuid,
    /// Unix seconds.
    pub auth_time: Option<i64>,
    pub csrf_token: Option<String>,
}

/// The record of a live signed-in session.
#[tracing::instrument(name = "sessions.record", skip_all)]
pub async fn record(pool: &PgPool, session_id: Uuid) -> Result<Option<SessionRecord>, sqlx::Error> {
    sqlx::query_as!(
        SessionRecord,
        r#"select session_id as "session_id!", user_id as "user_id!",
                extract(epoch from auth_time)::bigint as auth_time, csrf_token
           from sessions where session_id = $1 and user_id is not null and expires_at > now()"#,
        session_id
    )
    .fetch_optional(pool)
    .await
}

/// The tokens of one session (opened: plain tokens).
#[derive(sqlx::FromRow)]
pub struct StoredTokens {
    pub user_id: Uuid,
    pub id_token: Option<String>,
    pub access_token: Option<String>,
    /// Unix seconds.
    pub access_token_expires_at: Option<i64>,
    pub refresh_token: Option<String>,
    /// Unix seconds (with fractions): when the session was last checked against Logto.
    pub revalidated_at: f64,
}

impl std::fmt::Debug for StoredTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredTokens").field("user_id", &self.user_id).finish_non_exhaustive()
    }
}

impl StoredTokens {
    fn opened(self, cipher: &TokenCipher) -> Self {
        Self {
            user_id: self.user_id,
            id_token: cipher.open_opt(sealed::ID_TOKEN, self.id_token.as_deref()),
            access_token: cipher.open_opt(sealed::ACCESS_TOKEN, self.access_token.as_deref()),
            access_token_expires_at: self.access_token_expires_at,
            refresh_token: cipher.open_opt(sealed::REFRESH_TOKEN, self.refresh_token.as_deref()),
            revalidated_at: self.revalidated_at,
        }
    }
}

#[tracing::instrument(name = "sessions.tokens", skip_all)]
pub async fn tokens(
    pool: &PgPool,
    cipher: &TokenCipher,
    session_id: Uuid,
) -> Result<Option<StoredTokens>, sqlx::Error> {
    let stored = sqlx::query_as!(
        StoredTokens,
        r#"select user_id as "user_id!", id_token, access_token,
                  extract(epoch from access_token_expires_at)::bigint as access_token_expires_at, refresh_token,
                  extract(epoch from revalidated_at)::float8 as "revalidated_at!"
             from sessions where session_id = $1 and expires_at > now() and user_id is not null"#,
        session_id
    )
    .fetch_optional(pool)
    .await?;
    Ok(stored.map(|t| t.opened(cipher)))
}

/// What claiming a session's refresh token found.
pub enum Claim {
    /// This caller holds the lease until it stores a result or releases it.
    Claimed(StoredTokens),
    /// Another request (here or on another instance) is refreshing this session now.
    Busy,
    /// The session is gone (signed out, expired).
    Gone,
}

/// Claims the session's refresh token for one refresh: a lease of `lease_secs`, written and
/// committed in one statement, so no connection or row lock is held while Logto answers. Only
/// the lease holder may store the result (`store_refreshed`) or give it back (`release`).
#[tracing::instrument(name = "sessions.claim_refresh", skip_all)]
pub async fn claim_refresh(
    pool: &PgPool,
    cipher: &TokenCipher,
    session_id: Uuid,
    lease: Uuid,
    lease_secs: i64,
) -> Result<Claim, sqlx::Error> {
    let claimed: Option<StoredTokens> = sqlx::query_as!(
        StoredTokens,
        r#"update sessions
            set refresh_lease = $2, refresh_lease_until = now() + $3 * interval '1 second'
          where session_id = $1 and expires_at > now() and user_id is not null
            and (refresh_lease is null or refresh_lease_until < now())
      returning user_id as "user_id!", id_token, access_token,
                extract(epoch from access_token_expires_at)::bigint as access_token_expires_at, refresh_token,
                extract(epoch from revalidated_at)::float8 as "revalidated_at!""#,
        session_id,
        lease,
        lease_secs as f64
    )
    .fetch_optional(pool)
    .await?;
    if let Some(tokens) = claimed {
        return Ok(Claim::Claimed(tokens.opened(cipher)));
    }
    let exists: bool = sqlx::query_scalar!(r#"select exists (select 1 from sessions where session_id = $1 and expires_at > now() and user_id is not null) as "exists!""#, session_id)
    .fetch_one(pool)
    .await?;
    Ok(if exists { Claim::Busy } else { Claim::Gone })
}

/// Seconds since the session was last checked against Logto (`None`: no such session).
pub async fn revalidated_ago(pool: &PgPool, session_id: Uuid) -> Result<Option<f64>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select extract(epoch from now() - revalidated_at)::float8 as "ago!" from sessions
          where session_id = $1 and user_id is not null"#,
        session_id
    )
    .fetch_optional(pool)
    .await
}

/// Signed-in sessions used since they were last checked against Logto (a new session counts as
/// used), and last checked more
/// than `after_secs` ago: the background revalidation's work, oldest first.
pub async fn due_for_revalidation(pool: &PgPool, after_secs: i64, limit: i64) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select session_id as "session_id!" from sessions
          where user_id is not null and session_id is not null and expires_at > now()
            and revalidated_at < now() - $1 * interval '1 second' and last_seen_at >= revalidated_at
          order by revalidated_at
          limit $2"#,
        after_secs as f64,
        limit
    )
    .fetch_all(pool)
    .await
}

/// Gives a lease back without storing anything (the refresh failed).
pub async fn release(pool: &PgPool, session_id: Uuid, lease: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update sessions set refresh_lease = null, refresh_lease_until = null
          where session_id = $1 and refresh_lease = $2",
        session_id,
        lease
    )
    .execute(pool)
    .await
    .map(|_| ())
}

/// The outcome of one refresh, as stored.
pub struct RefreshResult<'a> {
    /// `None`: the session's own access token stays as it was (a resource/organization token).
    pub session_access_token: Option<(&'a str, i64)>,
    /// `(audience, token, expires_at)` of a resource/organization token.
    pub audience_token: Option<(&'a str, &'a str, i64)>,
    /// A rotated refresh token, when Logto issued one.
    pub refresh_token: Option<&'a str>,
    pub id_token: Option<&'a str>,
    /// Logto vouched for the session again (a verified ID token or userinfo came back).
    pub revalidated: bool,
}

/// Stores a refresh's result and ends the lease, in one short transaction, only if `lease` is
/// still this caller's. Returns `false` when it is not (the session ended meanwhile).
#[tracing::instrument(name = "sessions.store_refreshed", skip_all)]
pub async fn store_refreshed(
    conn: &mut PgConnection,
    cipher: &TokenCipher,
    session_id: Uuid,
    lease: Uuid,
    result: &RefreshResult<'_>,
) -> Result<bool, sqlx::Error> {
    let (access_token, expires_at) = result.session_access_token.unzip();
    let stored = sqlx::query!(
        "update sessions
            set access_token = coalesce($3, access_token),
                access_token_expires_at = coalesce(to_timestamp($4::float8), access_token_expires_at),
                refresh_token = coalesce($5, refresh_token), id_token = coalesce($6, id_token),
                revalidated_at = case when $7 then now() else revalidated_at end,
                refresh_lease = null, refresh_lease_until = null
          where session_id = $1 and refresh_lease = $2",
        session_id,
        lease,
        access_token.map(|t| cipher.seal(sealed::ACCESS_TOKEN, t)),
        expires_at.map(|e| e as f64),
        result.refresh_token.map(|t| cipher.seal(sealed::REFRESH_TOKEN, t)),
        result.id_token.map(|t| cipher.seal(sealed::ID_TOKEN, t)),
        result.revalidated
    )
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if stored && let Some((audience, token, expires_at)) = result.audience_token {
        store_access_token(conn, cipher, session_id, audience, token, expires_at).await?;
    }
    Ok(stored)
}

/// A cached resource/organization access token still valid `margin_secs` from now.
pub async fn cached_access_token(
    pool: &PgPool,
    cipher: &TokenCipher,
    session_id: Uuid,
    audience: &str,
    margin_secs: i64,
) -> Result<Option<(String, i64)>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select access_token, extract(epoch from expires_at)::bigint as "expires_at!" from session_access_tokens
          where session_id = $1 and audience = $2 and expires_at > now() + $3 * interval '1 second'"#,
        session_id,
        audience,
        margin_secs as f64
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|r| Some((cipher.open(sealed::ACCESS_TOKEN, &r.access_token)?, r.expires_at))))
}

pub async fn store_access_token(
    conn: &mut PgConnection,
    cipher: &TokenCipher,
    session_id: Uuid,
    audience: &str,
    access_token: &str,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into session_access_tokens (session_id, audience, access_token, expires_at)
         values ($1, $2, $3, to_timestamp($4::float8))
         on conflict (session_id, audience)
         do update set access_token = excluded.access_token, expires_at = excluded.expires_at",
        session_id,
        audience,
        cipher.seal(sealed::ACCESS_TOKEN, access_token),
        expires_at as f64
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// A session that was just deleted: whose it was, its row key (to drop cached copies) and
/// refresh token (sealed; to revoke at the provider).
#[derive(Debug, sqlx::FromRow)]
pub struct Ended {
    pub user_id: Option<Uuid>,
    pub key_hash: Vec<u8>,
    pub refresh_token: Option<String>,
}

/// Deletes one session by its id.
pub async fn delete_session(conn: &mut PgConnection, session_id: Uuid) -> Result<Vec<Ended>, sqlx::Error> {
    sqlx::query_as!(
        Ended,
        "delete from sessions where session_id = $1 returning user_id, key_hash, refresh_token",
        session_id
    )
    .fetch_all(conn)
    .await
}

/// A session as its owner (or an admin) sees it.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct SessionInfo {
    pub session_id: Uuid,
    pub created_at: time::OffsetDateTime,
    pub last_seen_at: time::OffsetDateTime,
    pub expires_at: time::OffsetDateTime,
    pub user_agent: Option<String>,
    pub client_ip: Option<String>,
    pub has_logto_sid: bool,
}

#[tracing::instrument(name = "sessions.list_for_user", skip_all)]
pub async fn list_for_user(pool: &PgPool, user_id: Uuid) -> Result<Vec<SessionInfo>, sqlx::Error> {
    sqlx::query_as!(
        SessionInfo,
        r#"select session_id as "session_id!", created_at, last_seen_at, expires_at, user_agent,
                host(client_ip) as client_ip, logto_sid is not null as "has_logto_sid!"
           from sessions
          where user_id = $1 and session_id is not null and expires_at > now()
          order by last_seen_at desc
          limit 200"#,
        user_id
    )
    .fetch_all(pool)
    .await
}

/// Deletes sessions of `user_id`: one (`only`), all but one (`except`), or all.
#[tracing::instrument(name = "sessions.delete_for_user", skip_all)]
pub async fn delete_for_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    only: Option<Uuid>,
    except: Option<Uuid>,
) -> Result<Vec<Ended>, sqlx::Error> {
    sqlx::query_as!(
        Ended,
        "delete from sessions
          where user_id = $1
            and ($2::uuid is null or session_id = $2)
            and ($3::uuid is null or session_id is distinct from $3)
      returning user_id, key_hash, refresh_token",
        user_id,
        only,
        except
    )
    .fetch_all(conn)
    .await
}

/// Back-channel logout: records the token's `jti` (refusing a replay) and deletes the
/// sessions it names, in one transaction. `None` means the `jti` was seen before.
#[tracing::instrument(name = "sessions.backchannel_logout", skip_all)]
pub async fn backchannel_logout(
    conn: &mut PgConnection,
    jti_hash: &[u8],
    jti_expires_at: i64,
    issuer: &str,
    subject: Option<&str>,
    sid: Option<&str>,
) -> Result<Option<Vec<Ended>>, sqlx::Error> {
    let mut tx = sqlx::Connection::begin(conn).await?;
    let fresh = sqlx::query!(
        "insert into logout_token_jtis (jti_hash, expires_at) values ($1, to_timestamp($2::float8))
         on conflict (jti_hash) do nothing",
        jti_hash,
        jti_expires_at as f64
    )
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !fresh {
        return Ok(None);
    }
    // With `sid`: that Logto session only (and, when `sub` is given too, only if it is that
    // user's). Without `sid`: every session of the user (iss, sub).
    let ended = sqlx::query_as!(
        Ended,
        "delete from sessions s
          where ($3::text is not null and s.logto_sid = $3
                 and ($2::text is null or s.user_id in (select user_id from users where issuer = $1 and subject = $2)))
             or ($3::text is null
                 and s.user_id in (select user_id from users where issuer = $1 and subject = $2))
      returning s.user_id, s.key_hash, s.refresh_token",
        issuer,
        subject,
        sid
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(ended))
}

/// Deletes expired sessions, pending sign-ins and logout-token ids, `batch` rows at a time per
/// table, skipping rows another instance holds. Returns how many rows went.
#[tracing::instrument(name = "sessions.sweep", skip_all)]
pub async fn sweep(pool: &PgPool, batch: i64) -> Result<u64, sqlx::Error> {
    let sessions = sqlx::query!(
        "delete from sessions where key_hash in (
             select key_hash from sessions where expires_at < now() limit $1 for update skip locked)",
        batch
    )
    .execute(pool)
    .await?;
    let pending = sqlx::query!(
        "delete from pending_logins where state_hash in (
             select state_hash from pending_logins where expires_at < now() limit $1 for update skip locked)",
        batch
    )
    .execute(pool)
    .await?;
    let jtis = sqlx::query!(
        "delete from logout_token_jtis where jti_hash in (
             select jti_hash from logout_token_jtis where expires_at < now() limit $1 for update skip locked)",
        batch
    )
    .execute(pool)
    .await?;
    let events = sqlx::query!(
        "delete from sign_in_events where ctid in (
             select ctid from sign_in_events where at < now() - interval '30 days' limit $1 for update skip locked)",
        batch
    )
    .execute(pool)
    .await?;
    let total = [sessions, pending, jtis, events].iter().map(|r| r.rows_affected()).sum();
    Ok(total)
}
