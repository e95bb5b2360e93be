//! User profiles: what we keep about a Logto user, built from validated claims.

pub mod repo;

use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

const MAX_FIELD: usize = 512;
const MAX_ROLES: usize = 100;

/// A stored user: who they are at Logto and their profile.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub user_id: Uuid,
    pub issuer: String,
    pub subject: String,
    #[serde(flatten)]
    pub profile: Profile,
}

/// What we keep about a user from Logto's claims. Serialized, the keys are the `users`
/// columns (the `users_sign_in` SQL function reads it so).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Profile {
    pub name: Option<String>,
    pub username: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
    pub picture: Option<String>,
    pub roles: Vec<String>,
    pub identities: Value,
    pub hf_user_id: Option<String>,
    pub hf_username: Option<String>,
    pub hf_avatar: Option<String>,
}

/// A sign-in's (or refresh's) profile and the claims it came from (ID token overlaid with
/// userinfo, cleaned), kept for support and audits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClaimedProfile {
    #[serde(flatten)]
    pub profile: Profile,
    pub claims: Value,
}

impl Profile {
    /// The name to show: name, else username, else email.
    pub fn display_name(&self) -> Option<&str> {
        self.name.as_deref().or(self.username.as_deref()).or(self.email.as_deref())
    }

    /// The linked Hugging Face account as pages show it: its username, else its id.
    pub fn hugging_face_account(&self) -> Option<&str> {
        hugging_face_account(self.hf_username.as_deref(), self.hf_user_id.as_deref())
    }
}

impl ClaimedProfile {
    /// Builds a profile from validated ID token claims and (sub-checked) userinfo claims.
    /// `identities` is read from userinfo only, where Logto puts it.
    pub fn from_claims(id_token: &Map<String, Value>, userinfo: Option<&Map<String, Value>>) -> Self {
        let mut merged = id_token.clone();
        for key in ["nonce", "at_hash", "c_hash"] {
            merged.remove(key);
        }
        if let Some(info) = userinfo {
            for (k, v) in info {
                merged.insert(k.clone(), v.clone());
            }
        }
        let merged = clean(Value::Object(merged));
        let get = |k: &str| text(merged.get(k));
        let identities = userinfo
            .and_then(|u| u.get("identities"))
            .filter(|v| v.is_object())
            .map(|v| clean(v.clone()))
            .unwrap_or_else(|| Value::Object(Map::new()));
        let hf = identities.get("huggingface");
        let hf_details = hf.and_then(|h| h.get("details"));
        let hf_raw = hf_details.and_then(|d| d.get("rawData"));
        let roles = merged
            .get("roles")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .filter(|r| !r.is_empty() && r.len() <= 128)
                    .take(MAX_ROLES)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let profile = Profile {
            name: get("name"),
            username: get("username").or_else(|| get("preferred_username")),
            email: get("email"),
            email_verified: merged.get("email_verified").and_then(Value::as_bool).unwrap_or(false),
            picture: get("picture"),
            roles,
            hf_user_id: text(hf.and_then(|h| h.get("userId"))),
            hf_username: text(hf_raw.and_then(|r| r.get("preferred_username"))),
            hf_avatar: text(hf_details.and_then(|d| d.get("avatar")))
                .or_else(|| text(hf_raw.and_then(|r| r.get("picture")))),
            identities,
        };
        Self { profile, claims: merged }
    }
}

/// A non-empty string claim, cut to a sane length.
fn text(value: Option<&Value>) -> Option<String> {
    let s = value?.as_str()?.trim();
    (!s.is_empty()).then(|| s.chars().take(MAX_FIELD).collect())
}

/// Removes NUL characters everywhere (Postgres text and jsonb cannot hold them).
fn clean(value: Value) -> Value {
    match value {
        Value::String(s) if s.contains('\0') => Value::String(s.replace('\0', "")),
        Value::Array(items) => Value::Array(items.into_iter().map(clean).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k.replace('\0', ""), clean(v))).collect()),
        other => other,
    }
}

/// The linked Hugging Face account as every page shows it: its username, else its id.
pub fn hugging_face_account<'a>(hf_username: Option<&'a str>, hf_user_id: Option<&'a str>) -> Option<&'a str> {
    hf_username.or(hf_user_id)
}

/// The name to show for a user: name, else username, else email.
pub fn display_name(name: Option<&str>, username: Option<&str>, email: Option<&str>) -> Option<String> {
    name.or(username).or(email).map(str::to_owned)
}

/// Only `https:` URLs are shown as images; anything else (javascript:, data:, http:) is dropped.
pub fn safe_image_url(url: Option<&str>) -> Option<String> {
    let parsed = url::Url::parse(url?).ok()?;
    (parsed.scheme() == "https" && parsed.host().is_some()).then(|| parsed.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn profile_reads_logto_claims_and_the_hugging_face_identity() {
        let id = obj(json!({"sub": "u1", "name": null, "username": "alice", "email": "a@x.io",
            "email_verified": true, "picture": null, "roles": ["admin", 3, ""], "nonce": "n"}));
        let info = obj(json!({"sub": "u1", "name": "Alice", "identities": {"huggingface": {
            "userId": "hf-1", "details": {"id": "hf-1", "avatar": "https://hf.co/a.png",
            "rawData": {"preferred_username": "alice-hf", "picture": "https://hf.co/b.png"}}}}}));
        let p = ClaimedProfile::from_claims(&id, Some(&info)).profile;
        assert_eq!(p.name.as_deref(), Some("Alice"));
        assert_eq!(p.username.as_deref(), Some("alice"));
        assert!(p.email_verified);
        assert_eq!(p.picture, None);
        assert_eq!(p.roles, vec!["admin".to_owned()]);
        assert_eq!(p.hf_user_id.as_deref(), Some("hf-1"));
        assert_eq!(p.hf_username.as_deref(), Some("alice-hf"));
        assert_eq!(p.hf_avatar.as_deref(), Some("https://hf.co/a.png"));
        assert!(ClaimedProfile::from_claims(&id, Some(&info)).claims.get("nonce").is_none());
    }

    #[test]
    fn identities_in_the_id_token_are_ignored_and_nul_bytes_removed() {
        let id = obj(json!({"sub": "u1", "name": "A\u{0}B", "identities": {"huggingface": {"userId": "x"}}}));
        let p = ClaimedProfile::from_claims(&id, None).profile;
        assert_eq!(p.hf_user_id, None);
        assert_eq!(p.name.as_deref(), Some("AB"));
    }

    #[test]
    fn only_https_images_are_kept() {
        assert_eq!(safe_image_url(Some("https://x.io/a.png")).as_deref(), Some("https://x.io/a.png"));
        for bad in ["javascript:alert(1)", "data:image/png;base64,AAAA", "http://x.io/a.png", "/local.png", ""] {
            assert_eq!(safe_image_url(Some(bad)), None, "{bad}");
        }
    }
}
