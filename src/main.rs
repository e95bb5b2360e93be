use std::process::ExitCode;

use logto_signin::config::Settings;
use logto_signin::startup::{Application, MIGRATOR, connect_pool};

#[tokio::main]
async fn main() -> ExitCode {
    // A missing .env is fine; the environment may hold everything.
    let _ = dotenvy::dotenv();
    logto_signin::telemetry::init();
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {}
        Some("generate-secret") => {
            println!("{}", logto_signin::session::random_secret());
            return ExitCode::SUCCESS;
        }
        Some("healthcheck") => return healthcheck().await,
        Some(other) => {
            eprintln!("unknown command `{other}`; use `serve` (default), `generate-secret` or `healthcheck`");
            return ExitCode::from(2);
        }
    }
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    match run(settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    if settings.session_secret_bytes().starts_with(b"replace-me") {
        tracing::warn!(
            "SESSION_SECRET is the example value from .env.example: generate your own with `logto-signin generate-secret` before anyone else uses this app"
        );
    }
    let pool = connect_pool(&settings)?;
    MIGRATOR.run(&pool).await.map_err(|e| anyhow::anyhow!("DATABASE_URL: running migrations failed: {e}"))?;
    let app = Application::build(settings, pool).await?;
    tracing::info!(port = app.port(), "listening");
    app.run_until_stopped().await?;
    Ok(())
}

/// `logto-signin healthcheck`: exits 0 when `/healthz` on this host's PORT answers 200
/// (for container health checks; the runtime image has no curl).
async fn healthcheck() -> ExitCode {
    let port = std::env::var("PORT").ok().and_then(|p| p.parse::<u16>().ok()).unwrap_or(3000);
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(3)).build();
    let ok = match client {
        Ok(client) => {
            client.get(format!("http://127.0.0.1:{port}/healthz")).send().await.is_ok_and(|r| r.status().is_success())
        }
        Err(_) => false,
    };
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
