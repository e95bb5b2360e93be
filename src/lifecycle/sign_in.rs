//! The end of a sign-in, after the protocol checks passed: one statement writes the user's
//! sign-in (profile, counters, event) and the new session's row with its record — so a sign-in
//! is counted exactly when its session exists, and nothing of it is written when that statement
//! fails — and then the browser's session is renewed onto the new row's key.

use std::net::IpAddr;

use actix_session::storage::generate_session_key;
use uuid::Uuid;

use crate::crypto::random_token;
use crate::error::AppError;
use crate::lifecycle::Services;
use crate::session::repo::{self, NewSession, UserSignIn};
use crate::session::{TokenSet, TypedSession, store};
use crate::users::ClaimedProfile;

/// What the callback verified, and where the browser is.
pub struct SignIn<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    /// The user's id when (issuer, subject) is known already; a new user gets a fresh one.
    pub known_user: Option<Uuid>,
    pub profile: &'a ClaimedProfile,
    pub tokens: &'a TokenSet,
    pub logto_sid: Option<&'a str>,
    pub auth_time: Option<u64>,
    pub user_agent: Option<&'a str>,
    pub client_ip: Option<IpAddr>,
}

/// Writes the sign-in and makes this browser's session the new signed-in session. Returns the
/// user's id. On an error nothing is stored and the browser's session stays as it was: a 503,
/// whatever the database said — the user did nothing wrong and may simply try again.
pub async fn complete(services: &Services, session: &TypedSession, sign_in: SignIn<'_>) -> Result<Uuid, AppError> {
    let user_id = sign_in.known_user.unwrap_or_else(Uuid::new_v4);
    let session_id = Uuid::new_v4();
    let state = session.signed_in_state(user_id, session_id);
    let key = generate_session_key();
    let csrf_token = random_token();
    let new = NewSession {
        session_id,
        user_id,
        logto_sid: sign_in.logto_sid,
        auth_time: sign_in.auth_time,
        user_agent: sign_in.user_agent,
        client_ip: sign_in.client_ip,
        csrf_token: &csrf_token,
        tokens: sign_in.tokens,
    };
    let user = UserSignIn { issuer: sign_in.issuer, subject: sign_in.subject, profile: sign_in.profile };
    repo::insert_signed_in(
        &services.pool,
        &services.token_cipher,
        &store::key_hash(&key),
        &state,
        &new,
        &user,
        services.lifetimes,
    )
    .await
    .map_err(|e| AppError::DatabaseUnavailable(anyhow::Error::new(e).context("writing a sign-in")))?;

    // actix-session deletes the pre-login row after the handler, and the store's `save` hands
    // it the new row's key.
    session.renew_for(user_id, session_id, &key, &state)?;
    // This instance's cached profile; other instances hear of the change through NOTIFY.
    services.forget_user(user_id);
    Ok(user_id)
}
