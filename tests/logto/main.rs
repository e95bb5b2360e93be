//! The real-Logto tier: the app against a real Logto 1.42 (built from its public source by
//! `../shared/logto`, or any Logto given by environment), headless Chromium on Logto's own
//! hosted sign-in pages, and everything each scenario needs provisioned through Logto's
//! Management API. Each scenario uses its own Logto application, users, roles and resources,
//! so scenarios do not interfere.
//!
//! Needs `LOGTO_ENDPOINT`, `LOGTO_M2M_ID`, `LOGTO_M2M_SECRET` (as `bootstrap.sh` prints them),
//! `DATABASE_URL`, chromium + chromedriver. See README, "Tests against real Logto".

#[path = "../common/browser.rs"]
mod browser;
mod management;
mod stack;

use std::sync::LazyLock;

use anyhow::{Context, ensure};
use browser::*;
use management::{LogtoEnv, Management};
use sqlx::PgPool;
use stack::*;

static LOGTO: LazyLock<Management> = LazyLock::new(|| Management::new(LogtoEnv::from_env()));

/// Rotating Logto's signing keys (twice) retires a key that a token of a scenario running at the
/// same moment may be signed with: that scenario takes this lock for writing, all others for
/// reading.
static SIGNING_KEYS: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// The Management API client and a read hold on the signing keys for the whole scenario.
async fn logto() -> (&'static Management, tokio::sync::RwLockReadGuard<'static, ()>) {
    (&LOGTO, SIGNING_KEYS.read().await)
}

#[sqlx::test]
async fn password_sign_in_through_logtos_hosted_page_shows_the_profile(pool: PgPool) {
    let (logto, _keys) = logto().await;
    let app = TestApp::start(logto, pool, AppOptions::default()).await.expect("app");
    let (username, user_id) = new_user(logto, "Ada Lovelace").await.expect("user");
    let driver = Driver::start().await.expect("chromedriver");
    let browser = driver.browser().await.expect("browser");
    scenario("logto_password_sign_in", &browser, || async {
        app.sign_in(&browser, &username).await?;
        ensure!(text_of(&browser, "#display-name").await? == "Ada Lovelace");
        let me = app.me(&browser).await?;
        ensure!(me["sub"] == user_id.as_str() && me["username"] == username.as_str(), "{me}");
        Ok(())
    })
    .await;
    browser.close().await.ok();
}

