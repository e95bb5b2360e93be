//! JSON API for the signed-in user.

use actix_web::HttpResponse;
use serde::Serialize;

use crate::auth::CurrentUser;
use crate::error::Result;

#[derive(Serialize)]
struct Me<'a> {
    sub: &'a str,
    name: Option<&'a str>,
    username: Option<&'a str>,
    email: Option<&'a str>,
    email_verified: bool,
    picture: Option<&'a str>,
    roles: &'a [String],
    identities: &'a serde_json::Value,
}

pub async fn me(user: CurrentUser) -> Result<HttpResponse> {
    let u = &user.0;
    Ok(HttpResponse::Ok().json(Me {
        sub: &u.subject,
        name: u.name.as_deref(),
        username: u.username.as_deref(),
        email: u.email.as_deref(),
        email_verified: u.email_verified,
        picture: u.picture.as_deref(),
        roles: &u.roles,
        identities: &u.identities,
    }))
}
