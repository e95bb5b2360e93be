//! End-to-end: a real browser (headless Chromium), a real OpenID provider built the way Logto
//! is (`oidc-provider`, tests/provider), the real app on a real port, a real Postgres.
//! Needs Node.js with `npm ci` run in tests/provider, and Debian's chromium + chromium-driver.

mod harness;

use std::time::Duration;

use anyhow::{Context, ensure};
use harness::*;
use sqlx::PgPool;

#[sqlx::test]
async fn sign_in_with_a_username_shows_the_profile(pool: PgPool) {
    let stack = Stack::start(pool).await.expect("stack");
    let browser = stack.driver.browser().await.expect("browser");
    scenario("sign_in_with_a_username", &browser, || async {
        browser.goto(&stack.url("/")).await?;
        click(&browser, "#sign-in").await?;
        ensure!(browser.current_url().await?.as_str().starts_with(&stack.provider.base), "on the provider's page");
        log_in_at_provider(&browser, "alice").await?;
        ensure!(text_of(&browser, "#display-name").await? == "Alice Liddell");
        ensure!(text_of(&browser, "#username").await? == "alice");
        let avatar = browser.find(fantoccini::Locator::Css("img.avatar")).await?.attr("src").await?;
        ensure!(avatar.as_deref() == Some("https://avatars.example.com/alice.png"), "avatar {avatar:?}");
        browser.goto(&stack.url("/api/me")).await?;
        let body = browser.source().await?;
        ensure!(body.contains("\"username\":\"alice\"") && body.contains("\"roles\":[\"admin\"]"), "{body}");
        Ok(())
    })
    .await;
    browser.close().await.ok();
}

#[sqlx::test]
async fn continue_with_hugging_face_signs_in_the_linked_account(pool: PgPool) {
    let stack = Stack::start(pool).await.expect("stack");
    let browser = stack.driver.browser().await.expect("browser");
    scenario("continue_with_hugging_face", &browser, || async {
        browser.goto(&stack.url("/")).await?;
        click(&browser, "#sign-in-huggingface").await?;
        ensure!(text_of(&browser, "#display-name").await? == "Hugo Face");
        ensure!(text_of(&browser, "#hf-username").await? == "hugo-hf", "the Hugging Face username is shown");
        Ok(())
    })
    .await;
    browser.close().await.ok();
}

#[sqlx::test]
async fn an_admin_sees_both_users_and_a_non_admin_gets_403(pool: PgPool) {
    let stack = Stack::start(pool).await.expect("stack");
    let alice = stack.driver.browser().await.expect("browser");
    let bob = stack.driver.browser().await.expect("browser");
    scenario("admin_page", &alice, || async {
        sign_in(&stack, &alice, "alice").await?;
        sign_in(&stack, &bob, "bob").await?;
        alice.goto(&stack.url("/admin")).await?;
        let table = text_of(&alice, "#users").await?;
        ensure!(table.contains("Alice Liddell") && table.contains("Bob Builder"), "{table}");
        ensure!(text_of(&alice, "#count-signed-in").await? == "2");
        bob.goto(&stack.url("/admin")).await?;
        ensure!(text_of(&bob, "h1").await? == "Access denied");

        // Ending Bob's sessions needs a recent sign-in: a step-up with max_age through the real
        // provider, which answers with auth_time, then back on Bob's page.
        alice.goto(&stack.url("/admin")).await?;
        alice.find(fantoccini::Locator::LinkText("Bob Builder")).await?.click().await?;
        let bobs_page = alice.current_url().await?;
        text_of(&alice, "#step-up-notice").await?;
        click(&alice, "#step-up").await?;
        text_of(&alice, "#sign-out-everywhere").await?;
        ensure!(alice.current_url().await?.path() == bobs_page.path(), "back on Bob's page");
        ensure!(alice.find(fantoccini::Locator::Css("#step-up-notice")).await.is_err(), "no notice after the step-up");
        click(&alice, "#sign-out-everywhere").await?;
        text_of(&alice, "#no-sessions").await?;
        bob.goto(&stack.url("/")).await?;
        text_of(&bob, "#sign-in").await?;
        Ok(())
    })
    .await;
    alice.close().await.ok();
    bob.close().await.ok();
}

#[sqlx::test]
async fn sign_out_ends_the_app_session_and_the_provider_session(pool: PgPool) {
    let stack = Stack::start(pool).await.expect("stack");
    let browser = stack.driver.browser().await.expect("browser");
    scenario("sign_out", &browser, || async {
        sign_in(&stack, &browser, "alice").await?;
        click(&browser, "#sign-out").await?;
        // Through Logto's end-session page and back to the app's home page, signed out.
        text_of(&browser, "#sign-in").await?;
        ensure!(browser.current_url().await?.as_str().starts_with(&stack.app), "back on the app");
        browser.goto(&stack.url("/api/me")).await?;
        ensure!(browser.source().await?.contains("not_authenticated"));
        // The provider session is gone too: the next sign-in asks for the username again.
        browser.goto(&stack.url("/")).await?;
        click(&browser, "#sign-in").await?;
        log_in_at_provider(&browser, "alice").await.context("the provider asked for the username again")?;
        text_of(&browser, "#display-name").await?;
        Ok(())
    })
    .await;
    browser.close().await.ok();
}

