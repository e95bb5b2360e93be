//! Parsing of the authorization response (the query of `/callback`).
//!
//! Every parameter may appear at most once (RFC 6749 §3.1); a repeated one is refused, so a
//! polluted URL cannot smuggle a second `state`, `code` or `iss` past the checks.

use std::collections::HashMap;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallbackParseError {
    #[error("parameter `{0}` appears more than once")]
    Repeated(String),
    #[error("the callback query is too long")]
    TooLong,
}

const MAX_QUERY: usize = 8 * 1024;
const MAX_VALUE: usize = 2 * 1024;

pub fn parse(query: &str) -> Result<CallbackParams, CallbackParseError> {
    if query.len() > MAX_QUERY {
        return Err(CallbackParseError::TooLong);
    }
    let mut seen: HashMap<String, String> = HashMap::new();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if value.len() > MAX_VALUE {
            return Err(CallbackParseError::TooLong);
        }
        if seen.insert(key.to_string(), value.to_string()).is_some() {
            return Err(CallbackParseError::Repeated(key.chars().take(64).collect()));
        }
    }
    Ok(CallbackParams {
        code: seen.remove("code"),
        state: seen.remove("state"),
        iss: seen.remove("iss"),
        error: seen.remove("error"),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Arbitrary query strings never panic, and a parameter that appears twice is refused.
        #[test]
        fn arbitrary_queries_never_panic(query in any::<String>(), key in "(code|state|iss|error)") {
            let _ = parse(&query);
            let doubled = format!("{key}=a&{key}=b&{query}");
            prop_assert!(parse(&doubled).is_err());
        }
    }

    #[test]
    fn parses_a_logto_response() {
        let p = parse("code=abc&state=s1&iss=http%3A%2F%2Flocalhost%3A3001%2Foidc").unwrap();
        assert_eq!(p.code.as_deref(), Some("abc"));
        assert_eq!(p.state.as_deref(), Some("s1"));
        assert_eq!(p.iss.as_deref(), Some("http://localhost:3001/oidc"));
        assert_eq!(p.error, None);
    }

    #[test]
    fn refuses_repeated_parameters() {
        assert_eq!(parse("code=a&state=s&state=t"), Err(CallbackParseError::Repeated("state".into())));
        assert_eq!(parse("code=a&code=b&state=s"), Err(CallbackParseError::Repeated("code".into())));
        assert_eq!(parse("iss=a&iss=b"), Err(CallbackParseError::Repeated("iss".into())));
    }

    #[test]
    fn ignores_unknown_parameters_and_garbage() {
        let p = parse("code=a&state=s&session_state=x&%ZZ=1&&=").unwrap();
        assert_eq!(p.code.as_deref(), Some("a"));
        assert!(parse(&"a".repeat(10_000)).is_err());
    }
}
