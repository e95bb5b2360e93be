//! The wall clock, as the protocol and the session timing need it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in whole unix seconds (token claims).
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Now, in unix seconds with fractions (session timing).
pub fn unix_now_f64() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}
