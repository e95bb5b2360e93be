//! Tokens at rest: every ID, access and refresh token is stored sealed with AES-256-GCM under a
//! key derived from `SESSION_SECRET` (HKDF-SHA256, its own label), so a database dump or backup
//! holds no usable token. The purpose (`id_token`, `access_token`, …) is authenticated data: a
//! sealed value cannot be moved to another column.
//!
//! Stored form: `v1.` + base64url(nonce ‖ ciphertext ‖ tag). A value without the prefix is a
//! token written before encryption existed and is read as it is (it ages out with its session).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use sha2::Sha256;

pub const ID_TOKEN: &str = "id_token";
pub const ACCESS_TOKEN: &str = "access_token";
pub const REFRESH_TOKEN: &str = "refresh_token";

const PREFIX: &str = "v1.";
const NONCE_BYTES: usize = 12;

#[derive(Clone)]
pub struct TokenCipher {
    aead: Aes256Gcm,
}

impl TokenCipher {
    pub fn new(session_secret: &[u8]) -> Self {
        let mut key = [0u8; 32];
        // A 32-byte output is always within HKDF-SHA256's limit.
        let _ = Hkdf::<Sha256>::new(None, session_secret).expand(b"logto-signin tokens at rest v1", &mut key);
        Self { aead: Aes256Gcm::new(&key.into()) }
    }

    pub fn seal(&self, purpose: &str, token: &str) -> String {
        let nonce_bytes: [u8; NONCE_BYTES] = rand::random();
        let nonce = Nonce::from(nonce_bytes);
        // Encryption with a valid key and nonce cannot fail for inputs of this size.
        let sealed =
            self.aead.encrypt(&nonce, Payload { msg: token.as_bytes(), aad: purpose.as_bytes() }).unwrap_or_default();
        let mut bytes = nonce_bytes.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The token, or `None` when the stored value was altered, belongs to another purpose or
    /// was sealed under another `SESSION_SECRET` (logged; the session then lacks that token).
    pub fn open(&self, purpose: &str, stored: &str) -> Option<String> {
        let Some(encoded) = stored.strip_prefix(PREFIX) else {
            return Some(stored.to_owned());
        };
        let opened = URL_SAFE_NO_PAD
            .decode(encoded)
            .ok()
            .filter(|bytes| bytes.len() > NONCE_BYTES)
            .and_then(|bytes| {
                let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
                let nonce: [u8; NONCE_BYTES] = nonce.try_into().ok()?;
                self.aead.decrypt(&Nonce::from(nonce), Payload { msg: sealed, aad: purpose.as_bytes() }).ok()
            })
            .and_then(|plain| String::from_utf8(plain).ok());
        if opened.is_none() {
            tracing::warn!(purpose, "a stored token could not be opened (altered, or SESSION_SECRET changed)");
        }
        opened
    }

    pub fn open_opt(&self, purpose: &str, stored: Option<&str>) -> Option<String> {
        stored.and_then(|s| self.open(purpose, s))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn cipher() -> TokenCipher {
        TokenCipher::new(&[7u8; 64])
    }

    #[test]
    fn sealed_tokens_open_only_with_the_same_key_and_purpose() {
        let sealed = cipher().seal(REFRESH_TOKEN, "rt-secret-value");
        assert!(sealed.starts_with("v1.") && !sealed.contains("rt-secret-value"));
        assert_eq!(cipher().open(REFRESH_TOKEN, &sealed).as_deref(), Some("rt-secret-value"));
        assert_eq!(cipher().open(ACCESS_TOKEN, &sealed), None, "another column");
        assert_eq!(TokenCipher::new(&[8u8; 64]).open(REFRESH_TOKEN, &sealed), None, "another secret");
        assert_ne!(cipher().seal(REFRESH_TOKEN, "same"), cipher().seal(REFRESH_TOKEN, "same"), "fresh nonces");
    }

    #[test]
    fn legacy_plain_values_are_read_as_they_are() {
        assert_eq!(
            cipher().open(ID_TOKEN, "eyJhbGciOiJFUzM4NCJ9.e30.sig").as_deref(),
            Some("eyJhbGciOiJFUzM4NCJ9.e30.sig")
        );
    }

    proptest! {
        /// Any change to a sealed value is detected, never a panic.
        #[test]
        fn tampering_is_detected(token in "[ -~]{1,200}", at in any::<prop::sample::Index>(), flip in 1u8..=255) {
            let sealed = cipher().seal(ACCESS_TOKEN, &token);
            let mut bytes = sealed.into_bytes();
            let i = 3 + at.index(bytes.len() - 3);
            bytes[i] ^= flip;
            if let Ok(altered) = String::from_utf8(bytes) {
                prop_assert_ne!(cipher().open(ACCESS_TOKEN, &altered), Some(token));
            }
        }

        #[test]
        fn garbage_never_panics(stored in any::<String>()) {
            let _ = cipher().open(ID_TOKEN, &format!("v1.{stored}"));
        }
    }
}
