//! Signed-in sessions' records in memory. A record (user, auth time, CSRF token) never changes
//! during its session's life, and a request reaches it only through a session the store has just
//! loaded as live, so an entry needs no invalidation: a revoked session's record is never looked
//! up again and ages out (bounded, with a time to live like the other caches).

use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;
use sqlx::PgPool;
use uuid::Uuid;

use super::repo::{self, SessionRecord};

pub struct RecordCache(Cache<Uuid, Arc<SessionRecord>>);

impl RecordCache {
    pub fn new(entries: u64) -> Self {
        Self(Cache::builder().max_capacity(entries).time_to_live(Duration::from_secs(600)).build())
    }
}

/// The record of the live signed-in session `session_id`, from `cache` when it holds it.
pub async fn record(
    pool: &PgPool,
    cache: Option<&RecordCache>,
    session_id: Uuid,
) -> Result<Option<Arc<SessionRecord>>, sqlx::Error> {
    if let Some(record) = cache.and_then(|c| c.0.get(&session_id)) {
        return Ok(Some(record));
    }
    let Some(record) = repo::record(pool, session_id).await? else {
        return Ok(None);
    };
    let record = Arc::new(record);
    if let Some(cache) = cache {
        cache.0.insert(session_id, record.clone());
    }
    Ok(Some(record))
}
