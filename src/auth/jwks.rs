//! The provider's signing keys, cached by `kid`.
//!
//! Keys come only from the discovered `jwks_uri` (never from token headers). An unknown `kid`
//! triggers one refetch, at most once per cooldown (30 s by default), so Logto key rotation works
//! without a restart while a flood of tokens with random `kid`s cannot hammer the provider.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::Mutex;

use super::http::{CallError, ProviderHttp};

#[derive(Default)]
struct Cache {
    uri: Option<String>,
    /// The usable keys of the last fetched set, ready to verify with (built once per fetch).
    keys: Option<Arc<[SigningKey]>>,
    fetched_at: Option<Instant>,
}

#[derive(serde::Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

pub struct JwksCache {
    cache: Mutex<Cache>,
    cooldown: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no published key matches kid `{0}`")]
    UnknownKid(String),
    #[error("the token has no kid and the key set does not hold exactly one usable key")]
    AmbiguousKey,
    #[error("fetching the JWKS failed")]
    Fetch(#[source] CallError),
}

/// A verification key with the algorithms it may be used with.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: Option<String>,
    pub key: DecodingKey,
    pub algorithms: Vec<Algorithm>,
}

impl JwksCache {
    /// `cooldown`: the minimum time between two fetches (30 s in production).
    pub fn new(cooldown: Duration) -> Self {
        Self { cache: Mutex::new(Cache::default()), cooldown }
    }

    /// Finds the key for a token header's `kid`, refetching the set once if it is unknown.
    pub async fn key_for(
        &self,
        http: &ProviderHttp,
        jwks_uri: &str,
        kid: Option<&str>,
    ) -> Result<SigningKey, KeyError> {
        let mut cache = self.cache.lock().await;
        if cache.uri.as_deref() != Some(jwks_uri) {
            *cache = Cache { uri: Some(jwks_uri.to_owned()), ..Cache::default() };
        }
        if let Some(keys) = &cache.keys
            && let Some(key) = select(keys, kid)
        {
            return Ok(key);
        }
        let may_fetch = cache.fetched_at.is_none_or(|t| t.elapsed() >= self.cooldown);
        if may_fetch {
            // Record the attempt before fetching, so a failing JWKS is also rate-limited.
            cache.fetched_at = Some(Instant::now());
            let raw: RawJwks = http.get_json(jwks_uri, None).await.map_err(KeyError::Fetch)?;
            // Parse key by key: one key of a type we do not know must not hide the others.
            let keys = JwkSet { keys: raw.keys.into_iter().filter_map(|k| serde_json::from_value(k).ok()).collect() };
            tracing::info!(keys = keys.keys.len(), "fetched the provider's JWKS");
            cache.keys = Some(usable_keys(&keys).into());
        } else {
            tracing::warn!(?kid, "unknown kid within the JWKS refetch cooldown");
        }
        cache.keys.as_ref().and_then(|keys| select(keys, kid)).ok_or_else(|| match kid {
            Some(kid) => KeyError::UnknownKid(kid.to_owned()),
            None => KeyError::AmbiguousKey,
        })
    }
}

fn usable_keys(keys: &JwkSet) -> Vec<SigningKey> {
    keys.keys.iter().filter_map(usable_key).collect()
}

/// Picks the key for `kid`; without a `kid`, the one usable key if there is exactly one.
/// A `kid` published twice is ambiguous and matches nothing.
fn select(usable: &[SigningKey], kid: Option<&str>) -> Option<SigningKey> {
    match kid {
        Some(kid) => {
            let mut matching = usable.iter().filter(|k| k.kid.as_deref() == Some(kid));
            let first = matching.next()?;
            matching.next().is_none().then(|| first.clone())
        }
        None if usable.len() == 1 => usable.first().cloned(),
        None => None,
    }
}

/// A public signature key and the algorithms it allows: its own `alg` when it names one, else
/// what its type and curve permit. Encryption keys, symmetric keys, private keys and keys that do
/// not parse are unusable.
fn usable_key(jwk: &Jwk) -> Option<SigningKey> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption) | Some(PublicKeyUse::Other(_))) {
        return None;
    }
    let by_type: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        // Octet (symmetric) and OKP keys are never used for ID tokens here.
        _ => return None,
    };
    let algorithms = match jwk.common.key_algorithm {
        None => by_type,
        Some(declared) => {
            let declared = algorithm_of(declared)?;
            if !by_type.contains(&declared) {
                return None;
            }
            vec![declared]
        }
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(SigningKey { kid: jwk.common.key_id.clone(), key, algorithms })
}

fn algorithm_of(key_algorithm: KeyAlgorithm) -> Option<Algorithm> {
    Some(match key_algorithm {
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(json: serde_json::Value) -> Vec<SigningKey> {
        usable_keys(&serde_json::from_value(json).expect("jwks"))
    }

    const P384_X: &str = "ZBo9lG-2cLV6c4jJPDy3VLHzmqvnvYeGVGaN-kK1jtIJcDnP62fk9_y5wZkXG-u3";
    const P384_Y: &str = "EqXEm-RYB7rkHrxNJ8sTP_cI8DjfJYtE0sUE-TqYPCGJ1cEnfaRykR6pe5XhbUS7";

    #[test]
    fn ec_key_allows_only_its_curve_algorithm() {
        let keys = set(serde_json::json!({"keys": [
            {"kty": "EC", "crv": "P-384", "x": P384_X, "y": P384_Y, "kid": "a", "use": "sig"}
        ]}));
        let key = select(&keys, Some("a")).expect("key");
        assert_eq!(key.algorithms, vec![Algorithm::ES384]);
        assert!(select(&keys, Some("b")).is_none());
        // A single key with no kid in the header is selected (KEY-01).
        assert!(select(&keys, None).is_some());
    }

    #[test]
    fn encryption_keys_duplicate_kids_and_mismatched_alg_are_unusable() {
        let keys = set(serde_json::json!({"keys": [
            {"kty": "EC", "crv": "P-384", "x": P384_X, "y": P384_Y, "kid": "enc", "use": "enc"},
            {"kty": "EC", "crv": "P-384", "x": P384_X, "y": P384_Y, "kid": "dup"},
            {"kty": "EC", "crv": "P-384", "x": P384_X, "y": P384_Y, "kid": "dup"},
            {"kty": "EC", "crv": "P-384", "x": P384_X, "y": P384_Y, "kid": "wrongalg", "alg": "ES256"}
        ]}));
        assert!(select(&keys, Some("enc")).is_none());
        assert!(select(&keys, Some("dup")).is_none());
        assert!(select(&keys, Some("wrongalg")).is_none());
        assert!(select(&keys, None).is_none(), "several usable keys and no kid is ambiguous");
    }
}
