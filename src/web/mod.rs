//! The route table.

pub mod account;
pub mod admin;
pub mod api;
pub mod auth;
pub mod backchannel;
pub mod cookies;
pub mod csrf;
pub mod errors;
pub mod extract;
pub mod headers;
pub mod health;
pub mod home;
pub mod rate_limit;
pub mod server;
pub mod state;

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use crate::error::Result;
use state::AppState;

/// A redirect that the browser follows with a GET.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, location)).finish()
}

/// The HTML page `template` rendered with `context` (autoescaped).
pub fn page(state: &AppState, template: &str, context: &impl serde::Serialize) -> Result<HttpResponse> {
    let html = crate::templates::render(&state.tera, template, context)?;
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(html))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home::home))
        .route("/sign-in", web::get().to(auth::sign_in))
        .route("/sign-in/huggingface", web::get().to(auth::sign_in_huggingface))
        .route("/sign-in/step-up", web::get().to(auth::sign_in_step_up))
        .route("/callback", web::get().to(auth::callback))
        .route("/sign-out", web::get().to(auth::sign_out_page))
        .route("/sign-out", web::post().to(auth::sign_out))
        .route("/api/me", web::get().to(api::me))
        .route("/api/access-token", web::get().to(api::access_token))
        .route("/admin", web::get().to(admin::users_page))
        .route("/admin/users/{id}", web::get().to(admin::user_page))
        .route("/admin/users/{id}/sign-out-everywhere", web::post().to(admin::sign_out_everywhere))
        .route("/admin/sessions/{id}/revoke", web::post().to(admin::revoke_session))
        .route("/api/admin/users", web::get().to(admin::users_json))
        .route("/account/sessions", web::get().to(account::sessions_page))
        .route("/account/sessions/sign-out-others", web::post().to(account::sign_out_others))
        .route("/account/sessions/{id}/sign-out", web::post().to(account::sign_out_session))
        .service(
            web::resource("/backchannel-logout")
                .app_data(web::PayloadConfig::new(backchannel::MAX_BODY))
                .route(web::post().to(backchannel::backchannel_logout)),
        )
        .service(web::resource("/healthz").route(web::get().to(health::healthz)).route(web::head().to(health::healthz)))
        .service(web::resource("/readyz").route(web::get().to(health::readyz)).route(web::head().to(health::readyz)))
        .route("/static/css/app.css", web::get().to(stylesheet))
        .default_service(web::to(not_found));
}

async fn not_found() -> crate::error::Result<HttpResponse> {
    Err(crate::error::AppError::NotFound)
}

/// The stylesheet, compiled into the binary like the templates.
async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((actix_web::http::header::CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!("../../static/css/app.css"))
}
