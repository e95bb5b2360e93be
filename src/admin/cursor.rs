//! Keyset pagination cursors: the (last activity, user id) of the last row of a page, as an
//! opaque base64url string. A cursor that does not decode, or names a time outside 1970–9999
//! (which no row has, and which Postgres may not represent), is a client error.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

/// 9999-12-31T23:59:59.999999Z in microseconds since the Unix epoch.
const MAX_MICROS: i64 = 253_402_300_799_999_999;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// Microseconds since the Unix epoch.
    pub activity_micros: i64,
    pub user_id: Uuid,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", self.activity_micros, self.user_id))
    }

    pub fn decode(text: &str) -> Option<Self> {
        if text.len() > 128 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        let (micros, id) = text.split_once(':')?;
        let activity_micros: i64 = micros.parse().ok()?;
        if !(0..=MAX_MICROS).contains(&activity_micros) {
            return None;
        }
        Some(Self { activity_micros, user_id: Uuid::parse_str(id).ok()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let c = Cursor { activity_micros: 1_764_000_000_123_456, user_id: Uuid::new_v4() };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        let far = URL_SAFE_NO_PAD.encode(format!("{}:{}", MAX_MICROS + 1, Uuid::nil()));
        let negative = URL_SAFE_NO_PAD.encode(format!("-1:{}", Uuid::nil()));
        for bad in ["", "!!!", "bm9wZQ", &"A".repeat(500), &URL_SAFE_NO_PAD.encode("12:not-a-uuid"), &far, &negative] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }
}
