//! ID token validation (OpenID Connect Core §3.1.3.7), strict where Logto allows it.
//!
//! The signature is checked first, with a key from the discovered JWKS and an algorithm that
//! both the key and the provider's advertised list allow; only then are the claims read.

use std::collections::HashSet;

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::http::ProviderHttp;
use super::jwks::{JwksCache, KeyError};

/// Clock skew tolerated on `exp` and `iat`.
pub const LEEWAY_SECS: u64 = 60;
/// A token larger than this is refused before any parsing (Logto's are about 1 KiB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token is malformed: {0}")]
    Malformed(String),
    #[error("token algorithm {0:?} is not allowed")]
    Algorithm(String),
    #[error("token type `{0}` is not an ID token")]
    Type(String),
    #[error("no key to verify the token: {0}")]
    Key(#[from] KeyError),
    #[error("token signature or standard claims are invalid: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("token claim check failed: {0}")]
    Claim(&'static str),
}

impl TokenError {
    /// The JWKS could not be fetched: an outage, not a bad token.
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::Key(KeyError::Fetch(e)) if e.is_outage())
    }
}

/// What an ID token must match.
pub struct Expectations<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// The nonce sent in the authorization request; `None` only for refreshed tokens, which
    /// carry the original nonce that is checked by comparing to the stored token instead.
    pub nonce: Option<&'a str>,
    /// Earliest acceptable `iat` (unix seconds), e.g. when the sign-in started.
    pub not_issued_before: Option<u64>,
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
    #[serde(default)]
    pub aud: Audience,
    /// Every claim, for the profile.
    #[serde(flatten)]
    pub all: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn values(&self) -> Vec<&str> {
        match self {
            Self::None => vec![],
            Self::One(a) => vec![a.as_str()],
            Self::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// Verifies an ID token against the provider's keys and `expect`.
pub async fn validate(
    token: &str,
    jwks: &JwksCache,
    http: &ProviderHttp,
    jwks_uri: &str,
    allowed: &[Algorithm],
    expect: &Expectations<'_>,
) -> Result<IdTokenClaims, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed(format!(
            "{} bytes is too large",
            token.len()
        )));
    }
    reject_unsigned(token)?;
    let header = decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
    if let Some(typ) = header.typ.as_deref()
        && !typ.eq_ignore_ascii_case("JWT")
    {
        // A logout token (`logout+jwt`) or an access token (`at+jwt`) is not an ID token.
        return Err(TokenError::Type(typ.to_owned()));
    }
    if header.crit.is_some() {
        return Err(TokenError::Malformed("unsupported `crit` header".into()));
    }
    if !allowed.contains(&header.alg) {
        return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
    }
    let key = jwks.key_for(http, jwks_uri, header.kid.as_deref()).await?;
    if !key.algorithms.contains(&header.alg) {
        return Err(TokenError::Algorithm(format!(
            "{:?} (not the key's algorithm)",
            header.alg
        )));
    }
    let decoding_key = DecodingKey::from_jwk(&key.jwk)?;

    let mut validation = Validation::new(header.alg);
    validation.leeway = LEEWAY_SECS;
    validation.set_issuer(&[expect.issuer]);
    validation.set_audience(&[expect.client_id]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let claims = decode::<IdTokenClaims>(token, &decoding_key, &validation)?.claims;

    check_claims(&claims, expect)?;
    Ok(claims)
}

/// `alg: none` tokens fail `decode_header` in jsonwebtoken, but say so plainly.
fn reject_unsigned(token: &str) -> Result<(), TokenError> {
    let mut parts = token.split('.');
    let (Some(_), Some(_), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("not a compact JWS".into()));
    };
    if sig.is_empty() {
        return Err(TokenError::Algorithm("none (unsigned)".into()));
    }
    Ok(())
}

/// The checks jsonwebtoken does not do for us.
fn check_claims(claims: &IdTokenClaims, expect: &Expectations<'_>) -> Result<(), TokenError> {
    // Exact issuer (jsonwebtoken already compared it; keep the rule visible and independent).
    if claims.iss != expect.issuer {
        return Err(TokenError::Claim("iss"));
    }
    if claims.sub.is_empty() || claims.sub.len() > 255 {
        return Err(TokenError::Claim("sub"));
    }
    let audiences = claims.aud.values();
    if !audiences.contains(&expect.client_id) {
        return Err(TokenError::Claim("aud"));
    }
    // Another audience is an untrusted party the token was also issued to (Core §3.1.3.7 #3).
    let trusted: HashSet<&str> = HashSet::from([expect.client_id]);
    if audiences.iter().any(|a| !trusted.contains(a)) {
        return Err(TokenError::Claim("aud has an untrusted extra audience"));
    }
    if let Some(azp) = &claims.azp
        && azp != expect.client_id
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

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
