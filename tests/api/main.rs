//! One test binary for the HTTP-level tests (sqlx test databases + in-process fake provider).

mod fake_op;
mod helpers;

mod admin;
mod backchannel;
mod cache;
mod callback;
mod id_token;
mod lifecycle;
mod pages;
mod rate_limit;
mod resilience;
mod sessions;
mod sign_in;
