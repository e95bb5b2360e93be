//! Access tokens for a signed-in session, refreshed when needed.
//!
//! No pooled connection and no row lock is held while Logto answers. A refresh of one session
//! runs at most once at a time in this process (the request waits its turn, at most
//! [`REFRESH_WAIT`]), and across instances it claims the session's refresh token with a short
//! lease (one committed statement), calls Logto, and stores the result with a statement that
//! only the lease holder can make: Logto revokes the whole grant when a rotated refresh token is
//! presented twice. `invalid_grant`, or a new ID token for another `iss`/`sub`/`aud`
//! (Core §12.2), ends the session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use serde::Serialize;
use uuid::Uuid;

use crate::auth::flow::{self, RefreshError, unix_now};
use crate::auth::id_token::{self, Expectations, IdTokenClaims};
use crate::auth::jwt::TokenError;
use crate::error::AppError;
use crate::lifecycle::Services;
use crate::lifecycle::end::{Which, end};
use crate::session::repo::{self as sessions, Claim, RefreshResult, StoredTokens};
use crate::users::{ClaimedProfile, repo as users};

/// Tokens closer than this to expiry are refreshed first.
pub const REFRESH_MARGIN_SECS: i64 = 60;
/// How long a request waits for another refresh of its session (here or on another instance)
/// before it answers 503 with `Retry-After`.
pub const REFRESH_WAIT: Duration = Duration::from_secs(10);
/// A claimed refresh token is this instance's for at most this long (longer than the provider
/// call's budget; a crashed instance's claim lapses by itself).
const LEASE_SECS: i64 = 30;

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

/// One refresh per session at a time in this process: a request that needs a refresh takes its
/// session's turn; the others wait (without a database connection) and then find the token.
#[derive(Default)]
pub struct RefreshTurns(Mutex<HashMap<Uuid, Weak<tokio::sync::Mutex<()>>>>);

impl RefreshTurns {
    fn of(&self, session_id: Uuid) -> Arc<tokio::sync::Mutex<()>> {
        let mut turns = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(turn) = turns.get(&session_id).and_then(Weak::upgrade) {
            return turn;
        }
        let turn = Arc::new(tokio::sync::Mutex::new(()));
        turns.insert(session_id, Arc::downgrade(&turn));
        if turns.len() > 1024 {
            turns.retain(|_, t| t.strong_count() > 0);
        }
        turn
    }
}

fn busy() -> AppError {
    AppError::ProviderBusy { retry_after_secs: 2 }
}

/// Returns a valid access token for `target`, refreshing (once) if needed.
pub async fn access_token(state: &Arc<Services>, session_id: Uuid, target: &Target) -> Result<AccessToken, AppError> {
    let deadline = Instant::now() + REFRESH_WAIT;
    let stored =
        sessions::tokens(&state.pool, &state.token_cipher, session_id).await?.ok_or(AppError::NotAuthenticated)?;
    if let Some(token) = still_fresh(state, session_id, target, &stored).await? {
        return Ok(token);
    }
    let turn = state.refresh_turns.of(session_id);
    let _turn = tokio::time::timeout_at(deadline.into(), turn.lock()).await.map_err(|_| busy())?;
    loop {
        // Another request may have refreshed this very token while this one waited.
        let stored =
            sessions::tokens(&state.pool, &state.token_cipher, session_id).await?.ok_or(AppError::NotAuthenticated)?;
        if let Some(token) = still_fresh(state, session_id, target, &stored).await? {
            return Ok(token);
        }
        let lease = Uuid::new_v4();
        match sessions::claim_refresh(&state.pool, &state.token_cipher, session_id, lease, LEASE_SECS).await? {
            Claim::Claimed(stored) => return refresh_claimed(state, session_id, target, stored, lease).await,
            Claim::Gone => return Err(AppError::NotAuthenticated),
            // Another instance is refreshing this session: wait for it, then look again.
            Claim::Busy if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Claim::Busy => return Err(busy()),
        }
    }
}

