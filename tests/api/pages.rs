//! Pages, headers, escaping and health endpoints.

use sqlx::PgPool;

use crate::helpers::*;

#[sqlx::test]
async fn the_anonymous_home_page_offers_both_sign_in_buttons(pool: PgPool) {
    let app = spawn_app(pool).await;
    let response = app.get("/").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("set-cookie").is_none(), "no session for an anonymous visit");
    let html = response.text().await.expect("html");
    assert!(html.contains("Hello Logto"));
    assert!(html.contains("href=\"/sign-in\""));
    assert!(html.contains("href=\"/sign-in/huggingface\"") && html.contains("Continue with Hugging Face"));
}

#[sqlx::test]
async fn the_signed_in_home_page_shows_the_user_and_never_the_tokens(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.signed_in(&TestUser::alice()).await;
    let html = app.get("/").await.text().await.expect("html");
    assert!(html.contains("Alice Example"));
    assert!(html.contains("alice@example.com"));
    assert!(html.contains("https://avatars.example.com/alice.png"));
    assert!(html.contains("Sign out"));
    let (id_token, access_token, refresh_token, state): (String, String, String, String) =
        sqlx::query_as("select id_token, access_token, refresh_token, state::text from sessions")
            .fetch_one(&app.pool)
            .await
            .expect("tokens are stored server-side");
    for (name, stored) in [("id_token", &id_token), ("access_token", &access_token), ("refresh_token", &refresh_token)]
    {
        // TOK-04: sealed at rest; the column holds no usable token.
        assert!(stored.starts_with("v1."), "{name} is sealed: {stored}");
        let value = open_token(name, stored);
        assert!(!stored.contains(value.as_str()), "{name} is not stored in the clear");
        assert!(!html.contains(value.as_str()), "{name} leaked into the page");
        assert!(!app.cookie().expect("cookie").contains(value.as_str()), "{name} leaked into the cookie");
        assert!(!state.contains(value.as_str()), "{name} is kept in its column, not in the session state");
    }
}

#[sqlx::test]
async fn hostile_profile_claims_render_escaped(pool: PgPool) {
    let app = spawn_app(pool).await;
    let mut user = TestUser::alice();
    user.claims.insert("name".into(), serde_json::json!("<script>alert(1)</script>"));
    user.claims.insert("username".into(), serde_json::json!("\"><img src=x onerror=alert(2)>"));
    user.claims.insert("picture".into(), serde_json::json!("javascript:alert(3)"));
    app.signed_in(&user).await;
    let html = app.get("/").await.text().await.expect("html");
    assert!(!html.contains("<script>alert(1)</script>"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!html.contains("<img src=x"));
    assert!(!html.contains("javascript:"), "non-https avatars are not rendered");
}

#[sqlx::test]
async fn every_response_carries_the_security_headers(pool: PgPool) {
    let app = spawn_app(pool).await;
    for path in ["/", "/healthz", "/api/me", "/nope", "/static/css/app.css"] {
        let response = app.get(path).await;
        let h = response.headers();
        assert_eq!(h.get("x-content-type-options").map(|v| v.to_str().unwrap_or_default()), Some("nosniff"), "{path}");
        let csp = h.get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(h.get("referrer-policy").is_some(), "{path}");
    }
    app.signed_in(&TestUser::alice()).await;
    let response = app.get("/").await;
    assert_eq!(response.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    let url = app.begin_sign_in("/sign-in").await;
    let response = app.return_from_provider(&url, &TestUser::alice()).await;
    assert_eq!(response.headers().get("referrer-policy").and_then(|v| v.to_str().ok()), Some("no-referrer"));
}

#[sqlx::test]
async fn api_me_is_401_json_when_signed_out(pool: PgPool) {
    let app = spawn_app(pool).await;
    let response = app.get("/api/me").await;
    assert_eq!(response.status(), 401);
    assert!(response.headers().get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|c| c.contains("json")));
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"], "not_authenticated");
}

#[sqlx::test]
async fn unknown_pages_are_a_404_page_with_a_request_id(pool: PgPool) {
    let app = spawn_app(pool).await;
    let response = app.get("/no/such/page").await;
    assert_eq!(response.status(), 404);
    let html = response.text().await.expect("html");
    assert!(html.contains("Page not found"));
    assert!(html.contains("request-id"));
}

#[sqlx::test]
async fn health_and_readiness(pool: PgPool) {
    let app = spawn_app(pool).await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    let ready: serde_json::Value = app.get("/readyz").await.json().await.expect("json");
    assert_eq!(ready["database"], "ok");
    assert_eq!(ready["provider"], "ok");
}

/// Lifecycle issue, item 15: load balancers probe with HEAD.
#[sqlx::test]
async fn health_checks_answer_head_too(pool: PgPool) {
    let app = spawn_app(pool).await;
    for path in ["/healthz", "/readyz"] {
        let response = app.client.head(app.url(path)).send().await.expect("head");
        assert_eq!(response.status(), 200, "HEAD {path}");
    }
}

/// Lifecycle issue, item 16: the binary started from any folder serves its pages and styles
/// (templates and static files are part of the binary, not read from the working directory).
#[sqlx::test]
async fn the_binary_serves_its_pages_from_any_working_directory(pool: PgPool) {
    let op = crate::fake_op::FakeOp::start().await;
    let database_url = database_url(&pool);
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let elsewhere = std::env::temp_dir().join(format!("logto-signin-cwd-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&elsewhere).expect("folder");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_logto-signin"))
        .current_dir(&elsewhere)
        .env_clear()
        .env("LOGTO_ENDPOINT", &op.base)
        .env("LOGTO_APP_ID", CLIENT_ID)
        .env("LOGTO_APP_SECRET", CLIENT_SECRET)
        .env("DATABASE_URL", &database_url)
        .env("SESSION_SECRET", SESSION_SECRET)
        .env("PORT", port.to_string())
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status() == 200) {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "the binary became ready");
    let home = client.get(format!("{base}/")).send().await.expect("home");
    assert_eq!(home.status(), 200);
    assert!(home.text().await.expect("html").contains("id=\"sign-in\""), "the home page rendered");
    let css = client.get(format!("{base}/static/css/app.css")).send().await.expect("css");
    assert_eq!(css.status(), 200);
    assert!(css.headers()["content-type"].to_str().expect("type").starts_with("text/css"));
    assert_eq!(client.get(format!("{base}/static/nothing.css")).send().await.expect("404").status(), 404);
    child.kill().await.ok();
}
