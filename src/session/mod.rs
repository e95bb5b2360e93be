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
use serde_json::Value;
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

    /// The state `user_id`'s new signed-in session `session_id` will have in this browser, for
    /// its row: the login binding (so a sign-in still pending in another tab can finish), the
    /// user id (actix-identity's) and the session id — nothing of a previous user of the browser.
    pub(crate) fn signed_in_state(&self, user_id: Uuid, session_id: Uuid) -> Value {
        let mut state = serde_json::Map::new();
        if let Some(binding) = self.existing_login_binding() {
            state.insert(keys::LOGIN_BINDING.into(), binding.into());
        }
        state.insert(keys::IDENTITY.into(), user_id.to_string().into());
        state.insert(keys::SESSION_ID.into(), session_id.to_string().into());
        Value::Object(state)
    }

    /// Turns this browser's session into the signed-in session whose row the sign-in wrote under
    /// `key` with `stored` state ([`Self::signed_in_state`]), through actix-identity's login
    /// (which renews the key: the pre-login cookie stops working). Fails, leaving the browser
    /// signed out, if the renewed state is not what was stored.
    pub(crate) fn renew_for(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        key: &SessionKey,
        stored: &Value,
    ) -> Result<(), AppError> {
        let binding = self.existing_login_binding();
        self.0.clear();
        if let Some(binding) = binding {
            self.set(keys::LOGIN_BINDING, binding)?;
        }
        // Identity::login renews the session key: the pre-login cookie stops working (fixation).
        Identity::login(&self.1.extensions(), user_id.to_string()).map_err(session_error)?;
        self.set(keys::SESSION_ID, session_id)?;
        if &store::state_to_json(&self.0.entries()) != stored {
            self.0.purge();
            return Err(session_error("the renewed session state is not the one stored with its row"));
        }
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
