//! ID token validation: every rule has a test that fails if the check is removed.
//! Rejection means: a 400 "Sign-in failed" page, no userinfo call, no user, no session.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;
use sqlx::PgPool;

use crate::fake_op::TestKey;
use crate::helpers::*;

async fn assert_rejected(app: &TestApp) {
    let response = app.sign_in_as(&TestUser::alice()).await;
    assert_eq!(response.status(), 400, "the sign-in must be refused");
    let body = response.text().await.expect("body");
    assert!(body.contains("Sign-in failed"), "{body}");
    assert_eq!(app.op.counters().userinfo, 0, "no userinfo call after an invalid ID token");
    assert_eq!(app.count("select count(*) from users").await, 0, "no user was stored");
    assert_eq!(app.count("select count(*) from sessions where user_id is not null").await, 0);
    assert_eq!(app.me_status().await, 401);
}

async fn assert_accepted(app: &TestApp) {
    let response = app.sign_in_as(&TestUser::alice()).await;
    assert_eq!(response.status(), 303, "{}", response.text().await.unwrap_or_default());
    assert_eq!(app.me_status().await, 200);
}

fn b64(value: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("json"))
}

#[sqlx::test]
async fn a_valid_es384_token_is_accepted(pool: PgPool) {
    let app = spawn_app(pool).await;
    assert_accepted(&app).await;
}

#[sqlx::test]
async fn corrupted_signature_is_rejected(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.op.finish(|token| {
        let (rest, sig) = token.rsplit_once('.').expect("jws");
        let mut sig = URL_SAFE_NO_PAD.decode(sig).expect("sig");
        sig[10] ^= 0x01;
        format!("{rest}.{}", URL_SAFE_NO_PAD.encode(sig))
    });
    assert_rejected(&app).await;
}

#[sqlx::test]
async fn alg_none_is_rejected(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.op.finish(|token| {
        let payload = token.split('.').nth(1).expect("payload").to_owned();
        format!("{}.{payload}.", b64(&json!({"alg": "none", "kid": "key-a"})))
    });
    assert_rejected(&app).await;
}

#[sqlx::test]
async fn hs256_keyed_with_the_public_key_is_rejected(pool: PgPool) {
    let app = spawn_app(pool).await;
    let public_pem = TestKey::es384_a().public_pem;
    app.op.set(|b| {
        b.advertised_algs = vec!["ES384".into(), "HS256".into()];
        b.sign_with = Some((Algorithm::HS256, EncodingKey::from_secret(&public_pem), Some("key-a".into())));
    });
    assert_rejected(&app).await;
}

#[sqlx::test]
async fn hs256_keyed_with_the_client_secret_is_rejected(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.op.set(|b| {
        b.advertised_algs = vec!["ES384".into(), "HS256".into()];
        b.sign_with = Some((Algorithm::HS256, EncodingKey::from_secret(CLIENT_SECRET.as_bytes()), None));
    });
    assert_rejected(&app).await;
}

#[sqlx::test]
async fn rs256_token_is_rejected_when_only_es384_is_advertised(pool: PgPool) {
    let app = spawn_app(pool).await;
    let rsa = TestKey::rs256();
    app.op.set_keys(vec![TestKey::es384_a(), rsa.clone()]);
    app.op.set(|b| b.sign_with = Some((Algorithm::RS256, rsa.encoding.clone(), Some(rsa.kid.clone()))));
    assert_rejected(&app).await;
}

#[sqlx::test]
async fn rs256_with_an_rsa_key_without_alg_is_accepted_when_advertised(pool: PgPool) {
    let op = FakeOp::start().await;
    op.set_keys(vec![TestKey::rs256()]);
    op.set(|b| b.advertised_algs = vec!["RS256".into()]);
    let app = spawn_app_with(pool, op, &[]).await;
    assert_accepted(&app).await;
}

#[sqlx::test]
async fn an_algorithm_the_key_does_not_allow_is_rejected(pool: PgPool) {
    // Signed with a P-256 key under the kid of the published P-384 key, header alg ES256:
    // advertised, but not the algorithm of the key named by `kid`.
    let app = spawn_app(pool).await;
    app.op.set(|b| {
        b.advertised_algs = vec!["ES384".into(), "ES256".into()];
        b.sign_with = Some((Algorithm::ES256, TestKey::es256().encoding, Some("key-a".into())));
    });
    assert_rejected(&app).await;
}

