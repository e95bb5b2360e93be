//! The happy path and the shape of the requests the app sends.

use actix_web::cookie::{Cookie, CookieJar, Key};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::helpers::*;

#[sqlx::test]
async fn sign_in_shows_the_profile_persists_it_and_sign_out_ends_everything(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    assert_eq!(app.me_status().await, 401);

    let response = app.sign_in_as(&TestUser::alice()).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/");

    // /api/me answers with the profile.
    let me: serde_json::Value = app.get("/api/me").await.json().await.expect("json");
    assert_eq!(me["sub"], "alice0000001");
    assert_eq!(me["name"], "Alice Example");
    assert_eq!(me["username"], "alice");
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["email_verified"], true);
    assert_eq!(me["picture"], "https://avatars.example.com/alice.png");
    assert_eq!(me["roles"], serde_json::json!(["admin"]));

    // The user row and one session row exist, and the row holds no usable cookie.
    let (issuer, sign_ins): (String, i64) =
        sqlx::query_as("select issuer, sign_in_count from users where subject = 'alice0000001'")
            .fetch_one(&pool)
            .await
            .expect("user row");
    assert_eq!(issuer, app.op.issuer);
    assert_eq!(sign_ins, 1);
    assert_eq!(app.count("select count(*) from sessions where user_id is not null").await, 1);
    let cookie = app.cookie().expect("session cookie");
    let session_key = decrypt_session_key(&cookie);
    assert_eq!(session_key.len(), 64, "a 64-character random session key");
    let (key_hash, state, sid): (Vec<u8>, String, Option<String>) =
        sqlx::query_as("select key_hash, state::text, logto_sid from sessions where user_id is not null")
            .fetch_one(&pool)
            .await
            .expect("session row");
    assert_eq!(key_hash, Sha256::digest(session_key.as_bytes()).to_vec());
    assert!(!state.contains(&session_key), "the raw session key is not stored");
    assert_eq!(sid.as_deref(), Some("sid-alice-1"));

    // A second app instance on the same database and secret accepts the cookie.
    let second = spawn_app_with(pool.clone(), app.op.clone(), &[]).await;
    second.set_cookie(Some(cookie.clone()));
    assert_eq!(second.me_status().await, 200);

    // Sign-out: CSRF token from the page, then the row is gone and Logto's end-session follows.
    let csrf = csrf_token_from_home(&app).await.expect("csrf");
    let response = app.post_form("/sign-out", &[("csrf_token", &csrf)]).await;
    assert_eq!(response.status(), 303);
    // SES-05: the browser drops cached pages of this origin and the cookie.
    let clear = response.headers().get("clear-site-data").and_then(|v| v.to_str().ok());
    assert_eq!(clear, Some("\"cache\""));
    let removal = response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(logto_signin::startup::SESSION_COOKIE))
        .expect("the session cookie is removed");
    assert!(removal.contains("Max-Age=0") || removal.contains("1970"), "{removal}");
    let end_session = location(&response);
    assert!(end_session.starts_with(&format!("{}/oidc/session/end?", app.op.base)), "{end_session}");
    assert!(query_param(&end_session, "id_token_hint").is_some_and(|t| t.split('.').count() == 3));
    assert_eq!(query_param(&end_session, "client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(query_param(&end_session, "post_logout_redirect_uri").as_deref(), Some("http://localhost:3000/"));
    assert!(query_param(&end_session, "state").is_some_and(|s| s.len() >= 16));
    assert_eq!(app.count("select count(*) from sessions where user_id is not null").await, 0);
    assert_eq!(app.me_status().await, 401);
    second.set_cookie(Some(cookie));
    assert_eq!(second.me_status_soon(401).await, 401, "the old cookie is dead on every instance");
}

/// The cookie's content is encrypted with a key derived from SESSION_SECRET; open it.
pub fn decrypt_session_key(cookie: &str) -> String {
    let key = Key::derive_from(SESSION_SECRET.as_bytes());
    let mut jar = CookieJar::new();
    let name = logto_signin::startup::SESSION_COOKIE;
    jar.add_original(Cookie::parse_encoded(format!("{name}={cookie}")).expect("cookie").into_owned());
    jar.private(&key)
        .get(logto_signin::startup::SESSION_COOKIE)
        .expect("cookie decrypts with the session secret")
        .value()
        .to_owned()
}

pub async fn csrf_token_from_home(app: &TestApp) -> Option<String> {
    let html = app.get("/").await.text().await.expect("home");
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker)? + marker.len();
    html[start..].split('"').next().map(str::to_owned)
}

