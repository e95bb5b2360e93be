//! End-to-end harness: the app on a real port, the Logto-shaped `oidc-provider` server
//! (tests/provider) as a child process, and headless Chromium through chromedriver.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use logto_signin::config::Settings;
use logto_signin::startup::Application;
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const CLIENT_ID: &str = "e2e-client";
pub const CLIENT_SECRET: &str = "e2e:secret%with+odd=chars";
pub const SESSION_SECRET: &str = "e2e-session-secret-0123456789-0123456789-0123456789-0123456789-0123456789";
const WAIT: Duration = Duration::from_secs(15);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn artifacts_dir() -> PathBuf {
    root().join("target/e2e-artifacts")
}

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

/// chromedriver; killed when dropped.
pub struct Driver {
    pub url: String,
    child: Child,
}

impl Driver {
    pub async fn start() -> anyhow::Result<Self> {
        let port = free_port()?;
        let child = Command::new(std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into()))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting chromedriver: install Debian's chromium and chromium-driver")?;
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if reqwest::get(format!("{url}/status")).await.is_ok_and(|r| r.status().is_success()) {
                return Ok(Self { url, child });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("chromedriver did not start")
    }

    /// A fresh headless browser (its own profile, so its own cookies).
    pub async fn browser(&self) -> anyhow::Result<Client> {
        let profile = tempdir()?;
        let args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            "--disable-quic".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), serde_json::json!({ "args": args }));
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .context("opening a Chromium session")?;
        Ok(client)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn tempdir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("logto-signin-e2e-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
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
        let application =
            Application::build_on(listener, settings, pool.clone(), concat!(env!("CARGO_MANIFEST_DIR"), "/templates"))
                .await?;
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

/// Runs browser steps; on failure saves a screenshot and the page source under
/// target/e2e-artifacts/<name>.{png,html}, closes the browser, and fails the test.
pub async fn scenario<F, Fut>(name: &str, browser: &Client, steps: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let result = steps().await;
    if let Err(error) = result {
        let dir = artifacts_dir();
        let _ = std::fs::create_dir_all(&dir);
        if let Ok(png) = browser.screenshot().await {
            let _ = std::fs::write(dir.join(format!("{name}.png")), png);
        }
        if let Ok(html) = browser.source().await {
            let _ = std::fs::write(dir.join(format!("{name}.html")), html);
        }
        let url = browser.current_url().await.map(|u| u.to_string()).unwrap_or_default();
        panic!("{name} failed at {url}: {error:#} (screenshot and page source in {})", dir.display());
    }
}

/// Waits (at most 15 s) for an element matching `css`.
async fn wait_for(browser: &Client, css: &str) -> anyhow::Result<fantoccini::elements::Element> {
    browser.wait().at_most(WAIT).for_element(Locator::Css(css)).await.with_context(|| format!("waiting for `{css}`"))
}

pub async fn text_of(browser: &Client, css: &str) -> anyhow::Result<String> {
    Ok(wait_for(browser, css).await?.text().await?)
}

pub async fn click(browser: &Client, css: &str) -> anyhow::Result<()> {
    Ok(wait_for(browser, css).await?.click().await?)
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
