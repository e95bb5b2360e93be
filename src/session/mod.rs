//! Server-side sessions: the Postgres store and a typed view over a request's session.

pub mod cache;
pub mod keys;
pub mod renewal;
pub mod repo;
pub mod sealed;
pub mod store;
pub mod sweeper;

use actix_session::{Session, SessionExt};
use actix_web::{FromRequest, HttpRequest, dev::Payload};
use anyhow::anyhow;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::future::{Ready, ready};

use crate::error::AppError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// 256 random bits, base64url: login bindings and CSRF tokens.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Tokens of a signed-in session. Server-side only: never in a cookie, page or log.
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenSet {
    pub id_token: String,
    pub access_token: String,
    pub access_token_expires_at: u64,
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token_expires_at", &self.access_token_expires_at)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

/// The only code that knows session key names.
pub struct TypedSession(Session);

impl FromRequest for TypedSession {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Self(req.get_session())))
    }
}

fn session_error(e: impl std::fmt::Display) -> AppError {
    AppError::Unexpected(anyhow!("session state: {e}"))
}

impl TypedSession {
    fn get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        // A value that does not deserialize is treated as absent (never trusted, never fatal).
        self.0.get(key).ok().flatten()
    }

    fn set<T: serde::Serialize>(&self, key: &str, value: T) -> Result<(), AppError> {
        self.0.insert(key, value).map_err(session_error)
    }

    /// The browser's login binding, created on first use.
    pub fn login_binding(&self) -> Result<String, AppError> {
        if let Some(binding) = self.get::<String>(keys::LOGIN_BINDING) {
            return Ok(binding);
        }
        let binding = random_token();
        self.set(keys::LOGIN_BINDING, &binding)?;
        Ok(binding)
    }

    /// The binding if this browser has one (no new one is made).
    pub fn existing_login_binding(&self) -> Option<String> {
        self.get(keys::LOGIN_BINDING)
    }

    /// Empties the session before a sign-in (before `Identity::login`): nothing of a previous
    /// user of this browser (their `auth_time`, Logto `sid`, CSRF token, session id) carries
    /// over. Only the login binding stays, so a sign-in still pending in another tab can finish.
    pub fn reset_for_sign_in(&self) -> Result<(), AppError> {
        let binding = self.existing_login_binding();
        self.0.clear();
        match binding {
            Some(binding) => self.set(keys::LOGIN_BINDING, binding),
            None => Ok(()),
        }
    }

    /// Fills a freshly signed-in session (after `reset_for_sign_in` and `Identity::login`, which
    /// renewed its key).
    pub fn start(
        &self,
        tokens: &TokenSet,
        auth_time: Option<u64>,
        logto_sid: Option<&str>,
        user_agent: Option<&str>,
        client_ip: Option<&str>,
    ) -> Result<(), AppError> {
        // The store moves the tokens into their own columns and out of the state.
        self.set(keys::TOKENS, tokens)?;
        self.set(keys::SESSION_ID, Uuid::new_v4())?;
        self.set(keys::CSRF_TOKEN, random_token())?;
        if let Some(at) = auth_time {
            self.set(keys::AUTH_TIME, at)?;
        }
        if let Some(sid) = logto_sid {
            self.set(keys::LOGTO_SID, sid)?;
        }
        if let Some(ua) = user_agent {
            self.set(keys::USER_AGENT, ua.chars().take(512).collect::<String>())?;
        }
        if let Some(ip) = client_ip {
            self.set(keys::CLIENT_IP, ip)?;
        }
        Ok(())
    }

    /// The user profile the store loaded with this session, if any.
    pub fn loaded_user<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        self.get(keys::LOADED_USER)
    }

    /// The stable id of this signed-in session (`sessions.session_id`).
    pub fn session_id(&self) -> Option<Uuid> {
        self.get(keys::SESSION_ID)
    }

    /// When the user last authenticated at the provider (unix seconds), if known.
    pub fn auth_time(&self) -> Option<u64> {
        self.get(keys::AUTH_TIME)
    }

    pub fn csrf_token(&self) -> Option<String> {
        self.get(keys::CSRF_TOKEN)
    }

    /// Ends the session: the row is deleted and the cookie cleared.
    pub fn purge(&self) {
        self.0.purge();
    }
}

/// A fresh `SESSION_SECRET`: 64 random bytes, base64 (88 characters).
pub fn random_secret() -> String {
    let bytes: [u8; 64] = std::array::from_fn(|_| rand::random());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
