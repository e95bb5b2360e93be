//! Recently loaded sessions, kept in memory so that an authenticated request needs no database
//! round trip — and dropped the moment the database says they changed.
//!
//! Every change to a `sessions` or `users` row is announced by a trigger with NOTIFY
//! (migration `..._session_cache_notify.sql`); each instance LISTENs and evicts. While the
//! listener is not connected the cache is bypassed, and when the connection drops everything is
//! forgotten (notifications may have been missed). A load that raced with an eviction is not
//! cached (an epoch counter), entries live at most `MAX_AGE`, and an entry is used only while
//! its session needs no expiry extension, so the idle and absolute timeouts stay exact.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use uuid::Uuid;

pub const SESSIONS_CHANNEL: &str = "logto_signin_sessions";
pub const USERS_CHANNEL: &str = "logto_signin_users";
/// A safety net: even with every notification delivered, an entry is re-read this often.
const MAX_AGE: Duration = Duration::from_secs(10);
/// After this long without a notification the listener pings Postgres, and reconnects when the
/// ping is not answered within `PING_TIMEOUT`.
const PING_AFTER: Duration = Duration::from_secs(30);
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// Bounds memory: past this many sessions the cache starts over.
const MAX_ENTRIES: usize = 10_000;

#[derive(Clone)]
pub struct Entry {
    pub state: HashMap<String, String>,
    pub user_id: Option<Uuid>,
    /// Unix seconds.
    pub expires_at: f64,
    pub created_at: f64,
    pub last_seen_at: f64,
    pub cached_at: Instant,
}

#[derive(Default)]
pub struct SessionCache {
    entries: Mutex<HashMap<Vec<u8>, Entry>>,
    epoch: AtomicU64,
    live: AtomicBool,
}

pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

