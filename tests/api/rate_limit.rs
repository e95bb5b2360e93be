//! AVL-06: sign-in starts, callbacks and back-channel requests are rate limited per client, so a
//! flood cannot fill `pending_logins`/`sessions` or burn CPU on signature checks.

use reqwest::header::RETRY_AFTER;
use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::*;

async fn app_with(pool: PgPool, overrides: &[(&str, &str)]) -> TestApp {
    let op = FakeOp::start().await;
    spawn_app_with(pool, op, overrides).await
}

#[sqlx::test]
async fn sign_in_starts_beyond_the_limit_get_a_429_and_create_nothing(pool: PgPool) {
    let app = app_with(pool, &[("SIGN_IN_RATE_LIMIT", "3")]).await;
    for path in ["/sign-in", "/sign-in/huggingface", "/sign-in?return_to=/admin"] {
        assert_eq!(app.get(path).await.status(), 303, "{path} is within the limit");
    }
    assert_eq!(app.count("select count(*) from pending_logins").await, 3);
    let sessions = app.count("select count(*) from sessions").await;

    let response = app.get("/sign-in/step-up").await;
    assert_eq!(response.status(), 429);
    let retry_after: u64 =
        response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()?.parse().ok()).expect("Retry-After");
    assert!((1..=21).contains(&retry_after), "one token per 20 s: {retry_after}");
    let html = response.text().await.expect("html");
    assert!(html.contains("Too many attempts"), "{html}");
    assert_eq!(app.get("/callback?state=x&code=y").await.status(), 429, "the callback shares the budget");
    assert_eq!(app.count("select count(*) from pending_logins").await, 3, "no pending sign-in was added");
    assert_eq!(app.count("select count(*) from sessions").await, sessions, "no session was added");
    assert_eq!(app.get("/").await.status(), 200, "other pages are not limited");
}

#[sqlx::test]
async fn a_signed_in_user_is_not_affected_by_the_sign_in_limit(pool: PgPool) {
    let app = app_with(pool, &[("SIGN_IN_RATE_LIMIT", "2")]).await;
    app.signed_in(&TestUser::alice()).await; // uses both: /sign-in and /callback
    assert_eq!(app.get("/sign-in").await.status(), 429);
    for _ in 0..20 {
        assert_eq!(app.me_status().await, 200);
    }
}

#[sqlx::test]
async fn back_channel_requests_beyond_the_limit_get_a_json_429(pool: PgPool) {
    let app = app_with(pool, &[("BACKCHANNEL_RATE_LIMIT", "2")]).await;
    let post = || {
        app.client
            .post(app.url("/backchannel-logout"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("logout_token=garbage")
            .send()
    };
    assert_eq!(post().await.expect("post").status(), 400);
    assert_eq!(post().await.expect("post").status(), 400);
    let response = post().await.expect("post");
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key(RETRY_AFTER));
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "too_many_requests");
}

#[sqlx::test]
async fn behind_a_trusted_proxy_clients_are_told_apart_by_x_forwarded_for(pool: PgPool) {
    let app = app_with(pool, &[("SIGN_IN_RATE_LIMIT", "1"), ("TRUST_FORWARDED_FOR", "true")]).await;
    let from = |chain: &'static str| app.client.get(app.url("/sign-in")).header("x-forwarded-for", chain).send();
    assert_eq!(from("198.51.100.7").await.expect("get").status(), 303);
    assert_eq!(from("198.51.100.7").await.expect("get").status(), 429);
    assert_eq!(from("198.51.100.8").await.expect("get").status(), 303, "another client");
    // The proxy appends the real client; a forged first entry does not buy a new budget.
    assert_eq!(from("203.0.113.1, 198.51.100.8").await.expect("get").status(), 429);
}

#[sqlx::test]
async fn without_a_trusted_proxy_x_forwarded_for_is_ignored(pool: PgPool) {
    let app = app_with(pool, &[("SIGN_IN_RATE_LIMIT", "1")]).await;
    let from = |ip: &'static str| app.client.get(app.url("/sign-in")).header("x-forwarded-for", ip).send();
    assert_eq!(from("198.51.100.7").await.expect("get").status(), 303);
    assert_eq!(from("198.51.100.8").await.expect("get").status(), 429, "a forged header changes nothing");
}

/// Lifecycle issue, item 11: an IPv6 client is limited per /64 (one host usually has a whole
/// /64 to pick addresses from), an IPv4 client per address.
#[sqlx::test]
async fn ipv6_clients_share_a_budget_per_64(pool: PgPool) {
    let app = app_with(pool, &[("SIGN_IN_RATE_LIMIT", "1"), ("TRUST_FORWARDED_FOR", "true")]).await;
    let from = |chain: &'static str| app.client.get(app.url("/sign-in")).header("x-forwarded-for", chain).send();
    assert_eq!(from("2001:db8:1:2::1").await.expect("get").status(), 303);
    assert_eq!(from("2001:db8:1:2:ffff::9").await.expect("get").status(), 429, "the same /64");
    assert_eq!(from("2001:db8:1:3::1").await.expect("get").status(), 303, "another /64");
}

/// Lifecycle issue, item 11: behind a CDN and a load balancer (two proxies that each append the
/// address they saw), `TRUSTED_PROXY_HOPS=2` takes the client from the second entry from the
/// right: clients do not all share the CDN's bucket, and a forged first entry changes nothing.
#[sqlx::test]
async fn two_trusted_proxies_tell_clients_apart(pool: PgPool) {
    let app = app_with(pool, &[("SIGN_IN_RATE_LIMIT", "1"), ("TRUSTED_PROXY_HOPS", "2")]).await;
    let from = |chain: &'static str| app.client.get(app.url("/sign-in")).header("x-forwarded-for", chain).send();
    assert_eq!(from("198.51.100.7, 203.0.113.9").await.expect("get").status(), 303);
    assert_eq!(from("198.51.100.8, 203.0.113.9").await.expect("get").status(), 303, "another client, same CDN node");
    assert_eq!(from("10.9.9.9, 198.51.100.7, 203.0.113.10").await.expect("get").status(), 429, "a forged entry");
}
