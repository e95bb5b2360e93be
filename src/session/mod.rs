//! Server-side sessions: the Postgres store and a typed view over a request's session.

pub mod keys;
pub mod records;
pub mod repo;
pub mod sealed;
pub mod store;
pub mod sweeper;

use actix_identity::Identity;
use actix_session::storage::SessionKey;
use actix_session::{Session, SessionExt};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use anyhow::anyhow;
use std::future::{Ready, ready};

use crate::error::AppError;

use uuid::Uuid;

pub use crate::crypto::{random_secret, random_token};

pub use crate::auth::flow::TokenSet;

/// The only code that knows session key names. Holds the request too: signing in goes through
/// actix-identity, which finds the session in the request.
pub struct TypedSession(Session, HttpRequest);

impl FromRequest for TypedSession {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Self(req.get_session(), req.clone())))
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

    /// Turns this browser's session into `user_id`'s signed-in session `session_id`, whose row
    /// the sign-in wrote under `key`: nothing of a previous user of this browser carries over
    /// (only the login binding, so a sign-in still pending in another tab can finish).
    pub(crate) fn renew_for(&self, user_id: Uuid, session_id: Uuid, key: &SessionKey) -> Result<(), AppError> {
        let binding = self.existing_login_binding();
        self.0.clear();
        if let Some(binding) = binding {
            self.set(keys::LOGIN_BINDING, binding)?;
        }
        // Identity::login renews the session key: the pre-login cookie stops working (fixation).
        Identity::login(&self.1.extensions(), user_id.to_string()).map_err(session_error)?;
        self.set(keys::SESSION_ID, session_id)?;
        self.set(keys::CREATED_KEY, key.as_ref())
    }

    /// The stable id of this signed-in session (`sessions.session_id`).
    pub fn session_id(&self) -> Option<Uuid> {
        self.get(keys::SESSION_ID)
    }

    /// Ends the session: the row is deleted and the cookie cleared.
    pub fn purge(&self) {
        self.0.purge();
    }
}