impl SessionCache {
    /// A cached session that is still valid and needs no touch, if any.
    pub fn get(
        &self,
        key_hash: &[u8],
        touch_interval: Duration,
        max_lifetime: Duration,
    ) -> Option<HashMap<String, String>> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        let now = unix_now();
        let entries = self.entries.lock().ok()?;
        let entry = entries.get(key_hash)?;
        let valid = entry.cached_at.elapsed() < MAX_AGE
            && entry.expires_at > now
            && entry.created_at + max_lifetime.as_secs_f64() > now
            && now - entry.last_seen_at < touch_interval.as_secs_f64();
        valid.then(|| entry.state.clone())
    }

    /// The current epoch; pass it back to `put` to cache only loads no eviction overtook.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub fn put(&self, key_hash: Vec<u8>, entry: Entry, epoch_at_load: u64) {
        if !self.live.load(Ordering::Acquire) {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            // Checked under the lock, which evictions also take: no eviction can slip between.
            if self.epoch.load(Ordering::Acquire) != epoch_at_load {
                return;
            }
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(key_hash, entry);
        }
    }

    fn evict(&self, pick: impl FnOnce(&mut HashMap<Vec<u8>, Entry>)) {
        if let Ok(mut entries) = self.entries.lock() {
            self.epoch.fetch_add(1, Ordering::AcqRel);
            pick(&mut entries);
        }
    }

    pub fn evict_key(&self, key_hash: &[u8]) {
        self.evict(|e| {
            e.remove(key_hash);
        });
    }

    pub fn evict_user(&self, user_id: Uuid) {
        self.evict(|e| e.retain(|_, entry| entry.user_id != Some(user_id)));
    }

    pub fn clear(&self) {
        self.evict(HashMap::clear);
    }

    /// Going down or coming back, everything is forgotten and the epoch moves: a load that
    /// started while notifications could be missed is never cached.
    fn set_live(&self, live: bool) {
        self.clear();
        self.live.store(live, Ordering::Release);
    }

    /// Runs forever: LISTENs for changes and evicts; reconnects (with everything forgotten)
    /// whenever the connection drops, or does not answer a ping after [`PING_AFTER`] of silence
    /// (a half-open connection would otherwise deliver nothing, unnoticed). `listen_url`: a
    /// direct connection for LISTEN when the pool goes through a transaction-mode pooler
    /// (PgBouncer cannot carry LISTEN); `None` uses the pool's connection options.
    pub async fn listen(self: std::sync::Arc<Self>, pool: PgPool, listen_url: Option<String>) {
        loop {
            match Self::connect(&pool, listen_url.as_deref()).await {
                Ok(mut listener) => {
                    self.set_live(true);
                    loop {
                        match tokio::time::timeout(PING_AFTER, listener.try_recv()).await {
                            Ok(Ok(Some(n))) => self.apply(n.channel(), n.payload()),
                            // `Ok(None)` or an error: the connection dropped.
                            Ok(_) => break,
                            Err(_silence) => {
                                let ping = sqlx::query("select 1").execute(&mut listener);
                                if !matches!(tokio::time::timeout(PING_TIMEOUT, ping).await, Ok(Ok(_))) {
                                    break;
                                }
                            }
                        }
                    }
                    tracing::warn!("session cache listener disconnected; cache cleared");
                }
                Err(error) => tracing::warn!(%error, "session cache listener cannot connect"),
            }
            self.set_live(false);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn connect(pool: &PgPool, listen_url: Option<&str>) -> Result<PgListener, sqlx::Error> {
        let mut listener = match listen_url {
            Some(url) => PgListener::connect(url).await?,
            None => PgListener::connect_with(pool).await?,
        };
        listener.listen_all([SESSIONS_CHANNEL, USERS_CHANNEL]).await?;
        Ok(listener)
    }

    fn apply(&self, channel: &str, payload: &str) {
        match channel {
            SESSIONS_CHANNEL => match decode_hex(payload) {
                Some(hash) => self.evict_key(&hash),
                None => self.clear(),
            },
            USERS_CHANNEL => match Uuid::parse_str(payload) {
                Ok(user_id) => self.evict_user(user_id),
                Err(_) => self.clear(),
            },
            _ => {}
        }
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(user: Uuid, last_seen_ago: f64) -> Entry {
        let now = unix_now();
        Entry {
            state: HashMap::from([("k".to_owned(), "\"v\"".to_owned())]),
            user_id: Some(user),
            expires_at: now + 100.0,
            created_at: now - 10.0,
            last_seen_at: now - last_seen_ago,
            cached_at: Instant::now(),
        }
    }

    const TOUCH: Duration = Duration::from_secs(60);
    const LIFETIME: Duration = Duration::from_secs(3600);

    #[test]
    fn serves_only_while_live_and_fresh() {
        let cache = SessionCache::default();
        let user = Uuid::new_v4();
        cache.put(vec![1], entry(user, 1.0), cache.epoch());
        assert!(cache.get(&[1], TOUCH, LIFETIME).is_none(), "not live: nothing cached or served");
        cache.set_live(true);
        cache.put(vec![1], entry(user, 1.0), cache.epoch());
        assert!(cache.get(&[1], TOUCH, LIFETIME).is_some());
        cache.put(vec![2], entry(user, 120.0), cache.epoch());
        assert!(cache.get(&[2], TOUCH, LIFETIME).is_none(), "needs a touch: go to the database");
    }

    #[test]
    fn evictions_win_over_racing_loads() {
        let cache = SessionCache::default();
        cache.set_live(true);
        let user = Uuid::new_v4();
        let epoch = cache.epoch();
        cache.evict_key(&[9]); // a notification arrives while the load is in flight
        cache.put(vec![9], entry(user, 1.0), epoch);
        assert!(cache.get(&[9], TOUCH, LIFETIME).is_none());
    }

    /// Lifecycle issue, item 10: a load that started while the listener was down (a revocation's
    /// notification may have been missed) is not cached once the listener is back.
    #[test]
    fn loads_from_before_a_reconnect_are_not_cached() {
        let cache = SessionCache::default();
        cache.set_live(true);
        cache.set_live(false);
        let epoch = cache.epoch(); // the load starts while the listener is down
        cache.set_live(true);
        cache.put(vec![7], entry(Uuid::new_v4(), 1.0), epoch);
        assert!(cache.get(&[7], TOUCH, LIFETIME).is_none());
    }

    #[test]
    fn notifications_evict_by_key_and_by_user() {
        let cache = SessionCache::default();
        cache.set_live(true);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        cache.put(vec![0xab, 0x01], entry(a, 1.0), cache.epoch());
        cache.put(vec![0xab, 0x02], entry(a, 1.0), cache.epoch());
        cache.put(vec![0xab, 0x03], entry(b, 1.0), cache.epoch());
        cache.apply(SESSIONS_CHANNEL, "ab01");
        assert!(cache.get(&[0xab, 0x01], TOUCH, LIFETIME).is_none());
        assert!(cache.get(&[0xab, 0x02], TOUCH, LIFETIME).is_some());
        cache.apply(USERS_CHANNEL, &a.to_string());
        assert!(cache.get(&[0xab, 0x02], TOUCH, LIFETIME).is_none());
        assert!(cache.get(&[0xab, 0x03], TOUCH, LIFETIME).is_some());
        cache.set_live(false);
        cache.set_live(true);
        assert!(cache.get(&[0xab, 0x03], TOUCH, LIFETIME).is_none(), "a reconnect forgets everything");
    }
}
