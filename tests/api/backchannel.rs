//! Back-channel logout: every logout-token rule, session matching, replay, many instances.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};
use sqlx::PgPool;

use crate::fake_op::TestKey;
use crate::helpers::*;

async fn post_logout(app: &TestApp, body: String) -> reqwest::Response {
    app.client
        .post(app.url("/backchannel-logout"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("post")
}

fn form(token: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new()).append_pair("logout_token", token).finish()
}

async fn signed_in_alice(pool: PgPool) -> TestApp {
    let app = spawn_app(pool).await;
    app.signed_in(&TestUser::alice()).await;
    app
}

/// A logout token for alice changed by `change` must be refused with a 400 and end nothing.
async fn assert_refused(change: impl FnOnce(&mut Header, &mut Map<String, Value>), pool: PgPool) {
    let app = signed_in_alice(pool).await;
    let token = app.op.logout_token(Some("alice0000001"), Some("sid-alice-1"), change);
    let response = post_logout(&app, form(&token)).await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    let body: Value = response.json().await.expect("json error");
    assert!(body["error"].is_string());
    assert_eq!(app.me_status().await, 200, "the session survived");
}

#[sqlx::test]
async fn a_valid_logout_token_with_sid_ends_only_that_session(pool: PgPool) {
    let app = signed_in_alice(pool.clone()).await;
    // Alice in a second browser, in another Logto session.
    let other = spawn_app_with(pool, app.op.clone(), &[]).await;
    let mut alice_elsewhere = TestUser::alice();
    alice_elsewhere.sid = Some("sid-alice-2".into());
    other.signed_in(&alice_elsewhere).await;

    let token = app.op.logout_token(Some("alice0000001"), Some("sid-alice-1"), |_, _| {});
    let response = post_logout(&app, form(&token)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    assert_eq!(app.me_status().await, 401);
    assert_eq!(other.me_status().await, 200, "the other Logto session is untouched");
}

#[sqlx::test]
async fn a_logout_token_with_only_sub_ends_all_sessions_of_the_user(pool: PgPool) {
    let app = signed_in_alice(pool.clone()).await;
    let other = spawn_app_with(pool, app.op.clone(), &[]).await;
    other.signed_in(&TestUser::alice()).await;
    let bob = spawn_app_with(app.pool.clone(), app.op.clone(), &[]).await;
    bob.signed_in(&TestUser::named("bob000000001", "Bob")).await;

    let token = app.op.logout_token(Some("alice0000001"), None, |_, _| {});
    assert_eq!(post_logout(&app, form(&token)).await.status(), 200);
    assert_eq!(app.me_status().await, 401);
    assert_eq!(other.me_status_soon(401).await, 401);
    assert_eq!(bob.me_status().await, 200, "other users are untouched");
}

#[sqlx::test]
async fn an_unknown_session_still_gets_200(pool: PgPool) {
    let app = signed_in_alice(pool).await;
    let token = app.op.logout_token(Some("nobody"), Some("no-such-sid"), |_, _| {});
    assert_eq!(post_logout(&app, form(&token)).await.status(), 200);
    assert_eq!(app.me_status().await, 200);
}

#[sqlx::test]
async fn a_sid_of_another_user_ends_nothing(pool: PgPool) {
    let app = signed_in_alice(pool).await;
    let token = app.op.logout_token(Some("bob000000001"), Some("sid-alice-1"), |_, _| {});
    assert_eq!(post_logout(&app, form(&token)).await.status(), 200);
    assert_eq!(app.me_status().await, 200);
}

#[sqlx::test]
async fn a_replayed_logout_token_is_refused(pool: PgPool) {
    let app = signed_in_alice(pool).await;
    let token = app.op.logout_token(Some("alice0000001"), Some("sid-alice-1"), |_, _| {});
    assert_eq!(post_logout(&app, form(&token)).await.status(), 200);
    app.signed_in(&TestUser::alice()).await;
    assert_eq!(post_logout(&app, form(&token)).await.status(), 400);
    assert_eq!(app.me_status().await, 200, "the replay had no effect");
}

#[sqlx::test]
async fn unknown_claims_and_form_fields_are_ignored_and_cookies_are_not_needed(pool: PgPool) {
    let app = signed_in_alice(pool).await;
    let token = app.op.logout_token(Some("alice0000001"), Some("sid-alice-1"), |_, c| {
        c.insert("ignored_claim".into(), json!("x"));
    });
    let body = format!("ignored_parameter=1&{}", form(&token));
    assert_eq!(post_logout(&app, body).await.status(), 200);
    assert_eq!(app.me_status().await, 401);
}

#[sqlx::test]
async fn alg_none_is_refused(pool: PgPool) {
    let app = signed_in_alice(pool).await;
    let token = app.op.logout_token(Some("alice0000001"), Some("sid-alice-1"), |_, _| {});
    let payload = token.split('.').nth(1).expect("payload").to_owned();
    use base64::Engine;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"logout+jwt"}"#);
    let response = post_logout(&app, form(&format!("{header}.{payload}."))).await;
    assert_eq!(response.status(), 400);
    assert_eq!(app.me_status().await, 200);
}

#[sqlx::test]
async fn a_wrong_algorithm_is_refused(pool: PgPool) {
    let app = signed_in_alice(pool).await;
    let rsa = TestKey::rs256();
    app.op.set_keys(vec![TestKey::es384_a(), rsa.clone()]);
    let now = jsonwebtoken::get_current_timestamp();
    let claims = json!({"iss": app.op.issuer, "aud": CLIENT_ID, "iat": now, "exp": now + 120, "jti": "j-rsa",
        "sub": "alice0000001", "events": {"http://schemas.openid.net/event/backchannel-logout": {}}});
    let mut header = Header::new(Algorithm::RS256);
    header.typ = Some("logout+jwt".into());
    header.kid = Some(rsa.kid.clone());
    let token = jsonwebtoken::encode(&header, &claims, &rsa.encoding).expect("sign");
    assert_eq!(post_logout(&app, form(&token)).await.status(), 400, "RS256 is not advertised");
    assert_eq!(app.me_status().await, 200);
}

#[sqlx::test]
async fn hs256_keyed_with_the_client_secret_is_refused(pool: PgPool) {
    let app = signed_in_alice(pool).await;
    let now = jsonwebtoken::get_current_timestamp();
    let claims = json!({"iss": app.op.issuer, "aud": CLIENT_ID, "iat": now, "exp": now + 120, "jti": "j-hs",
        "sub": "alice0000001", "events": {"http://schemas.openid.net/event/backchannel-logout": {}}});
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("logout+jwt".into());
    let token =
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(CLIENT_SECRET.as_bytes())).expect("sign");
    assert_eq!(post_logout(&app, form(&token)).await.status(), 400);
    assert_eq!(app.me_status().await, 200);
}

