//! Admin listing at scale: seeds 1,000,000 users and 1,000,000 active sessions into a separate
//! database, runs the app (release build) in-process, and prints the app's own time per request
//! (`Server-Timing`) for every admin page, search and JSON listing.
//!
//!     DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench admin
//!
//! Options (environment): BENCH_USERS (default 1000000), BENCH_REQUESTS per case and run
//! (default 300), BENCH_RUNS (default 3; every figure is the median of the runs),
//! BENCH_KEEP_DB=1 to reuse an already seeded database.

use std::time::{Duration, Instant};

use actix_web::cookie::{Cookie, CookieJar, Key};
use logto_signin::config::Settings;
use logto_signin::startup::{Application, MIGRATOR, SESSION_COOKIE};
use sha2::{Digest, Sha256};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor, PgConnection, PgPool};

const DB_NAME: &str = "logto_signin_bench_admin";
const SECRET: &str = "bench-session-secret-0123456789-0123456789-0123456789-0123456789-0123456789";
const SESSION_KEY: &str = "BenchAdminSessionKey0000000000000000000000000000000000000000000000";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let users = env_or("BENCH_USERS", 1_000_000);
    let requests = env_or("BENCH_REQUESTS", 300);
    let runs = env_or("BENCH_RUNS", 3).max(1);
    let keep = std::env::var("BENCH_KEEP_DB").is_ok();

    let url = {
        let mut u = url::Url::parse(&base)?;
        u.set_path(DB_NAME);
        u.to_string()
    };
    if !keep {
        let mut admin = PgConnection::connect(&base).await?;
        admin.execute(sqlx::AssertSqlSafe(format!("drop database if exists {DB_NAME} with (force)"))).await?;
        admin.execute(sqlx::AssertSqlSafe(format!("create database {DB_NAME}"))).await?;
    }
    let pool = PgPoolOptions::new().max_connections(16).connect(&url).await?;
    MIGRATOR.run(&pool).await?;
    if !keep {
        let started = Instant::now();
        seed(&pool, users).await?;
        eprintln!("seeded {users} users and sessions in {:.1} s", started.elapsed().as_secs_f64());
    }
    let admin_id: uuid::Uuid =
        sqlx::query_scalar("select user_id from users where subject = 'u1000'").fetch_one(&pool).await?;
    let cookie = admin_cookie(&pool, admin_id).await?;

    let settings = Settings::from_lookup(|k| match k {
        // No provider: admin pages need none, and the app starts without one.
        "LOGTO_ENDPOINT" => Some("http://127.0.0.1:9".into()),
        "LOGTO_APP_ID" => Some("bench".into()),
        "LOGTO_APP_SECRET" => Some("bench".into()),
        "DATABASE_URL" => Some(url.clone()),
        "SESSION_SECRET" => Some(SECRET.into()),
        "PORT" => Some("0".into()),
        "SERVER_TIMING" => Some("true".into()),
        _ => None,
    })?;
    let app = Application::build(settings, pool.clone()).await?;
    let base_url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let get = |path: String| {
        let client = client.clone();
        let cookie = cookie.clone();
        let url = format!("{base_url}{path}");
        async move {
            let started = Instant::now();
            let response = client.get(url).header("cookie", format!("{SESSION_COOKIE}={cookie}")).send().await?;
            let status = response.status().as_u16();
            let server = response
                .headers()
                .get("server-timing")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split("app;dur=").nth(1))
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(f64::NAN);
            let body = response.text().await?;
            anyhow::Ok((status, server, started.elapsed(), body))
        }
    };

    // Cursors for page 2 and a deep page, found by walking the JSON listing.
    let mut cursor = String::new();
    let mut cursors = vec![];
    for _ in 0..20 {
        let path =
            if cursor.is_empty() { "/api/admin/users".to_owned() } else { format!("/api/admin/users?cursor={cursor}") };
        let (_, _, _, body) = get(path).await?;
        let json: serde_json::Value = serde_json::from_str(&body)?;
        cursor = json["next_cursor"].as_str().unwrap_or_default().to_owned();
        cursors.push(cursor.clone());
    }
    let some_user: uuid::Uuid = sqlx::query_scalar("select user_id from users where subject = $1")
        .bind(format!("u{}", users * 7 / 9))
        .fetch_one(&pool)
        .await?;

    let cases: Vec<(&str, String)> = vec![
        ("GET /admin (signed in now, page 1)", "/admin".into()),
        ("GET /admin page 2 (cursor)", format!("/admin?view=active&cursor={}", cursors[0])),
        ("GET /admin page 21 (cursor)", format!("/admin?view=active&cursor={}", cursors[19])),
        ("GET /admin?view=all", "/admin?view=all".into()),
        ("GET /admin?q=user7777 (selective)", "/admin?q=user7777".into()),
        ("GET /admin?q=garcia (20% of users)", "/admin?q=garcia".into()),
        ("GET /admin?q=no-such-user (no match)", "/admin?q=no-such-user".into()),
        ("GET /admin?q=ith (3 letters, 20% of users)", "/admin?q=ith".into()),
        ("GET /admin?q=user12 (1% of users)", "/admin?q=user12".into()),
        ("GET /admin/users/{id}", format!("/admin/users/{some_user}")),
        ("GET /api/admin/users", "/api/admin/users".into()),
        ("GET /api/admin/users?active=false", "/api/admin/users?active=false".into()),
        (
            "GET /api/admin/users?q=example.com&cursor=…",
            format!("/api/admin/users?q=example.com&cursor={}", cursors[0]),
        ),
        ("GET /api/admin/users?q=user4242", "/api/admin/users?q=user4242".into()),
    ];

    println!(
        "\nAdmin pages with {users} users and {users} active sessions; {requests} sequential requests per row after 30 warm-up requests, {runs} runs (every row once per run); each figure is the median of the runs."
    );
    println!("Times are the app's own (Server-Timing), in ms; the client column adds loopback HTTP.\n");
    // figures[case][run] = [p50, p95, p99, max, client p95]
    let mut figures: Vec<Vec<[f64; 5]>> = vec![Vec::with_capacity(runs); cases.len()];
    for _ in 0..runs {
        for ((name, path), figures) in cases.iter().zip(figures.iter_mut()) {
            for _ in 0..30 {
                get(path.clone()).await?;
            }
            let mut server = Vec::with_capacity(requests);
            let mut client_side = Vec::with_capacity(requests);
            for _ in 0..requests {
                let (status, dur, elapsed, _) = get(path.clone()).await?;
                anyhow::ensure!(
                    status == 200,
                    "{name} answered {status}: the benchmark measures only successful pages"
                );
                server.push(dur);
                client_side.push(elapsed.as_secs_f64() * 1000.0);
            }
            server.sort_by(f64::total_cmp);
            client_side.sort_by(f64::total_cmp);
            figures.push([
                quantile(&server, 0.50),
                quantile(&server, 0.95),
                quantile(&server, 0.99),
                server[server.len() - 1],
                quantile(&client_side, 0.95),
            ]);
        }
    }
    println!("| request | status | p50 | p95 | p99 | max | client p95 |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for ((name, _), runs) in cases.iter().zip(&figures) {
        let median = |i: usize| {
            let mut values: Vec<f64> = runs.iter().map(|r| r[i]).collect();
            values.sort_by(f64::total_cmp);
            quantile(&values, 0.5)
        };
        println!(
            "| {name} | 200 | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            median(0),
            median(1),
            median(2),
            median(3),
            median(4)
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}

/// Bulk-loads users and sessions with `generate_series`, triggers and FK checks off, then
/// rebuilds the users indexes (faster than maintaining them row by row).
async fn seed(pool: &PgPool, users: usize) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "select indexname::text, indexdef::text from pg_indexes
          where tablename in ('users', 'sessions') and indexname not like '%pkey' and indexname not like '%key'",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (name, _) in &indexes {
        conn.execute(sqlx::AssertSqlSafe(format!("drop index {name}"))).await?;
    }
    conn.execute("set session_replication_role = replica").await?;
    sqlx::query(
        "insert into users (issuer, subject, name, username, email, email_verified, picture, roles,
                            hf_username, first_seen_at, last_sign_in_at, last_activity_at, sessions_expire_at, sign_in_count)
         select 'bench', 'u' || i,
                'User ' || i || ' ' || (array['Smith', 'Lee', 'Garcia', 'Chen', 'Müller'])[1 + i % 5],
                'user' || i, 'user' || i || '@example.com', true,
                'https://avatars.example.com/' || i || '.png',
                case when i % 1000 = 0 then array['admin'] else array[]::text[] end,
                case when i % 3 = 0 then 'hf-user' || i end,
                now() - interval '90 days' + i * interval '1 second',
                now() - i * interval '100 milliseconds',
                now() - i * interval '50 milliseconds',
                now() + interval '7 days', 1 + i % 9
           from generate_series(1, $1::int) i",
    )
    .bind(users as i32)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "insert into sessions (key_hash, state, session_id, user_id, logto_sid, user_agent, client_ip,
                               created_at, last_seen_at, expires_at)
         select sha256(user_id::text::bytea), '{}', gen_random_uuid(), user_id, 'sid-' || subject,
                'Mozilla/5.0 (X11; Linux x86_64) bench', '192.0.2.1', last_sign_in_at, last_activity_at,
                now() + interval '7 days'
           from users",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "insert into sign_in_events (at, user_id)
         select last_sign_in_at, user_id from users where last_sign_in_at > now() - interval '24 hours'",
    )
    .execute(&mut *conn)
    .await?;
    conn.execute("set session_replication_role = origin").await?;
    for (_, definition) in &indexes {
        conn.execute(sqlx::AssertSqlSafe(definition.clone())).await?;
    }
    conn.execute("vacuum analyze users").await?;
    conn.execute("vacuum analyze sessions").await?;
    conn.execute("vacuum analyze sign_in_events").await?;
    Ok(())
}

