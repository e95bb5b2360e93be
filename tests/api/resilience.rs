//! A provider or database that is down, slow or hostile: clear 4xx/503 answers, never a 500,
//! never a hang, and signed-in users keep working while Logto is away.

use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::fake_op::{TokenMode, UserinfoMode};
use crate::helpers::*;

async fn sign_in_status(app: &TestApp) -> u16 {
    app.sign_in_as(&TestUser::alice()).await.status().as_u16()
}

#[sqlx::test]
async fn the_app_starts_while_logto_is_down_and_recovers_without_a_restart(pool: PgPool) {
    let op = FakeOp::start().await;
    op.set(|b| b.discovery_up = false);
    let app = spawn_app_unready(pool, op, &[]).await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 503);
    let response = app.get("/sign-in").await;
    assert_eq!(response.status(), 503);
    let html = response.text().await.expect("html");
    assert!(html.contains("not reachable"), "{html}");

    app.op.set(|b| b.discovery_up = true);
    app.wait_ready().await;
    app.signed_in(&TestUser::alice()).await;
}

#[sqlx::test]
async fn signed_in_users_keep_working_while_logto_is_unreachable(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.signed_in(&TestUser::alice()).await;
    app.op.stop().await;
    let started = Instant::now();
    assert_eq!(app.me_status().await, 200);
    assert_eq!(app.get("/").await.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(1), "no provider call on the request path");
    // A new sign-in cannot complete: 503 within a bounded time.
    let url = app.begin_sign_in("/sign-in").await;
    let started = Instant::now();
    let response = app.return_from_provider(&url, &TestUser::alice()).await;
    assert_eq!(response.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(12));
}

