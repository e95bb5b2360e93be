//! Signed JWTs from the provider (ID tokens, logout tokens): signature first, claims after.
//!
//! The key comes only from the discovered JWKS (never from `jku`/`jwk`/`x5u` headers); the
//! algorithm must be one the provider advertises *and* one the key allows; `none` and HS* are
//! never on the list; unknown `crit` headers are refused.

use jsonwebtoken::{Algorithm, Validation, decode, decode_header};
use serde::de::DeserializeOwned;

use super::http::ProviderHttp;
use super::jwks::{Caller, JwksCache, KeyError};

/// Clock skew tolerated on `exp` and `iat`.
pub const LEEWAY_SECS: u64 = 60;
/// A token larger than this is refused before any parsing (Logto's are about 1 KiB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token is malformed: {0}")]
    Malformed(String),
    #[error("token algorithm {0} is not allowed")]
    Algorithm(String),
    #[error("token type `{0}` is not the expected one")]
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
            || matches!(self, Self::Key(KeyError::Unavailable))
    }
}

/// Which JOSE `typ` header a token must carry.
#[derive(Clone, Copy)]
pub enum Typ {
    /// ID tokens: absent (Logto >= 1.42) or `JWT`.
    IdToken,
    /// Exactly this value (case-insensitive), e.g. `logout+jwt`.
    Exactly(&'static str),
}

/// Everything needed to check a provider-signed JWT.
pub struct Verifier<'a> {
    pub jwks: &'a JwksCache,
    pub http: &'a ProviderHttp,
    pub jwks_uri: &'a str,
    pub allowed: &'a [Algorithm],
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// Who presented the token (for the unknown-`kid` refetch budget).
    pub caller: Caller,
}

impl Verifier<'_> {
    /// Verifies signature, `iss`, `aud` and `exp` (60 s leeway) plus `required` claims, then
    /// deserializes the claims; returns them with the token's (verified) algorithm.
    pub async fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        typ: Typ,
        required: &[&str],
    ) -> Result<(T, Algorithm), TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed(format!("{} bytes is too large", token.len())));
        }
        reject_unsigned(token)?;
        let header = decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        let typ_ok = match (typ, header.typ.as_deref()) {
            (Typ::IdToken, None) => true,
            (Typ::IdToken, Some(t)) => t.eq_ignore_ascii_case("JWT"),
            // RFC 7515 §4.1.9: `application/` may be left out of a `typ` media type.
            (Typ::Exactly(want), Some(t)) => {
                let t = t.get(..12).filter(|p| p.eq_ignore_ascii_case("application/")).map_or(t, |_| &t[12..]);
                t.eq_ignore_ascii_case(want)
            }
            (Typ::Exactly(_), None) => false,
        };
        if !typ_ok {
            return Err(TokenError::Type(header.typ.unwrap_or_else(|| "(none)".into())));
        }
        if header.crit.is_some() {
            return Err(TokenError::Malformed("unsupported `crit` header".into()));
        }
        if !self.allowed.contains(&header.alg) {
            return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
        }
        let key = self.jwks.key_for(self.http, self.jwks_uri, header.kid.as_deref(), header.alg, self.caller).await?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[self.issuer]);
        validation.set_audience(&[self.client_id]);
        validation.set_required_spec_claims(required);
        Ok((decode::<T>(token, &key.key, &validation)?.claims, header.alg))
    }
}

/// `alg: none` tokens fail `decode_header` in jsonwebtoken, but say so plainly.
fn reject_unsigned(token: &str) -> Result<(), TokenError> {
    let mut parts = token.split('.');
    let (Some(_), Some(_), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed("not a compact JWS".into()));
    };
    if sig.is_empty() {
        return Err(TokenError::Algorithm("none (unsigned)".into()));
    }
    Ok(())
}

pub use crate::crypto::constant_time_eq;

/// `aud` as a string or an array.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(untagged)]
pub enum Audience {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn values(&self) -> Vec<&str> {
        match self {
            Self::None => vec![],
            Self::One(a) => vec![a.as_str()],
            Self::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}
