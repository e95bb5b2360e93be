//! Access tokens for a signed-in session, refreshed when needed.
//!
//! A refresh runs with the session row locked (`SELECT … FOR UPDATE`), so refreshes of one
//! session are serialised across requests and app instances: Logto revokes the whole grant when
//! a rotated refresh token is presented twice. The rotated token is stored in the same
//! transaction. `invalid_grant`, or a new ID token for another `iss`/`sub`/`aud` (Core §12.2),
//! ends the session.

use anyhow::anyhow;
use serde::Serialize;
use uuid::Uuid;

use super::flow::{self, RefreshError, unix_now};
use super::id_token::{self, Expectations, IdTokenClaims};
use crate::error::AppError;
use crate::session::repo as sessions;
use crate::startup::AppState;
use crate::users::{Profile, repo as users};

/// Tokens closer than this to expiry are refreshed first.
pub const REFRESH_MARGIN_SECS: i64 = 60;

/// Which access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The session's own (opaque, for userinfo).
    Session,
    /// An API resource indicator (RFC 8707).
    Resource(String),
    /// An organization token.
    Organization(String),
}

impl Target {
    fn cache_key(&self) -> Option<String> {
        match self {
            Self::Session => None,
            Self::Resource(r) => Some(format!("resource:{r}")),
            Self::Organization(o) => Some(format!("organization:{o}")),
        }
    }
}

#[derive(Serialize)]
pub struct AccessToken {
    pub access_token: String,
    /// Unix seconds.
    pub expires_at: i64,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken").field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

/// Returns a valid access token for `target`, refreshing (once, under the session lock) if needed.
pub async fn access_token(state: &AppState, session_id: Uuid, target: &Target) -> Result<AccessToken, AppError> {
    let now = unix_now() as i64;
    let mut tx = state.pool.begin().await?;
    let stored =
        sessions::lock_tokens(&mut tx, &state.token_cipher, session_id).await?.ok_or(AppError::NotAuthenticated)?;
    let cache_key = target.cache_key();

    // Still fresh?
    match &cache_key {
        None => {
            if let (Some(token), Some(expires_at)) = (&stored.access_token, stored.access_token_expires_at)
                && expires_at > now + REFRESH_MARGIN_SECS
            {
                return Ok(AccessToken { access_token: token.clone(), expires_at });
            }
        }
        Some(key) => {
            if let Some((access_token, expires_at)) =
                sessions::cached_access_token(&mut tx, &state.token_cipher, session_id, key, REFRESH_MARGIN_SECS)
                    .await?
            {
                return Ok(AccessToken { access_token, expires_at });
            }
        }
    }

    let Some(refresh_token) = stored.refresh_token.clone() else {
        return Err(AppError::BadRequest(
            "This session has no refresh token (sign in again, with the offline_access scope).".into(),
        ));
    };
    let metadata = state
        .provider
        .metadata()
        .ok_or_else(|| AppError::ProviderUnavailable(anyhow!("provider metadata not loaded")))?;
    let (resource, organization) = match target {
        Target::Session => (None, None),
        Target::Resource(r) => (Some(r.as_str()), None),
        Target::Organization(o) => (None, Some(o.as_str())),
    };
    let refreshed =
        match flow::refresh(&state.settings, &metadata, state.provider.http(), &refresh_token, resource, organization)
            .await
        {
            Ok(refreshed) => refreshed,
            Err(RefreshError::InvalidGrant) => {
                let ended = sessions::delete(&mut tx, session_id).await?;
                tx.commit().await?;
                state.forget_sessions(&ended);
                tracing::info!(%session_id, "refresh token refused (invalid_grant): session ended");
                return Err(AppError::NotAuthenticated);
            }
            Err(RefreshError::Refused(code)) => {
                return Err(AppError::BadRequest(format!("Logto refused the requested access token ({code}).")));
            }
            Err(RefreshError::Outage(e)) => return Err(AppError::ProviderUnavailable(e)),
            Err(RefreshError::Invalid(e)) => {
                return Err(AppError::Unexpected(e.context("refreshing tokens")));
            }
        };

    // A new ID token must be about the same user for the same client (Core §12.2).
    let mut new_claims: Option<IdTokenClaims> = None;
    if let Some(raw) = &refreshed.id_token {
        match check_refreshed_id_token(state, &metadata, stored.id_token.as_deref(), raw).await {
            Ok(claims) => new_claims = Some(claims),
            Err(reason) => {
                let ended = sessions::delete(&mut tx, session_id).await?;
                tx.commit().await?;
                state.forget_sessions(&ended);
                tracing::warn!(%session_id, %reason, "refreshed ID token does not match the session: session ended");
                return Err(AppError::NotAuthenticated);
            }
        }
    }

    let expires_at = refreshed.expires_at as i64;
    match &cache_key {
        None => {
            sessions::store_refreshed(
                &mut tx,
                &state.token_cipher,
                session_id,
                &refreshed.access_token,
                expires_at,
                refreshed.refresh_token.as_deref(),
                refreshed.id_token.as_deref(),
            )
            .await?;
        }
        Some(key) => {
            sessions::store_access_token(
                &mut tx,
                &state.token_cipher,
                session_id,
                key,
                &refreshed.access_token,
                expires_at,
            )
            .await?;
            // Keep the session's own token as it was, but store a rotated refresh token.
            if let Some(rotated) = refreshed.refresh_token.as_deref() {
                sessions::store_refresh_token(
                    &mut tx,
                    &state.token_cipher,
                    session_id,
                    rotated,
                    refreshed.id_token.as_deref(),
                )
                .await?;
            }
        }
    }
    if let Some(claims) = &new_claims {
        let profile = Profile::from_claims(&claims.all, None);
        users::update_from_refresh(&mut tx, stored.user_id, &profile, claims.all.contains_key("roles")).await?;
    }
    tx.commit().await?;
    if new_claims.is_some() {
        state.forget_user(stored.user_id);
    }
    tracing::info!(%session_id, rotated = refreshed.refresh_token.is_some(), "tokens refreshed");
    Ok(AccessToken { access_token: refreshed.access_token, expires_at })
}

async fn check_refreshed_id_token(
    state: &AppState,
    metadata: &crate::auth::discovery::ProviderMetadata,
    original: Option<&str>,
    raw: &str,
) -> Result<IdTokenClaims, String> {
    let verifier = flow::verifier(
        &state.settings,
        metadata,
        state.provider.http(),
        &state.jwks,
        crate::auth::jwks::Caller::TokenEndpoint,
    );
    let claims = id_token::validate(
        &verifier,
        raw,
        &Expectations { nonce: None, not_issued_before: None, max_age: None, access_token: None, now: unix_now() },
    )
    .await
    .map_err(|e| e.to_string())?;
    let original = original.and_then(unverified_claims).ok_or("no original ID token to compare with")?;
    if original.get("sub").and_then(|v| v.as_str()) != Some(claims.sub.as_str()) {
        return Err("sub differs".into());
    }
    if original.get("iss").and_then(|v| v.as_str()) != Some(claims.iss.as_str()) {
        return Err("iss differs".into());
    }
    if let (Some(new_nonce), Some(old_nonce)) = (&claims.nonce, original.get("nonce").and_then(|v| v.as_str()))
        && new_nonce != old_nonce
    {
        return Err("nonce differs".into());
    }
    Ok(claims)
}

/// Claims of the session's own ID token, which was fully verified when it was stored.
fn unverified_claims(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}
