//! Recently loaded sessions and users, kept in memory so that an authenticated request needs no
//! database round trip — and dropped the moment the database says they changed.
//!
//! Changes a cached copy must not outlive are announced by triggers with NOTIFY (a live session
//! ended or its state changed: migrations `…03_session_cache_notify.sql` and `…11_…`; a user's
//! profile or roles changed: `…04_…`). Each instance LISTENs and evicts that one key. While the
//! listener is not connected nothing is served or cached, and when the connection comes back
//! everything is forgotten (notifications may have been missed).
//!
//! A load that raced with an eviction of its key is not cached: every eviction is stamped with
//! a generation number, and a load remembers the generation it started at ([`Caches::stamp`]).
//! Entries live at most [`MAX_AGE`] (a safety net), and a session entry is used only while its
//! session needs no expiry extension, so the idle and absolute timeouts stay exact. Memory is
//! bounded by `SESSION_CACHE_ENTRIES` per cache, with real eviction (moka's TinyLFU).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::sync::Cache;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use uuid::Uuid;

use crate::users::User;

pub const SESSIONS_CHANNEL: &str = "logto_signin_sessions";
pub const USERS_CHANNEL: &str = "logto_signin_users";
/// A safety net: even with every notification delivered, an entry is re-read this often.
const MAX_AGE: Duration = Duration::from_secs(10);
/// A load older than this is not cached (its evictions may have been forgotten already).
const MAX_LOAD_TIME: Duration = Duration::from_secs(5);
/// After this long without a notification the listener pings Postgres, and reconnects when the
/// ping is not answered within `PING_TIMEOUT`.
const PING_AFTER: Duration = Duration::from_secs(30);
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// A session as loaded: actix-session's state and the times that decide whether it is valid.
#[derive(Clone, Debug)]
pub struct CachedSession {
    pub state: HashMap<String, String>,
    /// Unix seconds.
    pub expires_at: f64,
    pub created_at: f64,
    pub last_seen_at: f64,
}

/// What an eviction names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Session(Vec<u8>),
    User(Uuid),
}

/// Where a load started: pass it back to `put_*`, which caches only if no eviction of the same
/// key (and no reconnect) came after it.
#[derive(Clone, Copy, Debug)]
pub struct Stamp {
    generation: u64,
    at: Instant,
}

#[derive(Default)]
struct Evictions {
    generation: u64,
    /// The generation of the last reconnect: loads from before it are never cached.
    cleared_at: u64,
    /// Recent evictions: key → (generation, when). Kept for [`MAX_LOAD_TIME`].
    recent: HashMap<Key, (u64, Instant)>,
    pruned_at: Option<Instant>,
}

impl Evictions {
    fn overtook(&self, key: &Key, stamp: Stamp) -> bool {
        stamp.at.elapsed() > MAX_LOAD_TIME
            || self.cleared_at > stamp.generation
            || self.recent.get(key).is_some_and(|(generation, _)| *generation > stamp.generation)
    }

    fn record(&mut self, key: Key) {
        self.generation += 1;
        let now = Instant::now();
        self.recent.insert(key, (self.generation, now));
        if self.pruned_at.is_none_or(|at| at.elapsed() > MAX_LOAD_TIME) {
            self.recent.retain(|_, (_, at)| at.elapsed() <= MAX_LOAD_TIME);
            self.pruned_at = Some(now);
        }
    }
}

pub struct Caches {
    sessions: Cache<Vec<u8>, Arc<CachedSession>>,
    users: Cache<Uuid, Arc<User>>,
    evictions: Mutex<Evictions>,
    live: AtomicBool,
}

use crate::clock::unix_now_f64 as unix_now;

impl Caches {
    /// Caches of at most `entries` sessions and `entries` users.
    pub fn new(entries: u64) -> Self {
        Self {
            sessions: Cache::builder().max_capacity(entries).time_to_live(MAX_AGE).build(),
            users: Cache::builder().max_capacity(entries).time_to_live(MAX_AGE).build(),
            evictions: Mutex::default(),
            live: AtomicBool::new(false),
        }
    }

    fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Take this before a load; pass it to `put_*` after.
    pub fn stamp(&self) -> Stamp {
        let generation = self.evictions.lock().map(|e| e.generation).unwrap_or(u64::MAX);
        Stamp { generation, at: Instant::now() }
    }

