//! Session fixation, cookies, timeouts and CSRF on sign-out.

use std::time::Duration;

use sqlx::PgPool;

use crate::helpers::*;
use crate::sign_in::csrf_token_from_home;

#[sqlx::test]
async fn the_pre_login_cookie_stops_working_after_sign_in(pool: PgPool) {
    let app = spawn_app(pool).await;
    let url = app.begin_sign_in("/sign-in").await;
    let pre_login = app.cookie().expect("a pre-login session cookie carries the login binding");
    app.return_from_provider(&url, &TestUser::alice()).await;
    let signed_in = app.cookie().expect("cookie");
    assert_ne!(pre_login, signed_in, "a new session key at sign-in");
    assert_eq!(app.get_with_cookie("/api/me", Some(&pre_login)).await.status(), 401);
    assert_eq!(app.get_with_cookie("/api/me", Some(&signed_in)).await.status(), 200);
    assert_eq!(app.count("select count(*) from sessions").await, 1, "the pre-login row was deleted");
}

#[sqlx::test]
async fn a_tampered_or_foreign_cookie_is_anonymous(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.signed_in(&TestUser::alice()).await;
    let cookie = app.cookie().expect("cookie");
    let mut bytes = cookie.into_bytes();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).expect("ascii");
    for value in [tampered.as_str(), "garbage", "", "%00%ff", &"x".repeat(5000)] {
        let response = app.get_with_cookie("/api/me", Some(value)).await;
        assert_eq!(response.status(), 401, "{value:.40}");
    }
    let response = app.get_with_cookie("/", Some(&tampered)).await;
    assert_eq!(response.status(), 200);
}

/// The session cookie of `response` (there must be one), checked for the attributes every
/// session cookie carries: HttpOnly, SameSite=Lax, Path=/, host-only, and `Secure` with the
/// `__Host-` prefix exactly when the base URL is https.
fn checked_session_cookie(response: &reqwest::Response, https: bool, when: &str) -> String {
    let name = if https { "__Host-logto_signin_session=" } else { "logto_signin_session=" };
    let set_cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(name))
        .unwrap_or_else(|| panic!("{when}: no {name} cookie"))
        .to_owned();
    let attributes: Vec<&str> = set_cookie.split(';').skip(1).map(str::trim).collect();
    for expected in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(attributes.contains(&expected), "{when}: {expected} missing: {set_cookie}");
    }
    assert!(!attributes.iter().any(|a| a.starts_with("Domain")), "{when}: host-only: {set_cookie}");
    assert_eq!(attributes.contains(&"Secure"), https, "{when}: Secure exactly under https: {set_cookie}");
    set_cookie
}

#[sqlx::test]
async fn session_cookie_attributes(pool: PgPool) {
    let app = spawn_app(pool).await;
    let url = app.begin_sign_in("/sign-in").await;
    // The pre-login cookie was set by that redirect; ask again for a response to inspect.
    let response = app.get_with_cookie("/sign-in", None).await;
    checked_session_cookie(&response, false, "pre-login");
    let response = app.return_from_provider(&url, &TestUser::alice()).await;
    assert_eq!(response.status(), 303);
    let signed_in = checked_session_cookie(&response, false, "signed in");
    // Persistent for the absolute lifetime (the idle timeout is enforced server-side).
    assert!(signed_in.contains("Max-Age=2592000"), "{signed_in}");
    let csrf = csrf_token_from_home(&app).await.expect("csrf");
    let response = app.post_form("/sign-out", &[("csrf_token", &csrf)]).await;
    let removal = checked_session_cookie(&response, false, "signed out");
    assert!(removal.contains("Max-Age=0"), "sign-out removes the cookie: {removal}");

    let https = spawn_app_with(app.pool.clone(), app.op.clone(), &[("APP_BASE_URL", "https://app.example.com")]).await;
    let response = https.get("/sign-in").await;
    checked_session_cookie(&response, true, "https pre-login");
    assert!(response.headers().get("strict-transport-security").is_some());
    let url = location(&response);
    let pre_login = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("__Host-logto_signin_session="))
        .and_then(|v| v.split(';').next())
        .expect("cookie")
        .to_owned();
    let code = https.op.authorize(&url, &TestUser::alice());
    let state = query_param(&url, "state").expect("state");
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("code", code.as_str()), ("state", &state), ("iss", &https.op.issuer)])
        .finish();
    let response = https
        .client
        .get(https.url(&format!("/callback?{query}")))
        .header("cookie", format!("__Host-logto_signin_session={pre_login}"))
        .send()
        .await
        .expect("callback");
    assert_eq!(response.status(), 303, "{}", response.text().await.unwrap_or_default());
    checked_session_cookie(&response, true, "https signed in");
}

