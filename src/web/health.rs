//! Liveness and readiness.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::web::errors::Rendered;
use crate::web::state::AppState;

/// The process is up (no dependency is checked).
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready to sign people in: Postgres answers and the provider's metadata is loaded.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = crate::db::ping(&state.pool).await;
    let provider = state.provider.metadata().is_some();
    if !provider {
        state.provider.request_discovery();
    }
    let body = json!({
        "database": if database { "ok" } else { "unavailable" },
        "provider": if provider { "ok" } else { "unavailable" },
    });
    if database && provider {
        HttpResponse::Ok().json(body)
    } else {
        let mut res = HttpResponse::ServiceUnavailable().json(body);
        res.extensions_mut().insert(Rendered);
        res
    }
}