#[sqlx::test]
async fn the_authorization_request_is_code_flow_with_pkce_and_fresh_secrets(pool: PgPool) {
    let app = spawn_app(pool).await;
    let first = app.begin_sign_in("/sign-in").await;
    let second = app.begin_sign_in("/sign-in").await;
    let q = |name| query_param(&first, name).unwrap_or_default();
    assert!(first.starts_with(&format!("{}/oidc/auth?", app.op.base)));
    assert_eq!(q("response_type"), "code");
    assert_eq!(q("client_id"), CLIENT_ID);
    assert_eq!(q("redirect_uri"), "http://localhost:3000/callback");
    assert_eq!(q("scope"), "openid profile email offline_access roles identities");
    assert_eq!(q("prompt"), "consent", "offline_access needs prompt=consent at Logto");
    assert_eq!(q("code_challenge_method"), "S256");
    assert_eq!(q("code_challenge").len(), 43);
    assert!(q("state").len() >= 43, "256-bit state");
    assert!(q("nonce").len() >= 43, "256-bit nonce");
    assert_eq!(query_param(&first, "direct_sign_in"), None);
    for name in ["state", "nonce", "code_challenge"] {
        assert_ne!(query_param(&first, name), query_param(&second, name), "{name} is fresh per attempt");
    }
    // Both attempts are pending for this browser (two tabs).
    assert_eq!(app.count("select count(*) from pending_logins").await, 2);
}

#[sqlx::test]
async fn two_tabs_can_sign_in_at_once(pool: PgPool) {
    let app = spawn_app(pool).await;
    let tab_one = app.begin_sign_in("/sign-in?return_to=/one").await;
    let tab_two = app.begin_sign_in("/sign-in?return_to=/two").await;
    let response = app.return_from_provider(&tab_two, &TestUser::alice()).await;
    assert_eq!(location(&response), "/two");
    // The first tab's sign-in was started from the same browser and finishes too.
    let response = app.return_from_provider(&tab_one, &TestUser::alice()).await;
    assert_eq!(location(&response), "/one");
    assert_eq!(app.me_status().await, 200);
    assert_eq!(app.count("select count(*) from sessions").await, 1, "one browser, one session");
}

#[sqlx::test]
async fn without_offline_access_no_consent_prompt_is_sent(pool: PgPool) {
    let op = FakeOp::start().await;
    let app = spawn_app_with(pool, op, &[("LOGTO_SCOPES", "openid profile email")]).await;
    let url = app.begin_sign_in("/sign-in").await;
    assert_eq!(query_param(&url, "scope").as_deref(), Some("openid profile email"));
    assert_eq!(query_param(&url, "prompt"), None);
}

#[sqlx::test]
async fn hugging_face_button_goes_straight_to_the_connector(pool: PgPool) {
    let app = spawn_app(pool).await;
    let url = app.begin_sign_in("/sign-in/huggingface?return_to=/account").await;
    assert_eq!(query_param(&url, "direct_sign_in").as_deref(), Some("social:huggingface"));
    let response = app.return_from_provider(&url, &TestUser::hugging_face_user()).await;
    assert_eq!(location(&response), "/account");
    let html = app.get("/").await.text().await.expect("home");
    assert!(html.contains("hugo-hf"), "the Hugging Face username is shown");
    assert!(html.contains("https://cdn-avatars.huggingface.co/hugo.png"));
    let me: serde_json::Value = app.get("/api/me").await.json().await.expect("json");
    assert_eq!(me["identities"]["huggingface"]["userId"], "hf-42");
    assert_eq!(me["name"], "Hugo Face");
    assert_eq!(me["username"], serde_json::Value::Null);
}

#[sqlx::test]
async fn token_request_uses_client_secret_basic_the_verifier_and_the_same_redirect_uri(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.signed_in(&TestUser::alice()).await;
    let counters = app.op.counters();
    // The fake provider accepted the urlencoded Basic credentials of a secret with `:%+/=`.
    assert!(counters.last_token_auth.as_deref().is_some_and(|a| a.starts_with("Basic ")));
    let form = &counters.last_token_form;
    assert_eq!(form.get("grant_type").map(String::as_str), Some("authorization_code"));
    assert_eq!(form.get("redirect_uri").map(String::as_str), Some("http://localhost:3000/callback"));
    assert!(form.get("code_verifier").is_some_and(|v| v.len() == 43));
    assert!(!form.contains_key("client_secret"), "the secret is never in the body");
    // Userinfo got the access token in the Authorization header only.
    assert!(counters.userinfo_auth.iter().all(|a| a.starts_with("Bearer ")));
}

