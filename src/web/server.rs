//! The HTTP server: middleware in order, the route table, and the web layer's background tasks.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_identity::IdentityMiddleware;
use actix_web::cookie::Key;
use actix_web::dev::Server;
use actix_web::middleware::{ErrorHandlers, from_fn};
use actix_web::{App, HttpServer, web};

use super::state::AppState;
use super::{backchannel, cookies, errors, headers, rate_limit};
use crate::lifecycle::Services;
use crate::session::store::PgSessionStore;

/// Starts serving on `listener` (and the web layer's background tasks).
pub fn serve(listener: TcpListener, services: Arc<Services>, store: PgSessionStore) -> anyhow::Result<Server> {
    let settings = services.settings.clone();
    let state = web::Data::new(AppState {
        services,
        tera: crate::templates::load()?,
        headers: headers::SecurityHeaders::new(&settings),
        rate_limits: rate_limit::RateLimits::new(&settings),
        logout_retries: Default::default(),
    });
    tokio::spawn(forget_idle_rate_limit_clients(state.clone()));
    tokio::spawn(backchannel::retry_failed_logouts(state.clone()));
    let key = Key::derive_from(settings.session_secret_bytes());

    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(errors::form_config())
            .app_data(errors::query_config())
            .wrap(ErrorHandlers::new().default_handler(errors::render_error_handler))
            .wrap(IdentityMiddleware::default())
            .wrap(cookies::session_middleware(store.clone(), key.clone(), &settings))
            .wrap(from_fn(headers::apply))
            .wrap(from_fn(errors::session_store_failure))
            .wrap(from_fn(headers::server_timing))
            .wrap(tracing_actix_web::TracingLogger::<crate::telemetry::RequestSpan>::new())
            .configure(super::configure)
    })
    .listen(listener)?
    .shutdown_timeout(10)
    .run();
    Ok(server)
}

/// Keeps the rate limiters' memory to recently seen clients.
async fn forget_idle_rate_limit_clients(state: web::Data<AppState>) {
    let mut every_minute = tokio::time::interval(Duration::from_secs(60));
    loop {
        every_minute.tick().await;
        state.rate_limits.forget_idle_clients();
    }
}
