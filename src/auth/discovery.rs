//! OpenID Provider metadata: fetched from discovery, validated, and kept fresh in the background.
//!
//! The app starts even when Logto is down: [`Provider::metadata`] is `None` until the first
//! successful discovery, sign-in answers 503 meanwhile, and a background task retries with
//! exponential backoff (and re-reads the document every hour once it has one).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use tokio::sync::Notify;
use url::Url;

use super::http::{CallError, ProviderHttp};
use crate::config::Settings;

const REFRESH_EVERY: Duration = Duration::from_secs(3600);
/// A provider that answered this recently is taken to be up.
pub const REACHABLE_FOR: Duration = Duration::from_secs(15);
/// How long a sign-in waits to find out whether the provider is up.
pub const REACHABILITY_CHECK: Duration = Duration::from_secs(3);
const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(60);

/// Algorithms this app accepts for ID and logout tokens at most: asymmetric ones only.
/// `none` and HS* are never accepted, whatever discovery says (no symmetric/asymmetric mixing).
const ASYMMETRIC_ALGORITHMS: [Algorithm; 8] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// Validated provider metadata, with endpoints already pointed at the right origin.
#[derive(Debug, Clone)]
pub struct ProviderMetadata {
    pub issuer: String,
    /// Browser-facing (public origin).
    pub authorization_endpoint: Url,
    /// Browser-facing (public origin).
    pub end_session_endpoint: Option<Url>,
    /// Server-to-server (internal origin when configured).
    pub token_endpoint: Url,
    pub userinfo_endpoint: Option<Url>,
    pub jwks_uri: Url,
    pub revocation_endpoint: Option<Url>,
    /// Asymmetric algorithms the provider advertises for ID tokens.
    pub id_token_algorithms: Vec<Algorithm>,
}

#[derive(Deserialize)]
struct DiscoveryDocument {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    userinfo_endpoint: Option<String>,
    end_session_endpoint: Option<String>,
    revocation_endpoint: Option<String>,
    #[serde(default)]
    id_token_signing_alg_values_supported: Vec<String>,
    #[serde(default)]
    code_challenge_methods_supported: Vec<String>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}

impl ProviderMetadata {
    /// Validates a discovery document against the configured issuer (Discovery 1.0 §4.3) and
    /// rewrites endpoint origins: browser-facing ones to `LOGTO_ENDPOINT`, server-side ones to
    /// `LOGTO_INTERNAL_ENDPOINT` (Logto builds endpoint URLs from the request's host).
    fn from_document(doc: DiscoveryDocument, settings: &Settings) -> anyhow::Result<Self> {
        let expected_issuer = settings.issuer();
        ensure!(
            doc.issuer == expected_issuer,
            "discovery issuer `{}` is not the configured issuer `{expected_issuer}`",
            doc.issuer
        );
        ensure!(
            doc.code_challenge_methods_supported.iter().any(|m| m == "S256"),
            "the provider does not advertise PKCE S256"
        );
        // RFC 9207 mix-up defence: every authorization response must carry `iss` (Logto's does).
        ensure!(
            doc.authorization_response_iss_parameter_supported,
            "the provider does not advertise authorization_response_iss_parameter_supported (RFC 9207)"
        );
        let id_token_algorithms: Vec<Algorithm> = doc
            .id_token_signing_alg_values_supported
            .iter()
            .filter_map(|name| ASYMMETRIC_ALGORITHMS.iter().copied().find(|a| format!("{a:?}") == *name))
            .collect();
        if id_token_algorithms.is_empty() {
            bail!(
                "the provider advertises no supported asymmetric ID token algorithm ({:?})",
                doc.id_token_signing_alg_values_supported
            );
        }

        let public = &settings.logto_endpoint;
        let internal = settings.logto_internal_endpoint.as_ref().unwrap_or(public);
        let ours = [public, internal];
        let browser = |u: &str| rebase(u, &ours, public);
        let server = |u: &str| rebase(u, &ours, internal);

        Ok(Self {
            issuer: doc.issuer,
            authorization_endpoint: browser(&doc.authorization_endpoint).context("authorization_endpoint")?,
            end_session_endpoint: doc
                .end_session_endpoint
                .as_deref()
                .map(browser)
                .transpose()
                .context("end_session_endpoint")?,
            token_endpoint: server(&doc.token_endpoint).context("token_endpoint")?,
            userinfo_endpoint: doc.userinfo_endpoint.as_deref().map(server).transpose().context("userinfo_endpoint")?,
            jwks_uri: server(&doc.jwks_uri).context("jwks_uri")?,
            revocation_endpoint: doc
                .revocation_endpoint
                .as_deref()
                .map(server)
                .transpose()
                .context("revocation_endpoint")?,
            id_token_algorithms,
        })
    }
}