    /// A cached session that is still valid and needs no touch, if any.
    pub fn session(
        &self,
        key_hash: &[u8],
        touch_interval: Duration,
        max_lifetime: Duration,
    ) -> Option<Arc<CachedSession>> {
        if !self.is_live() {
            return None;
        }
        let entry = self.sessions.get(key_hash)?;
        let now = unix_now();
        let valid = entry.expires_at > now
            && entry.created_at + max_lifetime.as_secs_f64() > now
            && now - entry.last_seen_at < touch_interval.as_secs_f64();
        valid.then_some(entry)
    }

    pub fn user(&self, user_id: Uuid) -> Option<Arc<User>> {
        if !self.is_live() {
            return None;
        }
        self.users.get(&user_id)
    }

    /// Caches `value` under `key` unless an eviction of that key came after `stamp`. The check
    /// and the insert happen under the lock evictions take: none can slip between.
    fn put(&self, key: Key, stamp: Stamp, insert: impl FnOnce()) {
        if !self.is_live() {
            return;
        }
        if let Ok(evictions) = self.evictions.lock()
            && !evictions.overtook(&key, stamp)
        {
            insert();
        }
    }

    pub fn put_session(&self, key_hash: Vec<u8>, session: CachedSession, stamp: Stamp) {
        self.put(Key::Session(key_hash.clone()), stamp, || self.sessions.insert(key_hash, Arc::new(session)));
    }

    pub fn put_user(&self, user: Arc<User>, stamp: Stamp) {
        self.put(Key::User(user.user_id), stamp, || self.users.insert(user.user_id, user));
    }

    fn evict(&self, key: Key) {
        if let Ok(mut evictions) = self.evictions.lock() {
            match &key {
                Key::Session(hash) => self.sessions.invalidate(hash),
                Key::User(id) => self.users.invalidate(id),
            }
            evictions.record(key);
        }
    }

    pub fn evict_session(&self, key_hash: &[u8]) {
        self.evict(Key::Session(key_hash.to_vec()));
    }

    pub fn evict_user(&self, user_id: Uuid) {
        self.evict(Key::User(user_id));
    }

    /// Forgets everything; loads that started before are not cached.
    pub fn clear(&self) {
        if let Ok(mut evictions) = self.evictions.lock() {
            self.sessions.invalidate_all();
            self.users.invalidate_all();
            evictions.generation += 1;
            evictions.cleared_at = evictions.generation;
        }
    }

    /// Going down or coming back, everything is forgotten: a load that started while
    /// notifications could be missed is never cached.
    fn set_live(&self, live: bool) {
        self.clear();
        self.live.store(live, Ordering::Release);
    }

    /// Entries held now (after pending evictions ran), for benchmarks and tests.
    pub fn entry_counts(&self) -> (u64, u64) {
        self.sessions.run_pending_tasks();
        self.users.run_pending_tasks();
        (self.sessions.entry_count(), self.users.entry_count())
    }

