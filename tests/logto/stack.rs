//! One app under test against the real Logto: its own Traditional web application registered
//! in Logto through the Management API (redirect, post-logout and back-channel URIs on the
//! app's real port), the app itself in-process on that port, and what a browser does on
//! Logto's hosted sign-in pages.

use std::net::TcpListener;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use fantoccini::Client;
use logto_signin::config::Settings;
use logto_signin::startup::Application;
use sqlx::PgPool;

use crate::browser::*;
use crate::management::{Management, unique};

pub const SESSION_SECRET: &str = "real-logto-session-secret-0123456789-0123456789-0123456789-0123456789";
pub const PASSWORD: &str = "Tiers-of-Logto-2026!";

/// An app instance and the Logto application it signs in with.
pub struct TestApp {
    /// The app's public base URL (`http://127.0.0.1:<port>` or `http://localhost:<port>`).
    pub base: String,
    pub pool: PgPool,
    pub client_id: String,
    pub client_secret: String,
    pub settings: Settings,
}

/// How to start an app: which host name it is reached by, settings on top of the defaults, and
/// (for a second instance of the same app) an existing Logto application.
#[derive(Default)]
pub struct AppOptions<'a> {
    /// `127.0.0.1` (default) or `localhost`: two apps in one browser need different hosts, or
    /// their cookies (per host, not per port) would collide.
    pub host: Option<&'a str>,
    pub settings: &'a [(&'a str, &'a str)],
    /// Reuse this Logto application (client id, secret and its base URL) instead of creating one.
    pub same_application_as: Option<&'a TestApp>,
}

impl TestApp {
    pub async fn start(logto: &Management, pool: PgPool, options: AppOptions<'_>) -> anyhow::Result<Self> {
        let host = options.host.unwrap_or("127.0.0.1");
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let base = format!("http://{host}:{port}");
        let (client_id, client_secret) = match options.same_application_as {
            Some(other) => (other.client_id.clone(), other.client_secret.clone()),
            None => {
                logto
                    .create_application(
                        &unique("logto-signin test"),
                        &format!("{base}/callback"),
                        &format!("{base}/"),
                        &format!("{base}/backchannel-logout"),
                    )
                    .await?
            }
        };
        // A second instance of one app serves the first one's base URL (a load balancer's view).
        let public_base = options.same_application_as.map(|o| o.base.clone()).unwrap_or_else(|| base.clone());
        let endpoint = logto.env.endpoint.clone();
        let overrides: Vec<(String, String)> =
            options.settings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let settings = Settings::from_lookup(|k| {
            if let Some((_, v)) = overrides.iter().find(|(name, _)| name == k) {
                return Some(v.clone());
            }
            match k {
                "LOGTO_ENDPOINT" => Some(endpoint.clone()),
                "LOGTO_APP_ID" => Some(client_id.clone()),
                "LOGTO_APP_SECRET" => Some(client_secret.clone()),
                "APP_BASE_URL" => Some(public_base.clone()),
                "DATABASE_URL" => Some("postgres://unused/unused".into()),
                "SESSION_SECRET" => Some(SESSION_SECRET.into()),
                "SIGN_IN_RATE_LIMIT" => Some("100000".into()),
                "JWKS_REFETCH_COOLDOWN" => Some("1".into()),
                _ => None,
            }
        })?;
        let application = Application::build_on(listener, settings.clone(), pool.clone()).await?;
        tokio::spawn(application.run_until_stopped());
        let app = Self { base, pool, client_id, client_secret, settings };
        app.wait_ready().await?;
        Ok(app)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        for _ in 0..150 {
            if reqwest::get(self.url("/readyz")).await.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the app did not become ready against {}", self.settings.logto_endpoint)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Home → **Sign in** → Logto's hosted page (username + password) → back home, signed in.
    pub async fn sign_in(&self, browser: &Client, username: &str) -> anyhow::Result<()> {
        browser.goto(&self.url("/")).await?;
        click(browser, "#sign-in").await?;
        password_sign_in_at_logto(browser, username).await?;
        text_of(browser, "#display-name").await.context("back on the app, signed in")?;
        Ok(())
    }

    /// `/api/me` as the browser sees it.
    pub async fn me(&self, browser: &Client) -> anyhow::Result<serde_json::Value> {
        browser.goto(&self.url("/api/me")).await?;
        let text = text_of(browser, "body").await?;
        serde_json::from_str(&text).with_context(|| format!("/api/me: {text}"))
    }

    /// The session cookie the browser holds for this app.
    pub async fn session_cookie(&self, browser: &Client) -> anyhow::Result<String> {
        let name = logto_signin::startup::session_cookie_name(&self.settings);
        let cookie = browser.get_named_cookie(name).await.context("the app's session cookie")?;
        Ok(format!("{name}={}", cookie.value()))
    }
}

/// A user with a password in Logto; returns (username, user id).
pub async fn new_user(logto: &Management, name: &str) -> anyhow::Result<(String, String)> {
    let username = unique("user");
    let id = logto.create_user(&username, PASSWORD, name).await?;
    Ok((username, id))
}

/// On Logto's hosted sign-in page: username and password, then **Sign in**.
pub async fn password_sign_in_at_logto(browser: &Client, username: &str) -> anyhow::Result<()> {
    fill(browser, "input[name=identifier]", username).await.context("Logto's sign-in page")?;
    fill(browser, "input[name=password]", PASSWORD).await?;
    click(browser, "button[name=submit]").await
}

/// Logto's re-authentication page for a known user (`max_age`): the password only.
pub async fn confirm_password_at_logto(browser: &Client) -> anyhow::Result<()> {
    fill(browser, "input[name=password]", PASSWORD).await.context("Logto's password page")?;
    click(browser, "button[name=submit]").await
}

/// Reads a JWT's claims without verifying it (the test inspects what Logto issued).
pub fn jwt_claims(token: &str) -> anyhow::Result<serde_json::Value> {
    use base64::Engine;
    let payload = token.split('.').nth(1).context("not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// `GET /api/access-token?…` with the browser's session cookie, as a same-origin script would.
pub async fn access_token(app: &TestApp, cookie: &str, query: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    let response = reqwest::Client::new()
        .get(app.url(&format!("/api/access-token{query}")))
        .header("Cookie", cookie)
        .header("Sec-Fetch-Site", "same-origin")
        .send()
        .await?;
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    Ok((status, body))
}

/// Waits until `check` holds (at most `within`), polling every 200 ms.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = std::time::Instant::now() + within;
    loop {
        if check().await? {
            return Ok(());
        }
        ensure!(std::time::Instant::now() < deadline, "{what} did not happen within {within:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
