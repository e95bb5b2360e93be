//! The one way sessions end (other than expiring, or a browser signing itself out through
//! actix-session): delete the rows, drop this instance's cached copies (other instances hear of
//! it through NOTIFY), revoke the refresh tokens at Logto in the background (nobody waits), and
//! let the admin counts be recomputed.

use std::sync::Arc;

use uuid::Uuid;

use crate::lifecycle::Services;
use crate::session::repo::{self, Ended};

/// Which sessions to end.
#[derive(Debug, Clone, Copy)]
pub enum Which<'a> {
    /// One session, whoever's it is (an admin's revocation; a refresh Logto refused).
    Session(Uuid),
    /// One session, only if it is `user_id`'s (a user signing out one of their devices).
    OneOfUser { user_id: Uuid, session_id: Uuid },
    /// Every session of a user (an admin's "sign out everywhere").
    AllOfUser(Uuid),
    /// Every session of a user but the one they use ("sign out my other devices").
    AllOfUserBut { user_id: Uuid, keep: Uuid },
    /// A verified back-channel logout token: the Logto session `sid` (of the user `subject`
    /// when given), or without `sid` every session of the user. The token's `jti` is recorded
    /// in the same transaction; a `jti` seen before ends nothing.
    BackChannel {
        jti_hash: &'a [u8],
        jti_expires_at: i64,
        issuer: &'a str,
        subject: Option<&'a str>,
        sid: Option<&'a str>,
    },
}

/// What `end` did.
#[derive(Debug)]
pub enum Outcome {
    /// The sessions that ended (possibly none).
    Ended(Vec<Ended>),
    /// A back-channel logout token whose `jti` was used before: nothing ended.
    Replayed,
}

impl Outcome {
    pub fn count(&self) -> usize {
        match self {
            Self::Ended(ended) => ended.len(),
            Self::Replayed => 0,
        }
    }
}

pub async fn end(services: &Arc<Services>, which: Which<'_>) -> Result<Outcome, sqlx::Error> {
    let mut conn = services.pool.acquire().await?;
    let ended = match which {
        Which::Session(session_id) => repo::delete_session(&mut conn, session_id).await?,
        Which::OneOfUser { user_id, session_id } => {
            repo::delete_for_user(&mut conn, user_id, Some(session_id), None).await?
        }
        Which::AllOfUser(user_id) => repo::delete_for_user(&mut conn, user_id, None, None).await?,
        Which::AllOfUserBut { user_id, keep } => repo::delete_for_user(&mut conn, user_id, None, Some(keep)).await?,
        Which::BackChannel { jti_hash, jti_expires_at, issuer, subject, sid } => {
            match repo::backchannel_logout(&mut conn, jti_hash, jti_expires_at, issuer, subject, sid).await? {
                Some(ended) => ended,
                None => return Ok(Outcome::Replayed),
            }
        }
    };
    drop(conn);
    if !ended.is_empty() {
        forget_and_revoke(services, &ended);
        services.admin_counts.invalidate();
    }
    Ok(Outcome::Ended(ended))
}

fn forget_and_revoke(services: &Arc<Services>, ended: &[Ended]) {
    if let Some(caches) = &services.caches {
        for session in ended {
            caches.evict_session(&session.key_hash);
        }
    }
    let Some(metadata) = services.provider.metadata() else { return };
    let cipher = &services.token_cipher;
    let tokens: Vec<String> = ended
        .iter()
        .filter_map(|e| cipher.open_opt(crate::session::sealed::REFRESH_TOKEN, e.refresh_token.as_deref()))
        .collect();
    if tokens.is_empty() {
        return;
    }
    let services = services.clone();
    tokio::spawn(async move {
        for token in tokens {
            crate::auth::flow::revoke_refresh_token(&services.settings, &metadata, services.provider.http(), &token)
                .await;
        }
    });
}