#[sqlx::test]
async fn a_bad_signature_is_refused(pool: PgPool) {
    let app = signed_in_alice(pool).await;
    let token = app.op.logout_token(Some("alice0000001"), Some("sid-alice-1"), |_, _| {});
    let (rest, sig) = token.rsplit_once('.').expect("jws");
    let flipped: String = sig.chars().rev().collect();
    assert_eq!(post_logout(&app, form(&format!("{rest}.{flipped}"))).await.status(), 400);
    assert_eq!(app.me_status().await, 200);
}

#[sqlx::test]
async fn wrong_issuer_is_refused(pool: PgPool) {
    assert_refused(|_, c| drop(c.insert("iss".into(), json!("https://evil.example/oidc"))), pool).await;
}

#[sqlx::test]
async fn wrong_audience_is_refused(pool: PgPool) {
    assert_refused(|_, c| drop(c.insert("aud".into(), json!("another-client"))), pool).await;
}

#[sqlx::test]
async fn missing_events_is_refused(pool: PgPool) {
    assert_refused(|_, c| drop(c.remove("events")), pool).await;
}

#[sqlx::test]
async fn a_wrong_event_is_refused(pool: PgPool) {
    assert_refused(|_, c| drop(c.insert("events".into(), json!({"http://schemas.openid.net/event/foobar": {}}))), pool)
        .await;
}

