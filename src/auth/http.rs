//! The HTTP client for server-to-server calls to the identity provider.
//!
//! Follows no redirects (a redirecting provider is an SSRF vector and never legitimate here),
//! has connect and total timeouts, and reads at most [`MAX_RESPONSE_BYTES`] of any body.

use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::StreamExt;

/// Discovery, JWKS, token and userinfo responses are a few KiB; 1 MiB is far above any of them.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

#[derive(Clone, Debug)]
pub struct ProviderHttp {
    client: reqwest::Client,
    /// Set on a [`ProviderHttp::timed`] copy: the time its calls spent waiting for the provider.
    waited: Option<ProviderWait>,
}

/// Time spent waiting for the provider by the calls of one [`ProviderHttp::timed`] client, in
/// microseconds (for `Server-Timing`: a benchmark subtracts it to get the app's own time).
#[derive(Clone, Debug, Default)]
pub struct ProviderWait(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl ProviderWait {
    pub fn micros(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Why a call to the provider failed: the provider could not be reached (an outage) or it
/// answered something we refuse.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("provider unreachable: {0}")]
    Unreachable(#[source] anyhow::Error),
    #[error("provider answered HTTP {status}")]
    Status { status: u16, body: Vec<u8> },
    #[error("invalid provider response: {0}")]
    Invalid(#[source] anyhow::Error),
}

impl CallError {
    /// An outage (network failure, timeout, a 5xx, or a 429 from Logto or a proxy in front of
    /// it) as opposed to a refusal.
    pub fn is_outage(&self) -> bool {
        match self {
            Self::Unreachable(_) => true,
            Self::Status { status, .. } => *status >= 500 || *status == 429,
            Self::Invalid(_) => false,
        }
    }
}

impl ProviderHttp {
    pub fn new(connect_timeout: Duration, timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(connect_timeout)
            .timeout(timeout)
            .user_agent(concat!("logto-signin/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client for the identity provider")?;
        Ok(Self { client, waited: None })
    }

    /// A copy of this client that adds up the time its calls wait for the provider.
    pub fn timed(&self) -> (Self, ProviderWait) {
        let waited = ProviderWait::default();
        (Self { client: self.client.clone(), waited: Some(waited.clone()) }, waited)
    }

    /// Sends a request and returns the status, content type and body (capped).
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<RawResponse, CallError> {
        let started = std::time::Instant::now();
        let result = self.send_timed(request).await;
        if let Some(waited) = &self.waited {
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            waited.0.fetch_add(micros, std::sync::atomic::Ordering::Relaxed);
        }
        result
    }

    async fn send_timed(&self, request: reqwest::RequestBuilder) -> Result<RawResponse, CallError> {
        let response = request.send().await.map_err(|e| CallError::Unreachable(e.into()))?;
        let status = response.status();
        let headers = response.headers().clone();
        if let Some(len) = response.content_length()
            && len > MAX_RESPONSE_BYTES as u64
        {
            return Err(CallError::Invalid(anyhow::anyhow!("response of {len} bytes is too large")));
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| CallError::Unreachable(e.into()))?;
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(CallError::Invalid(anyhow::anyhow!("response larger than {MAX_RESPONSE_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(RawResponse { status, headers, body })
    }

    /// GETs a JSON document; anything but a 200 with a JSON body is an error.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        bearer: Option<&str>,
    ) -> Result<T, CallError> {
        let mut request = self.client.get(url).header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = self.send(request).await?;
        if response.status != reqwest::StatusCode::OK {
            return Err(CallError::Status { status: response.status.as_u16(), body: response.body });
        }
        response.json().map_err(CallError::Invalid)
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends an `oauth2` crate request through this client (same limits).
    pub async fn oauth2_send(&self, request: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, CallError> {
        let (parts, body) = request.into_parts();
        let builder = self.client.request(parts.method, parts.uri.to_string()).headers(parts.headers).body(body);
        let raw = self.send(builder).await?;
        if raw.status.is_server_error() {
            // Keep the status: the oauth2 crate would turn a 5xx page into a parse error,
            // and a provider outage must read as 503, not as a bad response.
            return Err(CallError::Status { status: raw.status.as_u16(), body: raw.body });
        }
        let mut response = oauth2::http::Response::builder().status(raw.status.as_u16());
        if let Some(headers) = response.headers_mut() {
            *headers = raw.headers;
        }
        response.body(raw.body).map_err(|e| CallError::Invalid(e.into()))
    }
}

pub struct RawResponse {
    pub status: reqwest::StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// Parses the body as JSON after checking the content type says JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> anyhow::Result<T> {
        let content_type = self
            .headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        if !(essence == "application/json" || essence.ends_with("+json")) {
            bail!("expected a JSON response, got content type `{content_type}`");
        }
        serde_json::from_slice(&self.body).context("response body is not the expected JSON")
    }
}
