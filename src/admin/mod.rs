//! The admin area: who is an admin, when an action needs a step-up, the cached headline
//! counts, and the admin queries.

pub mod cursor;
pub mod repo;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::auth::jwt::LEEWAY_SECS;
use crate::config::Settings;
use crate::error::AppError;
use crate::session::repo::SessionRecord;
use crate::users::User;
use sqlx::PgPool;

/// Counts older than this are recomputed (in the background; the page shows the time).
pub const COUNTS_MAX_AGE: Duration = Duration::from_secs(10);

pub fn is_admin(user: &User, settings: &Settings) -> bool {
    let by_role = user.profile.roles.contains(&settings.admin_role);
    let by_subject = user.issuer == settings.issuer() && settings.admin_subjects.contains(&user.subject);
    by_role || by_subject
}

/// Admin actions (they end other people's sessions) need a sign-in no older than
/// `ADMIN_MAX_AUTH_AGE` (ASVS 7.5.3); otherwise the admin steps up and comes back to `return_to`.
pub fn require_recent_sign_in(session: &SessionRecord, settings: &Settings, return_to: &str) -> Result<(), AppError> {
    if signed_in_recently(session, settings) {
        Ok(())
    } else {
        Err(AppError::StepUpRequired { return_to: return_to.to_owned() })
    }
}

pub fn signed_in_recently(session: &SessionRecord, settings: &Settings) -> bool {
    let now = crate::auth::flow::unix_now();
    session
        .auth_time
        .and_then(|at| u64::try_from(at).ok())
        .is_some_and(|at| at <= now + LEEWAY_SECS && now.saturating_sub(at) <= settings.admin_max_auth_age.as_secs())
}

/// The last computed counts and when.
#[derive(Default)]
pub struct CountsCache {
    slot: Mutex<Option<(Instant, repo::Counts)>>,
    refreshing: std::sync::atomic::AtomicBool,
}

impl CountsCache {
    /// Fresh-enough counts: computed now if none exist, else the cached ones, with a background
    /// refresh when they are older than [`COUNTS_MAX_AGE`] (so no page waits for the counts).
    pub async fn get(self: &Arc<Self>, pool: &PgPool) -> Result<(repo::Counts, Duration), sqlx::Error> {
        use std::sync::atomic::Ordering;
        let cached = self.slot.lock().ok().and_then(|s| s.clone());
        match cached {
            Some((at, counts)) => {
                if at.elapsed() > COUNTS_MAX_AGE && !self.refreshing.swap(true, Ordering::AcqRel) {
                    let (this, pool) = (self.clone(), pool.clone());
                    tokio::spawn(async move {
                        if let Ok(counts) = repo::counts(&pool).await
                            && let Ok(mut slot) = this.slot.lock()
                        {
                            *slot = Some((Instant::now(), counts));
                        }
                        this.refreshing.store(false, Ordering::Release);
                    });
                }
                Ok((counts, at.elapsed()))
            }
            None => {
                let counts = repo::counts(pool).await?;
                if let Ok(mut slot) = self.slot.lock() {
                    *slot = Some((Instant::now(), counts.clone()));
                }
                Ok((counts, Duration::ZERO))
            }
        }
    }

    /// Forgets the counts (after an admin action changed them).
    pub fn invalidate(&self) {
        if let Ok(mut slot) = self.slot.lock() {
            *slot = None;
        }
    }
}
