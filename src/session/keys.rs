//! The names of the values kept in a session's state. Only `session` code uses them.

/// actix-identity's default key for the signed-in user's id (a `users.user_id`).
pub const IDENTITY: &str = "actix_identity.user_id";
/// A random value that ties pending sign-ins (`pending_logins`) to this browser.
pub const LOGIN_BINDING: &str = "login_binding";
/// The synchronizer CSRF token of a signed-in session.
pub const CSRF_TOKEN: &str = "csrf_token";
/// The stable public id of a signed-in session.
pub const SESSION_ID: &str = "session_id";
/// The session's tokens (`TokenSet`), present only in the request that signed in: the store
/// moves them into the `sessions` token columns.
pub const TOKENS: &str = "tokens";
/// Logto's session id (`sid` claim), for back-channel logout.
pub const LOGTO_SID: &str = "logto_sid";
pub const USER_AGENT: &str = "user_agent";
pub const CLIENT_IP: &str = "client_ip";
/// When the user last authenticated at Logto (`auth_time`, unix seconds), when the ID token
/// said so; admin actions need it recent.
pub const AUTH_TIME: &str = "auth_time";
/// The signed-in user's profile, loaded with the session by the store for this request only
/// (never written back).
pub const LOADED_USER: &str = "__loaded_user";
