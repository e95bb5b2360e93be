//! Tera templates, compiled into the binary (the app renders its pages from whatever folder it
//! is started in) and parsed once at start. Autoescaping is on for `.html`.

use anyhow::Context;
use tera::Tera;

/// Every template, by the name pages render it with.
const TEMPLATES: [(&str, &str); 7] = [
    ("base.html", include_str!("../templates/base.html")),
    ("home.html", include_str!("../templates/home.html")),
    ("error.html", include_str!("../templates/error.html")),
    ("sign_out.html", include_str!("../templates/sign_out.html")),
    ("account_sessions.html", include_str!("../templates/account_sessions.html")),
    ("admin/users.html", include_str!("../templates/admin/users.html")),
    ("admin/user.html", include_str!("../templates/admin/user.html")),
];

pub fn load() -> anyhow::Result<Tera> {
    let mut tera = Tera::default();
    tera.add_raw_templates(TEMPLATES).context("parsing the built-in templates")?;
    Ok(tera)
}

/// Renders `name` with a serializable page context.
pub fn render(tera: &Tera, name: &str, page: &impl serde::Serialize) -> anyhow::Result<String> {
    let context = tera::Context::from_serialize(page).context("building the template context")?;
    tera.render(name, &context).with_context(|| format!("rendering {name}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Tera fails at render time, so every template is rendered here with a full sample context.
    #[test]
    fn every_template_renders_and_escapes_every_value() {
        let tera = load().expect("templates load");
        let user = json!({
            "display_name": "Alice <b>", "username": "alice", "email": "a@example.com", "email_verified": true,
            "avatar_url": "https://x.io/a.png", "hugging_face": "alice-hf",
            "hf_avatar_url": "https://x.io/h.png"
        });
        let cases = [
            ("home.html", json!({"user": user, "is_admin": true, "csrf_token": "t"})),
            ("home.html", json!({"user": null, "is_admin": false, "csrf_token": null})),
            ("sign_out.html", json!({"csrf_token": "t"})),
            (
                "error.html",
                json!({"title": "Bad request", "message": "m", "request_id": "r", "show_sign_in": true,
                "continue_to": "/sign-in/step-up?return_to=%2Fadmin"}),
            ),
            (
                "account_sessions.html",
                json!({"sessions": [{"id": "s1", "current": true, "created_at": "c",
                "last_seen_at": "l", "expires_at": "e", "device": "d", "ip": "1.2.3.4"}], "others": 0, "csrf_token": "t"}),
            ),
            (
                "admin/users.html",
                json!({"counts": {"users": 1, "signed_in_users": 1, "active_sessions": 1, "sign_ins_24h": 1},
                "counts_age_secs": 0, "view": "active", "q": "", "users": [{"id": "u1", "display_name": "A",
                "username": null, "email": null, "avatar_url": null, "hugging_face": null, "roles": ["admin"],
                "first_seen": "f", "last_sign_in": "l", "last_activity": "a", "active_sessions": 1}],
                "next_url": "/admin?cursor=x", "first_url": null}),
            ),
            (
                "admin/user.html",
                json!({"id": "u1", "display_name": "A", "subject": "s", "username": "a", "email": "e",
                "email_verified": false, "avatar_url": null, "roles": [], "hugging_face": "hf-1",
                "hf_avatar_url": null, "first_seen": "f", "last_sign_in": "l", "last_activity": "a", "sign_in_count": 1,
                "sessions": [{"id": "s1", "created": "c", "last_seen": "l", "expires": "e", "user_agent": "ua",
                "ip": "ip", "has_logto_sid": true}], "csrf_token": "t", "step_up_needed": true}),
            ),
        ];
        for (name, context) in &cases {
            let html = render(&tera, name, context).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert!(html.contains("<html"), "{name}");
        }
        for (name, mut context) in cases {
            let mut probes = 0;
            make_hostile(&mut context, &mut probes);
            if probes == 0 {
                continue; // the signed-out home page: nothing to show
            }
            let html = render(&tera, name, &context).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            let mut shown = 0;
            for n in 0..probes {
                let id = format!("probe{n}x");
                if !html.contains(&id) {
                    continue; // a value this page does not show
                }
                shown += 1;
                assert!(html.contains(&format!("&lt;{id}&gt;&quot;&#39;")), "{name}: {id} is escaped:\n{html}");
                for raw in [format!("<{id}"), format!("{id}>"), format!("{id}&gt;\""), format!("{id}&gt;&quot;'")] {
                    assert!(!html.contains(&raw), "{name}: {raw} rendered raw:\n{html}");
                }
            }
            assert!(shown > 0, "{name}: no hostile value reached the page");
        }
    }

    /// Replaces every string of a page context with a distinct markup probe (`<probeNx>"'`).
    fn make_hostile(value: &mut serde_json::Value, probes: &mut usize) {
        match value {
            serde_json::Value::String(s) => {
                *s = format!("<probe{probes}x>\"'");
                *probes += 1;
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| make_hostile(v, probes)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|v| make_hostile(v, probes)),
            _ => {}
        }
    }
}