/// Checks the session against Logto again when it was last checked longer ago than
/// `SESSION_REVALIDATE_AFTER`: a refresh-token grant (its verified ID token brings the current
/// roles and profile), or userinfo for a session without a refresh token. A grant Logto no longer
/// honours (user suspended or deleted, consent revoked) ends the session
/// (`NotAuthenticated`); an outage is a 503 and keeps it.
pub async fn revalidate(state: &Arc<Services>, session_id: Uuid) -> Result<(), AppError> {
    let bound = state.settings.session_revalidate_after.as_secs_f64();
    let deadline = Instant::now() + REFRESH_WAIT;
    let own_token = Target::Session;
    let turn = state.refresh_turns.of(session_id);
    let _turn = tokio::time::timeout_at(deadline.into(), turn.lock()).await.map_err(|_| busy())?;
    loop {
        let stored =
            sessions::tokens(&state.pool, &state.token_cipher, session_id).await?.ok_or(AppError::NotAuthenticated)?;
        if crate::clock::unix_now_f64() - stored.revalidated_at < bound {
            return Ok(());
        }
        let lease = Uuid::new_v4();
        match sessions::claim_refresh(&state.pool, &state.token_cipher, session_id, lease, LEASE_SECS).await? {
            Claim::Claimed(stored) if stored.refresh_token.is_some() => {
                return refresh_claimed(state, session_id, &own_token, stored, lease).await.map(|_| ());
            }
            Claim::Claimed(stored) => return revalidate_by_userinfo(state, session_id, stored, lease).await,
            Claim::Gone => return Err(AppError::NotAuthenticated),
            Claim::Busy if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Claim::Busy => return Err(busy()),
        }
    }
}

/// Revalidation without a refresh token: userinfo with the session's access token. Once that
/// token has expired nothing can vouch for the session any more, and it ends.
async fn revalidate_by_userinfo(
    state: &Arc<Services>,
    session_id: Uuid,
    stored: StoredTokens,
    lease: Uuid,
) -> Result<(), AppError> {
    let metadata = metadata(state)?;
    let (Some(endpoint), Some(access_token)) = (&metadata.userinfo_endpoint, stored.access_token.as_deref()) else {
        end_session(state, session_id).await?;
        return Err(AppError::NotAuthenticated);
    };
    if stored.access_token_expires_at.is_none_or(|e| e <= unix_now() as i64) {
        tracing::info!(%session_id, "no refresh token and the access token expired: session ends at revalidation");
        end_session(state, session_id).await?;
        return Err(AppError::NotAuthenticated);
    }
    let info: serde_json::Map<String, serde_json::Value> =
        match state.provider.http().get_json(endpoint.as_str(), Some(access_token)).await {
            Ok(info) => info,
            Err(e) if e.is_outage() => {
                sessions::release(&state.pool, session_id, lease).await?;
                return Err(AppError::ProviderUnavailable(anyhow::Error::new(e).context("userinfo")));
            }
            Err(crate::auth::http::CallError::Status { status: 401 | 403, .. }) => {
                tracing::info!(%session_id, "userinfo refused the access token: session ends at revalidation");
                end_session(state, session_id).await?;
                return Err(AppError::NotAuthenticated);
            }
            Err(e) => {
                sessions::release(&state.pool, session_id, lease).await?;
                return Err(AppError::ProviderInvalidResponse(anyhow::Error::new(e).context("userinfo")));
            }
        };
    let original = stored.id_token.as_deref().and_then(unverified_claims);
    if original.as_ref().and_then(|c| c.get("sub")) != info.get("sub") {
        end_session(state, session_id).await?;
        tracing::warn!(%session_id, "userinfo is about another user: session ended");
        return Err(AppError::NotAuthenticated);
    }
    let result = RefreshResult {
        session_access_token: None,
        audience_token: None,
        refresh_token: None,
        id_token: None,
        revalidated: true,
    };
    let mut tx = state.pool.begin().await?;
    if !sessions::store_refreshed(&mut tx, &state.token_cipher, session_id, lease, &result).await? {
        return Err(AppError::NotAuthenticated);
    }
    let profile = ClaimedProfile::from_claims(&info, None);
    users::update_from_refresh(&mut tx, stored.user_id, &profile).await?;
    tx.commit().await?;
    state.forget_user(stored.user_id);
    Ok(())
}

/// The stored token for `target` if it is valid for at least the refresh margin.
async fn still_fresh(
    state: &Arc<Services>,
    session_id: Uuid,
    target: &Target,
    stored: &StoredTokens,
) -> Result<Option<AccessToken>, AppError> {
    let now = unix_now() as i64;
    Ok(match target.cache_key() {
        None => match (&stored.access_token, stored.access_token_expires_at) {
            (Some(token), Some(expires_at)) if expires_at > now + REFRESH_MARGIN_SECS => {
                Some(AccessToken { access_token: token.clone(), expires_at })
            }
            _ => None,
        },
        Some(key) => {
            sessions::cached_access_token(&state.pool, &state.token_cipher, session_id, &key, REFRESH_MARGIN_SECS)
                .await?
                .map(|(access_token, expires_at)| AccessToken { access_token, expires_at })
        }
    })
}