/// Item 1 of the real-Logto issue: API resources (RFC 8707). Logto grants a refresh-token
/// request for a resource only when the authorization request named it; the scopes in the token
/// are those the user's roles grant, of those requested.
#[sqlx::test]
async fn tokens_for_four_api_resources_at_once_carry_what_the_roles_grant(pool: PgPool) {
    let (logto, _keys) = logto().await;
    let mut indicators = Vec::new();
    let mut granted = Vec::new();
    for i in 0..4 {
        let indicator = format!("https://{}.api.test", management::unique("res").replace('_', "-"));
        let (_, scopes) = logto
            .create_resource(
                &management::unique("resource"),
                &indicator,
                3600,
                &[&format!("read:r{i}"), &format!("write:r{i}")],
            )
            .await
            .expect("resource");
        // The role grants read on every resource, write only on the first.
        granted.push(scopes[0].clone());
        if i == 0 {
            granted.push(scopes[1].clone());
        }
        indicators.push(indicator);
    }
    let role = logto.create_role(&management::unique("readers"), &granted).await.expect("role");
    let configured: Vec<String> =
        indicators.iter().enumerate().map(|(i, r)| format!("{r} read:r{i} write:r{i}")).collect();
    let configured = configured.join(", ");
    let app =
        TestApp::start(logto, pool, AppOptions { settings: &[("LOGTO_RESOURCES", &configured)], ..Default::default() })
            .await
            .expect("app");
    let (username, user_id) = new_user(logto, "Grace Hopper").await.expect("user");
    logto.assign_roles(&user_id, &[role]).await.expect("roles");
    let driver = Driver::start().await.expect("chromedriver");
    let browser = driver.browser().await.expect("browser");
    scenario("logto_api_resources", &browser, || async {
        app.sign_in(&browser, &username).await?;
        let cookie = app.session_cookie(&browser).await?;
        let queries: Vec<String> =
            indicators.iter().map(|r| format!("?resource={}", management::urlencode(r))).collect();
        let requests = queries.iter().map(|q| access_token(&app, &cookie, q));
        let answers = futures_util::future::join_all(requests).await;
        for (i, answer) in answers.into_iter().enumerate() {
            let (status, body) = answer?;
            ensure!(status == 200, "resource {i}: {status} {body}");
            let claims = jwt_claims(body["access_token"].as_str().unwrap_or_default())?;
            ensure!(claims["aud"] == indicators[i].as_str(), "resource {i} aud: {claims}");
            let mut scopes: Vec<&str> = claims["scope"].as_str().unwrap_or_default().split(' ').collect();
            scopes.sort_unstable();
            let expected: Vec<String> =
                if i == 0 { vec!["read:r0".into(), "write:r0".into()] } else { vec![format!("read:r{i}")] };
            ensure!(scopes == expected, "resource {i} scopes {scopes:?}, expected {expected:?}");
        }
        // The session keeps working: its own token, and a resource token again (cached).
        ensure!(access_token(&app, &cookie, "").await?.0 == 200, "the session's own token");
        let again =
            access_token(&app, &cookie, &format!("?resource={}", management::urlencode(&indicators[3]))).await?;
        ensure!(again.0 == 200, "{again:?}");
        ensure!(app.me(&browser).await?["sub"] == user_id.as_str());
        // A resource Logto knows but this app does not request: refused here, before Logto.
        let (status, body) = access_token(&app, &cookie, "?resource=https%3A%2F%2Fdefault.logto.app%2Fapi").await?;
        ensure!(
            status == 400 && body["message"].as_str().is_some_and(|m| m.contains("LOGTO_RESOURCES")),
            "{status} {body}"
        );
        Ok(())
    })
    .await;
    browser.close().await.ok();
}

/// Item 2: organization tokens for an organization the user belongs to; a clear 400 for one
/// they do not belong to (and the session survives it).
#[sqlx::test]
async fn organization_tokens_only_for_the_users_organizations(pool: PgPool) {
    let (logto, _keys) = logto().await;
    let scopes = format!("{} urn:logto:scope:organizations", logto_signin::config::DEFAULT_SCOPES);
    let app = TestApp::start(logto, pool, AppOptions { settings: &[("LOGTO_SCOPES", &scopes)], ..Default::default() })
        .await
        .expect("app");
    let (username, user_id) = new_user(logto, "Katherine Johnson").await.expect("user");
    let member_of = logto.create_organization(&management::unique("org"), &[&user_id]).await.expect("org");
    let other = logto.create_organization(&management::unique("org"), &[]).await.expect("org");
    let driver = Driver::start().await.expect("chromedriver");
    let browser = driver.browser().await.expect("browser");
    scenario("logto_organizations", &browser, || async {
        app.sign_in(&browser, &username).await?;
        let cookie = app.session_cookie(&browser).await?;
        let (status, body) = access_token(&app, &cookie, &format!("?organization_id={member_of}")).await?;
        ensure!(status == 200, "{status} {body}");
        let claims = jwt_claims(body["access_token"].as_str().unwrap_or_default())?;
        ensure!(claims["aud"] == format!("urn:logto:organization:{member_of}").as_str(), "{claims}");
        let (status, body) = access_token(&app, &cookie, &format!("?organization_id={other}")).await?;
        ensure!(status == 400, "not a member: {status} {body}");
        ensure!(body["error"] == "bad_request", "{body}");
        ensure!(app.me(&browser).await?["sub"] == user_id.as_str(), "the session survives a refused organization");
        Ok(())
    })
    .await;
    browser.close().await.ok();
}