/// A signed-in admin session with a known key, and its encrypted cookie.
async fn admin_cookie(pool: &PgPool, admin_id: uuid::Uuid) -> anyhow::Result<String> {
    let session_id = uuid::Uuid::new_v4();
    let state = serde_json::json!({
        "actix_identity.user_id": admin_id.to_string(),
        "session_id": session_id.to_string(),
    });
    sqlx::query(
        "insert into sessions (key_hash, state, session_id, user_id, csrf_token, expires_at)
         values ($1, $2, $3, $4, 'bench', now() + interval '1 day')
         on conflict (key_hash) do update set state = excluded.state, session_id = excluded.session_id,
                                              csrf_token = excluded.csrf_token, expires_at = excluded.expires_at",
    )
    .bind(Sha256::digest(SESSION_KEY.as_bytes()).to_vec())
    .bind(state)
    .bind(session_id)
    .bind(admin_id)
    .execute(pool)
    .await?;
    let key = Key::derive_from(SECRET.as_bytes());
    let mut jar = CookieJar::new();
    jar.private_mut(&key).add(Cookie::new(SESSION_COOKIE, SESSION_KEY));
    let cookie = jar.get(SESSION_COOKIE).ok_or_else(|| anyhow::anyhow!("cookie"))?;
    Ok(cookie.encoded().to_string().split_once('=').map(|(_, v)| v.to_owned()).unwrap_or_default())
}

/// The value at quantile `p` of sorted `values` (nearest rank).
fn quantile(values: &[f64], p: f64) -> f64 {
    values[((values.len() as f64 - 1.0) * p).round() as usize]
}