/// The refresh itself, with the lease held and no connection held while Logto answers.
async fn refresh_claimed(
    state: &Arc<Services>,
    session_id: Uuid,
    target: &Target,
    stored: StoredTokens,
    lease: Uuid,
) -> Result<AccessToken, AppError> {
    let refreshed = match call_logto(state, target, &stored).await {
        Ok(refreshed) => refreshed,
        Err(Failed::GrantGone) => {
            end_session(state, session_id).await?;
            return Err(AppError::NotAuthenticated);
        }
        Err(Failed::KeepRotated { refresh_token, error }) => {
            keep_rotated_refresh_token(state, session_id, lease, &refresh_token).await?;
            return Err(error);
        }
        Err(Failed::Other(error)) => {
            sessions::release(&state.pool, session_id, lease).await?;
            return Err(error);
        }
    };

    // A new ID token must be about the same user for the same client (Core §12.2). Only a real
    // mismatch ends the session; a token that cannot be checked right now (keys unreachable, an
    // unknown key within the refetch cooldown) or is broken keeps the session and the refresh
    // token Logto just rotated, and the request fails with 503 / 502.
    let mut new_claims: Option<IdTokenClaims> = None;
    if let Some(raw) = &refreshed.id_token {
        let metadata = metadata(state)?;
        match check_refreshed_id_token(state, &metadata, stored.id_token.as_deref(), raw).await {
            Ok(claims) => new_claims = Some(claims),
            Err(RefreshedIdToken::Mismatch(reason)) => {
                end_session(state, session_id).await?;
                tracing::warn!(%session_id, %reason, "refreshed ID token does not match the session: session ended");
                return Err(AppError::NotAuthenticated);
            }
            Err(RefreshedIdToken::Unusable(error)) => {
                match refreshed.refresh_token.as_deref() {
                    Some(rotated) => keep_rotated_refresh_token(state, session_id, lease, rotated).await?,
                    None => sessions::release(&state.pool, session_id, lease).await?,
                }
                tracing::warn!(%session_id, error = %error, "the refreshed ID token could not be verified: session kept");
                return Err(if error.is_outage() || matches!(error, TokenError::Key(_)) {
                    AppError::ProviderUnavailable(anyhow::Error::new(error).context("refreshed ID token"))
                } else {
                    AppError::ProviderInvalidResponse(anyhow::Error::new(error).context("refreshed ID token"))
                });
            }
        }
    }

    let expires_at = refreshed.expires_at as i64;
    let audience = target.cache_key();
    let result = RefreshResult {
        session_access_token: audience.is_none().then_some((refreshed.access_token.as_str(), expires_at)),
        audience_token: audience.as_deref().map(|a| (a, refreshed.access_token.as_str(), expires_at)),
        refresh_token: refreshed.refresh_token.as_deref(),
        id_token: refreshed.id_token.as_deref(),
        revalidated: new_claims.is_some(),
    };
    let mut tx = state.pool.begin().await?;
    if !sessions::store_refreshed(&mut tx, &state.token_cipher, session_id, lease, &result).await? {
        // The session ended while Logto answered (sign-out, revocation): nothing to keep.
        tx.rollback().await?;
        return Err(AppError::NotAuthenticated);
    }
    if let Some(claims) = &new_claims {
        let profile = ClaimedProfile::from_claims(&claims.all, None);
        users::update_from_refresh(&mut tx, stored.user_id, &profile).await?;
    }
    tx.commit().await?;
    if new_claims.is_some() {
        state.forget_user(stored.user_id);
    }
    tracing::info!(%session_id, rotated = refreshed.refresh_token.is_some(), "tokens refreshed");
    Ok(AccessToken { access_token: refreshed.access_token, expires_at })
}

fn metadata(state: &Arc<Services>) -> Result<Arc<crate::auth::discovery::ProviderMetadata>, AppError> {
    state.provider.metadata().ok_or_else(|| AppError::ProviderUnavailable(anyhow!("provider metadata not loaded")))
}

/// Why a refresh-token grant gave nothing usable.
enum Failed {
    /// Logto no longer honours the grant (`invalid_grant`): the session ends.
    GrantGone,
    /// The answer is unusable, but Logto rotated the refresh token in it: keep that one.
    KeepRotated {
        refresh_token: String,
        error: AppError,
    },
    Other(AppError),
}

