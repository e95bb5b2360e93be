//! The names of the values kept in a session's state (actix-session's map). Only `session`
//! code uses them. Everything else a session has is a column of its row (`session::repo`).

/// A random value that ties pending sign-ins (`pending_logins`) to this browser.
pub const LOGIN_BINDING: &str = "login_binding";
/// The stable public id of a signed-in session (`sessions.session_id`).
pub const SESSION_ID: &str = "session_id";
/// actix-identity's key for the signed-in user's id (its default). The app never reads it: it
/// names it only to write a new session's state in the sign-in's statement, and
/// `TypedSession::renew_for` checks that actix-identity's own login produced exactly that state.
pub const IDENTITY: &str = "actix_identity.user_id";
/// Present only in the request that signed in, never stored: the key of the row that the
/// sign-in wrote, for the store to hand to actix-session (see `session::store`).
pub const CREATED_KEY: &str = "created_session_key";

/// The only values a session without a signed-in user may hold.
pub const PRE_LOGIN: [&str; 1] = [LOGIN_BINDING];
