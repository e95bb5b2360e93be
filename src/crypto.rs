//! Small primitives: random tokens and constant-time comparison.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// 256 random bits, base64url: login bindings and CSRF tokens.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A fresh `SESSION_SECRET`: 64 random bytes, base64 (88 characters).
pub fn random_secret() -> String {
    let bytes: [u8; 64] = std::array::from_fn(|_| rand::random());
    STANDARD.encode(bytes)
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