/// Parses `url` and, when its origin is one of `ours`, moves it to `target`'s origin. An
/// endpoint elsewhere must be https (or on localhost): the metadata cannot move a call onto
/// plain http on the network.
fn rebase(url: &str, ours: &[&Url], target: &Url) -> anyhow::Result<Url> {
    let mut parsed = Url::parse(url).with_context(|| format!("`{url}` is not a URL"))?;
    ensure!(matches!(parsed.scheme(), "http" | "https"), "`{url}` is not an http(s) URL");
    let on_our_origin = ours.iter().any(|o| o.origin() == parsed.origin());
    ensure!(
        parsed.scheme() == "https" || on_our_origin || crate::config::is_loopback(&parsed),
        "`{url}` is plain http on another host"
    );
    if on_our_origin {
        parsed
            .set_scheme(target.scheme())
            .and_then(|()| parsed.set_host(target.host_str()).map_err(|_| ()))
            .and_then(|()| parsed.set_port(target.port()))
            .map_err(|()| anyhow::anyhow!("cannot rebase `{url}`"))?;
    }
    Ok(parsed)
}

/// The provider as this process knows it: metadata (once discovered) and the HTTP client.
pub struct Provider {
    /// When the provider last answered discovery (unix seconds).
    last_seen_up: std::sync::atomic::AtomicU64,
    settings: Arc<Settings>,
    http: ProviderHttp,
    metadata: RwLock<Option<Arc<ProviderMetadata>>>,
    wake: Notify,
}

impl Provider {
    pub fn new(settings: Arc<Settings>, http: ProviderHttp) -> Arc<Self> {
        Arc::new(Self {
            last_seen_up: std::sync::atomic::AtomicU64::new(0),
            settings,
            http,
            metadata: RwLock::new(None),
            wake: Notify::new(),
        })
    }

    pub fn http(&self) -> &ProviderHttp {
        &self.http
    }

    pub fn metadata(&self) -> Option<Arc<ProviderMetadata>> {
        self.metadata.read().ok().and_then(|m| m.clone())
    }

    /// Asks the background task to retry discovery now (a sign-in found no metadata).
    pub fn request_discovery(&self) {
        self.wake.notify_one();
    }

    /// Fetches and validates discovery once; stores the result on success.
    pub async fn discover(&self) -> anyhow::Result<Arc<ProviderMetadata>> {
        let url = self.settings.discovery_url();
        let doc: DiscoveryDocument = self
            .http
            .get_json(&url, None)
            .await
            .map_err(|e: CallError| anyhow::Error::new(e).context(format!("fetching discovery from {url}")))?;
        let metadata = Arc::new(ProviderMetadata::from_document(doc, &self.settings)?);
        if let Ok(mut slot) = self.metadata.write() {
            *slot = Some(metadata.clone());
        }
        self.last_seen_up.store(super::flow::unix_now(), std::sync::atomic::Ordering::Release);
        Ok(metadata)
    }

    /// Metadata of a provider that answered recently: if the last answer is older than
    /// [`REACHABLE_FOR`], discovery is fetched again (within [`REACHABILITY_CHECK`]) so that a
    /// sign-in never sends the browser to a provider that is down.
    pub async fn reachable_metadata(&self) -> anyhow::Result<Arc<ProviderMetadata>> {
        let last = self.last_seen_up.load(std::sync::atomic::Ordering::Acquire);
        if let Some(metadata) = self.metadata()
            && super::flow::unix_now().saturating_sub(last) < REACHABLE_FOR.as_secs()
        {
            return Ok(metadata);
        }
        tokio::time::timeout(REACHABILITY_CHECK, self.discover())
            .await
            .map_err(|_| anyhow::anyhow!("the provider did not answer discovery in time"))?
    }

