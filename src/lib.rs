#![deny(clippy::self_named_module_files)]

pub mod admin;
pub mod auth;
pub mod cache;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod db;
pub mod error;
pub mod lifecycle;
pub mod session;
pub mod startup;
pub mod telemetry;
pub mod templates;
pub mod users;
pub mod web;

/// jsonwebtoken 11 needs a process-wide crypto provider: aws-lc-rs, named here although it is
/// the only one built in. A second call (tests start many apps) changes nothing.
pub fn install_crypto_provider() {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}
