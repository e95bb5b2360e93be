//! Sign-in, the callback, and sign-out.

use actix_identity::Identity;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use anyhow::anyhow;
use serde::{Deserialize, Serialize};

use crate::auth::discovery::ProviderMetadata;
use crate::auth::{callback, flow, pending, return_to};
use crate::error::{AppError, Result};
use crate::lifecycle::sign_in::SignIn;
use crate::session::{TypedSession, repo as session_repo};
use crate::users::{self, ClaimedProfile};
use crate::web::extract::CurrentSession;
use crate::web::rate_limit::{SignInLimit, client_ip};
use crate::web::state::AppState;
use crate::web::{csrf, see_other};

/// Logto's `direct_sign_in` target for the Hugging Face connector.
const HUGGING_FACE: &str = "social:huggingface";

#[derive(Deserialize)]
pub struct SignInQuery {
    return_to: Option<String>,
}

fn metadata(state: &AppState) -> Result<std::sync::Arc<ProviderMetadata>> {
    state.provider.metadata().ok_or_else(|| {
        state.provider.request_discovery();
        AppError::ProviderUnavailable(anyhow!("provider metadata not loaded yet"))
    })
}

pub async fn sign_in(
    _limit: SignInLimit,
    state: web::Data<AppState>,
    session: TypedSession,
    query: web::Query<SignInQuery>,
) -> Result<HttpResponse> {
    start_sign_in(&state, &session, query.return_to.as_deref(), None, None).await
}

pub async fn sign_in_huggingface(
    _limit: SignInLimit,
    state: web::Data<AppState>,
    session: TypedSession,
    query: web::Query<SignInQuery>,
) -> Result<HttpResponse> {
    start_sign_in(&state, &session, query.return_to.as_deref(), Some(HUGGING_FACE), None).await
}

/// A step-up before admin actions: a sign-in with `max_age`, so Logto re-authenticates the
/// user unless they did so within `ADMIN_MAX_AUTH_AGE`, and says when (`auth_time`).
pub async fn sign_in_step_up(
    _limit: SignInLimit,
    state: web::Data<AppState>,
    session: TypedSession,
    query: web::Query<SignInQuery>,
) -> Result<HttpResponse> {
    let max_age = state.settings.admin_max_auth_age.as_secs();
    start_sign_in(&state, &session, query.return_to.as_deref(), None, Some(max_age)).await
}

/// Records a pending sign-in bound to this browser and redirects to Logto.
async fn start_sign_in(
    state: &AppState,
    session: &TypedSession,
    return_to: Option<&str>,
    direct_sign_in: Option<&str>,
    max_age: Option<u64>,
) -> Result<HttpResponse> {
    // Not only known but reachable: never send the browser to a provider that is down.
    let metadata = state.provider.reachable_metadata().await.map_err(|e| {
        state.provider.request_discovery();
        AppError::ProviderUnavailable(e)
    })?;
    let return_to = return_to::sanitize(return_to);
    let binding = session.login_binding()?;
    let request = flow::authorization_url(&state.settings, &metadata, direct_sign_in, max_age)?;
    let max_age = max_age.map(|m| i32::try_from(m).unwrap_or(i32::MAX));
    pending::create(&state.pool, &request.state, &binding, &request.nonce, &request.pkce_verifier, &return_to, max_age)
        .await?;
    Ok(see_other(request.url.as_str()))
}

/// The authorization response. Order matters: the pending sign-in is consumed first (one use),
/// `iss` is checked before the code is exchanged, and nothing from the provider is used until the
/// ID token has been validated.
pub async fn callback(
    _limit: SignInLimit,
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
) -> Result<HttpResponse> {
    let params =
        callback::parse(req.query_string()).map_err(|e| AppError::sign_in("The sign-in response was malformed.", e))?;
    let Some(state_param) = params.state.as_deref() else {
        return Err(AppError::sign_in("The sign-in response was incomplete.", anyhow!("no state")));
    };
    let Some(binding) = session.existing_login_binding() else {
        return Err(AppError::sign_in(
            "No sign-in was started in this browser, or it expired. Please sign in again.",
            anyhow!("callback without a login binding"),
        ));
    };
    let pending = pending::take(&state.pool, state_param, &binding).await?.ok_or_else(|| {
        AppError::sign_in(
            "This sign-in is not valid any more (it was used, expired, or started elsewhere). Please sign in again.",
            anyhow!("no pending sign-in for this state and browser"),
        )
    })?;
    let metadata = metadata(&state)?;
    check_issuer(&metadata, params.iss.as_deref())?;
    if let Some(error) = params.error.as_deref() {
        return Err(provider_error(error));
    }
    let Some(code) = params.code.as_deref() else {
        return Err(AppError::sign_in("The sign-in response was incomplete.", anyhow!("no code")));
    };

    // Timed for `Server-Timing` (SERVER_TIMING=true): the app's own time excludes this wait.
    let (http, provider_wait) = state.provider.http().timed();
    let deadline = tokio::time::Instant::now() + flow::CALLBACK_PROVIDER_BUDGET;
    let too_slow = |_| AppError::ProviderUnavailable(anyhow!("the provider did not answer in time"));
    let verified = tokio::time::timeout_at(
        deadline,
        flow::redeem_code(&state.settings, &metadata, &http, &state.jwks, code, &pending),
    )
    .await
    .map_err(too_slow)??;
    // While Logto answers userinfo, the (now verified) user's id is looked up.
    let (userinfo, known_user) = tokio::join!(
        tokio::time::timeout_at(deadline, flow::userinfo(&metadata, &http, &verified)),
        users::repo::find_id(&state.pool, &verified.claims.iss, &verified.claims.sub),
    );
    let userinfo = userinfo.map_err(too_slow)??;

    // The user and the renewed session with its record, in one statement.
    let profile = ClaimedProfile::from_claims(&verified.claims.all, userinfo.as_ref());
    let user_agent = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok());
    let sign_in = SignIn {
        issuer: &verified.claims.iss,
        subject: &verified.claims.sub,
        known_user: known_user?,
        profile: &profile,
        tokens: &verified.tokens,
        logto_sid: verified.claims.sid.as_deref(),
        auth_time: verified.claims.auth_time,
        user_agent,
        client_ip: client_ip(&req, state.settings.trusted_proxy_hops),
    };
    let user_id = crate::lifecycle::sign_in::complete(&state.services, &session, sign_in).await?;
    tracing::info!(%user_id, has_sid = verified.claims.sid.is_some(), "signed in");
    let mut response = see_other(&pending.return_to);
    response.extensions_mut().insert(provider_wait);
    Ok(response)
}