/// The refresh-token grant for `target`.
async fn call_logto(state: &Arc<Services>, target: &Target, stored: &StoredTokens) -> Result<flow::Refreshed, Failed> {
    let Some(refresh_token) = stored.refresh_token.as_deref() else {
        return Err(Failed::Other(AppError::BadRequest(
            "This session has no refresh token (sign in again, with the offline_access scope).".into(),
        )));
    };
    let metadata = metadata(state).map_err(Failed::Other)?;
    let (resource, organization) = match target {
        Target::Session => (None, None),
        Target::Resource(r) => (Some(r.as_str()), None),
        Target::Organization(o) => (None, Some(o.as_str())),
    };
    let result =
        flow::refresh(&state.settings, &metadata, state.provider.http(), refresh_token, resource, organization).await;
    result.map_err(|error| match error {
        RefreshError::InvalidGrant => {
            tracing::info!("refresh token refused (invalid_grant): session ends");
            Failed::GrantGone
        }
        RefreshError::Refused(code) => {
            Failed::Other(AppError::BadRequest(format!("Logto refused the requested access token ({code}).")))
        }
        RefreshError::Outage(e) => Failed::Other(AppError::ProviderUnavailable(e)),
        RefreshError::Busy { status, retry_after_secs } => {
            tracing::warn!(status, "the token endpoint asked to come back later");
            Failed::Other(AppError::ProviderBusy { retry_after_secs: retry_after_secs.unwrap_or(5).clamp(1, 300) })
        }
        RefreshError::Invalid(e) => Failed::Other(AppError::ProviderInvalidResponse(e.context("refreshing tokens"))),
        RefreshError::UnusableButRotated { refresh_token, cause } => Failed::KeepRotated {
            refresh_token,
            error: AppError::ProviderInvalidResponse(cause.context("refreshing tokens")),
        },
    })
}

/// Stores only the refresh token Logto rotated in an answer that was otherwise not used, and
/// ends the lease (the old refresh token is consumed at Logto: presenting it again would revoke
/// the whole grant).
async fn keep_rotated_refresh_token(
    state: &Arc<Services>,
    session_id: Uuid,
    lease: Uuid,
    refresh_token: &str,
) -> Result<(), AppError> {
    let keep = RefreshResult {
        session_access_token: None,
        audience_token: None,
        refresh_token: Some(refresh_token),
        id_token: None,
        revalidated: false,
    };
    let mut conn = state.pool.acquire().await?;
    sessions::store_refreshed(&mut conn, &state.token_cipher, session_id, lease, &keep).await?;
    Ok(())
}

async fn end_session(state: &Arc<Services>, session_id: Uuid) -> Result<(), AppError> {
    end(state, Which::Session(session_id)).await?;
    Ok(())
}

/// Why a refreshed ID token is not used.
enum RefreshedIdToken {
    /// About another user or client (Core §12.2): the session ends.
    Mismatch(String),
    /// Not verifiable now, or broken: the session stays.
    Unusable(TokenError),
}

async fn check_refreshed_id_token(
    state: &Arc<Services>,
    metadata: &crate::auth::discovery::ProviderMetadata,
    original: Option<&str>,
    raw: &str,
) -> Result<IdTokenClaims, RefreshedIdToken> {
    use jsonwebtoken::errors::ErrorKind;
    let verifier = flow::verifier(
        &state.settings,
        metadata,
        state.provider.http(),
        &state.jwks,
        crate::auth::jwks::Caller::TokenEndpoint,
    );
    let expect =
        Expectations { nonce: None, not_issued_before: None, max_age: None, access_token: None, now: unix_now() };
    let claims = match id_token::validate(&verifier, raw, &expect).await {
        Ok(claims) => claims,
        Err(TokenError::Invalid(e)) if matches!(e.kind(), ErrorKind::InvalidAudience | ErrorKind::InvalidIssuer) => {
            return Err(RefreshedIdToken::Mismatch(format!("{e}")));
        }
        Err(TokenError::Claim(claim)) if claim.starts_with("iss") || claim.starts_with("aud") || claim == "azp" => {
            return Err(RefreshedIdToken::Mismatch(claim.to_owned()));
        }
        Err(error) => return Err(RefreshedIdToken::Unusable(error)),
    };
    let mismatch = |what: &str| Err(RefreshedIdToken::Mismatch(what.to_owned()));
    let Some(original) = original.and_then(unverified_claims) else {
        return mismatch("no original ID token to compare with");
    };
    if original.get("sub").and_then(|v| v.as_str()) != Some(claims.sub.as_str()) {
        return mismatch("sub differs");
    }
    if original.get("iss").and_then(|v| v.as_str()) != Some(claims.iss.as_str()) {
        return mismatch("iss differs");
    }
    if let (Some(new_nonce), Some(old_nonce)) = (&claims.nonce, original.get("nonce").and_then(|v| v.as_str()))
        && new_nonce != old_nonce
    {
        return mismatch("nonce differs");
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
