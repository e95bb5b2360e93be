//! The hand-rolled authorization code + PKCE flow on top of the `oauth2` crate.
//!
//! `authorization_url` starts a sign-in; `redeem_code` exchanges the code and validates the ID
//! token, then `userinfo` fetches userinfo; `revoke_refresh_token` and `end_session_url` sign out.

use std::time::Duration;

use anyhow::anyhow;
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthUrl, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use super::discovery::ProviderMetadata;
use super::http::{CallError, ProviderHttp};
use super::id_token::{self, Expectations, IdTokenClaims};
use super::jwks::{Caller, JwksCache};
use super::jwt::{TokenError, Verifier};
use super::pending::PendingLogin;
use crate::config::Settings;
use crate::error::AppError;

/// Access tokens without `expires_in` are treated as valid for this long.
const DEFAULT_ACCESS_TOKEN_TTL: Duration = Duration::from_secs(300);

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

/// The whole provider side of a callback (token, JWKS, userinfo) must finish within this.
pub const CALLBACK_PROVIDER_BUDGET: Duration = Duration::from_secs(10);
/// Refresh-token revocation at sign-out is best effort within this.
pub const REVOCATION_BUDGET: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdTokenFields {
    #[serde(default)]
    pub id_token: Option<String>,
}
impl ExtraTokenFields for IdTokenFields {}

type OidcTokenResponse = StandardTokenResponse<IdTokenFields, BasicTokenType>;
type OidcClient = Client<
    BasicErrorResponse,
    OidcTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// The secrets of one sign-in attempt, kept server-side until the callback.
pub struct AuthorizationRequest {
    pub url: Url,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// A completed, verified sign-in.
pub struct VerifiedSignIn {
    pub claims: IdTokenClaims,
    pub tokens: TokenSet,
}

/// The verifier for tokens signed by this provider for this client, presented by `caller`.
pub fn verifier<'a>(
    settings: &'a Settings,
    metadata: &'a ProviderMetadata,
    http: &'a ProviderHttp,
    jwks: &'a JwksCache,
    caller: Caller,
) -> Verifier<'a> {
    Verifier {
        jwks,
        http,
        jwks_uri: metadata.jwks_uri.as_str(),
        allowed: &metadata.id_token_algorithms,
        issuer: &metadata.issuer,
        client_id: &settings.logto_app_id,
        caller,
    }
}

fn oauth_client(settings: &Settings, metadata: &ProviderMetadata) -> Result<OidcClient, AppError> {
    let redirect = RedirectUrl::new(settings.redirect_uri()).map_err(|e| AppError::Unexpected(e.into()))?;
    // client_secret_basic: the oauth2 crate form-urlencodes id and secret inside the Basic
    // header, as RFC 6749 §2.3.1 requires (secrets with `:`, `%` or `+` stay intact).
    Ok(Client::new(ClientId::new(settings.logto_app_id.clone()))
        .set_client_secret(ClientSecret::new(settings.logto_app_secret.expose_secret().to_owned()))
        .set_auth_type(oauth2::AuthType::BasicAuth)
        .set_auth_uri(AuthUrl::from_url(metadata.authorization_endpoint.clone()))
        .set_token_uri(TokenUrl::from_url(metadata.token_endpoint.clone()))
        .set_redirect_uri(redirect))
}