#[sqlx::test]
async fn a_second_sign_in_updates_the_same_user(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.signed_in(&TestUser::alice()).await;
    let mut renamed = TestUser::alice();
    renamed.claims.insert("name".into(), serde_json::json!("Alice Renamed"));
    renamed.claims.insert("email".into(), serde_json::json!("bob@example.com"));
    app.signed_in(&renamed).await;
    let (count, name, sign_ins): (i64, String, i64) =
        sqlx::query_as("select count(*) over (), name, sign_in_count from users").fetch_one(&pool).await.expect("row");
    assert_eq!((count, name.as_str(), sign_ins), (1, "Alice Renamed", 2));
    // The returning sign-in's write came with its session (one statement): one event per
    // sign-in, and the user's activity columns cover the new session.
    assert_eq!(app.count("select count(*) from sign_in_events").await, 2);
    let covered: bool = sqlx::query_scalar(
        "select bool_and(u.sessions_expire_at >= s.expires_at and u.last_activity_at >= s.last_seen_at)
           from sessions s join users u using (user_id)",
    )
    .fetch_one(&pool)
    .await
    .expect("activity");
    assert!(covered);
    // Another subject with the same email is another user (never linked by email).
    let mut bob = TestUser::named("bob000000001", "Bob");
    bob.claims.insert("email".into(), serde_json::json!("bob@example.com"));
    app.signed_in(&bob).await;
    assert_eq!(app.count("select count(*) from users").await, 2);
}

/// A returning user's profile is written by the new session's insert; when that write fails
/// the sign-in is a 503 page (never a 500, never a 303 that hides the failure), and nothing of
/// it is stored: not the profile, not the sign-in count or event, not the session.
#[sqlx::test]
async fn a_failed_profile_write_on_a_returning_sign_in_is_a_503(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.signed_in(&TestUser::alice()).await;
    sqlx::raw_sql(
        "create function refuse_boom() returns trigger language plpgsql as $$
         begin if new.name = 'Boom' then raise exception 'refused for the test'; end if; return new; end $$;
         create trigger refuse_boom before update on users for each row execute function refuse_boom();",
    )
    .execute(&pool)
    .await
    .expect("test trigger");
    let mut renamed = TestUser::alice();
    renamed.claims.insert("name".into(), serde_json::json!("Boom"));
    let response = app.sign_in_as(&renamed).await;
    assert_eq!(response.status(), 503);
    let (name, sign_ins): (String, i64) =
        sqlx::query_as("select name, sign_in_count from users").fetch_one(&pool).await.expect("row");
    assert_eq!((name.as_str(), sign_ins), ("Alice Example", 1));
    assert_eq!(app.count("select count(*) from sign_in_events").await, 1);
    assert_eq!(app.count("select count(*) from sessions where user_id is not null").await, 1, "only the first");
}

/// The session insert passes the user id the callback looked up; if (issuer, subject) belongs
/// to another id by then (the user was deleted and signed up again in between), the statement
/// fails and writes nothing, rather than create a session for an id that is gone.
#[sqlx::test]
async fn a_sign_in_write_for_a_user_id_that_changed_fails_and_writes_nothing(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.signed_in(&TestUser::alice()).await;
    let (issuer, subject): (String, String) =
        sqlx::query_as("select issuer, subject from users").fetch_one(&pool).await.expect("row");
    let refused = sqlx::query("select users_sign_in($1, $2, '{\"name\": \"Changed\"}', gen_random_uuid())")
        .bind(&issuer)
        .bind(&subject)
        .execute(&pool)
        .await;
    assert!(refused.is_err(), "another user id than expected must fail the statement");
    let (name, sign_ins): (String, i64) =
        sqlx::query_as("select name, sign_in_count from users").fetch_one(&pool).await.expect("row");
    assert_eq!((name.as_str(), sign_ins), ("Alice Example", 1));
    assert_eq!(app.count("select count(*) from sign_in_events").await, 1);
}

#[sqlx::test]
async fn refresh_token_is_revoked_at_sign_out(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.signed_in(&TestUser::alice()).await;
    let csrf = csrf_token_from_home(&app).await.expect("csrf");
    app.post_form("/sign-out", &[("csrf_token", &csrf)]).await;
    assert_eq!(app.op.counters().revoked.len(), 1, "the refresh token was revoked at the provider");
}
