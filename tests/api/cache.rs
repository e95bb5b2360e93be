//! The in-memory session cache: it serves repeated requests without Postgres, and a change made
//! anywhere (another instance, plain SQL) reaches it at once through LISTEN/NOTIFY.

use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::*;

/// Deletes the sessions with their triggers (NOTIFY) switched off: only a cache still knows them.
async fn delete_silently(pool: &PgPool) {
    let mut tx = pool.begin().await.expect("tx");
    sqlx::query("alter table sessions disable trigger user").execute(&mut *tx).await.expect("off");
    sqlx::query("delete from sessions").execute(&mut *tx).await.expect("delete");
    sqlx::query("alter table sessions enable trigger user").execute(&mut *tx).await.expect("on");
    tx.commit().await.expect("commit");
}

#[sqlx::test]
async fn repeated_requests_are_served_from_memory(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.signed_in(&TestUser::alice()).await;
    assert_eq!(app.me_status().await, 200); // loads and caches
    delete_silently(&pool).await;
    assert_eq!(app.me_status().await, 200, "served from the cache: no database round trip");
}

#[sqlx::test]
async fn without_the_cache_every_request_reads_postgres(pool: PgPool) {
    let op = FakeOp::start().await;
    let app = spawn_app_with(pool.clone(), op, &[("SESSION_CACHE", "false")]).await;
    app.signed_in(&TestUser::alice()).await;
    assert_eq!(app.me_status().await, 200);
    delete_silently(&pool).await;
    assert_eq!(app.me_status().await, 401);
}

#[sqlx::test]
async fn a_revocation_on_another_instance_reaches_a_warm_cache_at_once(pool: PgPool) {
    let a = spawn_app(pool.clone()).await;
    a.signed_in(&TestUser::alice()).await;
    for _ in 0..3 {
        assert_eq!(a.me_status().await, 200);
    }
    // The session ends through plain SQL on another connection (as another instance would).
    let started = Instant::now();
    sqlx::query("delete from sessions where user_id is not null").execute(&pool).await.expect("delete");
    assert_eq!(a.me_status_soon(401).await, 401, "the NOTIFY evicted the cached session");
    let latency = started.elapsed();
    assert!(latency < Duration::from_millis(500), "{latency:?}");
}

#[sqlx::test]
async fn a_role_change_reaches_a_warm_cache_at_once(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.signed_in(&TestUser::alice()).await;
    assert_eq!(app.get("/admin").await.status(), 200);
    assert_eq!(app.get("/admin").await.status(), 200);
    sqlx::query("update users set roles = '{}'").execute(&pool).await.expect("demote");
    let deadline = Instant::now() + Duration::from_millis(500);
    let mut status = 0;
    while Instant::now() < deadline {
        status = app.get("/admin").await.status().as_u16();
        if status == 403 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(status, 403);
}

/// Lifecycle issue, item 10: with `DATABASE_LISTEN_URL` (a direct connection for LISTEN, for a
/// pool behind a transaction-mode pooler) the cache works and hears of changes at once.
#[sqlx::test]
async fn a_separate_listen_connection_carries_the_invalidations(pool: PgPool) {
    let listen_url = database_url(&pool);
    let app = spawn_app_with(pool.clone(), FakeOp::start().await, &[("DATABASE_LISTEN_URL", &listen_url)]).await;
    app.signed_in(&TestUser::alice()).await;
    assert_eq!(app.me_status().await, 200);
    delete_silently(&pool).await;
    // Served from memory: the cache is live, so its listener is up on the separate connection.
    assert_eq!(app.me_status().await, 200, "cached");
    sqlx::query("update users set name = 'Renamed'").execute(&pool).await.expect("a user change notifies");
    let deadline = Instant::now() + Duration::from_millis(500);
    let mut name = Value::Null;
    while Instant::now() < deadline && name != "Renamed" {
        let me: Value = app.get("/api/me").await.json().await.expect("json");
        name = me["name"].clone();
    }
    assert_eq!(name, "Renamed", "the user change evicted the cached profile");
}