    /// Runs forever: LISTENs for changes and evicts; reconnects (with everything forgotten)
    /// whenever the connection drops, or does not answer a ping after [`PING_AFTER`] of silence
    /// (a half-open connection would otherwise deliver nothing, unnoticed). `listen_url`: a
    /// direct connection for LISTEN when the pool goes through a transaction-mode pooler
    /// (PgBouncer cannot carry LISTEN); `None` uses the pool's connection options.
    pub async fn listen(self: Arc<Self>, pool: PgPool, listen_url: Option<String>) {
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
                                let ping = sqlx::query_scalar!(r#"select 1 as "one!""#).fetch_one(&mut listener);
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
                Some(hash) => self.evict_session(&hash),
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

/// The user, from the cache when it holds them (a miss is loaded and cached).
pub async fn user(pool: &PgPool, caches: Option<&Caches>, user_id: Uuid) -> Result<Option<Arc<User>>, sqlx::Error> {
    if let Some(user) = caches.and_then(|c| c.user(user_id)) {
        return Ok(Some(user));
    }
    let stamp = caches.map(Caches::stamp);
    let Some(user) = crate::users::repo::get(pool, user_id).await? else {
        return Ok(None);
    };
    let user = Arc::new(user);
    if let (Some(caches), Some(stamp)) = (caches, stamp) {
        caches.put_user(user.clone(), stamp);
    }
    Ok(Some(user))
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

    fn session(last_seen_ago: f64) -> CachedSession {
        let now = unix_now();
        CachedSession {
            state: HashMap::from([("k".to_owned(), "\"v\"".to_owned())]),
            expires_at: now + 100.0,
            created_at: now - 10.0,
            last_seen_at: now - last_seen_ago,
        }
    }

    fn user(user_id: Uuid) -> Arc<User> {
        Arc::new(User {
            user_id,
            issuer: "iss".into(),
            subject: "sub".into(),
            profile: crate::users::Profile::default(),
        })
    }

    const TOUCH: Duration = Duration::from_secs(60);
    const LIFETIME: Duration = Duration::from_secs(3600);

    fn live() -> Caches {
        let caches = Caches::new(100);
        caches.set_live(true);
        caches
    }

    #[test]
    fn serves_only_while_live_and_fresh() {
        let cache = Caches::new(100);
        cache.put_session(vec![1], session(1.0), cache.stamp());
        assert!(cache.session(&[1], TOUCH, LIFETIME).is_none(), "not live: nothing cached or served");
        cache.set_live(true);
        cache.put_session(vec![1], session(1.0), cache.stamp());
        assert!(cache.session(&[1], TOUCH, LIFETIME).is_some());
        cache.put_session(vec![2], session(120.0), cache.stamp());
        assert!(cache.session(&[2], TOUCH, LIFETIME).is_none(), "needs a touch: go to the database");
    }

    #[test]
    fn evictions_win_over_racing_loads_of_the_same_key_only() {
        let cache = live();
        let stamp = cache.stamp();
        cache.evict_session(&[9]); // a notification arrives while the loads are in flight
        cache.put_session(vec![9], session(1.0), stamp);
        assert!(cache.session(&[9], TOUCH, LIFETIME).is_none(), "the evicted key's load is dropped");
        cache.put_session(vec![8], session(1.0), stamp);
        assert!(cache.session(&[8], TOUCH, LIFETIME).is_some(), "another key's load is kept");
        let alice = Uuid::new_v4();
        let stamp = cache.stamp();
        cache.evict_user(alice);
        cache.put_user(user(alice), stamp);
        assert!(cache.user(alice).is_none());
        let bob = Uuid::new_v4();
        cache.put_user(user(bob), stamp);
        assert!(cache.user(bob).is_some());
    }

    /// Lifecycle issue, item 10: a load that started while the listener was down (a revocation's
    /// notification may have been missed) is not cached once the listener is back.
    #[test]
    fn loads_from_before_a_reconnect_are_not_cached() {
        let cache = live();
        cache.set_live(false);
        let stamp = cache.stamp(); // the load starts while the listener is down
        cache.set_live(true);
        cache.put_session(vec![7], session(1.0), stamp);
        assert!(cache.session(&[7], TOUCH, LIFETIME).is_none());
    }

    #[test]
    fn notifications_evict_by_key_and_by_user() {
        let cache = live();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        cache.put_session(vec![0xab, 0x01], session(1.0), cache.stamp());
        cache.put_session(vec![0xab, 0x02], session(1.0), cache.stamp());
        cache.put_user(user(a), cache.stamp());
        cache.put_user(user(b), cache.stamp());
        cache.apply(SESSIONS_CHANNEL, "ab01");
        assert!(cache.session(&[0xab, 0x01], TOUCH, LIFETIME).is_none());
        assert!(cache.session(&[0xab, 0x02], TOUCH, LIFETIME).is_some());
        cache.apply(USERS_CHANNEL, &a.to_string());
        assert!(cache.user(a).is_none());
        assert!(cache.user(b).is_some());
        cache.set_live(false);
        cache.set_live(true);
        assert!(cache.session(&[0xab, 0x02], TOUCH, LIFETIME).is_none(), "a reconnect forgets everything");
        assert!(cache.user(b).is_none());
    }

    #[test]
    fn memory_is_bounded_by_eviction_not_by_starting_over() {
        let cache = Caches::new(1_000);
        cache.set_live(true);
        for i in 0..5_000u32 {
            cache.put_session(i.to_be_bytes().to_vec(), session(1.0), cache.stamp());
        }
        let (sessions, _) = cache.entry_counts();
        assert!(sessions <= 1_000, "{sessions}");
        assert!(sessions > 500, "most of the capacity stays in use: {sessions}");
    }
}
