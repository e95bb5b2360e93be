//! JSON API for the signed-in user.

use actix_web::HttpResponse;
use serde::Serialize;

use crate::error::Result;
use crate::web::extract::CurrentUser;

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
    let (u, p) = (&user.0, &user.0.profile);
    Ok(HttpResponse::Ok().json(Me {
        sub: &u.subject,
        name: p.name.as_deref(),
        username: p.username.as_deref(),
        email: p.email.as_deref(),
        email_verified: p.email_verified,
        picture: p.picture.as_deref(),
        roles: &p.roles,
        identities: &p.identities,
    }))
}

#[derive(serde::Deserialize)]
pub struct AccessTokenQuery {
    resource: Option<String>,
    organization_id: Option<String>,
}

/// `GET /api/access-token[?resource=…|organization_id=…]`: an access token for this session, the
/// session's own or one for a Logto API resource / organization. Same-origin callers only.
pub async fn access_token(
    req: actix_web::HttpRequest,
    state: actix_web::web::Data<crate::web::state::AppState>,
    me: crate::web::extract::SignedInSession,
    query: actix_web::web::Query<AccessTokenQuery>,
) -> Result<HttpResponse> {
    use crate::error::AppError;
    use crate::lifecycle::refresh::{self, Target};
    if !crate::web::csrf::same_origin(&req, &state) {
        return Err(AppError::Forbidden);
    }
    state.rate_limits.check_access_token(me.session_id)?;
    let valid = |v: &str| !v.is_empty() && v.len() <= 512 && !v.chars().any(char::is_control);
    let target = match (query.resource.as_deref(), query.organization_id.as_deref()) {
        (None, None) => Target::Session,
        (Some(r), None) if state.settings.is_configured_resource(r) => Target::Resource(r.to_owned()),
        (Some(r), None) if valid(r) && url::Url::parse(r).is_ok() => {
            return Err(AppError::BadRequest(
                "This API resource is not configured for this app (LOGTO_RESOURCES); Logto grants tokens only for resources requested at sign-in.".into(),
            ));
        }
        (None, Some(o)) if valid(o) => Target::Organization(o.to_owned()),
        (Some(_), Some(_)) => {
            return Err(AppError::BadRequest("Ask for a resource or an organization, not both.".into()));
        }
        _ => {
            return Err(AppError::BadRequest("The resource must be an absolute URI.".into()));
        }
    };
    let token = refresh::access_token(&state.services, me.session_id, &target).await?;
    Ok(HttpResponse::Ok().json(token))
}
