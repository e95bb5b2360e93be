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

/// jsonwebtoken 11 needs a process-wide crypto provider; install the pure-Rust one once.
pub fn install_crypto_provider() {
    // Err means one is installed already, which is fine.
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
}
