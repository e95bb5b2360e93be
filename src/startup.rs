//! Building and running the HTTP server.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_identity::IdentityMiddleware;
use actix_session::SessionMiddleware;
use actix_session::config::{CookieContentSecurity, PersistentSession, TtlExtensionPolicy};
use actix_web::cookie::{Key, SameSite};
use actix_web::dev::Server;
use actix_web::middleware::{ErrorHandlers, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tera::Tera;
use tracing_actix_web::TracingLogger;

use crate::auth::discovery::Provider;
use crate::auth::http::ProviderHttp;
use crate::auth::jwks::JwksCache;
use crate::config::Settings;
use crate::routes;
use crate::services::Services;
use crate::session::cache::Caches;
use crate::session::store::PgSessionStore;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

pub const SESSION_COOKIE: &str = "logto_signin_session";
/// Under https the cookie carries the `__Host-` prefix: the browser then only accepts it as
/// `Secure`, host-only and `Path=/`, so a sibling subdomain cannot plant or overwrite it.
pub const SECURE_SESSION_COOKIE: &str = "__Host-logto_signin_session";

pub fn session_cookie_name(settings: &Settings) -> &'static str {
    if settings.uses_https() { SECURE_SESSION_COOKIE } else { SESSION_COOKIE }
}

/// Shared by every handler through `web::Data`: the domain's services and what only the web
/// layer uses.
pub struct AppState {
    pub services: Arc<Services>,
    pub tera: Tera,
    pub headers: routes::headers::SecurityHeaders,
    pub rate_limits: routes::rate_limit::RateLimits,
    /// Verified back-channel logouts waiting for Postgres.
    pub logout_retries: routes::backchannel::RetryQueue,
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
}

pub struct Application {
    port: u16,
    server: Server,
}

/// A connection idle for longer than this is pinged before use (it may have been cut by a
/// Postgres restart or a network device); busier connections are used directly.
const PING_IDLE_CONNECTIONS_AFTER: Duration = Duration::from_secs(5);

/// A pool that gives up quickly when Postgres is down (requests get a 503, not a hang).
///
/// sqlx pings every connection before handing it out by default: one extra round trip per
/// query. Here only connections that sat idle are pinged; a connection broken under load fails
/// its one query (a 503) and is discarded.
pub fn connect_pool(settings: &Settings) -> anyhow::Result<PgPool> {
    use secrecy::ExposeSecret;
    let options = settings
        .database_url
        .expose_secret()
        .parse::<sqlx::postgres::PgConnectOptions>()
        .context("DATABASE_URL: not a valid Postgres URL")?;
    Ok(PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(3))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_IDLE_CONNECTIONS_AFTER {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_lazy_with(options))
}

/// Keeps the rate limiters' memory to recently seen clients.
async fn forget_idle_rate_limit_clients(state: web::Data<AppState>) {
    let mut every_minute = tokio::time::interval(Duration::from_secs(60));
    loop {
        every_minute.tick().await;
        state.rate_limits.forget_idle_clients();
    }
}

/// Fetches Logto's JWKS every half `JWKS_MAX_AGE`, so sign-ins rarely wait for a fetch and a
/// key Logto stopped publishing stops being accepted within `JWKS_MAX_AGE`.
async fn keep_jwks_fresh(state: Arc<Services>) {
    let mut ticks = tokio::time::interval(state.settings.jwks_max_age / 2);
    loop {
        ticks.tick().await;
        if let Some(metadata) = state.provider.metadata()
            && let Err(error) = state.jwks.refresh(state.provider.http(), metadata.jwks_uri.as_str()).await
        {
            tracing::warn!(%error, "background JWKS refresh failed");
        }
    }
}

impl Application {
    /// Binds the listener, starts provider discovery in the background and builds the server.
    /// Migrations are the caller's job (`main` runs them; tests get a migrated database).
    pub async fn build(settings: Settings, pool: PgPool) -> anyhow::Result<Self> {
        let listener = TcpListener::bind((settings.host.as_str(), settings.port))
            .with_context(|| format!("HOST/PORT: cannot listen on {}:{}", settings.host, settings.port))?;
        Self::build_on(listener, settings, pool).await
    }