/// RFC 9207: the authorization response must name our issuer (discovery refuses providers that
/// do not advertise the parameter).
fn check_issuer(metadata: &ProviderMetadata, iss: Option<&str>) -> Result<()> {
    if iss == Some(metadata.issuer.as_str()) {
        Ok(())
    } else {
        Err(AppError::sign_in(
            "The sign-in response did not come from the expected identity provider.",
            anyhow!("authorization response iss {iss:?} is not {}", metadata.issuer),
        ))
    }
}

/// Maps an authorization error code to a fixed message; provider text is never shown.
fn provider_error(code: &str) -> AppError {
    let public = match code {
        "access_denied" => "Sign-in was cancelled or access was denied.",
        "login_required" | "interaction_required" | "consent_required" | "account_selection_required" => {
            "The identity provider needs you to sign in again."
        }
        "temporarily_unavailable" | "server_error" => {
            "The identity provider could not complete the sign-in. Please try again."
        }
        _ => "The identity provider reported an error.",
    };
    let code: String = code.chars().filter(char::is_ascii_alphanumeric).take(64).collect();
    AppError::sign_in(public, anyhow!("authorization error `{code}`"))
}

#[derive(Serialize)]
struct SignOutPage {
    csrf_token: String,
}

/// A confirmation page; signing out itself is a POST with a CSRF token.
pub async fn sign_out_page(state: web::Data<AppState>, session: Option<CurrentSession>) -> Result<HttpResponse> {
    let Some(csrf_token) = session.and_then(|s| s.0.csrf_token.clone()) else {
        return Ok(see_other("/"));
    };
    super::page(&state, "sign_out.html", &SignOutPage { csrf_token })
}

#[derive(Deserialize)]
pub struct SignOutForm {
    csrf_token: String,
}

/// Ends the app session first, revokes the refresh token (best effort, bounded), then sends
/// the browser to Logto's end-session endpoint.
pub async fn sign_out(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: TypedSession,
    current: Result<CurrentSession>,
    identity: Option<Identity>,
    form: web::Form<SignOutForm>,
) -> Result<HttpResponse> {
    let record = match current {
        Ok(CurrentSession(record)) => record,
        // Not signed in: nothing to end.
        Err(AppError::NotAuthenticated) => return Ok(see_other("/")),
        Err(other) => return Err(other),
    };
    csrf::verify(&req, &state, &record, &form.csrf_token)?;
    // The session ends whatever happens next: tokens that cannot be read are not revoked (they
    // die with the grant at Logto's end-session or their TTL), but the user is signed out.
    let tokens =
        session_repo::tokens(&state.pool, &state.token_cipher, record.session_id).await.unwrap_or_else(|error| {
            tracing::warn!(%error, "sign-out: the session's tokens could not be read; signing out without revocation");
            None
        });
    match identity {
        Some(identity) => identity.logout(),
        None => session.purge(),
    }
    tracing::info!("signed out");
    let Some(metadata) = state.provider.metadata() else {
        return Ok(see_other("/"));
    };
    if let Some(refresh) = tokens.as_ref().and_then(|t| t.refresh_token.as_deref()) {
        flow::revoke_refresh_token(&state.settings, &metadata, state.provider.http(), refresh).await;
    }
    let target = flow::end_session_url(&state.settings, &metadata, tokens.as_ref().and_then(|t| t.id_token.as_deref()));
    // `Clear-Site-Data: "cache"` drops any cached page of this origin (pages are `no-store`
    // already). Not "cookies": that clears the whole registrable domain, which would drop
    // Logto's own session cookie (auth.example.com next to app.example.com) before the
    // end-session request, and the cookies of sibling apps; this app's cookie is removed by
    // the session middleware and its row is gone.
    let mut response = see_other(target.as_ref().map_or("/", url::Url::as_str));
    response
        .headers_mut()
        .insert(header::HeaderName::from_static("clear-site-data"), header::HeaderValue::from_static("\"cache\""));
    Ok(response)
}
