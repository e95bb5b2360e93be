//! The session cookie: its name and every attribute, in one place.

use actix_session::SessionMiddleware;
use actix_session::config::{CookieContentSecurity, PersistentSession, TtlExtensionPolicy};
use actix_web::cookie::{Key, SameSite};

use crate::config::Settings;
use crate::session::store::PgSessionStore;

pub const SESSION_COOKIE: &str = "logto_signin_session";
/// Under https the cookie carries the `__Host-` prefix: the browser then only accepts it as
/// `Secure`, host-only and `Path=/`, so a sibling subdomain cannot plant or overwrite it.
pub const SECURE_SESSION_COOKIE: &str = "__Host-logto_signin_session";

pub fn session_cookie_name(settings: &Settings) -> &'static str {
    if settings.uses_https() { SECURE_SESSION_COOKIE } else { SESSION_COOKIE }
}

/// actix-session over the Postgres store: an encrypted (private) cookie holding only the
/// session key; `HttpOnly`, `SameSite=Lax`, `Path=/`, host-only, `Secure` under https. The
/// cookie lives as long as the absolute lifetime; the idle timeout is enforced by the store,
/// server-side.
pub fn session_middleware(store: PgSessionStore, key: Key, settings: &Settings) -> SessionMiddleware<PgSessionStore> {
    let max_lifetime = actix_web::cookie::time::Duration::seconds(
        i64::try_from(settings.session_max_lifetime.as_secs()).unwrap_or(i64::MAX),
    );
    SessionMiddleware::builder(store, key)
        .cookie_name(session_cookie_name(settings).to_owned())
        .cookie_http_only(true)
        .cookie_same_site(SameSite::Lax)
        .cookie_path("/".to_owned())
        .cookie_domain(None)
        .cookie_secure(settings.uses_https())
        .cookie_content_security(CookieContentSecurity::Private)
        .session_lifecycle(
            PersistentSession::default()
                .session_ttl(max_lifetime)
                .session_ttl_extension_policy(TtlExtensionPolicy::OnStateChanges),
        )
        .build()
}
