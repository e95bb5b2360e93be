//! The one error type of the app. Its mapping to HTTP (status, public code and message,
//! `Retry-After`) is in one place: the web layer's `errors` module.

use std::fmt;

pub type Result<T, E = AppError> = std::result::Result<T, E>;

#[derive(thiserror::Error)]
pub enum AppError {
    /// No signed-in user: pages redirect to sign-in, `/api/` answers 401.
    #[error("not signed in")]
    NotAuthenticated,
    #[error("forbidden")]
    Forbidden,
    /// An admin action needs a sign-in more recent than `ADMIN_MAX_AUTH_AGE`; the page offers
    /// a step-up sign-in that comes back to `return_to`.
    #[error("a recent sign-in is required")]
    StepUpRequired { return_to: String },
    #[error("not found")]
    NotFound,
    /// A per-client rate limit was reached; the client may retry after this many seconds.
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    /// The client sent something invalid; the message is shown to it.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Sign-in could not be completed; the message is shown (it never holds provider text).
    #[error("sign-in failed: {public}")]
    SignIn {
        public: &'static str,
        #[source]
        cause: anyhow::Error,
    },
    /// Logto could not be reached or answered with a server error.
    #[error("identity provider unavailable")]
    ProviderUnavailable(#[source] anyhow::Error),
    /// Logto (or this session's refresh already under way) asks to come back later: 503 with
    /// `Retry-After`.
    #[error("identity provider busy")]
    ProviderBusy { retry_after_secs: u64 },
    /// Logto answered something unusable (not the protocol's shape): 502, never a 500.
    #[error("invalid identity provider response")]
    ProviderInvalidResponse(#[source] anyhow::Error),
    /// Postgres could not be reached.
    #[error("database unavailable")]
    DatabaseUnavailable(#[source] anyhow::Error),
    #[error("unexpected error")]
    Unexpected(#[from] anyhow::Error),
}

impl AppError {
    pub fn sign_in(public: &'static str, cause: impl Into<anyhow::Error>) -> Self {
        Self::SignIn { public, cause: cause.into() }
    }

    /// Classifies a database error: connectivity problems are an outage (503), the rest a bug.
    pub fn database(err: sqlx::Error) -> Self {
        if is_database_outage(&err) { Self::DatabaseUnavailable(err.into()) } else { Self::Unexpected(err.into()) }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        Self::database(err)
    }
}

/// True when `err` means "Postgres is not there right now" rather than a bad query.
pub fn is_database_outage(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => {
            // Class 08 (connection exception), 57P01-57P03 (admin shutdown, crash shutdown,
            // cannot connect now), 53300 (too many connections).
            db.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c == "53300")
        }
        _ => false,
    }
}

impl fmt::Debug for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        error_chain_fmt(self, f)
    }
}

/// Writes an error and its chain of causes, one per line (for logs).
pub fn error_chain_fmt(e: &impl std::error::Error, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{e}")?;
    let mut current = e.source();
    while let Some(cause) = current {
        write!(f, "\n  caused by: {cause}")?;
        current = cause.source();
    }
    Ok(())
}
