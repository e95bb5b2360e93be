//! Headless Chromium through chromedriver, shared by the end-to-end tiers (the oidc-provider
//! fixture in tests/e2e and real Logto in tests/logto). Included with `#[path]`, so a tier may
//! leave some of it unused.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use tokio::process::{Child, Command};

pub const WAIT: Duration = Duration::from_secs(15);

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn artifacts_dir() -> PathBuf {
    root().join("target/e2e-artifacts")
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
        self.browser_with(&[]).await
    }

    /// A fresh headless browser with extra Chromium switches (`--lang=…`, host mapping, …).
    pub async fn browser_with(&self, extra: &[String]) -> anyhow::Result<Client> {
        let profile = tempdir()?;
        let mut args = vec![
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
        args.extend(extra.iter().cloned());
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

pub fn tempdir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("logto-signin-e2e-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
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
pub async fn wait_for(browser: &Client, css: &str) -> anyhow::Result<fantoccini::elements::Element> {
    browser.wait().at_most(WAIT).for_element(Locator::Css(css)).await.with_context(|| format!("waiting for `{css}`"))
}

pub async fn text_of(browser: &Client, css: &str) -> anyhow::Result<String> {
    Ok(wait_for(browser, css).await?.text().await?)
}

pub async fn click(browser: &Client, css: &str) -> anyhow::Result<()> {
    Ok(wait_for(browser, css).await?.click().await?)
}

/// Types `text` into the field matching `css` (waiting for it).
pub async fn fill(browser: &Client, css: &str, text: &str) -> anyhow::Result<()> {
    Ok(wait_for(browser, css).await?.send_keys(text).await?)
}

/// Waits (at most 15 s) until the page's text contains `needle`.
pub async fn wait_for_text(browser: &Client, needle: &str) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let text = browser.find(Locator::Css("body")).await?.text().await.unwrap_or_default();
        if text.contains(needle) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("waiting for the text `{needle}`; the page says: {text}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