#[sqlx::test]
async fn a_nonce_is_refused(pool: PgPool) {
    assert_refused(|_, c| drop(c.insert("nonce".into(), json!("n"))), pool).await;
}

#[sqlx::test]
async fn neither_sid_nor_sub_is_refused(pool: PgPool) {
    assert_refused(
        |_, c| {
            c.remove("sid");
            c.remove("sub");
        },
        pool,
    )
    .await;
}

#[sqlx::test]
async fn an_expired_token_is_refused(pool: PgPool) {
    assert_refused(
        |_, c| {
            let now = jsonwebtoken::get_current_timestamp();
            c.insert("iat".into(), json!(now - 600));
            c.insert("exp".into(), json!(now - 300));
        },
        pool,
    )
    .await;
}

#[sqlx::test]
async fn a_missing_exp_is_refused(pool: PgPool) {
    assert_refused(|_, c| drop(c.remove("exp")), pool).await;
}

#[sqlx::test]
async fn a_missing_iat_is_refused(pool: PgPool) {
    assert_refused(|_, c| drop(c.remove("iat")), pool).await;
}

#[sqlx::test]
async fn a_missing_jti_is_refused(pool: PgPool) {
    assert_refused(|_, c| drop(c.remove("jti")), pool).await;
}

#[sqlx::test]
async fn an_id_token_type_is_refused(pool: PgPool) {
    assert_refused(|h, _| h.typ = Some("JWT".into()), pool).await;
}

#[sqlx::test]
async fn a_missing_typ_is_refused(pool: PgPool) {
    assert_refused(|h, _| h.typ = None, pool).await;
}

