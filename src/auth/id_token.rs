//! ID token validation (OpenID Connect Core §3.1.3.7), strict where Logto allows it.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::jwt::{Audience, LEEWAY_SECS, TokenError, Typ, Verifier, constant_time_eq};

/// What an ID token must match beyond issuer, audience and signature.
pub struct Expectations<'a> {
    /// The nonce sent in the authorization request (a refreshed ID token keeps the original).
    pub nonce: Option<&'a str>,
    /// Earliest acceptable `iat` (unix seconds), e.g. when the sign-in started.
    pub not_issued_before: Option<u64>,
    /// The `max_age` of the authorization request: `auth_time` must be present and this recent.
    pub max_age: Option<u64>,
    /// The access token issued with the ID token, checked against `at_hash` when present.
    pub access_token: Option<&'a str>,
    pub now: u64,
}

/// The claims of a validated ID token.
#[derive(Debug, Clone, Deserialize)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    pub exp: u64,
    pub iat: u64,
    #[serde(default)]
    pub sid: Option<String>,
    #[serde(default)]
    pub nonce: Option<String>,
    #[serde(default)]
    pub azp: Option<String>,
    /// When the user authenticated (Logto sends it only when `max_age` was requested).
    #[serde(default)]
    pub auth_time: Option<u64>,
    #[serde(default)]
    pub aud: Audience,
    /// Every claim, for the profile.
    #[serde(flatten)]
    pub all: Map<String, Value>,
}

/// Verifies an ID token and the rules jsonwebtoken does not check.
pub async fn validate(
    verifier: &Verifier<'_>,
    token: &str,
    expect: &Expectations<'_>,
) -> Result<IdTokenClaims, TokenError> {
    let (claims, alg): (IdTokenClaims, _) = verifier.verify(token, Typ::IdToken, &["exp", "iss", "aud", "sub"]).await?;
    check_claims(&claims, verifier.issuer, verifier.client_id, expect)?;
    if let Some(access_token) = expect.access_token {
        check_at_hash(&claims, alg, access_token)?;
    }
    Ok(claims)
}

fn check_claims(
    claims: &IdTokenClaims,
    issuer: &str,
    client_id: &str,
    expect: &Expectations<'_>,
) -> Result<(), TokenError> {
    // Exact issuer (jsonwebtoken compared it already; the rule stays visible here).
    if claims.iss != issuer {
        return Err(TokenError::Claim("iss"));
    }
    if claims.sub.is_empty() || claims.sub.len() > 255 {
        return Err(TokenError::Claim("sub"));
    }
    let audiences = claims.aud.values();
    if !audiences.contains(&client_id) {
        return Err(TokenError::Claim("aud"));
    }
    // Another audience is an untrusted party the token was also issued to (Core §3.1.3.7 #3).
    if audiences.iter().any(|a| *a != client_id) {
        return Err(TokenError::Claim("aud has an untrusted extra audience"));
    }
    if let Some(azp) = &claims.azp
        && azp != client_id
    {
        return Err(TokenError::Claim("azp"));
    }
    if claims.iat > expect.now + LEEWAY_SECS {
        return Err(TokenError::Claim("iat is in the future"));
    }
    if let Some(earliest) = expect.not_issued_before
        && claims.iat + LEEWAY_SECS < earliest
    {
        return Err(TokenError::Claim("iat is older than the sign-in"));
    }
    // Core §3.1.3.7 #12-13: with max_age, auth_time is required and must be recent enough; a
    // time in the future is never accepted.
    if claims.auth_time.is_some_and(|t| t > expect.now + LEEWAY_SECS) {
        return Err(TokenError::Claim("auth_time is in the future"));
    }
    if let Some(max_age) = expect.max_age {
        match claims.auth_time {
            None => return Err(TokenError::Claim("auth_time is missing although max_age was requested")),
            Some(t) if t + max_age + LEEWAY_SECS < expect.now => {
                return Err(TokenError::Claim("auth_time is older than max_age"));
            }
            Some(_) => {}
        }
    }
    if claims.all.contains_key("events") {
        // A logout token is never an ID token (Back-Channel Logout §4.1).
        return Err(TokenError::Claim("events"));
    }
    if let Some(expected) = expect.nonce {
        match &claims.nonce {
            Some(n) if constant_time_eq(n.as_bytes(), expected.as_bytes()) => {}
            _ => return Err(TokenError::Claim("nonce")),
        }
    }
    Ok(())
}

/// Core §3.1.3.8: when the ID token carries `at_hash` (Logto ≥ 1.42 does not), it must be the
/// left half of the access token's hash, with the hash of the token's algorithm.
fn check_at_hash(claims: &IdTokenClaims, alg: jsonwebtoken::Algorithm, access_token: &str) -> Result<(), TokenError> {
    use base64::Engine;
    use jsonwebtoken::Algorithm as A;
    use sha2::Digest;
    let Some(at_hash) = claims.all.get("at_hash") else { return Ok(()) };
    let digest: Vec<u8> = match alg {
        A::RS256 | A::PS256 | A::ES256 => sha2::Sha256::digest(access_token.as_bytes()).to_vec(),
        A::RS384 | A::PS384 | A::ES384 => sha2::Sha384::digest(access_token.as_bytes()).to_vec(),
        A::RS512 | A::PS512 => sha2::Sha512::digest(access_token.as_bytes()).to_vec(),
        _ => return Err(TokenError::Claim("at_hash with an unsupported algorithm")),
    };
    let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2]);
    match at_hash.as_str() {
        Some(value) if constant_time_eq(value.as_bytes(), expected.as_bytes()) => Ok(()),
        _ => Err(TokenError::Claim("at_hash")),
    }
}