#[sqlx::test]
async fn wrong_issuer_is_rejected(pool: PgPool) {
    let app = spawn_app(pool).await;
    let iss = format!("{}1", app.op.issuer);
    app.op.tamper(move |_, c| {
        c.insert("iss".into(), json!(iss));
    });
    assert_rejected(&app).await;
}

#[sqlx::test]
async fn missing_issuer_is_rejected(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.op.tamper(|_, c| {
        c.remove("iss");
    });
    assert_rejected(&app).await;
}

#[sqlx::test]
async fn wrong_audience_is_rejected(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.op.tamper(|_, c| {
        c.insert("aud".into(), json!(format!("{CLIENT_ID}1")));
    });
    assert_rejected(&app).await;
}

#[sqlx::test]
async fn missing_audience_is_rejected(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.op.tamper(|_, c| {
        c.remove("aud");
    });
    assert_rejected(&app).await;
}

#[sqlx::test]
async fn an_extra_untrusted_audience_is_rejected(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.op.tamper(|_, c| {
        c.insert("aud".into(), json!([CLIENT_ID, "untrusted"]));
    });
    assert_rejected(&app).await;
}

#[sqlx::test]
async fn audience_as_a_one_element_array_is_accepted(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.op.tamper(|_, c| {
        c.insert("aud".into(), json!([CLIENT_ID]));
    });
    assert_accepted(&app).await;
}

#[sqlx::test]
async fn azp_of_another_client_is_rejected(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.op.tamper(|_, c| {
        c.insert("azp".into(), json!("another-client"));
    });
    assert_rejected(&app).await;
}

#[sqlx::test]
async fn expired_token_is_rejected(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.op.tamper(|_, c| {
        let now = jsonwebtoken::get_current_timestamp();
        c.insert("exp".into(), json!(now - 360));
    });
    assert_rejected(&app).await;
}

#[sqlx::test]
async fn missing_exp_is_rejected(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.op.tamper(|_, c| {
        c.remove("exp");
    });
    assert_rejected(&app).await;
}

#[sqlx::test]
async fn missing_iat_is_rejected(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.op.tamper(|_, c| {
        c.remove("iat");
    });
    assert_rejected(&app).await;
}

#[sqlx::test]
async fn iat_a_week_in_the_past_is_rejected(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.op.tamper(|_, c| {
        let now = jsonwebtoken::get_current_timestamp();
        c.insert("iat".into(), json!(now - 7 * 86_400));
    });
    assert_rejected(&app).await;
}

#[sqlx::test]
async fn iat_in_the_future_is_rejected(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.op.tamper(|_, c| {
        let now = jsonwebtoken::get_current_timestamp();
        c.insert("iat".into(), json!(now + 600));
    });
    assert_rejected(&app).await;
}

#[sqlx::test]
async fn nonce_mismatch_is_rejected(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.op.tamper(|_, c| {
        let nonce = c.get("nonce").and_then(|n| n.as_str()).unwrap_or_default().to_owned();
        c.insert("nonce".into(), json!(format!("{nonce}1")));
    });
    assert_rejected(&app).await;
}

#[sqlx::test]
async fn missing_nonce_is_rejected(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.op.tamper(|_, c| {
        c.remove("nonce");
    });
    assert_rejected(&app).await;
}

#[sqlx::test]
async fn missing_sub_is_rejected(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.op.tamper(|_, c| {
        c.remove("sub");
    });
    assert_rejected(&app).await;
}

#[sqlx::test]
async fn overlong_sub_is_rejected(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.op.tamper(|_, c| {
        c.insert("sub".into(), json!("s".repeat(256)));
    });
    assert_rejected(&app).await;
}

#[sqlx::test]
async fn a_logout_token_type_is_not_an_id_token(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.op.tamper(|h, _| h.typ = Some("logout+jwt".into()));
    assert_rejected(&app).await;
}

#[sqlx::test]
async fn an_access_token_type_is_not_an_id_token(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.op.tamper(|h, _| h.typ = Some("at+jwt".into()));
    assert_rejected(&app).await;
}

#[sqlx::test]
async fn a_token_with_logout_events_is_rejected(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.op.tamper(|_, c| {
        c.insert("events".into(), json!({"http://schemas.openid.net/event/backchannel-logout": {}}));
    });
    assert_rejected(&app).await;
}

#[sqlx::test]
async fn a_crit_header_is_rejected(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.op.tamper(|h, _| h.crit = Some(vec!["exp".into()]));
    assert_rejected(&app).await;
}