/// Builds the authorization request: code flow, PKCE S256, fresh 256-bit state and nonce;
/// `max_age` (seconds) for a step-up that needs a recent authentication.
pub fn authorization_url(
    settings: &Settings,
    metadata: &ProviderMetadata,
    direct_sign_in: Option<&str>,
    max_age: Option<u64>,
) -> Result<AuthorizationRequest, AppError> {
    let client = oauth_client(settings, metadata)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256_len(32);
    let nonce = CsrfToken::new_random_len(32);
    let mut request = client
        .authorize_url(|| CsrfToken::new_random_len(32))
        .add_scopes(settings.requested_scopes().into_iter().map(|s| Scope::new(s.to_owned())))
        .add_extra_param("nonce", nonce.secret().clone())
        .set_pkce_challenge(challenge);
    // RFC 8707: Logto grants refresh-token requests only for resources named here.
    for resource in settings.requested_resources() {
        request = request.add_extra_param("resource", resource.to_owned());
    }
    if settings.wants_refresh_token() {
        // Logto (oidc-provider) drops offline_access unless consent is prompted for.
        request = request.add_extra_param("prompt", "consent");
    }
    if let Some(target) = direct_sign_in {
        request = request.add_extra_param("direct_sign_in", target.to_owned());
    }
    if let Some(seconds) = max_age {
        request = request.add_extra_param("max_age", seconds.to_string());
    }
    let (url, state) = request.url();
    Ok(AuthorizationRequest {
        url,
        state: state.secret().clone(),
        nonce: nonce.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
    })
}

pub use crate::clock::unix_now;

/// Exchanges the code and validates the ID token (with its nonce). Nothing of the provider's
/// answer may be used before this returns; userinfo comes after ([`userinfo`]).
pub async fn redeem_code(
    settings: &Settings,
    metadata: &ProviderMetadata,
    http: &ProviderHttp,
    jwks: &JwksCache,
    code: &str,
    pending: &PendingLogin,
) -> Result<VerifiedSignIn, AppError> {
    let client = oauth_client(settings, metadata)?;
    let send = |request: oauth2::HttpRequest| http.oauth2_send(request);
    let response = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
        .request_async(&send)
        .await
        .map_err(token_request_error)?;

    if *response.token_type() != BasicTokenType::Bearer {
        return Err(AppError::sign_in(
            "The identity provider returned an unsupported token type.",
            anyhow!("token_type {:?}", response.token_type()),
        ));
    }
    let access_token = response.access_token().secret().clone();
    if access_token.is_empty() {
        return Err(AppError::sign_in(
            "The identity provider returned no access token.",
            anyhow!("empty access_token"),
        ));
    }
    let Some(raw_id_token) = response.extra_fields().id_token.clone() else {
        return Err(AppError::sign_in("The identity provider returned no ID token.", anyhow!("no id_token")));
    };
    let now = unix_now();
    let claims = id_token::validate(
        &verifier(settings, metadata, http, jwks, Caller::TokenEndpoint),
        &raw_id_token,
        &Expectations {
            nonce: Some(&pending.nonce),
            not_issued_before: Some(u64::try_from(pending.started_at).unwrap_or(0)),
            max_age: pending.max_age.and_then(|m| u64::try_from(m).ok()),
            access_token: Some(&access_token),
            now,
        },
    )
    .await
    .map_err(id_token_error)?;

    let ttl = response.expires_in().unwrap_or(DEFAULT_ACCESS_TOKEN_TTL);
    let verified = VerifiedSignIn {
        claims,
        tokens: TokenSet {
            id_token: raw_id_token,
            access_token,
            access_token_expires_at: now + ttl.as_secs(),
            refresh_token: response.refresh_token().map(|t| t.secret().clone()),
        },
    };
    Ok(verified)
}

/// Userinfo for a verified sign-in (its `sub` must be the ID token's), when Logto has the
/// endpoint.
pub async fn userinfo(
    metadata: &ProviderMetadata,
    http: &ProviderHttp,
    verified: &VerifiedSignIn,
) -> Result<Option<Map<String, Value>>, AppError> {
    match &metadata.userinfo_endpoint {
        None => Ok(None),
        Some(endpoint) => {
            fetch_userinfo(http, endpoint, &verified.tokens.access_token, &verified.claims.sub).await.map(Some)
        }
    }
}

