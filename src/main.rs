use std::process::ExitCode;

use logto_signin::config::Settings;
use logto_signin::startup::{Application, MIGRATOR, connect_pool};

#[tokio::main]
async fn main() -> ExitCode {
    // A missing .env is fine; the environment may hold everything.
    let _ = dotenvy::dotenv();
    logto_signin::telemetry::init();
    if std::env::args().nth(1).as_deref() == Some("generate-secret") {
        println!("{}", logto_signin::session::random_secret());
        return ExitCode::SUCCESS;
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
    let pool = connect_pool(&settings)?;
    MIGRATOR
        .run(&pool)
        .await
        .map_err(|e| anyhow::anyhow!("DATABASE_URL: running migrations failed: {e}"))?;
    let app = Application::build(settings, pool, "templates").await?;
    tracing::info!(port = app.port(), "listening");
    app.run_until_stopped().await?;
    Ok(())
}
