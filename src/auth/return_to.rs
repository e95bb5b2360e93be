//! `return_to`: where to land after sign-in. Only same-origin relative paths are kept; anything
//! else (absolute URLs, `//host`, `/\host`, control characters, encoded tricks) becomes `/`.

const MAX_LEN: usize = 2048;

/// Returns `candidate` if it is a safe same-origin path, else `/`.
pub fn sanitize(candidate: Option<&str>) -> String {
    match candidate {
        Some(path) if is_safe(path) => path.to_owned(),
        _ => "/".to_owned(),
    }
}

fn is_safe(path: &str) -> bool {
    if path.is_empty() || path.len() > MAX_LEN || !path.starts_with('/') {
        return false;
    }
    // `//host` and `/\host` are scheme-relative to browsers (which treat `\` like `/`).
    let second = path.as_bytes().get(1).copied();
    if matches!(second, Some(b'/') | Some(b'\\')) {
        return false;
    }
    // No backslashes, control characters or whitespace anywhere (browsers strip tabs and
    // newlines inside URLs, so `/\t/evil` would become `//evil`).
    if path.chars().any(|c| c == '\\' || c.is_control() || c.is_whitespace()) {
        return false;
    }
    // Percent-encoded slashes, backslashes and controls are refused as well: a later decoding
    // step (ours or a proxy's) must not be able to turn the path into an off-site one.
    let lower = path.to_ascii_lowercase();
    if ["%2f", "%5c", "%09", "%0a", "%0d", "%00"].iter().any(|e| lower.contains(e)) {
        return false;
    }
    // The path must parse as a same-origin reference.
    let Ok(base) = url::Url::parse("http://app.invalid/") else {
        return false;
    };
    matches!(base.join(path), Ok(u) if u.origin() == base.origin())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::sanitize;

    proptest! {
        /// Whatever comes in, the result is a same-origin path (never an off-site redirect) and
        /// nothing panics.
        #[test]
        fn never_yields_an_off_site_target(input in any::<String>(), prefix in prop::sample::select(vec!["", "/", "//", "/\\", "https://", "%2F"])) {
            let candidate = format!("{prefix}{input}");
            let out = sanitize(Some(&candidate));
            prop_assert!(out.starts_with('/'));
            prop_assert!(!out.starts_with("//") && !out.starts_with("/\\"));
            let base = url::Url::parse("http://app.invalid/").expect("base");
            prop_assert_eq!(base.join(&out).expect("joins").origin(), base.origin());
        }
    }

    #[test]
    fn keeps_local_paths() {
        for p in ["/", "/admin", "/admin/users/1?q=a%20b#top", "/a/b/c", "/%E2%9C%93"] {
            assert_eq!(sanitize(Some(p)), p);
        }
    }

    #[test]
    fn refuses_off_site_and_odd_targets() {
        for p in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/%2F/evil.example",
            "/%2fevil.example",
            "/%5Cevil.example",
            "/\t/evil.example",
            "/%09/evil.example",
            "/\n/evil.example",
            "javascript:alert(1)",
            "evil.example",
            "",
            " /x",
            "http:evil.example",
        ] {
            assert_eq!(sanitize(Some(p)), "/", "{p:?}");
        }
        assert_eq!(sanitize(Some(&format!("/{}", "a".repeat(5000)))), "/");
        assert_eq!(sanitize(None), "/");
    }
}
