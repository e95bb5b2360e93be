//! The provider's signing keys, cached by `kid`, never trusted for longer than `max_age`.
//!
//! Keys come only from the discovered `jwks_uri` (never from token headers). The set is fetched
//! again once it is older than `max_age` (10 min by default; the app also refreshes it in the
//! background), and the new set replaces the old one: a key Logto stopped publishing is no
//! longer accepted. An unknown `kid` triggers one refetch, at most once per cooldown (30 s by
//! default) for each kind of caller, so Logto key rotation works without a restart, a flood of
//! tokens with random `kid`s cannot hammer the provider, and anonymous back-channel posts cannot
//! use up the refetches that sign-ins need. Fetches run one at a time (single flight) and
//! outside the lock readers take. While the JWKS cannot be fetched, keys fetched within
//! `max_age` keep verifying tokens with a known `kid`; after that, verification fails closed.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::http::{CallError, ProviderHttp};

/// One fetched key set.
struct KeySet {
    uri: String,
    /// The usable keys, ready to verify with (built once per fetch).
    keys: Vec<SigningKey>,
    fetched_at: Instant,
}

#[derive(serde::Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

/// Who presents the token, for the unknown-`kid` refetch budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// A token the app received from the token endpoint (ID tokens at sign-in and refresh).
    TokenEndpoint,
    /// A token anyone can post (back-channel logout tokens).
    Anonymous,
}

pub struct JwksCache {
    current: RwLock<Option<Arc<KeySet>>>,
    /// Held while fetching: one fetch at a time.
    fetching: tokio::sync::Mutex<FetchLog>,
    max_age: Duration,
    cooldown: Duration,
}

#[derive(Default)]
struct FetchLog {
    /// The last unknown-`kid` refetch (or regular fetch), per caller kind.
    unknown_kid: [Option<Instant>; 2],
    /// The last failed fetch (no new attempt within the cooldown).
    failed_at: Option<Instant>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no published key matches kid `{0}`")]
    UnknownKid(String),
    #[error("the token has no kid and the key set does not hold exactly one usable key")]
    AmbiguousKey,
    #[error("fetching the JWKS failed")]
    Fetch(#[source] CallError),
    /// The last fetch failed moments ago and no current set is at hand.
    #[error("the JWKS is unavailable (a recent fetch failed)")]
    Unavailable,
}

/// A verification key with the algorithms it may be used with.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: Option<String>,
    pub key: DecodingKey,
    pub algorithms: Vec<Algorithm>,
}

/// Why a fetch is wanted.
#[derive(Clone, Copy)]
enum Reason {
    /// None yet, or older than `max_age`.
    Stale,
    /// A token names a `kid` the current set does not have.
    UnknownKid(Caller),
}

impl JwksCache {
    /// `max_age`: how long a fetched set is trusted (10 min in production); `cooldown`: the
    /// minimum time between two unknown-`kid` refetches per caller kind (30 s).
    pub fn new(max_age: Duration, cooldown: Duration) -> Self {
        Self { current: RwLock::new(None), fetching: tokio::sync::Mutex::default(), max_age, cooldown }
    }

    fn snapshot(&self, jwks_uri: &str) -> Option<Arc<KeySet>> {
        let current = self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        current.as_ref().filter(|set| set.uri == jwks_uri).cloned()
    }

    /// The key for a token header's `kid` and `alg`, from a set no older than `max_age`
    /// (refetched first when it is), refetching once if the `kid` is unknown.
    pub async fn key_for(
        &self,
        http: &ProviderHttp,
        jwks_uri: &str,
        kid: Option<&str>,
        alg: Algorithm,
        caller: Caller,
    ) -> Result<SigningKey, KeyError> {
        // A set older than `max_age` is never used: it is fetched again, and if that fails the
        // token cannot be verified (an outage, fail closed).
        let mut set = match self.snapshot(jwks_uri) {
            Some(set) if set.fetched_at.elapsed() < self.max_age => set,
            _ => match self.fetch(http, jwks_uri, Reason::Stale).await? {
                Some(set) => set,
                None => return Err(KeyError::Unavailable),
            },
        };
        if let Some(key) = select(&set.keys, kid, alg) {
            return Ok(key);
        }
        if let Ok(Some(fresh)) = self.fetch(http, jwks_uri, Reason::UnknownKid(caller)).await {
            set = fresh;
        }
        select(&set.keys, kid, alg).ok_or_else(|| match kid {
            Some(kid) => KeyError::UnknownKid(kid.to_owned()),
            None => KeyError::AmbiguousKey,
        })
    }

    /// Fetches the set now unless it is fresh (the background refresher calls this every half
    /// `max_age`, so requests rarely wait for a fetch).
    pub async fn refresh(&self, http: &ProviderHttp, jwks_uri: &str) -> Result<(), KeyError> {
        if self.snapshot(jwks_uri).is_some_and(|s| s.fetched_at.elapsed() < self.max_age / 2) {
            return Ok(());
        }
        self.fetch(http, jwks_uri, Reason::Stale).await.map(|_| ())
    }