    /// Runs forever: discovery with backoff until it succeeds, then an hourly refresh.
    pub async fn keep_fresh(self: Arc<Self>) {
        let mut delay = FIRST_RETRY;
        loop {
            let wait = match self.discover().await {
                Ok(_) => {
                    tracing::info!(issuer = %self.settings.issuer(), "provider metadata loaded");
                    delay = FIRST_RETRY;
                    REFRESH_EVERY
                }
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), retry_in = ?delay, "discovery failed");
                    let wait = delay;
                    delay = (delay * 2).min(MAX_RETRY);
                    wait
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.wake.notified(), if self.metadata().is_none() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(internal: Option<&str>) -> Settings {
        Settings::from_lookup(|k| match k {
            "LOGTO_ENDPOINT" => Some("http://localhost:3001".into()),
            "LOGTO_INTERNAL_ENDPOINT" => internal.map(str::to_owned),
            "LOGTO_ALLOW_HTTP" => Some("true".into()),
            "LOGTO_APP_ID" => Some("app".into()),
            "LOGTO_APP_SECRET" => Some("s".into()),
            "DATABASE_URL" => Some("postgres://x/y".into()),
            "SESSION_SECRET" => Some("k".repeat(64)),
            _ => None,
        })
        .expect("settings")
    }

    fn doc(origin: &str, issuer: &str) -> DiscoveryDocument {
        DiscoveryDocument {
            issuer: issuer.into(),
            authorization_endpoint: format!("{origin}/oidc/auth"),
            token_endpoint: format!("{origin}/oidc/token"),
            jwks_uri: format!("{origin}/oidc/jwks"),
            userinfo_endpoint: Some(format!("{origin}/oidc/me")),
            end_session_endpoint: Some(format!("{origin}/oidc/session/end")),
            revocation_endpoint: Some(format!("{origin}/oidc/token/revocation")),
            id_token_signing_alg_values_supported: vec!["ES384".into(), "HS256".into(), "none".into()],
            code_challenge_methods_supported: vec!["S256".into()],
            authorization_response_iss_parameter_supported: true,
        }
    }

    #[test]
    fn internal_endpoint_splits_browser_and_server_urls() {
        let s = settings(Some("http://logto:3001"));
        let m = ProviderMetadata::from_document(doc("http://logto:3001", "http://localhost:3001/oidc"), &s).unwrap();
        assert_eq!(m.authorization_endpoint.as_str(), "http://localhost:3001/oidc/auth");
        assert_eq!(m.end_session_endpoint.unwrap().as_str(), "http://localhost:3001/oidc/session/end");
        assert_eq!(m.token_endpoint.as_str(), "http://logto:3001/oidc/token");
        assert_eq!(m.jwks_uri.as_str(), "http://logto:3001/oidc/jwks");
        assert_eq!(m.userinfo_endpoint.unwrap().as_str(), "http://logto:3001/oidc/me");
        // Symmetric algorithms and `none` are dropped even when advertised.
        assert_eq!(m.id_token_algorithms, vec![Algorithm::ES384]);
    }

    /// DISC-02: discovery cannot point a call at plain http on another host.
    #[test]
    fn discovered_endpoints_on_plain_http_elsewhere_are_refused() {
        let s = settings(None);
        let mut d = doc("http://localhost:3001", "http://localhost:3001/oidc");
        d.jwks_uri = "http://keys.example.com/jwks".into();
        let err = ProviderMetadata::from_document(d, &s).unwrap_err();
        assert!(format!("{err:#}").contains("plain http"), "{err:#}");
        let mut d = doc("http://localhost:3001", "http://localhost:3001/oidc");
        d.token_endpoint = "http://10.0.0.8/oidc/token".into();
        assert!(ProviderMetadata::from_document(d, &s).is_err());
        let mut d = doc("http://localhost:3001", "http://localhost:3001/oidc");
        d.jwks_uri = "https://keys.example.com/jwks".into();
        let m = ProviderMetadata::from_document(d, &s).expect("https elsewhere is fine");
        assert_eq!(m.jwks_uri.as_str(), "https://keys.example.com/jwks");
    }

    #[test]
    fn mismatched_issuer_is_refused() {
        let s = settings(None);
        let err =
            ProviderMetadata::from_document(doc("http://localhost:3001", "http://localhost:3001/oidcINVALID"), &s)
                .unwrap_err();
        assert!(err.to_string().contains("issuer"), "{err}");
        let err = ProviderMetadata::from_document(doc("http://localhost:3001", "http://localhost:3001/oidc/"), &s)
            .unwrap_err();
        assert!(err.to_string().contains("issuer"), "{err}");
    }

    #[test]
    fn provider_without_s256_iss_parameter_or_asymmetric_algorithms_is_refused() {
        let s = settings(None);
        let mut d = doc("http://localhost:3001", "http://localhost:3001/oidc");
        d.code_challenge_methods_supported = vec!["plain".into()];
        assert!(ProviderMetadata::from_document(d, &s).is_err());
        let mut d = doc("http://localhost:3001", "http://localhost:3001/oidc");
        d.id_token_signing_alg_values_supported = vec!["HS256".into(), "none".into()];
        assert!(ProviderMetadata::from_document(d, &s).is_err());
        let mut d = doc("http://localhost:3001", "http://localhost:3001/oidc");
        d.authorization_response_iss_parameter_supported = false;
        let err = ProviderMetadata::from_document(d, &s).unwrap_err();
        assert!(err.to_string().contains("RFC 9207"), "{err}");
    }
}