#[sqlx::test]
async fn idle_sessions_expire(pool: PgPool) {
    let op = FakeOp::start().await;
    let app = spawn_app_with(pool, op, &[("SESSION_IDLE_TIMEOUT", "2"), ("SESSION_MAX_LIFETIME", "60")]).await;
    app.signed_in(&TestUser::alice()).await;
    // Activity keeps it alive past the idle timeout...
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(app.me_status().await, 200);
    }
    // ...and idleness ends it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(app.me_status().await, 401);
}

#[sqlx::test]
async fn sessions_end_at_the_absolute_lifetime_despite_activity(pool: PgPool) {
    let op = FakeOp::start().await;
    let app = spawn_app_with(pool, op, &[("SESSION_IDLE_TIMEOUT", "2"), ("SESSION_MAX_LIFETIME", "3")]).await;
    app.signed_in(&TestUser::alice()).await;
    let mut statuses = vec![];
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        statuses.push(app.me_status().await);
    }
    assert_eq!(statuses[0], 200);
    assert_eq!(*statuses.last().expect("status"), 401, "{statuses:?}");
}

#[sqlx::test]
async fn read_only_requests_do_not_write_the_session_every_time(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.signed_in(&TestUser::alice()).await;
    let seen = || async {
        sqlx::query_scalar::<_, String>("select last_seen_at::text from sessions")
            .fetch_one(&app.pool)
            .await
            .expect("row")
    };
    let before = seen().await;
    for _ in 0..5 {
        assert_eq!(app.me_status().await, 200);
    }
    assert_eq!(seen().await, before, "no write within the touch interval");
    // Once the last write is a minute old, the next request extends the session.
    sqlx::query(
        "update sessions set last_seen_at = now() - interval '61 seconds', expires_at = now() + interval '1 hour'",
    )
    .execute(&app.pool)
    .await
    .expect("age");
    // The app hears of this outside change by NOTIFY (its cached copy is dropped within
    // milliseconds), so the request that extends the session may be one of the next few.
    let mut extended = false;
    for _ in 0..40 {
        assert_eq!(app.me_status().await, 200);
        extended = sqlx::query_scalar("select expires_at > now() + interval '6 days' from sessions")
            .fetch_one(&app.pool)
            .await
            .expect("row");
        if extended {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(extended, "the idle expiry was pushed to now + 7 days");
}

#[sqlx::test]
async fn sessions_survive_an_app_restart(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.signed_in(&TestUser::alice()).await;
    let cookie = app.cookie();
    let restarted = spawn_app_with(pool, app.op.clone(), &[]).await;
    restarted.set_cookie(cookie);
    assert_eq!(restarted.me_status().await, 200);
}

/// POST /sign-out with the session cookie, the CSRF token and extra request headers.
async fn post_sign_out_with(app: &TestApp, csrf: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/sign-out"))
        .header("cookie", format!("{}={}", logto_signin::startup::SESSION_COOKIE, app.cookie().expect("cookie")))
        .form(&[("csrf_token", csrf)]);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("post")
}

#[sqlx::test]
async fn sign_out_without_a_valid_csrf_token_is_refused_and_changes_nothing(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.signed_in(&TestUser::alice()).await;
    for form in [vec![("csrf_token", "wrong")], vec![("csrf_token", "")]] {
        let response = app.post_form("/sign-out", &form).await;
        assert_eq!(response.status(), 403);
        assert_eq!(app.me_status().await, 200);
    }
    let response = app.post_form("/sign-out", &[]).await;
    assert_eq!(response.status(), 400, "a form without the field is a bad request");
    assert_eq!(app.me_status().await, 200);
    // A right token from a foreign origin is refused as well.
    let csrf = csrf_token_from_home(&app).await.expect("csrf");
    let response = post_sign_out_with(&app, &csrf, &[("origin", "https://evil.example")]).await;
    assert_eq!(response.status(), 403);
    assert_eq!(app.me_status().await, 200);
    // `Origin: null` proves nothing; a cross-site Sec-Fetch-Site still refuses.
    let response = post_sign_out_with(&app, &csrf, &[("origin", "null"), ("sec-fetch-site", "cross-site")]).await;
    assert_eq!(response.status(), 403);
    assert_eq!(app.me_status().await, 200);
    assert_eq!(app.op.counters().revoked.len(), 0);
}

#[sqlx::test]
async fn a_same_origin_form_post_with_a_null_origin_signs_out(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.signed_in(&TestUser::alice()).await;
    let csrf = csrf_token_from_home(&app).await.expect("csrf");
    let response = post_sign_out_with(&app, &csrf, &[("origin", "null"), ("sec-fetch-site", "same-origin")]).await;
    assert_eq!(response.status(), 303);
    app.set_cookie(None);
    assert_eq!(app.count("select count(*) from sessions where user_id is not null").await, 0);
}

#[sqlx::test]
async fn get_sign_out_only_shows_a_confirmation(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.signed_in(&TestUser::alice()).await;
    let response = app.get("/sign-out").await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.expect("html");
    assert!(html.contains("method=\"post\"") && html.contains("csrf_token"));
    assert_eq!(app.me_status().await, 200, "a GET never signs out");
    // Anonymous: nothing to confirm.
    app.set_cookie(None);
    assert_eq!(location(&app.get("/sign-out").await), "/");
    assert_eq!(location(&app.post_form("/sign-out", &[("csrf_token", "x")]).await), "/");
}

#[sqlx::test]
async fn garbage_form_bodies_are_a_400(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.signed_in(&TestUser::alice()).await;
    let cookie = format!("{}={}", logto_signin::startup::SESSION_COOKIE, app.cookie().expect("cookie"));
    for (content_type, body) in [
        ("application/x-www-form-urlencoded", "%%%&&&=="),
        ("application/json", "{\"csrf_token\": 1}"),
        ("application/x-www-form-urlencoded", &"a=b&".repeat(10_000)),
    ] {
        let response = app
            .client
            .post(app.url("/sign-out"))
            .header("cookie", &cookie)
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .expect("post");
        let status = response.status().as_u16();
        assert_eq!(status, 400, "{content_type}");
    }
    assert_eq!(app.me_status().await, 200);
}

/// Lifecycle issue, item 15: sign-out ends the session first; reading the tokens to revoke
/// (which may fail) cannot leave the user signed in.
#[sqlx::test]
async fn sign_out_ends_the_session_even_when_its_tokens_cannot_be_read(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.signed_in(&TestUser::alice()).await;
    let cookie = app.cookie().expect("cookie");
    let csrf = crate::sign_in::csrf_token_from_home(&app).await.expect("csrf");
    sqlx::query("alter table sessions rename column refresh_token to refresh_token_away")
        .execute(&pool)
        .await
        .expect("break");
    let response = app.post_form("/sign-out", &[("csrf_token", &csrf)]).await;
    sqlx::query("alter table sessions rename column refresh_token_away to refresh_token")
        .execute(&pool)
        .await
        .expect("mend");
    assert_eq!(response.status(), 303, "signed out anyway");
    assert_eq!(app.get_with_cookie("/api/me", Some(&cookie)).await.status(), 401, "the old cookie is dead");
}