async fn fetch_userinfo(
    http: &ProviderHttp,
    endpoint: &Url,
    access_token: &str,
    sub: &str,
) -> Result<Map<String, Value>, AppError> {
    let info: Map<String, Value> = http.get_json(endpoint.as_str(), Some(access_token)).await.map_err(|e| {
        if e.is_outage() {
            AppError::ProviderUnavailable(anyhow::Error::new(e).context("userinfo"))
        } else {
            AppError::sign_in(
                "The identity provider's profile response was invalid.",
                anyhow::Error::new(e).context("userinfo"),
            )
        }
    })?;
    // Core §5.3.2: a userinfo response for another subject must not be used.
    match info.get("sub").and_then(Value::as_str) {
        Some(s) if s == sub => Ok(info),
        _ => Err(AppError::sign_in(
            "The identity provider's profile did not belong to the signed-in user.",
            anyhow!("userinfo sub does not match the ID token sub"),
        )),
    }
}

fn token_request_error(err: RequestTokenError<CallError, BasicErrorResponse>) -> AppError {
    match err {
        RequestTokenError::Request(e) if e.is_outage() => {
            AppError::ProviderUnavailable(anyhow::Error::new(e).context("token request"))
        }
        RequestTokenError::ServerResponse(e) => AppError::sign_in(
            "The identity provider refused to complete the sign-in. Please try again.",
            anyhow!("token endpoint error `{}`", e.error().as_ref()),
        ),
        other => AppError::sign_in(
            "The identity provider's token response was invalid.",
            anyhow!("token request failed: {other}"),
        ),
    }
}

fn id_token_error(err: TokenError) -> AppError {
    if err.is_outage() {
        AppError::ProviderUnavailable(anyhow::Error::new(err).context("ID token keys"))
    } else {
        AppError::sign_in("The identity provider's ID token could not be verified.", err)
    }
}

/// RP-initiated logout URL: `id_token_hint`, `client_id`, `post_logout_redirect_uri`, `state`.
pub fn end_session_url(settings: &Settings, metadata: &ProviderMetadata, id_token: Option<&str>) -> Option<Url> {
    let mut url = metadata.end_session_endpoint.clone()?;
    {
        let mut query = url.query_pairs_mut();
        if let Some(hint) = id_token {
            query.append_pair("id_token_hint", hint);
        }
        query
            .append_pair("client_id", &settings.logto_app_id)
            .append_pair("post_logout_redirect_uri", &settings.post_logout_redirect_uri())
            .append_pair("state", CsrfToken::new_random_len(16).secret());
    }
    Some(url)
}

/// Revokes a refresh token (RFC 7009), best effort and bounded in time; failures are logged.
/// (Hand-made rather than the oauth2 crate's, which refuses the plain-http revocation endpoint
/// of a Logto reached over a private Docker network.)
pub async fn revoke_refresh_token(settings: &Settings, metadata: &ProviderMetadata, http: &ProviderHttp, token: &str) {
    let Some(endpoint) = &metadata.revocation_endpoint else {
        return;
    };
    let request = http
        .client()
        .post(endpoint.as_str())
        .header(reqwest::header::AUTHORIZATION, client_secret_basic(settings))
        .form(&[("token", token), ("token_type_hint", "refresh_token")]);
    match tokio::time::timeout(REVOCATION_BUDGET, http.send(request)).await {
        Ok(Ok(response)) if response.status.is_success() => {
            tracing::info!("refresh token revoked at the provider")
        }
        Ok(Ok(response)) => tracing::warn!(status = response.status.as_u16(), "refresh token revocation refused"),
        Ok(Err(error)) => tracing::warn!(%error, "refresh token revocation failed"),
        Err(_) => tracing::warn!("refresh token revocation timed out"),
    }
}

/// `Basic base64(urlencode(client_id) ":" urlencode(secret))`, as RFC 6749 §2.3.1 requires.
fn client_secret_basic(settings: &Settings) -> String {
    use base64::Engine;
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let credentials =
        format!("{}:{}", encode(&settings.logto_app_id), encode(settings.logto_app_secret.expose_secret()));
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials))
}

/// The result of a refresh-token grant.
pub struct Refreshed {
    pub access_token: String,
    pub expires_at: u64,
    /// A rotated refresh token, when the provider issued one.
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
}

