//! Signing in with Logto: discovery, keys, the code + PKCE flow, ID token checks, and the
//! extractor that tells handlers who is signed in.

pub mod callback;
pub mod discovery;
pub mod flow;
pub mod http;
pub mod id_token;
pub mod jwks;
pub mod jwt;
pub mod logout_token;
pub mod pending;
pub mod refresh;
pub mod return_to;
pub mod revalidation;

use std::future::Future;
use std::pin::Pin;

use actix_identity::Identity;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use uuid::Uuid;

use crate::error::AppError;
use crate::startup::AppState;
use crate::users::{User, repo};

/// The signed-in user, loaded from the database. Rejects with `NotAuthenticated`, which pages
/// turn into a redirect to sign-in and `/api/` into a 401.
pub struct CurrentUser(pub User);

impl FromRequest for CurrentUser {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let identity = Identity::from_request(req, payload).into_inner();
        let loaded: Option<User> =
            crate::session::TypedSession::from_request(req, payload).into_inner().ok().and_then(|s| s.loaded_user());
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let state = state.ok_or_else(|| AppError::Unexpected(anyhow::anyhow!("BUG: no AppState")))?;
            let user_id = identity
                .ok()
                .and_then(|i| i.id().ok())
                .and_then(|id| Uuid::parse_str(&id).ok())
                .ok_or(AppError::NotAuthenticated)?;
            // Usually the store loaded the profile with the session (same query); otherwise
            // (a session started in this very request) read it.
            let user = match loaded {
                Some(user) if user.user_id == user_id => user,
                _ => repo::get(&state.pool, user_id).await?.ok_or(AppError::NotAuthenticated)?,
            };
            Ok(CurrentUser(user))
        })
    }
}

/// A signed-in session (user id and the session's stable id) without loading the profile.
pub struct SignedInSession {
    pub user_id: Uuid,
    pub session_id: Uuid,
}

impl FromRequest for SignedInSession {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let identity = Identity::from_request(req, payload).into_inner();
        let session = crate::session::TypedSession::from_request(req, payload).into_inner();
        let signed_in = identity
            .ok()
            .and_then(|i| i.id().ok())
            .and_then(|id| Uuid::parse_str(&id).ok())
            .zip(session.ok().and_then(|s| s.session_id()))
            .map(|(user_id, session_id)| Self { user_id, session_id });
        std::future::ready(signed_in.ok_or(AppError::NotAuthenticated))
    }
}
