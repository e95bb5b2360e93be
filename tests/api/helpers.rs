//! Test harness: the real app on a random port, a fresh migrated database per test
//! (`#[sqlx::test]`), and the in-process fake provider.

use std::collections::HashMap;
use std::sync::{Mutex, Once};
use std::time::Duration;

use logto_signin::config::Settings;
use logto_signin::startup::{Application, SESSION_COOKIE};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use sqlx::PgPool;

pub use crate::fake_op::{CLIENT_ID, CLIENT_SECRET, FakeOp, TestUser};

pub const SESSION_SECRET: &str = "test-session-secret-0123456789-0123456789-0123456789-0123456789-0123456789";

static TRACING: Once = Once::new();

/// Everything the app logs during the tests (debug level), for the leak tests; with TEST_LOG
/// set, logs go to the terminal instead.
static CAPTURED_LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogCapture;

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURED_LOGS.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_tracing() {
    TRACING.call_once(|| {
        if std::env::var("TEST_LOG").is_ok() {
            logto_signin::telemetry::init();
        } else {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("info,logto_signin=debug,tracing_actix_web=debug"))
                .with_writer(|| LogCapture)
                .with_ansi(false)
                .try_init();
        }
    });
}

/// The logs captured so far (all tests of this process).
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&CAPTURED_LOGS.lock().expect("log buffer")).into_owned()
}

/// Opens a token as stored in the database (sealed with the test SESSION_SECRET).
pub fn open_token(purpose: &str, stored: &str) -> String {
    logto_signin::session::sealed::TokenCipher::new(SESSION_SECRET.as_bytes())
        .open(purpose, stored)
        .expect("sealed token")
}

pub struct TestApp {
    pub address: String,
    pub pool: PgPool,
    pub op: FakeOp,
    pub client: reqwest::Client,
    cookie: Mutex<Option<String>>,
}

/// Settings for a test app talking to `op`, with `overrides` applied.
pub fn test_settings(op: &FakeOp, overrides: &[(&str, &str)]) -> Settings {
    let mut env: HashMap<String, String> = HashMap::from([
        ("LOGTO_ENDPOINT".into(), op.base.clone()),
        ("LOGTO_APP_ID".into(), CLIENT_ID.into()),
        ("LOGTO_APP_SECRET".into(), CLIENT_SECRET.into()),
        ("APP_BASE_URL".into(), "http://localhost:3000".into()),
        ("PORT".into(), "0".into()),
        ("DATABASE_URL".into(), "postgres://unused/unused".into()),
        ("SESSION_SECRET".into(), SESSION_SECRET.into()),
        ("JWKS_REFETCH_COOLDOWN".into(), "1".into()),
        // Tests sign in far more often than people; the limits have their own tests.
        ("SIGN_IN_RATE_LIMIT".into(), "100000".into()),
        ("BACKCHANNEL_RATE_LIMIT".into(), "100000".into()),
    ]);
    for (k, v) in overrides {
        env.insert((*k).into(), (*v).into());
    }
    Settings::from_lookup(|k| env.get(k).cloned()).expect("test settings")
}

pub async fn spawn_app(pool: PgPool) -> TestApp {
    let op = FakeOp::start().await;
    spawn_app_with(pool, op, &[]).await
}

/// Starts the app and waits until it has loaded the provider's metadata.
pub async fn spawn_app_with(pool: PgPool, op: FakeOp, overrides: &[(&str, &str)]) -> TestApp {
    let app = spawn_app_unready(pool, op, overrides).await;
    app.wait_ready().await;
    app
}

/// Starts the app without waiting for the provider.
pub async fn spawn_app_unready(pool: PgPool, op: FakeOp, overrides: &[(&str, &str)]) -> TestApp {
    init_tracing();
    let settings = test_settings(&op, overrides);
    let app = Application::build(settings, pool.clone()).await.expect("build app");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    TestApp { address, pool, op, client, cookie: Mutex::new(None) }
}

