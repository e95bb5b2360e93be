//! Tera templates, loaded once from `templates/`. Autoescaping is on for `.html`.

use anyhow::Context;
use tera::Tera;

pub fn load(dir: &str) -> anyhow::Result<Tera> {
    let mut tera = Tera::default();
    tera.load_from_glob(&format!("{}/**/*.html", dir.trim_end_matches('/')))
        .with_context(|| format!("loading templates from {dir}"))?;
    Ok(tera)
}

/// Renders `name` with a serializable page context.
pub fn render(tera: &Tera, name: &str, page: &impl serde::Serialize) -> anyhow::Result<String> {
    let context = tera::Context::from_serialize(page).context("building the template context")?;
    tera.render(name, &context).with_context(|| format!("rendering {name}"))
}