    /// Like `build`, on a listener the caller bound (when the URL must be known beforehand).
    pub async fn build_on(listener: TcpListener, settings: Settings, pool: PgPool) -> anyhow::Result<Self> {
        crate::install_crypto_provider();
        let port = listener.local_addr()?.port();
        let settings = Arc::new(settings);

        let http = ProviderHttp::new(Duration::from_secs(2), Duration::from_secs(4))?;
        let provider = Provider::new(settings.clone(), http);
        tokio::spawn(provider.clone().keep_fresh());
        tokio::spawn(crate::session::sweeper::run(pool.clone(), Duration::from_secs(60)));

        let caches = settings.session_cache.then(|| {
            let caches = Arc::new(Caches::new(settings.session_cache_entries));
            tokio::spawn(caches.clone().listen(
                pool.clone(),
                settings.database_listen_url.as_ref().map(|u| secrecy::ExposeSecret::expose_secret(u).to_owned()),
            ));
            caches
        });
        let store = PgSessionStore::new(
            pool.clone(),
            settings.session_idle_timeout,
            settings.session_max_lifetime,
            caches.clone(),
        );
        let services = Arc::new(Services {
            settings: settings.clone(),
            pool: pool.clone(),
            provider,
            jwks: JwksCache::new(settings.jwks_max_age, settings.jwks_refetch_cooldown),
            caches,
            token_cipher: crate::session::sealed::TokenCipher::new(settings.session_secret_bytes()),
            refresh_turns: Default::default(),
            admin_counts: crate::admin::CountsCache::default(),
            search_trigrams: Arc::default(),
            lifetimes: store.lifetimes(),
        });
        let state = web::Data::new(AppState {
            services: services.clone(),
            tera: crate::templates::load()?,
            headers: routes::headers::SecurityHeaders::new(&settings),
            rate_limits: routes::rate_limit::RateLimits::new(&settings),
            logout_retries: Default::default(),
        });
        tokio::spawn(forget_idle_rate_limit_clients(state.clone()));
        tokio::spawn(keep_jwks_fresh(services.clone()));
        tokio::spawn(crate::auth::revalidation::run(services.clone()));
        tokio::spawn(routes::backchannel::retry_failed_logouts(state.clone()));
        let key = Key::derive_from(settings.session_secret_bytes());
        let max_lifetime = actix_web::cookie::time::Duration::seconds(
            i64::try_from(settings.session_max_lifetime.as_secs()).unwrap_or(i64::MAX),
        );
        let secure = settings.uses_https();
        let cookie_name = session_cookie_name(&settings);

        let server = HttpServer::new(move || {
            let session = SessionMiddleware::builder(store.clone(), key.clone())
                .cookie_name(cookie_name.to_owned())
                .cookie_http_only(true)
                .cookie_same_site(SameSite::Lax)
                .cookie_path("/".to_owned())
                .cookie_secure(secure)
                .cookie_content_security(CookieContentSecurity::Private)
                // The cookie lives as long as the absolute lifetime; the idle timeout is
                // enforced by the store, server-side.
                .session_lifecycle(
                    PersistentSession::default()
                        .session_ttl(max_lifetime)
                        .session_ttl_extension_policy(TtlExtensionPolicy::OnStateChanges),
                )
                .build();
            App::new()
                .app_data(state.clone())
                .app_data(routes::errors::form_config())
                .app_data(routes::errors::query_config())
                .wrap(ErrorHandlers::new().default_handler(routes::errors::render_error_handler))
                .wrap(IdentityMiddleware::default())
                .wrap(session)
                .wrap(from_fn(routes::headers::apply))
                .wrap(from_fn(routes::errors::session_store_failure))
                .wrap(from_fn(routes::headers::server_timing))
                .wrap(TracingLogger::<crate::telemetry::RequestSpan>::new())
                .configure(routes::configure)
        })
        .listen(listener)?
        .shutdown_timeout(10)
        .run();
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
