//! Starting the application: the database pool, the provider client, the caches, the domain's
//! background tasks, then the web server (`web::server`).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use anyhow::Context;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::auth::discovery::Provider;
use crate::auth::http::ProviderHttp;
use crate::auth::jwks::JwksCache;
use crate::cache::Caches;
use crate::config::Settings;
use crate::lifecycle::Services;
use crate::session::store::PgSessionStore;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

pub use crate::web::cookies::{SECURE_SESSION_COOKIE, SESSION_COOKIE, session_cookie_name};

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
            records: caches.as_ref().map(|_| crate::session::records::RecordCache::new(settings.session_cache_entries)),
            caches,
            token_cipher: crate::session::sealed::TokenCipher::new(settings.session_secret_bytes()),
            refresh_turns: Default::default(),
            admin_counts: Arc::default(),
            lifetimes: store.lifetimes(),
        });
        tokio::spawn(keep_jwks_fresh(services.clone()));
        tokio::spawn(crate::lifecycle::revalidation::run(services.clone()));
        let server = crate::web::server::serve(listener, services, store)?;
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
