//! Deletes expired sessions, pending sign-ins and logout-token ids in the background.
//!
//! Every instance runs one; `FOR UPDATE SKIP LOCKED` and small batches mean instances never wait
//! on each other and no long lock is ever held on the sessions table.

use std::time::Duration;

use sqlx::PgPool;

use super::repo;

pub const BATCH: i64 = 1000;

pub async fn run(pool: PgPool, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        sweep_all(&pool).await;
    }
}

/// Sweeps until a round removes less than a batch per table.
pub async fn sweep_all(pool: &PgPool) -> u64 {
    let mut total = 0;
    loop {
        match repo::sweep(pool, BATCH).await {
            Ok(n) => {
                total += n;
                if n < BATCH as u64 {
                    break;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "sweeping expired sessions failed");
                break;
            }
        }
    }
    if total > 0 {
        tracing::info!(deleted = total, "expired sessions and sign-ins swept");
    }
    total
}
