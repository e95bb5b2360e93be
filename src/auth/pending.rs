//! All SQL about pending sign-ins (`pending_logins`).
//!
//! A pending sign-in is stored under the SHA-256 of its `state` and the SHA-256 of the browser's
//! login binding; [`take`] deletes and returns it in one statement, so it can be used once only,
//! and only from the browser that started it, within [`PENDING_TTL`].

use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::PgPool;

pub const PENDING_TTL: Duration = Duration::from_secs(600);
/// At most this many sign-ins may be pending per browser (tabs); older ones are dropped.
const MAX_PER_BROWSER: i64 = 10;

#[derive(Debug, sqlx::FromRow)]
pub struct PendingLogin {
    pub nonce: String,
    pub pkce_verifier: String,
    pub return_to: String,
    /// Unix seconds.
    pub started_at: i64,
    /// The `max_age` sent (seconds) for a step-up sign-in.
    pub max_age: Option<i32>,
}

fn hash(value: &str) -> Vec<u8> {
    Sha256::digest(value.as_bytes()).to_vec()
}

#[tracing::instrument(name = "pending.create", skip_all)]
pub async fn create(
    pool: &PgPool,
    state: &str,
    binding: &str,
    nonce: &str,
    pkce_verifier: &str,
    return_to: &str,
    max_age: Option<i32>,
) -> Result<(), sqlx::Error> {
    let binding = hash(binding);
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "insert into pending_logins (state_hash, binding_hash, nonce, pkce_verifier, return_to, expires_at, max_age)
         values ($1, $2, $3, $4, $5, now() + $6 * interval '1 second', $7)",
        hash(state),
        &binding,
        nonce,
        pkce_verifier,
        return_to,
        PENDING_TTL.as_secs() as i64,
        max_age
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "delete from pending_logins where binding_hash = $1 and state_hash in (
             select state_hash from pending_logins where binding_hash = $1
              order by created_at desc offset $2)",
        &binding,
        MAX_PER_BROWSER
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Consumes the pending sign-in for `state` if it belongs to `binding` and has not expired.
#[tracing::instrument(name = "pending.take", skip_all)]
pub async fn take(pool: &PgPool, state: &str, binding: &str) -> Result<Option<PendingLogin>, sqlx::Error> {
    sqlx::query_as!(
        PendingLogin,
        r#"delete from pending_logins
          where state_hash = $1 and binding_hash = $2 and expires_at > now()
          returning nonce, pkce_verifier, return_to, extract(epoch from created_at)::bigint as "started_at!", max_age"#,
        hash(state),
        hash(binding)
    )
    .fetch_optional(pool)
    .await
}