#[sqlx::test]
async fn ending_the_session_at_the_provider_signs_the_user_out_by_back_channel(pool: PgPool) {
    let stack = Stack::start(pool).await.expect("stack");
    let browser = stack.driver.browser().await.expect("browser");
    scenario("back_channel_logout", &browser, || async {
        sign_in(&stack, &browser, "alice").await?;
        let ended = stack.provider.hook("end-session", serde_json::json!({"username": "alice"})).await?;
        ensure!(ended["ended"] == 1, "{ended}");
        browser.refresh().await?;
        text_of(&browser, "#sign-in").await.context("signed out after reload")?;
        let rows: i64 = sqlx::query_scalar("select count(*) from sessions where user_id is not null")
            .fetch_one(&stack.pool)
            .await?;
        ensure!(rows == 0, "{rows} sessions left");
        Ok(())
    })
    .await;
    browser.close().await.ok();
}

#[sqlx::test]
async fn key_rotation_at_the_provider_needs_no_restart(pool: PgPool) {
    let stack = Stack::start(pool).await.expect("stack");
    let first = stack.driver.browser().await.expect("browser");
    let second = stack.driver.browser().await.expect("browser");
    scenario("key_rotation", &second, || async {
        sign_in(&stack, &first, "alice").await?;
        let kids = stack.provider.hook("rotate-keys", serde_json::json!({})).await?;
        ensure!(kids["kids"].as_array().map(Vec::len) == Some(2));
        // The app's JWKS refetch cooldown is 1 s in these tests (30 s by default).
        tokio::time::sleep(Duration::from_millis(1100)).await;
        sign_in(&stack, &second, "bob").await?;
        ensure!(text_of(&second, "#display-name").await? == "Bob Builder");
        Ok(())
    })
    .await;
    first.close().await.ok();
    second.close().await.ok();
}

#[sqlx::test]
async fn a_deep_link_returns_to_its_page_after_sign_in(pool: PgPool) {
    let stack = Stack::start(pool).await.expect("stack");
    let browser = stack.driver.browser().await.expect("browser");
    scenario("deep_link", &browser, || async {
        browser.goto(&stack.url("/admin")).await?;
        log_in_at_provider(&browser, "alice").await?;
        // Wait for an element only the admin page has (the provider's page has an <h1> too).
        text_of(&browser, "#counts").await?;
        ensure!(text_of(&browser, "h1").await? == "Users");
        let url = browser.current_url().await?;
        ensure!(url.path() == "/admin", "landed on {url}");
        Ok(())
    })
    .await;
    browser.close().await.ok();
}

/// Without a browser: the real provider issues a refresh token (offline_access + consent),
/// and sign-out revokes it there.
#[sqlx::test]
async fn a_refresh_token_is_issued_and_revoked_at_sign_out(pool: PgPool) {
    let stack = Stack::start(pool).await.expect("stack");
    let http = reqwest::Client::builder().cookie_store(true).build().expect("client");
    // Sign-in: app → provider login page → POST the username → redirects back to the app.
    let login_page = http.get(stack.url("/sign-in")).send().await.expect("sign-in");
    let action = form_action(&login_page.text().await.expect("html")).expect("login form");
    let home = http
        .post(format!("{}{action}", stack.provider.base))
        .form(&[("username", "alice")])
        .send()
        .await
        .expect("login");
    let html = home.text().await.expect("home");
    assert!(html.contains("Alice Liddell"), "signed in: {html}");
    let sealed: String = sqlx::query_scalar("select refresh_token from sessions where refresh_token is not null")
        .fetch_one(&stack.pool)
        .await
        .expect("a refresh token was issued (offline_access with prompt=consent)");
    // Stored sealed (TOK-04); the provider's own introspection says whether it is live.
    let refresh_token = logto_signin::session::sealed::TokenCipher::new(SESSION_SECRET.as_bytes())
        .open("refresh_token", &sealed)
        .expect("sealed with the app's secret");
    assert!(!sealed.contains(&refresh_token), "not stored in the clear");
    assert!(introspect(&stack, &refresh_token).await, "active before sign-out");

    let csrf = html.split("name=\"csrf_token\" value=\"").nth(1).and_then(|s| s.split('"').next()).expect("csrf");
    let end_session = http.post(stack.url("/sign-out")).form(&[("csrf_token", csrf)]).send().await.expect("sign-out");
    assert!(end_session.url().as_str().starts_with(&stack.provider.base), "sent to the provider's end-session");
    assert!(!introspect(&stack, &refresh_token).await, "revoked at the provider");
}

fn form_action(html: &str) -> Option<String> {
    let start = html.find("action=\"")? + "action=\"".len();
    html[start..].split('"').next().map(str::to_owned)
}

/// RFC 7662 introspection at the provider, authenticated as the client.
async fn introspect(stack: &Stack, token: &str) -> bool {
    let response: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/oidc/token/introspection", stack.provider.base))
        .basic_auth(
            url::form_urlencoded::byte_serialize(CLIENT_ID.as_bytes()).collect::<String>(),
            Some(url::form_urlencoded::byte_serialize(CLIENT_SECRET.as_bytes()).collect::<String>()),
        )
        .form(&[("token", token), ("token_type_hint", "refresh_token")])
        .send()
        .await
        .expect("introspection")
        .json()
        .await
        .expect("json");
    response["active"] == true
}