#[sqlx::test]
async fn keys_named_in_the_header_are_never_used(pool: PgPool) {
    // Signed with a key the provider never published, offered through `jku` and `jwk`.
    let app = spawn_app(pool).await;
    let attacker = TestKey::es384_b();
    app.op.set(|b| {
        let attacker = attacker.clone();
        b.sign_with = Some((Algorithm::ES384, attacker.encoding.clone(), Some("key-a".into())));
        b.tamper = Some(std::sync::Arc::new(move |h, _| {
            h.jku = Some("http://127.0.0.1:9/attacker-jwks".into());
            h.jwk = Some(attacker.jwk.clone());
        }));
    });
    assert_rejected(&app).await;
}

#[sqlx::test]
async fn an_unknown_kid_never_published_is_rejected_after_one_refetch(pool: PgPool) {
    let app = spawn_app(pool).await;
    let other = TestKey::es384_b();
    app.op.set(|b| b.sign_with = Some((Algorithm::ES384, other.encoding.clone(), Some("never-published".into()))));
    assert_rejected(&app).await;
    assert_eq!(app.op.counters().jwks, 1, "one fetch, no retry storm");
}

#[sqlx::test]
async fn unknown_claims_are_ignored(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.op.tamper(|_, c| {
        c.insert("ignored_claim".into(), json!({"deep": [1, 2, 3]}));
    });
    assert_accepted(&app).await;
}

#[sqlx::test]
async fn a_single_key_without_kid_is_used_when_the_header_has_no_kid(pool: PgPool) {
    let op = FakeOp::start().await;
    let mut key = TestKey::es384_a();
    key.jwk.common.key_id = None;
    op.set_keys(vec![key]);
    op.tamper(|h, _| h.kid = None);
    let app = spawn_app_with(pool, op, &[]).await;
    assert_accepted(&app).await;
}

#[sqlx::test]
async fn no_kid_with_several_keys_is_rejected(pool: PgPool) {
    let op = FakeOp::start().await;
    op.set_keys(vec![TestKey::es384_a(), TestKey::es384_b()]);
    op.tamper(|h, _| h.kid = None);
    let app = spawn_app_with(pool, op, &[]).await;
    assert_rejected(&app).await;
}

#[sqlx::test]
async fn key_rotation_is_picked_up_with_one_jwks_refetch(pool: PgPool) {
    let app = spawn_app(pool).await;
    assert_accepted(&app).await;
    assert_eq!(app.op.counters().jwks, 1);
    // A cached key is reused: no fetch per sign-in.
    assert_accepted(&app).await;
    assert_eq!(app.op.counters().jwks, 1);

    app.op.rotate_to(TestKey::es384_b());
    // The test cooldown is 1 s (30 s in production); let it pass.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_accepted(&app).await;
    assert_eq!(app.op.counters().jwks, 2, "exactly one refetch for the new kid");
}

#[sqlx::test]
async fn unknown_kids_within_the_cooldown_cause_no_refetch(pool: PgPool) {
    let op = FakeOp::start().await;
    let app = spawn_app_with(pool, op, &[("JWKS_REFETCH_COOLDOWN", "30")]).await;
    assert_accepted(&app).await;
    let other = TestKey::es384_b();
    app.op.set(|b| b.sign_with = Some((Algorithm::ES384, other.encoding.clone(), Some("random-kid".into()))));
    for _ in 0..3 {
        let response = app.sign_in_as(&TestUser::alice()).await;
        assert_eq!(response.status(), 400);
    }
    assert_eq!(app.op.counters().jwks, 1, "a flood of unknown kids does not hammer the JWKS");
}

#[sqlx::test]
async fn a_wrong_at_hash_is_rejected(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.op.set(|b| b.at_hash = Some(false));
    assert_rejected(&app).await;
}

#[sqlx::test]
async fn a_right_at_hash_is_accepted(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.op.set(|b| b.at_hash = Some(true));
    assert_accepted(&app).await;
}

/// Lifecycle issue, item 15: a token that is not valid yet (`nbf` in the future) is refused.
#[sqlx::test]
async fn a_token_not_valid_yet_is_rejected(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.op.tamper(|_, c| {
        let now = jsonwebtoken::get_current_timestamp();
        c.insert("nbf".into(), json!(now + 600));
    });
    assert_rejected(&app).await;
}