/// Item 3: an access token that expires is refreshed (the resource's `accessTokenTtl` is
/// short), and two app instances refreshing one session at once never trip Logto's reuse
/// detection (which would revoke the grant).
#[sqlx::test]
async fn two_instances_refreshing_one_session_at_once_keep_it_alive(pool: PgPool) {
    let (logto, _keys) = logto().await;
    let indicator = format!("https://{}.api.test", management::unique("short").replace('_', "-"));
    // Shorter than the app's 60 s refresh margin: every request for it refreshes.
    logto.create_resource(&management::unique("short-lived"), &indicator, 30, &[]).await.expect("resource");
    let settings = [("LOGTO_RESOURCES", indicator.as_str())];
    let first = TestApp::start(logto, pool.clone(), AppOptions { settings: &settings, ..Default::default() })
        .await
        .expect("app");
    let second = TestApp::start(
        logto,
        pool,
        AppOptions { settings: &settings, same_application_as: Some(&first), ..Default::default() },
    )
    .await
    .expect("second instance");
    let (username, _) = new_user(logto, "Margaret Hamilton").await.expect("user");
    let driver = Driver::start().await.expect("chromedriver");
    let browser = driver.browser().await.expect("browser");
    scenario("logto_refresh_two_instances", &browser, || async {
        first.sign_in(&browser, &username).await?;
        let cookie = first.session_cookie(&browser).await?;
        let query = format!("?resource={}", management::urlencode(&indicator));
        let (status, one) = access_token(&first, &cookie, &query).await?;
        ensure!(status == 200, "{status} {one}");
        let (status, two) = access_token(&first, &cookie, &query).await?;
        ensure!(status == 200 && two["access_token"] != one["access_token"], "a new token for an expiring one");
        for round in 0..3 {
            let requests = (0..8).map(|i| access_token(if i % 2 == 0 { &first } else { &second }, &cookie, &query));
            for answer in futures_util::future::join_all(requests).await {
                let (status, body) = answer?;
                ensure!(status == 200, "round {round}: {status} {body}");
            }
        }
        // The grant is alive at Logto: the session's own token can still be refreshed.
        sqlx::query("update sessions set access_token_expires_at = now() where user_id is not null")
            .execute(&first.pool)
            .await?;
        let (status, body) = access_token(&second, &cookie, "").await?;
        ensure!(status == 200, "{status} {body}");
        Ok(())
    })
    .await;
    browser.close().await.ok();
}

/// The stand-in for huggingface.co (tests/logto/huggingface.mjs) on 127.0.0.1:443, with the
/// certificate `scripts/real-logto.sh` made; killed when dropped.
struct HuggingFace {
    child: tokio::process::Child,
    /// Chromium switches: huggingface.co on loopback, and trust for exactly its certificate.
    browser_args: Vec<String>,
}

impl HuggingFace {
    async fn start(client_id: &str, client_secret: &str, redirect_uri: &str) -> anyhow::Result<Self> {
        use anyhow::Context;
        use tokio::io::AsyncBufReadExt;
        let dir = std::env::var("HF_STANDIN_DIR").context(
            "HF_STANDIN_DIR is not set: start Logto with scripts/real-logto.sh (it makes the stand-in's CA, \
             maps huggingface.co to loopback and gives Logto NODE_EXTRA_CA_CERTS)",
        )?;
        let dir = std::path::PathBuf::from(dir);
        let spki = std::fs::read_to_string(dir.join("spki.txt")).context("the stand-in's certificate")?;
        let mut child = tokio::process::Command::new("node")
            .arg(root().join("tests/logto/huggingface.mjs"))
            .env("HF_CERT", dir.join("cert.pem"))
            .env("HF_KEY", dir.join("key.pem"))
            .env("HF_CLIENT_ID", client_id)
            .env("HF_CLIENT_SECRET", client_secret)
            .env("HF_REDIRECT_URI", redirect_uri)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting the Hugging Face stand-in")?;
        let mut lines = tokio::io::BufReader::new(child.stdout.take().context("stdout")?).lines();
        let ready = tokio::time::timeout(WAIT, lines.next_line()).await.context("the stand-in did not start")??;
        ensure!(ready.as_deref().is_some_and(|l| l.starts_with("LISTENING")), "the stand-in failed: {ready:?}");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            child,
            browser_args: vec![
                "--host-resolver-rules=MAP huggingface.co 127.0.0.1".into(),
                format!("--ignore-certificate-errors-spki-list={}", spki.trim()),
            ],
        })
    }

    /// On the stand-in's page: sign in as `username` and authorize (or cancel).
    async fn consent(browser: &fantoccini::Client, username: &str, allow: bool) -> anyhow::Result<()> {
        fill(browser, "#hf-username", username).await.anyhow_context("the Hugging Face page")?;
        click(browser, if allow { "#hf-allow" } else { "#hf-deny" }).await
    }
}