#[sqlx::test]
async fn malformed_requests_are_a_400_json(pool: PgPool) {
    let app = signed_in_alice(pool).await;
    for body in ["", "logout_token=", "logout_token=a.b.c", "logout_token=x&logout_token=y", "%%%"] {
        let response = post_logout(&app, body.to_owned()).await;
        assert_eq!(response.status(), 400, "{body:?}");
        let json: Value = response.json().await.expect("json");
        assert!(json["error"].is_string());
    }
    let response = app
        .client
        .post(app.url("/backchannel-logout"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 400);
    let huge = format!("logout_token={}", "a".repeat(200_000));
    let status = post_logout(&app, huge).await.status().as_u16();
    assert!(status == 400 || status == 413, "{status}");
    assert_eq!(app.me_status().await, 200);
}

#[sqlx::test]
async fn a_database_failure_is_never_a_200(pool: PgPool) {
    let app = signed_in_alice(pool.clone()).await;
    let token = app.op.logout_token(Some("alice0000001"), Some("sid-alice-1"), |_, _| {});
    pool.close().await;
    let response = post_logout(&app, form(&token)).await;
    assert_eq!(response.status(), 400);
}

#[sqlx::test]
async fn two_instances_behave_as_one(pool: PgPool) {
    // Sign in on A, use on B, back-channel logout received by B: the cookie is anonymous on A.
    let a = spawn_app(pool.clone()).await;
    a.signed_in(&TestUser::alice()).await;
    let b = spawn_app_with(pool, a.op.clone(), &[]).await;
    b.set_cookie(a.cookie());
    assert_eq!(b.me_status().await, 200);
    let token = a.op.logout_token(Some("alice0000001"), Some("sid-alice-1"), |_, _| {});
    assert_eq!(post_logout(&b, form(&token)).await.status(), 200);
    assert_eq!(b.me_status().await, 401, "at once on the instance that received the logout");
    assert_eq!(a.me_status_soon(401).await, 401, "on the other instance through NOTIFY");
}

#[sqlx::test]
async fn the_refresh_tokens_of_ended_sessions_are_revoked(pool: PgPool) {
    let app = signed_in_alice(pool).await;
    let token = app.op.logout_token(Some("alice0000001"), None, |_, _| {});
    assert_eq!(post_logout(&app, form(&token)).await.status(), 200);
    for _ in 0..50 {
        if !app.op.counters().revoked.is_empty() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the refresh token was not revoked");
}

/// KEY-03/KEY-04 (lifecycle issue, item 4): a key the provider stopped publishing is not trusted
/// once the cached set is older than `JWKS_MAX_AGE`: a logout token signed by it is refused.
#[sqlx::test]
async fn a_key_the_provider_no_longer_publishes_is_refused_after_jwks_max_age(pool: PgPool) {
    let app = spawn_app_with(pool, crate::fake_op::FakeOp::start().await, &[("JWKS_MAX_AGE", "1")]).await;
    app.signed_in(&TestUser::alice()).await;
    // Signed by key A, which the provider then retires (only key B is published).
    let token = app.op.logout_token(Some("alice0000001"), Some("sid-alice-1"), |_, _| {});
    app.op.set_keys(vec![TestKey::es384_b()]);
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let response = post_logout(&app, form(&token)).await;
    assert_eq!(response.status(), 400, "a retired key's token is refused");
    assert_eq!(app.me_status().await, 200, "the session survived");
    // A token signed by the published key is accepted.
    let token = app.op.logout_token(Some("alice0000001"), Some("sid-alice-1"), |_, _| {});
    assert_eq!(post_logout(&app, form(&token)).await.status(), 200);
    assert_eq!(app.me_status().await, 401);
}

/// Lifecycle issue, item 3: anonymous back-channel posts with unknown `kid`s cannot use up the
/// JWKS refetch that a sign-in after a key rotation needs.
#[sqlx::test]
async fn back_channel_posts_cannot_spend_the_refetch_a_sign_in_needs(pool: PgPool) {
    let app = spawn_app_with(pool, crate::fake_op::FakeOp::start().await, &[("JWKS_REFETCH_COOLDOWN", "2")]).await;
    app.signed_in(&TestUser::alice()).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let forged =
        app.op.logout_token(Some("alice0000001"), Some("sid-alice-1"), |h, _| h.kid = Some("random-kid".into()));
    let fetches = app.op.counters().jwks;
    assert_eq!(post_logout(&app, form(&forged)).await.status(), 400);
    assert_eq!(app.op.counters().jwks, fetches + 1, "the anonymous refetch");
    let fetches = app.op.counters().jwks;
    app.op.rotate_to(TestKey::es384_b());
    let response = app.sign_in_as(&TestUser::named("bob0000000001", "Bob")).await;
    assert_eq!(response.status(), 303, "the sign-in with the new key refetched the JWKS");
    assert_eq!(app.op.counters().jwks, fetches + 1);
    // The anonymous budget is spent: another unknown kid does not fetch again.
    assert_eq!(post_logout(&app, form(&forged)).await.status(), 400);
    assert_eq!(app.op.counters().jwks, fetches + 1);
}

/// Lifecycle issue, item 15: `typ: application/logout+jwt` is the same media type as
/// `logout+jwt` (RFC 7515 §4.1.9) and is accepted; the remembered `jti` outlives the time the
/// token is accepted (its `exp` plus the leeway), so a replay just before that is still refused.
#[sqlx::test]
async fn the_full_media_type_is_accepted_and_the_jti_outlives_the_token(pool: PgPool) {
    let app = signed_in_alice(pool).await;
    let token = app.op.logout_token(Some("alice0000001"), Some("sid-alice-1"), |h, _| {
        h.typ = Some("application/logout+jwt".into());
    });
    assert_eq!(post_logout(&app, form(&token)).await.status(), 200);
    assert_eq!(app.me_status().await, 401);
    let exp =
        jsonwebtoken::dangerous::insecure_decode::<Value>(&token).expect("claims").claims["exp"].as_i64().expect("exp");
    let remembered: f64 = sqlx::query_scalar("select extract(epoch from expires_at)::float8 from logout_token_jtis")
        .fetch_one(&app.pool)
        .await
        .expect("jti");
    // Accepted while now (whole seconds) - 60 <= exp, i.e. until exp + 61 (exclusive).
    assert!(remembered >= (exp + 61) as f64, "jti remembered until {remembered}, token accepted until {}", exp + 61);
}

/// Lifecycle issue, item 2: Logto is the only sender of logout tokens and never retries, so a
/// valid one is never refused for rate. 700 valid logout tokens from one address within a minute
/// (a mass sign-out) end 700 sessions with `BACKCHANNEL_RATE_LIMIT` at its default of 600; only
/// requests that fail verification count against it.
#[sqlx::test]
async fn a_burst_of_valid_logout_tokens_is_never_refused_for_rate(pool: PgPool) {
    let app = spawn_app_with(pool, crate::fake_op::FakeOp::start().await, &[("BACKCHANNEL_RATE_LIMIT", "600")]).await;
    app.signed_in(&TestUser::alice()).await;
    sqlx::query(
        "insert into sessions (key_hash, state, session_id, user_id, logto_sid, expires_at)
         select sha256(('bulk' || i)::bytea), '{}'::jsonb, gen_random_uuid(), u.user_id, 'bulk-' || i, now() + interval '1 hour'
           from generate_series(1, 700) i, users u where u.subject = 'alice0000001'",
    )
    .execute(&app.pool)
    .await
    .expect("700 sessions");
    let tokens: Vec<String> =
        (1..=700).map(|i| app.op.logout_token(Some("alice0000001"), Some(&format!("bulk-{i}")), |_, _| {})).collect();
    for chunk in tokens.chunks(50) {
        let statuses = futures_util::future::join_all(chunk.iter().map(|t| post_logout(&app, form(t)))).await;
        for response in statuses {
            assert_eq!(response.status(), 200, "a valid logout token was refused");
        }
    }
    assert_eq!(app.count("select count(*) from sessions where logto_sid like 'bulk-%'").await, 0);
    assert_eq!(app.me_status().await, 200, "the session with another sid stays");
    // Garbage still counts: past the limit (600 a minute, refilling) it is a 429.
    let mut refused_for_rate = false;
    for _ in 0..1000 {
        if post_logout(&app, "logout_token=garbage".into()).await.status() == 429 {
            refused_for_rate = true;
            break;
        }
    }
    assert!(refused_for_rate, "invalid requests are limited");
    // And a valid token from the same address is still accepted.
    let token = app.op.logout_token(Some("alice0000001"), Some("sid-alice-1"), |_, _| {});
    assert_eq!(post_logout(&app, form(&token)).await.status(), 200);
}

/// Lifecycle issue, item 2: while the provider's metadata is not loaded yet, a logout cannot be
/// checked: 503 (a failure Logto logs), not a 400 that reads like a bad token.
#[sqlx::test]
async fn a_logout_before_discovery_is_a_503(pool: PgPool) {
    let op = crate::fake_op::FakeOp::start().await;
    op.set(|b| b.discovery_up = false);
    let app = spawn_app_unready(pool, op, &[]).await;
    let token = app.op.logout_token(Some("alice0000001"), Some("sid-alice-1"), |_, _| {});
    assert_eq!(post_logout(&app, form(&token)).await.status(), 503);
}

/// Lifecycle issue, item 2: a valid logout that Postgres could not take is not lost: the app
/// answers 400 (§2.8) and ends the sessions as soon as the database takes writes again.
#[sqlx::test]
async fn a_logout_the_database_refused_is_retried_until_it_lands(pool: PgPool) {
    let app = signed_in_alice(pool.clone()).await;
    sqlx::query("alter table logout_token_jtis rename to logout_token_jtis_away").execute(&pool).await.expect("break");
    let token = app.op.logout_token(Some("alice0000001"), Some("sid-alice-1"), |_, _| {});
    assert_eq!(post_logout(&app, form(&token)).await.status(), 400);
    assert_eq!(app.me_status().await, 200, "not ended yet");
    sqlx::query("alter table logout_token_jtis_away rename to logout_token_jtis").execute(&pool).await.expect("mend");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(6);
    while app.me_status().await == 200 {
        assert!(std::time::Instant::now() < deadline, "the queued logout never landed");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Its jti was recorded when it landed: a replay is refused.
    assert_eq!(post_logout(&app, form(&token)).await.status(), 400);
}
