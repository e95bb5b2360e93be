//! Extractors: who is signed in, their session's record, an admin, a form with a valid CSRF
//! token.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_identity::Identity;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use uuid::Uuid;

use super::state::AppState;
use crate::admin::is_admin;
use crate::error::AppError;
use crate::session::TypedSession;
use crate::session::repo::SessionRecord;
use crate::users::User;

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
            let user = crate::cache::user(&state.pool, state.caches.as_deref(), user_id)
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
pub struct CurrentSession(pub Arc<SessionRecord>);

impl FromRequest for CurrentSession {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let signed_in = SignedInSession::from_request(req, payload).into_inner();
        let state = app_state(req);
        Box::pin(async move {
            let (signed_in, state) = (signed_in?, state?);
            let record = crate::session::records::record(&state.pool, state.records.as_ref(), signed_in.session_id)
                .await?
                .filter(|r| r.user_id == signed_in.user_id)
                .ok_or(AppError::NotAuthenticated)?;
            Ok(CurrentSession(record))
        })
    }
}

/// A signed-in admin: the `roles` of their validated claims (from the sign-in, and checked
/// against Logto again when older than `SESSION_REVALIDATE_AFTER`) contain `ADMIN_ROLE`, or
/// their `sub` is in `ADMIN_SUBJECTS`. Checked on the server for every admin page, action and
/// API call.
pub struct AdminUser(pub Arc<User>);

impl FromRequest for AdminUser {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let user = CurrentUser::from_request(req, payload);
        let signed_in = SignedInSession::from_request(req, payload).into_inner();
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let CurrentUser(mut user) = user.await?;
            let state = state.ok_or_else(|| AppError::Unexpected(anyhow::anyhow!("BUG: no AppState")))?;
            let session_id = signed_in?.session_id;
            // Roles can change at Logto at any time: an admin request uses roles checked
            // against Logto within SESSION_REVALIDATE_AFTER.
            let bound = state.settings.session_revalidate_after.as_secs_f64();
            let ago = crate::session::repo::revalidated_ago(&state.pool, session_id).await?;
            if ago.is_none_or(|ago| ago >= bound) {
                crate::lifecycle::refresh::revalidate(&state.services, session_id).await?;
                user = crate::users::repo::get(&state.pool, user.user_id)
                    .await?
                    .map(std::sync::Arc::new)
                    .ok_or(AppError::NotAuthenticated)?;
            }
            if is_admin(&user, &state.settings) {
                Ok(AdminUser(user))
            } else {
                tracing::warn!(user_id = %user.user_id, "admin access denied");
                Err(AppError::Forbidden)
            }
        })
    }
}

/// A posted form whose `csrf_token` is the signed-in session's (and whose `Origin`, when the
/// browser sends one, is ours): what every state-changing form handler takes. The session's
/// record comes with it.
pub struct CsrfForm<T> {
    pub form: T,
    pub session: Arc<SessionRecord>,
}

/// A form that carries the CSRF token.
pub trait HasCsrfToken {
    fn csrf_token(&self) -> &str;
}

/// A form with nothing but the CSRF token.
#[derive(serde::Deserialize)]
pub struct CsrfOnly {
    csrf_token: String,
}

impl HasCsrfToken for CsrfOnly {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

impl<T: HasCsrfToken + serde::de::DeserializeOwned + 'static> FromRequest for CsrfForm<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let session = CurrentSession::from_request(req, payload);
        let form = web::Form::<T>::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let CurrentSession(session) = session.await?;
            let form = form.await?.into_inner();
            let state = app_state(&req)?;
            super::csrf::verify(&req, &state, &session, form.csrf_token())?;
            Ok(CsrfForm { form, session })
        })
    }
}