impl Drop for HuggingFace {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

trait AnyhowContext<T> {
    fn anyhow_context(self, what: &'static str) -> anyhow::Result<T>;
}
impl<T> AnyhowContext<T> for anyhow::Result<T> {
    fn anyhow_context(self, what: &'static str) -> anyhow::Result<T> {
        anyhow::Context::context(self, what)
    }
}

/// Item 4: the whole seed chain. The app's **Continue with Hugging Face** → real Logto
/// (`direct_sign_in=social:huggingface`, Logto's own connector) → "huggingface.co" (the
/// stand-in) → consent → Logto (a first-time user picks a username on Logto's page) → the app,
/// showing the Hugging Face username and avatar from `identities.huggingface`. A second sign-in
/// is the same app user; a denied consent stays on Logto's page; `error=access_denied` at the
/// app's callback is a clear 4xx.
#[sqlx::test]
async fn continue_with_hugging_face_through_logtos_connector(pool: PgPool) {
    let (logto, _keys) = logto().await;
    let hf_client = management::unique("hf_client");
    let hf_secret = management::unique("hf_secret");
    let connector = logto.configure_hugging_face(&hf_client, &hf_secret).await.expect("connector");
    let logto_callback = format!("{}/callback/{connector}", logto.env.endpoint);
    let hf = HuggingFace::start(&hf_client, &hf_secret, &logto_callback).await.expect("stand-in");
    let app = TestApp::start(logto, pool, AppOptions::default()).await.expect("app");
    let driver = Driver::start().await.expect("chromedriver");
    let browser = driver.browser_with(&hf.browser_args).await.expect("browser");
    let hf_user = management::unique("hf");
    scenario("logto_hugging_face", &browser, || async {
        browser.goto(&app.url("/")).await?;
        click(&browser, "#sign-in-huggingface").await?;
        HuggingFace::consent(&browser, &hf_user, true).await?;
        // First time: Logto asks for a username (the sign-up identifier) on its own page.
        let logto_username = management::unique("from_hf");
        fill(&browser, "input[name=identifier]", &logto_username).await.anyhow_context("Logto's username page")?;
        click(&browser, "button[type=submit]").await?;
        ensure!(text_of(&browser, "#display-name").await? == format!("HF {hf_user}"));
        ensure!(text_of(&browser, "#hf-username").await? == hf_user, "the Hugging Face username is shown");
        let avatar = wait_for(&browser, "#huggingface img.avatar").await?.attr("src").await?;
        ensure!(avatar.as_deref().is_some_and(|a| a.starts_with("https://huggingface.co/avatars/")), "{avatar:?}");
        let first = app.me(&browser).await?;
        ensure!(first["identities"]["huggingface"]["userId"].is_string(), "{first}");

        // Sign out of the app and Logto; the same Hugging Face account is the same app user.
        browser.goto(&app.url("/")).await?;
        click(&browser, "#sign-out").await?;
        click(&browser, "#sign-in-huggingface").await?;
        HuggingFace::consent(&browser, &hf_user, true).await?;
        text_of(&browser, "#display-name").await?;
        let second = app.me(&browser).await?;
        ensure!(second["sub"] == first["sub"], "same Logto user: {first} / {second}");
        let users: i64 = sqlx::query_scalar("select count(*) from users").fetch_one(&app.pool).await?;
        ensure!(users == 1, "{users} app users");
        Ok(())
    })
    .await;

    let denied = driver.browser_with(&hf.browser_args).await.expect("browser");
    scenario("logto_hugging_face_denied", &denied, || async {
        denied.goto(&app.url("/")).await?;
        click(&denied, "#sign-in-huggingface").await?;
        HuggingFace::consent(&denied, &hf_user, false).await?;
        // Logto shows its own message and does not come back to the app.
        wait_for_text(&denied, "authorization process is unsuccessful").await?;
        let url = denied.current_url().await?;
        ensure!(url.as_str().starts_with(&logto.env.endpoint), "stays on Logto: {url}");
        // Starting again from the app works.
        denied.goto(&app.url("/")).await?;
        click(&denied, "#sign-in-huggingface").await?;
        HuggingFace::consent(&denied, &hf_user, true).await?;
        ensure!(text_of(&denied, "#hf-username").await? == hf_user);
        Ok(())
    })
    .await;

    // Logto's own error redirect shape, as the app's callback receives it.
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let start = http.get(app.url("/sign-in")).send().await.expect("sign-in");
    let cookie = start
        .headers()
        .get("set-cookie")
        .and_then(|c| c.to_str().ok())
        .expect("cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let location = start.headers()["location"].to_str().expect("location").to_owned();
    let state = url::Url::parse(&location)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .expect("state")
        .1
        .into_owned();
    let callback = http
        .get(app.url("/callback"))
        .query(&[
            ("error", "access_denied"),
            ("error_description", "denied"),
            ("state", &state),
            ("iss", &logto.env.issuer()),
        ])
        .header("Cookie", cookie)
        .send()
        .await
        .expect("callback");
    let status = callback.status().as_u16();
    let page = callback.text().await.unwrap_or_default();
    assert!((400..500).contains(&status), "access_denied → {status}");
    assert!(page.contains("<h1>"), "an error page: {page}");
    browser.close().await.ok();
    denied.close().await.ok();
}

/// Item 7: RP-initiated sign-out comes back with `state`; ending the Logto session delivers a
/// back-channel logout that ends exactly that browser's session of another app (its `sid`),
/// while a second browser's session of the same user stays.
#[sqlx::test]
async fn sign_out_ends_the_logto_session_and_back_channel_ends_exactly_that_session(pool: PgPool) {
    let (logto, _keys) = logto().await;
    // Two apps in one browser need two host names (cookies are per host, not per port).
    let shop = TestApp::start(logto, pool.clone(), AppOptions { host: Some("localhost"), ..Default::default() })
        .await
        .expect("app A");
    let wiki = TestApp::start(logto, pool, AppOptions::default()).await.expect("app B");
    let (username, _) = new_user(logto, "Barbara Liskov").await.expect("user");
    let driver = Driver::start().await.expect("chromedriver");
    let first = driver.browser().await.expect("browser");
    let second = driver.browser().await.expect("browser");
    scenario("logto_back_channel", &first, || async {
        shop.sign_in(&first, &username).await?;
        // Single sign-on: the second app signs in through the same Logto session, no form.
        first.goto(&wiki.url("/")).await?;
        click(&first, "#sign-in").await?;
        text_of(&first, "#display-name").await.context("signed in to B by single sign-on")?;
        wiki.sign_in(&second, &username).await?;
        let sessions_of_b = || async {
            let n: i64 = sqlx::query_scalar("select count(*) from sessions where user_id is not null")
                .fetch_one(&wiki.pool)
                .await?;
            anyhow::Ok(n)
        };
        ensure!(sessions_of_b().await? == 3, "A, B in the first browser, B in the second");

        // Sign out of A: through Logto's end-session page and back to A with `state`.
        first.goto(&shop.url("/")).await?;
        click(&first, "#sign-out").await?;
        text_of(&first, "#sign-in").await?;
        let back = first.current_url().await?;
        ensure!(back.as_str().starts_with(&shop.base), "back on A: {back}");
        ensure!(back.query_pairs().any(|(k, v)| k == "state" && !v.is_empty()), "state echoed: {back}");

        // Logto's back-channel logout reached B for the first browser's session only.
        eventually(std::time::Duration::from_secs(5), "B's session in the first browser ending", || async {
            Ok(sessions_of_b().await? == 1)
        })
        .await?;
        first.goto(&wiki.url("/")).await?;
        text_of(&first, "#sign-in").await.context("B signed out in the first browser")?;
        second.goto(&wiki.url("/")).await?;
        text_of(&second, "#display-name").await.context("B still signed in in the second browser")?;
        // And the Logto session is gone: signing in to A asks for the password again.
        first.goto(&shop.url("/")).await?;
        click(&first, "#sign-in").await?;
        password_sign_in_at_logto(&first, &username).await?;
        text_of(&first, "#display-name").await?;
        Ok(())
    })
    .await;
    first.close().await.ok();
    second.close().await.ok();
}

/// Item 8: an admin action after an old sign-in asks to confirm; Logto re-authenticates for
/// `max_age`, returns `auth_time`, and the action then succeeds.
#[sqlx::test]
async fn an_admin_action_after_an_old_sign_in_steps_up_at_logto(pool: PgPool) {
    let (logto, _keys) = logto().await;
    let (admin_name, admin_id) = new_user(logto, "Frances Allen").await.expect("user");
    let (other_name, _) = new_user(logto, "Radia Perlman").await.expect("user");
    let settings = [("ADMIN_SUBJECTS", admin_id.as_str()), ("ADMIN_MAX_AUTH_AGE", "4s")];
    let app = TestApp::start(logto, pool, AppOptions { settings: &settings, ..Default::default() }).await.expect("app");
    let driver = Driver::start().await.expect("chromedriver");
    let admin = driver.browser().await.expect("browser");
    let other = driver.browser().await.expect("browser");
    scenario("logto_step_up", &admin, || async {
        app.sign_in(&other, &other_name).await?;
        app.sign_in(&admin, &admin_name).await?;
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        admin.goto(&app.url("/admin")).await?;
        admin.find(fantoccini::Locator::LinkText("Radia Perlman")).await?.click().await?;
        let page = admin.current_url().await?;
        text_of(&admin, "#step-up-notice").await?;
        click(&admin, "#step-up").await?;
        // Logto asks again (the sign-in is older than max_age) …
        reauthenticate_at_logto(&admin, &admin_name).await?;
        // … and the app accepts the fresh auth_time: back on the page, the action allowed.
        click(&admin, "#sign-out-everywhere").await?;
        text_of(&admin, "#no-sessions").await?;
        ensure!(admin.current_url().await?.path() == page.path(), "back on the user's page");
        other.goto(&app.url("/")).await?;
        text_of(&other, "#sign-in").await.context("the other user was signed out")?;
        Ok(())
    })
    .await;
    admin.close().await.ok();
    other.close().await.ok();
}

/// Logto's answer to `max_age` for a signed-in user: its sign-in form again (with the
/// identifier, when Logto asks for it), then back to the app.
async fn reauthenticate_at_logto(browser: &fantoccini::Client, username: &str) -> anyhow::Result<()> {
    wait_for(browser, "input[name=password]").await.context("Logto asks to sign in again")?;
    if let Ok(identifier) = browser.find(fantoccini::Locator::Css("input[name=identifier]")).await {
        identifier.clear().await?;
        identifier.send_keys(username).await?;
    }
    confirm_password_at_logto(browser).await
}

/// Item 9: discovery and URLs as the compose stack uses them. The browser goes to Logto's
/// public endpoint (`LOGTO_ENDPOINT`), the app's own calls go through another name for the same
/// Logto (`LOGTO_INTERNAL_ENDPOINT`, here a counting TCP relay on another port).
#[sqlx::test]
async fn the_browser_uses_the_public_endpoint_and_the_app_the_internal_one(pool: PgPool) {
    let (logto, _keys) = logto().await;
    let relay = Relay::start(&logto.env.endpoint).await.expect("relay");
    let internal = format!("http://localhost:{}", relay.port);
    let app = TestApp::start(
        logto,
        pool,
        AppOptions { settings: &[("LOGTO_INTERNAL_ENDPOINT", &internal)], ..Default::default() },
    )
    .await
    .expect("app");
    let (username, user_id) = new_user(logto, "Edsger Dijkstra").await.expect("user");
    let driver = Driver::start().await.expect("chromedriver");
    let browser = driver.browser().await.expect("browser");
    scenario("logto_internal_endpoint", &browser, || async {
        let before = relay.connections();
        ensure!(before > 0, "discovery went through the internal endpoint");
        browser.goto(&app.url("/")).await?;
        click(&browser, "#sign-in").await?;
        wait_for(&browser, "input[name=identifier]").await?;
        let at = browser.current_url().await?;
        ensure!(at.as_str().starts_with(&logto.env.endpoint), "the browser is on the public endpoint: {at}");
        password_sign_in_at_logto(&browser, &username).await?;
        text_of(&browser, "#display-name").await?;
        ensure!(app.me(&browser).await?["sub"] == user_id.as_str());
        ensure!(relay.connections() > before, "the token and userinfo calls went through the internal endpoint");
        // Sign-out sends the browser to the public end-session endpoint.
        browser.goto(&app.url("/")).await?;
        click(&browser, "#sign-out").await?;
        text_of(&browser, "#sign-in").await?;
        Ok(())
    })
    .await;
    browser.close().await.ok();
}

/// A TCP relay to Logto on its own port that counts connections (another "host name" for the
/// same Logto, like `http://logto:3001` inside Docker).
struct Relay {
    port: u16,
    count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Relay {
    async fn start(target: &str) -> anyhow::Result<Self> {
        let target = url::Url::parse(target)?;
        let upstream =
            format!("{}:{}", target.host_str().unwrap_or("127.0.0.1"), target.port_or_known_default().unwrap_or(80));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = count.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Ok(Self { port, count })
    }

    fn connections(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Item 5: key rotation at Logto (Management API). Sign-in keeps working without restarting
/// the app; once Logto drops the old key (a second rotation) and the cached key set is older
/// than `JWKS_MAX_AGE`, a token signed by the old key is refused.
#[sqlx::test]
async fn signing_key_rotation_at_logto_needs_no_restart_and_retired_keys_are_refused(pool: PgPool) {
    use logto_signin::auth::{discovery::Provider, flow, http::ProviderHttp, id_token, jwks};
    let _rotating = SIGNING_KEYS.write().await;
    let logto = &*LOGTO;
    let settings = [("JWKS_MAX_AGE", "2")];
    let app = TestApp::start(logto, pool, AppOptions { settings: &settings, ..Default::default() }).await.expect("app");
    let (first_user, _) = new_user(logto, "Ken Thompson").await.expect("user");
    let (second_user, _) = new_user(logto, "Dennis Ritchie").await.expect("user");
    let driver = Driver::start().await.expect("chromedriver");
    let first = driver.browser().await.expect("browser");
    let second = driver.browser().await.expect("browser");
    scenario("logto_key_rotation", &second, || async {
        app.sign_in(&first, &first_user).await?;
        let sealed: String =
            sqlx::query_scalar("select id_token from sessions where id_token is not null").fetch_one(&app.pool).await?;
        let old_token = logto_signin::session::sealed::TokenCipher::new(SESSION_SECRET.as_bytes())
            .open("id_token", &sealed)
            .context("sealed with the app secret")?;
        let old_kid = jsonwebtoken::decode_header(&old_token)?.kid;

        let published = logto.rotate_signing_keys().await?;
        ensure!(published.len() == 2, "the new key signs, the old one stays published: {published:?}");
        app.sign_in(&second, &second_user).await.context("sign-in after the rotation, same app process")?;

        // The same verification the app does, with its settings, against Logto's JWKS.
        let http = ProviderHttp::new(std::time::Duration::from_secs(5), std::time::Duration::from_secs(10))?;
        let provider = Provider::new(std::sync::Arc::new(app.settings.clone()), http);
        let metadata = provider.discover().await?;
        let cache = jwks::JwksCache::new(std::time::Duration::from_secs(2), std::time::Duration::from_secs(1));
        let verify = || async {
            let verifier =
                flow::verifier(&app.settings, &metadata, provider.http(), &cache, jwks::Caller::TokenEndpoint);
            let expectations = id_token::Expectations {
                nonce: None,
                not_issued_before: None,
                max_age: None,
                access_token: None,
                now: flow::unix_now(),
            };
            id_token::validate(&verifier, &old_token, &expectations).await
        };
        ensure!(verify().await.is_ok(), "the previous key is still published after one rotation");

        let published = logto.rotate_signing_keys().await?;
        ensure!(!published.iter().any(|k| Some(k) == old_kid.as_ref()), "Logto dropped the old key");
        tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
        match verify().await {
            Err(error) => ensure!(error.to_string().contains("kid"), "refused for its key: {error}"),
            Ok(_) => anyhow::bail!("a token signed by a key Logto dropped was accepted"),
        }
        // The app itself keeps signing people in with the newest key.
        let third = driver.browser().await?;
        app.sign_in(&third, &first_user).await.context("sign-in after the second rotation")?;
        third.close().await.ok();
        Ok(())
    })
    .await;
    first.close().await.ok();
    second.close().await.ok();
}

/// Item 6: the admin role assigned through the Management API opens `/admin` after sign-in; the
/// role removed at Logto stops counting within `SESSION_REVALIDATE_AFTER` (no new sign-in).
#[sqlx::test]
async fn a_role_given_and_taken_at_logto_opens_and_closes_the_admin_page(pool: PgPool) {
    let (logto, _keys) = logto().await;
    let role_name = management::unique("admins");
    let role = logto.create_role(&role_name, &[]).await.expect("role");
    let settings = [("ADMIN_ROLE", role_name.as_str()), ("SESSION_REVALIDATE_AFTER", "2")];
    let app = TestApp::start(logto, pool, AppOptions { settings: &settings, ..Default::default() }).await.expect("app");
    let (username, user_id) = new_user(logto, "Adele Goldberg").await.expect("user");
    logto.assign_roles(&user_id, std::slice::from_ref(&role)).await.expect("assign");
    let driver = Driver::start().await.expect("chromedriver");
    let browser = driver.browser().await.expect("browser");
    scenario("logto_admin_role", &browser, || async {
        app.sign_in(&browser, &username).await?;
        text_of(&browser, "#admin-link").await.context("the home page offers Admin")?;
        browser.goto(&app.url("/admin")).await?;
        text_of(&browser, "#counts").await.context("the admin page")?;
        logto.remove_role(&user_id, &role).await?;
        tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
        browser.goto(&app.url("/admin")).await?;
        ensure!(text_of(&browser, "h1").await? == "Access denied", "the removed role no longer counts");
        ensure!(app.me(&browser).await?["roles"] == serde_json::json!([]), "roles follow Logto");
        Ok(())
    })
    .await;
    browser.close().await.ok();
}

/// Lifecycle item 8 / operability item 4 against real Logto: a user suspended through the
/// Management API loses their app session within the revalidation bound (Logto revokes the
/// user's grants; the background revalidation's refresh is refused).
#[sqlx::test]
async fn a_user_suspended_at_logto_loses_the_app_session(pool: PgPool) {
    let (logto, _keys) = logto().await;
    let app = TestApp::start(
        logto,
        pool,
        AppOptions { settings: &[("SESSION_REVALIDATE_AFTER", "2")], ..Default::default() },
    )
    .await
    .expect("app");
    let (username, user_id) = new_user(logto, "Mary Shaw").await.expect("user");
    let driver = Driver::start().await.expect("chromedriver");
    let browser = driver.browser().await.expect("browser");
    scenario("logto_suspended", &browser, || async {
        app.sign_in(&browser, &username).await?;
        logto.set_suspended(&user_id, true).await?;
        let sessions = || async {
            let n: i64 = sqlx::query_scalar("select count(*) from sessions where user_id is not null")
                .fetch_one(&app.pool)
                .await?;
            anyhow::Ok(n)
        };
        eventually(std::time::Duration::from_secs(8), "the suspended user's session ending", || async {
            Ok(sessions().await? == 0)
        })
        .await?;
        browser.goto(&app.url("/")).await?;
        text_of(&browser, "#sign-in").await.context("signed out")?;
        // And Logto refuses the next sign-in.
        click(&browser, "#sign-in").await?;
        password_sign_in_at_logto(&browser, &username).await?;
        wait_for_text(&browser, "suspended").await.context("Logto's message for a suspended account")?;
        Ok(())
    })
    .await;
    browser.close().await.ok();
}
