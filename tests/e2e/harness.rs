//! End-to-end harness: the app on a real port, the Logto-shaped `oidc-provider` server
//! (tests/provider) as a child process, and headless Chromium through chromedriver.

use std::net::TcpListener;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use fantoccini::{Client, Locator};
use logto_signin::config::Settings;
use logto_signin::startup::Application;
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const CLIENT_ID: &str = "e2e-client";
pub const CLIENT_SECRET: &str = "e2e:secret%with+odd=chars";
pub const SESSION_SECRET: &str = "e2e-session-secret-0123456789-0123456789-0123456789-0123456789-0123456789";
#[path = "../common/browser.rs"]
mod browser;
pub use browser::*;

/// The Node provider; killed when dropped.
pub struct Provider {
    pub base: String,
    child: Child,
}

impl Provider {
    pub async fn start(app_base: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(artifacts_dir())?;
        let log = std::fs::File::create(artifacts_dir().join(format!("provider-{}.log", std::process::id())))?;
        let mut child = Command::new("node")
            .arg(root().join("tests/provider/server.js"))
            .env("CLIENT_ID", CLIENT_ID)
            .env("CLIENT_SECRET", CLIENT_SECRET)
            .env("REDIRECT_URI", format!("{app_base}/callback"))
            .env("POST_LOGOUT_REDIRECT_URI", format!("{app_base}/"))
            .env("BACKCHANNEL_LOGOUT_URI", format!("{app_base}/backchannel-logout"))
            .env("PORT", "0")
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting the test provider: is Node.js installed and `npm ci` run in tests/provider?")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let port = tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(port) = line.strip_prefix("LISTENING ") {
                    return anyhow::Ok(port.trim().to_owned());
                }
            }
            bail!("the provider exited before listening")
        })
        .await
        .context("the provider did not start in time")??;
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { base: format!("http://127.0.0.1:{port}"), child })
    }

    /// Calls a test-only admin hook of the provider.
    pub async fn hook(&self, name: &str, body: serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let response = reqwest::Client::new().post(format!("{}/__test/{name}", self.base)).json(&body).send().await?;
        anyhow::ensure!(response.status().is_success(), "hook {name}: {}", response.status());
        Ok(response.json().await?)
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The app (in-process, on a real port), its provider and a chromedriver.
pub struct Stack {
    pub app: String,
    pub pool: PgPool,
    pub provider: Provider,
    pub driver: Driver,
}

impl Stack {
    pub async fn start(pool: PgPool) -> anyhow::Result<Self> {
        if std::env::var("TEST_LOG").is_ok() {
            logto_signin::telemetry::init();
        }
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let app = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
        let provider = Provider::start(&app).await?;
        let settings = Settings::from_lookup(|k| match k {
            "LOGTO_ENDPOINT" => Some(provider.base.clone()),
            "LOGTO_APP_ID" => Some(CLIENT_ID.into()),
            "LOGTO_APP_SECRET" => Some(CLIENT_SECRET.into()),
            "APP_BASE_URL" => Some(app.clone()),
            "DATABASE_URL" => Some("postgres://unused/unused".into()),
            "SESSION_SECRET" => Some(SESSION_SECRET.into()),
            "JWKS_REFETCH_COOLDOWN" => Some("1".into()),
            _ => None,
        })?;
        let application = Application::build_on(listener, settings, pool.clone()).await?;
        tokio::spawn(application.run_until_stopped());
        let driver = Driver::start().await?;
        let stack = Self { app, pool, provider, driver };
        stack.wait_ready().await?;
        Ok(stack)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        for _ in 0..100 {
            if reqwest::get(format!("{}/readyz", self.app)).await.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the app did not become ready")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.app)
    }
}

/// On the provider's login page: type the username and continue.
pub async fn log_in_at_provider(browser: &Client, username: &str) -> anyhow::Result<()> {
    let field =
        browser.wait().at_most(WAIT).for_element(Locator::Id("username")).await.context("the provider's login page")?;
    field.send_keys(username).await?;
    click(browser, "#submit").await
}

/// Home → Sign in → provider login as `username` → back home, signed in.
pub async fn sign_in(stack: &Stack, browser: &Client, username: &str) -> anyhow::Result<()> {
    browser.goto(&stack.url("/")).await?;
    click(browser, "#sign-in").await?;
    log_in_at_provider(browser, username).await?;
    text_of(browser, "#display-name").await?;
    Ok(())
}
