//! Keeps signed-in sessions in step with Logto in the background: a session used since it was
//! last checked, and last checked longer ago than `SESSION_REVALIDATE_AFTER`, is checked again
//! (refresh grant or userinfo, see [`refresh::revalidate`]). Roles and profile follow Logto; a
//! user suspended or deleted at Logto loses their sessions within about that bound (plus one
//! tick) of their next use. Admin requests do not wait for this: they revalidate first.

use std::sync::Arc;
use std::time::Duration;

use super::refresh;
use crate::error::AppError;
use crate::lifecycle::Services;
use crate::session::repo as sessions;

/// Sessions checked per tick, and at most this many calls to Logto at once.
const BATCH: i64 = 200;
const CONCURRENCY: usize = 4;

pub async fn run(state: Arc<Services>) {
    let bound = state.settings.session_revalidate_after;
    let every = (bound / 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        tokio::time::sleep(every).await;
        if state.provider.metadata().is_none() {
            continue;
        }
        let due = match sessions::due_for_revalidation(&state.pool, bound.as_secs() as i64, BATCH).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "listing sessions to revalidate failed");
                continue;
            }
        };
        for chunk in due.chunks(CONCURRENCY) {
            futures_util::future::join_all(chunk.iter().map(|id| revalidate_one(state.clone(), *id))).await;
        }
    }
}

async fn revalidate_one(state: Arc<Services>, session_id: uuid::Uuid) {
    match refresh::revalidate(&state, session_id).await {
        Ok(()) => {}
        Err(AppError::NotAuthenticated) => {
            tracing::info!(%session_id, "session ended: Logto no longer vouches for it (revalidation)");
        }
        Err(error) => tracing::warn!(%session_id, error = ?error, "revalidating a session failed"),
    }
}
