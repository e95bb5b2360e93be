//! The authorization response: state, iss, replay, errors, and where the user lands.

use sqlx::PgPool;

use crate::helpers::*;

async fn assert_refused(app: &TestApp, response: reqwest::Response) -> String {
    assert_eq!(response.status(), 400);
    let body = response.text().await.expect("body");
    assert_eq!(app.op.counters().token, 0, "no token request after a bad authorization response");
    assert_eq!(app.me_status().await, 401);
    body
}

#[sqlx::test]
async fn a_wrong_state_is_refused(pool: PgPool) {
    let app = spawn_app(pool).await;
    let url = app.begin_sign_in("/sign-in").await;
    let code = app.op.authorize(&url, &TestUser::alice());
    let iss = app.op.issuer.clone();
    let response = app.callback(&[("code", &code), ("state", "forged-state"), ("iss", &iss)]).await;
    assert_refused(&app, response).await;
}

#[sqlx::test]
async fn a_missing_state_is_refused(pool: PgPool) {
    let app = spawn_app(pool).await;
    let url = app.begin_sign_in("/sign-in").await;
    let code = app.op.authorize(&url, &TestUser::alice());
    let iss = app.op.issuer.clone();
    let response = app.callback(&[("code", &code), ("iss", &iss)]).await;
    assert_refused(&app, response).await;
}

#[sqlx::test]
async fn a_replayed_callback_is_refused(pool: PgPool) {
    let app = spawn_app(pool).await;
    let url = app.begin_sign_in("/sign-in").await;
    let state = query_param(&url, "state").expect("state");
    let code = app.op.authorize(&url, &TestUser::alice());
    let iss = app.op.issuer.clone();
    let query = [("code", code.as_str()), ("state", state.as_str()), ("iss", iss.as_str())];
    assert_eq!(app.callback(&query).await.status(), 303);
    let tokens_before = app.op.counters().token;
    let response = app.callback(&query).await;
    assert_eq!(response.status(), 400);
    assert_eq!(app.op.counters().token, tokens_before, "the replay never reached the token endpoint");
}

#[sqlx::test]
async fn a_callback_without_a_pending_sign_in_is_refused(pool: PgPool) {
    let app = spawn_app(pool).await;
    let iss = app.op.issuer.clone();
    let response = app.callback(&[("code", "unsolicited"), ("state", "whatever"), ("iss", &iss)]).await;
    assert_refused(&app, response).await;
}

#[sqlx::test]
async fn a_state_from_another_browser_is_refused_and_stays_usable_by_its_owner(pool: PgPool) {
    let app = spawn_app(pool).await;
    // The attacker starts a sign-in in their browser and makes the victim's browser return it.
    let victim = spawn_app_with(app.pool.clone(), app.op.clone(), &[]).await;
    let url = app.begin_sign_in("/sign-in").await;
    victim.begin_sign_in("/sign-in").await; // the victim has a binding of their own
    let code = app.op.authorize(&url, &TestUser::alice());
    let state = query_param(&url, "state").expect("state");
    let iss = app.op.issuer.clone();
    let response = victim.callback(&[("code", &code), ("state", &state), ("iss", &iss)]).await;
    assert_eq!(response.status(), 400, "login CSRF refused");
    assert_eq!(victim.me_status().await, 401);
    // The pending sign-in was not consumed by the foreign attempt.
    let response = app.callback(&[("code", &code), ("state", &state), ("iss", &iss)]).await;
    assert_eq!(response.status(), 303);
}

#[sqlx::test]
async fn a_wrong_iss_parameter_is_refused_before_the_token_request(pool: PgPool) {
    let app = spawn_app(pool).await;
    let url = app.begin_sign_in("/sign-in").await;
    let code = app.op.authorize(&url, &TestUser::alice());
    let state = query_param(&url, "state").expect("state");
    let response = app.callback(&[("code", &code), ("state", &state), ("iss", "https://evil.example/oidc")]).await;
    assert_refused(&app, response).await;
}

#[sqlx::test]
async fn a_missing_iss_parameter_is_refused(pool: PgPool) {
    let app = spawn_app(pool).await;
    let url = app.begin_sign_in("/sign-in").await;
    let code = app.op.authorize(&url, &TestUser::alice());
    let state = query_param(&url, "state").expect("state");
    let response = app.callback(&[("code", &code), ("state", &state)]).await;
    assert_refused(&app, response).await;
}

/// DISC-03: a provider that does not promise `iss` in authorization responses (RFC 9207) is
/// not used at all: not ready, and sign-in is a 503 without a redirect to it.
#[sqlx::test]
async fn a_provider_that_does_not_advertise_the_iss_parameter_is_not_used(pool: PgPool) {
    let op = FakeOp::start().await;
    op.set(|b| b.iss_parameter_supported = false);
    let app = spawn_app_unready(pool, op, &[]).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.get("/readyz").await.status(), 503);
    assert_eq!(app.get("/sign-in").await.status(), 503);
    app.op.set(|b| b.iss_parameter_supported = true);
    app.wait_ready().await;
    assert_eq!(app.get("/sign-in").await.status(), 303);
}