impl std::fmt::Debug for Refreshed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refreshed").field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The grant is gone (signed out, revoked, or a refresh token was reused).
    #[error("the provider refused the refresh token (invalid_grant)")]
    InvalidGrant,
    /// The provider does not know or allow the requested resource / organization.
    #[error("the provider refused the requested resource ({0})")]
    Refused(String),
    #[error("provider unavailable")]
    Outage(#[source] anyhow::Error),
    /// A 5xx or 429 from Logto or a proxy in front of it (with its `Retry-After`, if any).
    #[error("the provider answered HTTP {status}")]
    Busy { status: u16, retry_after_secs: Option<u64> },
    #[error("invalid refresh response")]
    Invalid(#[source] anyhow::Error),
    /// A response that cannot be used (e.g. an unknown `token_type`) but carries a rotated
    /// refresh token: Logto has consumed the old one, so this one must be kept.
    #[error("invalid refresh response with a rotated refresh token")]
    UnusableButRotated { refresh_token: String, cause: anyhow::Error },
}

/// Uses a refresh token, optionally for an API resource (RFC 8707) or an organization.
///
/// Hand-made like the revocation (a form POST with `client_secret_basic`): every answer a
/// provider or a proxy in front of it can give is classified — `invalid_grant`, another OAuth
/// error (a refusal), an outage (unreachable, 5xx, 429), or an unusable response (HTML, a
/// missing or unknown `token_type`) — and none of them is a panic or a 500. Its future is `Send`,
/// so revalidation can run it in a background task.
pub async fn refresh(
    settings: &Settings,
    metadata: &ProviderMetadata,
    http: &ProviderHttp,
    refresh_token: &str,
    resource: Option<&str>,
    organization_id: Option<&str>,
) -> Result<Refreshed, RefreshError> {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
    if let Some(resource) = resource {
        form.push(("resource", resource));
    }
    if let Some(organization) = organization_id {
        form.push(("organization_id", organization));
    }
    let request = http
        .client()
        .post(metadata.token_endpoint.as_str())
        .header(reqwest::header::AUTHORIZATION, client_secret_basic(settings))
        .header(reqwest::header::ACCEPT, "application/json")
        .form(&form);
    let response = http
        .send(request)
        .await
        .map_err(|e| if e.is_outage() { RefreshError::Outage(e.into()) } else { RefreshError::Invalid(e.into()) })?;
    let status = response.status;
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        let retry_after = response
            .headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        return Err(RefreshError::Busy { status: status.as_u16(), retry_after_secs: retry_after });
    }
    if !status.is_success() {
        return Err(match response.json::<OAuthErrorBody>() {
            Ok(body) if body.error == "invalid_grant" => RefreshError::InvalidGrant,
            Ok(body) => RefreshError::Refused(body.error.chars().filter(|c| c.is_ascii_graphic()).take(64).collect()),
            Err(e) => RefreshError::Invalid(e.context(format!("HTTP {status} without an OAuth error"))),
        });
    }
    let body: TokenBody = response.json().map_err(RefreshError::Invalid)?;
    let token_type = body.token_type.as_deref().unwrap_or_default();
    if !token_type.eq_ignore_ascii_case("bearer") || body.access_token.is_empty() {
        let cause = anyhow!("unusable access token in the refresh response (token_type `{token_type}`)");
        return Err(match body.refresh_token.filter(|t| !t.is_empty()) {
            Some(refresh_token) => RefreshError::UnusableButRotated { refresh_token, cause },
            None => RefreshError::Invalid(cause),
        });
    }
    let ttl = body.expires_in.map_or(DEFAULT_ACCESS_TOKEN_TTL, Duration::from_secs);
    Ok(Refreshed {
        access_token: body.access_token,
        expires_at: unix_now() + ttl.as_secs(),
        refresh_token: body.refresh_token.filter(|t| !t.is_empty()),
        id_token: body.id_token,
    })
}

/// A successful token response (RFC 6749 §5.1) with an optional ID token.
#[derive(Deserialize)]
struct TokenBody {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
}

/// An error response (RFC 6749 §5.2).
#[derive(Deserialize)]
struct OAuthErrorBody {
    error: String,
}