#[sqlx::test]
async fn a_hanging_token_endpoint_gives_a_503_in_bounded_time(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.op.set(|b| b.token = TokenMode::Hang);
    let started = Instant::now();
    assert_eq!(sign_in_status(&app).await, 503);
    assert!(started.elapsed() < Duration::from_secs(11), "{:?}", started.elapsed());
    // Other requests were served meanwhile and still are.
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[sqlx::test]
async fn token_endpoint_failures_map_to_clear_statuses(pool: PgPool) {
    let app = spawn_app(pool).await;
    for (mode, expected) in [
        (TokenMode::Status(500), 503),
        (TokenMode::Status(502), 503),
        (TokenMode::Status(400), 400),
        (TokenMode::Html, 400),
        (TokenMode::Garbage, 400),
        (TokenMode::NoIdToken, 400),
        (TokenMode::MacTokenType, 400),
        (TokenMode::Redirect, 400),
        (TokenMode::Huge, 400),
    ] {
        app.op.set(|b| b.token = mode);
        assert_eq!(sign_in_status(&app).await, expected, "{mode:?}");
        assert_eq!(app.me_status().await, 401, "{mode:?}");
    }
    assert_eq!(app.op.counters().userinfo, 0);
}

#[sqlx::test]
async fn odd_case_token_type_and_missing_expires_in_are_accepted(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.op.set(|b| b.token = TokenMode::OddCaseTokenType);
    assert_eq!(sign_in_status(&app).await, 303);
    app.op.set(|b| b.token = TokenMode::NoExpiresIn);
    assert_eq!(sign_in_status(&app).await, 303);
}

#[sqlx::test]
async fn userinfo_failures_fail_the_sign_in(pool: PgPool) {
    let app = spawn_app(pool).await;
    for (mode, expected) in [
        (UserinfoMode::OtherSub, 400),
        (UserinfoMode::Status(401), 400),
        (UserinfoMode::Status(500), 503),
        (UserinfoMode::NotJson, 400),
        (UserinfoMode::WrongContentType, 400),
        (UserinfoMode::Hang, 503),
    ] {
        app.op.set(|b| b.userinfo = mode);
        assert_eq!(sign_in_status(&app).await, expected, "{mode:?}");
        assert_eq!(app.me_status().await, 401, "{mode:?}");
        assert_eq!(app.count("select count(*) from users").await, 0, "{mode:?}: no half-written profile");
    }
}

#[sqlx::test]
async fn a_jwks_outage_is_a_503(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.op.set(|b| b.jwks_up = false);
    assert_eq!(sign_in_status(&app).await, 503);
}

#[sqlx::test]
async fn discovery_with_a_mismatched_issuer_is_never_used(pool: PgPool) {
    let op = FakeOp::start().await;
    let wrong = format!("{}INVALID", op.issuer);
    op.set(|b| b.discovery_issuer = Some(wrong));
    let app = spawn_app_unready(pool, op, &[]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.get("/readyz").await.status(), 503);
    assert_eq!(app.get("/sign-in").await.status(), 503);
    assert_eq!(app.op.counters().token, 0);
}

#[sqlx::test]
async fn a_database_outage_is_a_503_never_a_500(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.signed_in(&TestUser::alice()).await;
    pool.close().await;
    let response = app.get("/api/me").await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"], "service_unavailable");
    assert_eq!(app.get("/").await.status(), 503);
    app.set_cookie(None);
    assert_eq!(app.get("/sign-in").await.status(), 503);
    assert_eq!(app.get("/readyz").await.status(), 503);
    assert_eq!(app.get("/healthz").await.status(), 200);
}

/// AVL-03: while the JWKS is unreachable, keys fetched within `JWKS_MAX_AGE` still verify
/// tokens with a known `kid`; once the set is older than that, verification fails closed (503).
#[sqlx::test]
async fn a_jwks_outage_keeps_known_keys_only_within_the_max_age(pool: PgPool) {
    let app = spawn_app_with(pool, FakeOp::start().await, &[("JWKS_MAX_AGE", "2")]).await;
    assert_eq!(sign_in_status(&app).await, 303, "keys fetched");
    app.op.set(|b| b.jwks_up = false);
    assert_eq!(sign_in_status(&app).await, 303, "a known kid within the max age");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(sign_in_status(&app).await, 503, "the set is too old and cannot be refreshed");
    app.op.set(|b| b.jwks_up = true);
    // A failed fetch is not retried within the refetch cooldown (1 s in tests).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(sign_in_status(&app).await, 303, "back after the outage");
}

/// The refresh path under a provider that takes the request and never answers: slow (the
/// token endpoint hangs) and black-holed (a socket on Logto's port that accepts connections
/// and never reads). `/api/access-token` is a 503 within the provider timeout, the session and
/// its refresh token stay, other users are served meanwhile, and the refresh works once the
/// slow Logto answers again.
#[sqlx::test]
async fn a_slow_or_black_holed_logto_during_refresh_is_a_bounded_503(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.signed_in(&TestUser::alice()).await;
    let someone_else = app.cookie().expect("the first user's cookie");
    app.set_cookie(None);
    let mut carol = TestUser::alice();
    carol.sub = "carol0000001".into();
    app.signed_in(&carol).await;
    let carol_cookie = app.cookie().expect("carol's cookie");

    app.op.set(|b| b.token = TokenMode::Hang);
    refresh_stalls_alone(&app, &carol_cookie, &someone_else, "slow").await;
    app.op.set(|b| b.token = TokenMode::Normal);
    assert_eq!(app.get_with_cookie("/api/access-token", Some(&carol_cookie)).await.status(), 200, "back");

    let refresh_token =
        "select refresh_token from sessions s join users u using (user_id) where u.subject = 'carol0000001'";
    let before: String = sqlx::query_scalar(refresh_token).fetch_one(&app.pool).await.expect("row");
    let port: u16 = app.op.base.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    app.op.stop().await;
    let black_hole = tokio::net::TcpSocket::new_v4().expect("socket");
    black_hole.set_reuseaddr(true).expect("reuseaddr");
    black_hole.bind(([127, 0, 0, 1], port).into()).expect("bind Logto's port");
    let _black_hole = black_hole.listen(64).expect("listen"); // never accepts
    refresh_stalls_alone(&app, &carol_cookie, &someone_else, "black-holed").await;
    let after: String = sqlx::query_scalar(refresh_token).fetch_one(&app.pool).await.expect("row");
    assert_eq!(before, after, "the refresh token survives the outage");
}

/// One `/api/access-token` refresh against a Logto that does not answer: a 503 in bounded time,
/// while another user's `/api/me` keeps answering quickly; the session stays.
async fn refresh_stalls_alone(app: &TestApp, cookie: &str, other: &str, what: &str) {
    sqlx::query("update sessions set access_token_expires_at = now() + interval '10 seconds'")
        .execute(&app.pool)
        .await
        .expect("age the access tokens");
    let started = Instant::now();
    let refresh = app.get_with_cookie("/api/access-token", Some(cookie));
    let others = async {
        let mut slowest = Duration::ZERO;
        while started.elapsed() < Duration::from_secs(2) {
            let t = Instant::now();
            assert_eq!(app.get_with_cookie("/api/me", Some(other)).await.status(), 200, "{what}");
            slowest = slowest.max(t.elapsed());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        slowest
    };
    let (response, slowest) = tokio::join!(refresh, others);
    assert_eq!(response.status(), 503, "{what}");
    assert!(response.headers().contains_key("retry-after"), "{what}: Retry-After");
    assert!(started.elapsed() < Duration::from_secs(8), "{what}: bounded: {:?}", started.elapsed());
    assert!(slowest < Duration::from_millis(500), "{what}: other users are served: {slowest:?}");
    assert_eq!(app.get_with_cookie("/api/me", Some(cookie)).await.status(), 200, "{what}: the session stays");
}
