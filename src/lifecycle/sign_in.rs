//! The end of a sign-in, after the protocol checks passed: the user is written, the browser's
//! session is renewed onto a new key, and the session's row is recorded — in one transaction,
//! so a sign-in is counted exactly when its session exists.

use std::net::IpAddr;

use actix_session::storage::generate_session_key;
use uuid::Uuid;

use crate::crypto::random_token;
use crate::error::AppError;
use crate::lifecycle::Services;
use crate::session::repo::{self, NewSession};
use crate::session::{TokenSet, TypedSession, store};
use crate::users::{self, ClaimedProfile};

/// What the callback verified, and where the browser is.
pub struct SignIn<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    pub profile: &'a ClaimedProfile,
    pub tokens: &'a TokenSet,
    pub logto_sid: Option<&'a str>,
    pub auth_time: Option<u64>,
    pub user_agent: Option<&'a str>,
    pub client_ip: Option<IpAddr>,
}

/// Writes the sign-in and makes this browser's session the new signed-in session. Returns the
/// user's id. On an error nothing is stored (and the browser's session is not signed in): a 503,
/// whatever the database said — the user did nothing wrong and may simply try again.
pub async fn complete(services: &Services, session: &TypedSession, verified: SignIn<'_>) -> Result<Uuid, AppError> {
    let not_written =
        |e: sqlx::Error| AppError::DatabaseUnavailable(anyhow::Error::new(e).context("writing a sign-in"));
    let mut tx = services.pool.begin().await.map_err(not_written)?;
    let user_id = users::repo::sign_in(&mut tx, verified.issuer, verified.subject, verified.profile)
        .await
        .map_err(not_written)?;

    let session_id = Uuid::new_v4();
    let state = session.renew_for(user_id, session_id)?;
    let key = generate_session_key();
    let csrf_token = random_token();
    let new = NewSession {
        session_id,
        user_id,
        logto_sid: verified.logto_sid,
        auth_time: verified.auth_time,
        user_agent: verified.user_agent,
        client_ip: verified.client_ip,
        csrf_token: &csrf_token,
        tokens: verified.tokens,
    };
    repo::insert_signed_in(&mut tx, &services.token_cipher, &store::key_hash(&key), &state, &new, services.lifetimes)
        .await
        .map_err(not_written)?;
    tx.commit().await.map_err(not_written)?;

    session.use_created_key(&key)?;
    // This instance's cached profile; other instances hear of the change through NOTIFY.
    services.forget_user(user_id);
    Ok(user_id)
}
