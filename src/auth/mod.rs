//! Signing in with Logto, the protocol: discovery, keys, the code + PKCE flow, ID token and
//! logout token checks, pending sign-ins.

pub mod callback;
pub mod discovery;
pub mod flow;
pub mod http;
pub mod id_token;
pub mod jwks;
pub mod jwt;
pub mod logout_token;
pub mod pending;
pub mod return_to;