impl TestApp {
    pub async fn wait_ready(&self) {
        for _ in 0..100 {
            if let Ok(r) = self.client.get(format!("{}/readyz", self.address)).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("app did not become ready");
    }

    pub fn cookie(&self) -> Option<String> {
        self.cookie.lock().expect("lock").clone()
    }

    pub fn set_cookie(&self, cookie: Option<String>) {
        *self.cookie.lock().expect("lock") = cookie;
    }

    fn remember(&self, response: &reqwest::Response) {
        for value in response.headers().get_all(SET_COOKIE) {
            let Ok(text) = value.to_str() else { continue };
            let Some(rest) = text.strip_prefix(&format!("{SESSION_COOKIE}=")) else {
                continue;
            };
            let value = rest.split(';').next().unwrap_or_default();
            let removed = value.is_empty() || text.contains("Max-Age=0");
            self.set_cookie((!removed).then(|| value.to_owned()));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// GET with the remembered cookie; remembers any new cookie.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        if let Some(cookie) = self.cookie() {
            request = request.header(COOKIE, format!("{SESSION_COOKIE}={cookie}"));
        }
        let response = request.send().await.expect("request");
        self.remember(&response);
        response
    }

    /// GET with an explicit cookie value (or none); does not touch the remembered cookie.
    pub async fn get_with_cookie(&self, path: &str, cookie: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, format!("{SESSION_COOKIE}={cookie}"));
        }
        request.send().await.expect("request")
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.post(self.url(path)).form(form);
        if let Some(cookie) = self.cookie() {
            request = request.header(COOKIE, format!("{SESSION_COOKIE}={cookie}"));
        }
        let response = request.send().await.expect("request");
        self.remember(&response);
        response
    }

    /// GET `/sign-in...` and return the authorization URL it redirects to.
    pub async fn begin_sign_in(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), 303, "sign-in should redirect: {}", response.text().await.unwrap_or_default());
        location(&response)
    }

    /// The browser's return from the provider with an explicit query.
    pub async fn callback(&self, query: &[(&str, &str)]) -> reqwest::Response {
        let query: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(query).finish();
        self.get(&format!("/callback?{query}")).await
    }

    /// Approves `authorization_url` at the provider for `user` and returns to `/callback` the
    /// way Logto does (`code`, `state`, `iss`).
    pub async fn return_from_provider(&self, authorization_url: &str, user: &TestUser) -> reqwest::Response {
        let code = self.op.authorize(authorization_url, user);
        let state = query_param(authorization_url, "state").expect("state");
        let issuer = self.op.issuer.clone();
        self.callback(&[("code", &code), ("state", &state), ("iss", &issuer)]).await
    }

    /// A whole sign-in; returns the callback response.
    pub async fn sign_in_as(&self, user: &TestUser) -> reqwest::Response {
        let authorization_url = self.begin_sign_in("/sign-in").await;
        self.return_from_provider(&authorization_url, user).await
    }

    /// A whole sign-in that must succeed.
    pub async fn signed_in(&self, user: &TestUser) {
        let response = self.sign_in_as(user).await;
        assert_eq!(response.status(), 303, "sign-in failed: {}", response.text().await.unwrap_or_default());
    }

    /// A step-up sign-in (`/sign-in/step-up`, with `max_age`) that must succeed: admin actions
    /// need it. Returns the authorization URL that was used.
    pub async fn stepped_up(&self, user: &TestUser) -> String {
        let authorization_url = self.begin_sign_in("/sign-in/step-up?return_to=/admin").await;
        let response = self.return_from_provider(&authorization_url, user).await;
        assert_eq!(response.status(), 303, "step-up failed: {}", response.text().await.unwrap_or_default());
        authorization_url
    }

    /// `/api/me`'s status once it becomes `expected`, polling for at most 500 ms — for changes made
    /// through another app instance, which reach this one's session cache by Postgres NOTIFY.
    pub async fn me_status_soon(&self, expected: u16) -> u16 {
        let deadline = std::time::Instant::now() + Duration::from_millis(500);
        loop {
            let status = self.me_status().await;
            if status == expected || std::time::Instant::now() > deadline {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub async fn me_status(&self) -> u16 {
        self.get("/api/me").await.status().as_u16()
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.expect("count")
    }
}

pub fn location(response: &reqwest::Response) -> String {
    response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).expect("Location header").to_owned()
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    parsed.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// A URL for this test's own database (for a second connection, or the binary in a process).
pub fn database_url(pool: &PgPool) -> String {
    let options = pool.connect_options();
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().expect("test database")
    )
}
