//! Sign-in renews the session key (fixation defence): actix-session deletes the old row, then
//! inserts the new one — two round trips. A request that asks for it here gets both in one
//! statement instead: the store's `delete` of the old key is deferred and the following `save`
//! deletes it in the same statement as its insert. A returning user's sign-in write (profile,
//! counters, sign-in event) joins that statement too: one round trip and one commit, and a
//! sign-in is recorded exactly when its session is created.
//!
//! The deferral lives in a task-local scoped to one request ([`middleware`]), is asked for
//! only by the callback right before `Identity::login`, and covers exactly one key. Sign-out
//! (a purge: `delete` without a `save`) never asks, so its delete is immediate. If the save
//! fails, the old row simply stays until it expires and the sign-in write is not made (the
//! sign-in is a 503 either way).

use std::cell::RefCell;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use uuid::Uuid;

use crate::users::Profile;

/// A returning user's sign-in, to be written by the insert of their new session.
#[derive(Debug, Clone, PartialEq)]
pub struct SignInWrite {
    /// The user the new session belongs to; the write joins only that session's insert.
    pub user_id: Uuid,
    pub issuer: String,
    pub subject: String,
    pub profile: Profile,
}

#[derive(Default)]
struct Deferral {
    requested: bool,
    key_hash: Option<Vec<u8>>,
    sign_in: Option<SignInWrite>,
}

tokio::task_local! {
    static DEFERRAL: RefCell<Deferral>;
}

/// Gives every request its own (empty) deferral; wrap it outside the session middleware.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    DEFERRAL.scope(RefCell::new(Deferral::default()), next.call(req)).await
}

/// Asks that the insert of `write.user_id`'s new session in this request also write their
/// sign-in. Outside [`middleware`] there is no such insert: returns the write to the caller.
pub fn write_sign_in_with_session(write: SignInWrite) -> Result<(), Box<SignInWrite>> {
    let mut write = Some(write);
    let _ = DEFERRAL.try_with(|d| d.borrow_mut().sign_in = write.take());
    write.map_or(Ok(()), |w| Err(Box::new(w)))
}

/// Called by the store's insert of a session for `user_id`: the sign-in to write with it.
pub(super) fn take_sign_in_write(user_id: Option<Uuid>) -> Option<SignInWrite> {
    DEFERRAL
        .try_with(|d| {
            let mut d = d.borrow_mut();
            match (&d.sign_in, user_id) {
                (Some(w), Some(id)) if w.user_id == id => d.sign_in.take(),
                _ => None,
            }
        })
        .ok()
        .flatten()
}

/// Asks that this request's coming session renewal delete the old row together with the insert
/// of the new one. Outside [`middleware`] this does nothing (the delete stays immediate).
pub fn combine_renewal() {
    let _ = DEFERRAL.try_with(|d| d.borrow_mut().requested = true);
}

/// Called by the store's `delete`: true when this delete is deferred to the next save.
pub(super) fn defer_delete(key_hash: &[u8]) -> bool {
    DEFERRAL
        .try_with(|d| {
            let mut d = d.borrow_mut();
            if d.requested && d.key_hash.is_none() {
                d.key_hash = Some(key_hash.to_vec());
                true
            } else {
                false
            }
        })
        .unwrap_or(false)
}

/// Called by the store's `save`: the deferred old key to delete with the insert, if any.
pub(super) fn take_deferred_delete() -> Option<Vec<u8>> {
    DEFERRAL
        .try_with(|d| {
            let mut d = d.borrow_mut();
            d.requested = false;
            d.key_hash.take()
        })
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_a_requested_renewal_defers_and_only_one_key() {
        DEFERRAL
            .scope(RefCell::new(Deferral::default()), async {
                assert!(!defer_delete(b"a"), "not requested: immediate");
                combine_renewal();
                assert!(defer_delete(b"old"));
                assert!(!defer_delete(b"other"), "one key only");
                assert_eq!(take_deferred_delete().as_deref(), Some(&b"old"[..]));
                assert!(!defer_delete(b"later"), "the request is used up by the save");
                assert_eq!(take_deferred_delete(), None);
            })
            .await;
    }

    fn write(user_id: Uuid) -> SignInWrite {
        SignInWrite {
            user_id,
            issuer: "iss".into(),
            subject: "sub".into(),
            profile: Profile::from_claims(&serde_json::Map::new(), None),
        }
    }

    #[tokio::test]
    async fn a_sign_in_write_joins_only_its_users_session_and_only_once() {
        let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
        DEFERRAL
            .scope(RefCell::new(Deferral::default()), async {
                assert_eq!(write_sign_in_with_session(write(alice)), Ok(()));
                assert_eq!(take_sign_in_write(None), None, "not a pre-login session");
                assert_eq!(take_sign_in_write(Some(bob)), None, "not another user's session");
                assert_eq!(take_sign_in_write(Some(alice)), Some(write(alice)));
                assert_eq!(take_sign_in_write(Some(alice)), None, "written once");
            })
            .await;
    }

    #[test]
    fn outside_a_request_scope_nothing_is_deferred() {
        combine_renewal();
        assert!(!defer_delete(b"a"));
        assert_eq!(take_deferred_delete(), None);
        let alice = Uuid::new_v4();
        assert_eq!(write_sign_in_with_session(write(alice)), Err(Box::new(write(alice))), "handed back");
        assert_eq!(take_sign_in_write(Some(alice)), None);
    }
}