#[sqlx::test]
async fn repeated_parameters_are_refused(pool: PgPool) {
    let app = spawn_app(pool).await;
    let url = app.begin_sign_in("/sign-in").await;
    let code = app.op.authorize(&url, &TestUser::alice());
    let state = query_param(&url, "state").expect("state");
    let iss = app.op.issuer.clone();
    let response = app.callback(&[("code", &code), ("state", &state), ("state", &state), ("iss", &iss)]).await;
    assert_refused(&app, response).await;
}

#[sqlx::test]
async fn a_provider_error_shows_a_fixed_message_and_reflects_nothing(pool: PgPool) {
    let app = spawn_app(pool).await;
    let url = app.begin_sign_in("/sign-in").await;
    let state = query_param(&url, "state").expect("state");
    let iss = app.op.issuer.clone();
    let response = app
        .callback(&[
            ("error", "access_denied"),
            ("error_description", "<script>alert('xss')</script>"),
            ("state", &state),
            ("iss", &iss),
        ])
        .await;
    let body = assert_refused(&app, response).await;
    assert!(body.contains("Sign-in was cancelled"), "{body}");
    assert!(!body.contains("alert("), "provider text is never shown");
}

#[sqlx::test]
async fn open_redirects_in_return_to_land_on_the_home_page(pool: PgPool) {
    let app = spawn_app(pool).await;
    for target in [
        "https://evil.example",
        "//evil.example",
        "/\\evil.example",
        "/%2F%2Fevil.example",
        "/%5Cevil.example",
        "%2F%2Fevil.example",
        "/\t/evil.example",
        "https:evil.example",
        "javascript:alert(1)",
    ] {
        let encoded: String = url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
        let url = app.begin_sign_in(&format!("/sign-in?return_to={encoded}")).await;
        let response = app.return_from_provider(&url, &TestUser::alice()).await;
        assert_eq!(location(&response), "/", "return_to={target:?}");
    }
    // A local path is kept.
    let url = app.begin_sign_in("/sign-in?return_to=%2Fapi%2Fme%3Fx%3D1").await;
    let response = app.return_from_provider(&url, &TestUser::alice()).await;
    assert_eq!(location(&response), "/api/me?x=1");
}

#[sqlx::test]
async fn a_pending_sign_in_expires_after_ten_minutes(pool: PgPool) {
    let app = spawn_app(pool).await;
    let url = app.begin_sign_in("/sign-in").await;
    sqlx::query("update pending_logins set expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .expect("age the pending sign-in");
    let response = app.return_from_provider(&url, &TestUser::alice()).await;
    assert_refused(&app, response).await;
    let ttl: f64 = {
        app.begin_sign_in("/sign-in").await;
        sqlx::query_scalar("select extract(epoch from max(expires_at - created_at))::float8 from pending_logins")
            .fetch_one(&app.pool)
            .await
            .expect("ttl")
    };
    assert!((ttl - 600.0).abs() < 1.0, "pending sign-ins live 10 minutes, not {ttl}");
}

#[sqlx::test]
async fn an_injected_code_fails_with_the_victims_verifier(pool: PgPool) {
    // The attacker gets a code for their own account and plants it in the victim's callback.
    let app = spawn_app(pool).await;
    let attacker = spawn_app_with(app.pool.clone(), app.op.clone(), &[]).await;
    let attacker_url = attacker.begin_sign_in("/sign-in").await;
    let attackers_code = app.op.authorize(&attacker_url, &TestUser::named("mallory00001", "Mallory"));
    let victim_url = app.begin_sign_in("/sign-in").await;
    let state = query_param(&victim_url, "state").expect("state");
    let iss = app.op.issuer.clone();
    let response = app.callback(&[("code", &attackers_code), ("state", &state), ("iss", &iss)]).await;
    assert_eq!(response.status(), 400, "the PKCE verifier of the victim's sign-in does not fit the code");
    assert_eq!(app.me_status().await, 401);
    assert_eq!(app.count("select count(*) from users").await, 0);
}

#[sqlx::test]
async fn spoofed_host_headers_do_not_change_the_redirect_uri(pool: PgPool) {
    let app = spawn_app(pool).await;
    let response = app
        .client
        .get(app.url("/sign-in"))
        .header("host", "evil.example")
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .expect("sign-in");
    assert_eq!(response.status(), 303);
    let url = location(&response);
    assert_eq!(query_param(&url, "redirect_uri").as_deref(), Some("http://localhost:3000/callback"));
}

#[sqlx::test]
async fn the_return_from_logto_sign_out_with_any_state_is_a_plain_home_page(pool: PgPool) {
    let app = spawn_app(pool).await;
    for path in ["/?state=forged-state", "/?state=", "/?state=%3Cscript%3E", "/"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        let html = response.text().await.expect("html");
        assert!(html.contains("Sign in") && !html.contains("<script>"), "{path}");
    }
}
