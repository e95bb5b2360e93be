//! Keyset pagination cursors: the (last activity, user id) of the last row of a page, as an
//! opaque base64url string. A cursor that does not decode is a client error.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

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
        Some(Self { activity_micros: micros.parse().ok()?, user_id: Uuid::parse_str(id).ok()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let c = Cursor { activity_micros: 1_764_000_000_123_456, user_id: Uuid::new_v4() };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for bad in ["", "!!!", "bm9wZQ", &"A".repeat(500), &URL_SAFE_NO_PAD.encode("12:not-a-uuid")] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }
}
