#![deny(clippy::self_named_module_files)]

pub mod admin;
pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod routes;
pub mod session;
pub mod startup;
pub mod telemetry;
pub mod templates;
pub mod users;

/// jsonwebtoken 11 needs a process-wide crypto provider: aws-lc-rs (the only one built in, so
/// jsonwebtoken would also pick it by itself). Returns whether it is the one in use.
pub fn install_crypto_provider() -> bool {
    let ours = &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
    match ours.install_default() {
        Ok(()) => true,
        Err(existing) => std::ptr::eq(existing, ours),
    }
}
