//! Back-channel logout token validation (OpenID Connect Back-Channel Logout 1.0 §2.6).

use serde::Deserialize;
use serde_json::Value;

use super::jwt::{Audience, LEEWAY_SECS, TokenError, Typ, Verifier};

pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

#[derive(Debug, Deserialize)]
struct RawClaims {
    iss: String,
    #[serde(default)]
    aud: Audience,
    iat: u64,
    exp: u64,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    events: Option<Value>,
    #[serde(default)]
    nonce: Option<Value>,
}

/// A validated logout token: who to sign out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutRequest {
    pub iss: String,
    pub sub: Option<String>,
    pub sid: Option<String>,
    pub jti: String,
    /// Unix seconds; the `jti` is remembered until then.
    pub exp: u64,
}

/// Verifies a logout token: `typ` `logout+jwt`, signature with the provider's keys and the ID
/// token algorithm list, exact `iss`, `aud` = client id, `iat` and `exp`, the back-channel event,
/// `sid` or `sub`, a `jti`, and no `nonce`.
pub async fn validate(verifier: &Verifier<'_>, token: &str, now: u64) -> Result<LogoutRequest, TokenError> {
    let (claims, _): (RawClaims, _) =
        verifier.verify(token, Typ::Exactly("logout+jwt"), &["exp", "iss", "aud", "iat"]).await?;
    check(claims, verifier.issuer, verifier.client_id, now)
}

fn check(claims: RawClaims, issuer: &str, client_id: &str, now: u64) -> Result<LogoutRequest, TokenError> {
    if claims.iss != issuer {
        return Err(TokenError::Claim("iss"));
    }
    let audiences = claims.aud.values();
    if !audiences.contains(&client_id) || audiences.iter().any(|a| *a != client_id) {
        return Err(TokenError::Claim("aud"));
    }
    if claims.iat > now + LEEWAY_SECS {
        return Err(TokenError::Claim("iat is in the future"));
    }
    let has_event = claims
        .events
        .as_ref()
        .and_then(Value::as_object)
        .and_then(|events| events.get(BACKCHANNEL_LOGOUT_EVENT))
        .is_some_and(Value::is_object);
    if !has_event {
        return Err(TokenError::Claim("events"));
    }
    if claims.nonce.is_some() {
        return Err(TokenError::Claim("nonce must not be present"));
    }
    let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty() && s.len() <= 255);
    let sub = non_empty(claims.sub);
    let sid = non_empty(claims.sid);
    if sub.is_none() && sid.is_none() {
        return Err(TokenError::Claim("neither sid nor sub"));
    }
    let jti = non_empty(claims.jti).ok_or(TokenError::Claim("jti"))?;
    Ok(LogoutRequest { iss: claims.iss, sub, sid, jti, exp: claims.exp })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    proptest! {
        /// Any mix of present, missing and odd claims: no panic, and acceptance only when every
        /// rule holds.
        #[test]
        fn arbitrary_claims_are_judged_by_the_rules(
            sub in prop::option::of("[a-z0-9]{0,3}"),
            sid in prop::option::of("[a-z0-9]{0,3}"),
            jti in prop::option::of("[a-z0-9]{0,3}"),
            nonce in any::<bool>(),
            event in prop::option::of(prop::sample::select(vec![BACKCHANNEL_LOGOUT_EVENT, "http://schemas.openid.net/event/foobar"])),
            aud in prop::sample::select(vec!["app", "other"]),
        ) {
            let mut v = json!({"iss": "https://id.example/oidc", "aud": aud, "iat": 1000, "exp": 1120});
            let o = v.as_object_mut().expect("object");
            if let Some(s) = &sub { o.insert("sub".into(), json!(s)); }
            if let Some(s) = &sid { o.insert("sid".into(), json!(s)); }
            if let Some(j) = &jti { o.insert("jti".into(), json!(j)); }
            if nonce { o.insert("nonce".into(), json!("n")); }
            if let Some(e) = event { o.insert("events".into(), json!({e: {}})); }
            let result = check(claims(v), "https://id.example/oidc", "app", 1000);
            let present = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
            let valid = aud == "app" && !nonce && event == Some(BACKCHANNEL_LOGOUT_EVENT)
                && (present(&sub) || present(&sid)) && present(&jti);
            prop_assert_eq!(result.is_ok(), valid);
        }
    }

    fn claims(v: Value) -> RawClaims {
        serde_json::from_value(v).expect("claims")
    }

    fn good() -> Value {
        json!({"iss": "https://id.example/oidc", "aud": "app", "iat": 1000, "exp": 1120, "jti": "j1",
               "sub": "u1", "sid": "s1", "events": {BACKCHANNEL_LOGOUT_EVENT: {}}})
    }

    fn with(change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Result<LogoutRequest, TokenError> {
        let mut v = good();
        change(v.as_object_mut().expect("object"));
        check(claims(v), "https://id.example/oidc", "app", 1000)
    }

    #[test]
    fn accepts_a_logto_logout_token() {
        let r = with(|_| {}).expect("valid");
        assert_eq!((r.sub.as_deref(), r.sid.as_deref(), r.jti.as_str()), (Some("u1"), Some("s1"), "j1"));
        assert!(with(|c| drop(c.remove("sid"))).is_ok(), "sub alone is enough");
        assert!(with(|c| drop(c.remove("sub"))).is_ok(), "sid alone is enough");
    }

    #[test]
    fn refuses_each_broken_rule() {
        type Change = Box<dyn FnOnce(&mut serde_json::Map<String, Value>)>;
        let cases: Vec<(&str, Change)> = vec![
            ("wrong iss", Box::new(|c| drop(c.insert("iss".into(), json!("https://evil/oidc"))))),
            ("wrong aud", Box::new(|c| drop(c.insert("aud".into(), json!("other"))))),
            ("extra aud", Box::new(|c| drop(c.insert("aud".into(), json!(["app", "other"]))))),
            ("no events", Box::new(|c| drop(c.remove("events")))),
            (
                "wrong event",
                Box::new(|c| drop(c.insert("events".into(), json!({"http://schemas.openid.net/event/foobar": {}})))),
            ),
            (
                "event not an object",
                Box::new(|c| drop(c.insert("events".into(), json!({BACKCHANNEL_LOGOUT_EVENT: 1})))),
            ),
            ("nonce", Box::new(|c| drop(c.insert("nonce".into(), json!("n"))))),
            (
                "no sid no sub",
                Box::new(|c| {
                    c.remove("sid");
                    c.remove("sub");
                }),
            ),
            ("no jti", Box::new(|c| drop(c.remove("jti")))),
            ("future iat", Box::new(|c| drop(c.insert("iat".into(), json!(5000))))),
        ];
        for (name, change) in cases {
            assert!(with(change).is_err(), "{name} must be refused");
        }
    }
}