    /// One fetch at a time. Returns the set fetched (or fetched by another caller while this one
    /// waited), or `None` when a cooldown forbids fetching now.
    async fn fetch(
        &self,
        http: &ProviderHttp,
        jwks_uri: &str,
        reason: Reason,
    ) -> Result<Option<Arc<KeySet>>, KeyError> {
        let asked_at = Instant::now();
        let mut log = self.fetching.lock().await;
        if let Some(set) = self.snapshot(jwks_uri)
            && set.fetched_at >= asked_at
        {
            return Ok(Some(set));
        }
        if log.failed_at.is_some_and(|t| t.elapsed() < self.cooldown.min(Duration::from_secs(5))) {
            return Ok(None);
        }
        match reason {
            Reason::UnknownKid(caller) => {
                let slot = &mut log.unknown_kid[caller as usize];
                if slot.is_some_and(|t| t.elapsed() < self.cooldown) {
                    tracing::warn!(?caller, "unknown kid within the JWKS refetch cooldown");
                    return Ok(None);
                }
                *slot = Some(Instant::now());
            }
            // A set fetched now is as good as an unknown-kid refetch, for every caller.
            Reason::Stale => log.unknown_kid = [Some(Instant::now()); 2],
        }
        let raw: RawJwks = match http.get_json(jwks_uri, None).await {
            Ok(raw) => raw,
            Err(e) => {
                log.failed_at = Some(Instant::now());
                return Err(KeyError::Fetch(e));
            }
        };
        log.failed_at = None;
        // Parse key by key: one key of a type we do not know must not hide the others.
        let keys = JwkSet { keys: raw.keys.into_iter().filter_map(|k| serde_json::from_value(k).ok()).collect() };
        let set = Arc::new(KeySet { uri: jwks_uri.to_owned(), keys: usable_keys(&keys), fetched_at: Instant::now() });
        tracing::info!(keys = set.keys.len(), "fetched the provider's JWKS");
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(set.clone());
        Ok(Some(set))
    }
}

fn usable_keys(keys: &JwkSet) -> Vec<SigningKey> {
    keys.keys.iter().filter_map(usable_key).collect()
}

/// Picks the key for `kid` that allows `alg`; without a `kid`, the one usable key for `alg` if
/// there is exactly one. Two keys with one `kid` that both allow `alg` are ambiguous and match
/// nothing (one `kid` for an EC and an RSA key is fine: the algorithm tells them apart).
fn select(usable: &[SigningKey], kid: Option<&str>, alg: Algorithm) -> Option<SigningKey> {
    let mut matching =
        usable.iter().filter(|k| k.algorithms.contains(&alg) && (kid.is_none() || k.kid.as_deref() == kid));
    let first = matching.next()?;
    matching.next().is_none().then(|| first.clone())
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
        let key = select(&keys, Some("a"), Algorithm::ES384).expect("key");
        assert_eq!(key.algorithms, vec![Algorithm::ES384]);
        assert!(select(&keys, Some("a"), Algorithm::ES256).is_none());
        assert!(select(&keys, Some("b"), Algorithm::ES384).is_none());
        // A single key with no kid in the header is selected (KEY-01).
        assert!(select(&keys, None, Algorithm::ES384).is_some());
    }

    #[test]
    fn encryption_keys_duplicate_kids_and_mismatched_alg_are_unusable() {
        let keys = set(serde_json::json!({"keys": [
            {"kty": "EC", "crv": "P-384", "x": P384_X, "y": P384_Y, "kid": "enc", "use": "enc"},
            {"kty": "EC", "crv": "P-384", "x": P384_X, "y": P384_Y, "kid": "dup"},
            {"kty": "EC", "crv": "P-384", "x": P384_X, "y": P384_Y, "kid": "dup"},
            {"kty": "EC", "crv": "P-384", "x": P384_X, "y": P384_Y, "kid": "wrongalg", "alg": "ES256"}
        ]}));
        assert!(select(&keys, Some("enc"), Algorithm::ES384).is_none());
        assert!(select(&keys, Some("dup"), Algorithm::ES384).is_none());
        assert!(select(&keys, Some("wrongalg"), Algorithm::ES384).is_none());
        assert!(select(&keys, Some("wrongalg"), Algorithm::ES256).is_none());
        assert!(select(&keys, None, Algorithm::ES384).is_none(), "several usable keys and no kid is ambiguous");
    }

    /// One `kid` shared by an EC and an RSA key: each token finds the key of its algorithm.
    #[test]
    fn one_kid_for_keys_of_different_types_is_told_apart_by_the_algorithm() {
        let n = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";
        let keys = set(serde_json::json!({"keys": [
            {"kty": "EC", "crv": "P-384", "x": P384_X, "y": P384_Y, "kid": "same", "use": "sig"},
            {"kty": "RSA", "n": n, "e": "AQAB", "kid": "same", "use": "sig"}
        ]}));
        assert_eq!(keys.len(), 2);
        assert_eq!(select(&keys, Some("same"), Algorithm::ES384).expect("EC").algorithms, vec![Algorithm::ES384]);
        assert!(select(&keys, Some("same"), Algorithm::RS256).expect("RSA").algorithms.contains(&Algorithm::RS256));
    }
}
