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
use std::sync::Arc;

use actix_identity::Identity;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use uuid::Uuid;

use crate::error::AppError;
use crate::session::TypedSession;
use crate::session::repo::SessionRecord;
use crate::startup::AppState;
use crate::users::{User, repo};

fn app_state(req: &HttpRequest) -> Result<web::Data<AppState>, AppError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| AppError::Unexpected(anyhow::anyhow!("BUG: no AppState")))
}

/// The signed-in user's id, from actix-identity.
fn identity_user_id(req: &HttpRequest, payload: &mut Payload) -> Option<Uuid> {
    let identity = Identity::from_request(req, payload).into_inner().ok()?;
    Uuid::parse_str(&identity.id().ok()?).ok()
}

/// The signed-in user, loaded through the users cache. Rejects with `NotAuthenticated`, which
/// pages turn into a redirect to sign-in and `/api/` into a 401.
pub struct CurrentUser(pub Arc<User>);

impl FromRequest for CurrentUser {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let user_id = identity_user_id(req, payload);
        let state = app_state(req);
        Box::pin(async move {
            let state = state?;
            let user_id = user_id.ok_or(AppError::NotAuthenticated)?;
            let user = repo::get_cached(&state.pool, state.caches.as_deref(), user_id)
                .await?
                .ok_or(AppError::NotAuthenticated)?;
            Ok(CurrentUser(user))
        })
    }
}

/// A signed-in session (user id and the session's stable id) without loading anything.
pub struct SignedInSession {
    pub user_id: Uuid,
    pub session_id: Uuid,
}

impl FromRequest for SignedInSession {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let user_id = identity_user_id(req, payload);
        let session_id = TypedSession::from_request(req, payload).into_inner().ok().and_then(|s| s.session_id());
        let signed_in = user_id.zip(session_id).map(|(user_id, session_id)| Self { user_id, session_id });
        std::future::ready(signed_in.ok_or(AppError::NotAuthenticated))
    }
}

/// The record of the signed-in session (its CSRF token, when the user last authenticated),
/// read from its row.
pub struct CurrentSession(pub SessionRecord);

impl FromRequest for CurrentSession {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let signed_in = SignedInSession::from_request(req, payload).into_inner();
        let state = app_state(req);
        Box::pin(async move {
            let (signed_in, state) = (signed_in?, state?);
            let record = crate::session::repo::record(&state.pool, signed_in.session_id)
                .await?
                .filter(|r| r.user_id == signed_in.user_id)
                .ok_or(AppError::NotAuthenticated)?;
            Ok(CurrentSession(record))
        })
    }
}
