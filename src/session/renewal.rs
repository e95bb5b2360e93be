//! Sign-in renews the session key (fixation defence): actix-session deletes the old row, then
//! inserts the new one — two round trips. A request that asks for it here gets both in one
//! statement instead: the store's `delete` of the old key is deferred and the following `save`
//! deletes it in the same statement as its insert.
//!
//! The deferral lives in a task-local scoped to one request ([`middleware`]), is asked for
//! only by the callback right before `Identity::login`, and covers exactly one key. Sign-out
//! (a purge: `delete` without a `save`) never asks, so its delete is immediate. If the save
//! fails, the old row simply stays until it expires (a sign-in failure is a 503 either way).

use std::cell::RefCell;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;

#[derive(Default)]
struct Deferral {
    requested: bool,
    key_hash: Option<Vec<u8>>,
    /// Writes running alongside the session's save; the response waits for them.
    writes: Vec<tokio::task::JoinHandle<Result<(), sqlx::Error>>>,
}

tokio::task_local! {
    static DEFERRAL: RefCell<Deferral>;
}

/// Gives every request its own (empty) deferral; wrap it outside the session middleware. Writes
/// registered with [`complete_before_responding`] are awaited after the session was saved: a
/// failed one turns the response into the session-store failure page (a 503).
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    DEFERRAL
        .scope(RefCell::new(Deferral::default()), async move {
            let response = next.call(req).await;
            let writes = DEFERRAL.with(|d| std::mem::take(&mut d.borrow_mut().writes));
            for write in writes {
                let failure = match write.await {
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => anyhow::Error::new(e),
                    Err(e) => anyhow::Error::new(e),
                };
                let failure = failure.context("a write that runs alongside the session's save");
                return Err(actix_web::error::InternalError::new(failure, StatusCode::SERVICE_UNAVAILABLE).into());
            }
            response
        })
        .await
}

/// Lets `write` run while the session is saved; the response is sent only once both are done.
/// Outside [`middleware`] the write is still awaited by nobody but runs to completion.
pub fn complete_before_responding(write: tokio::task::JoinHandle<Result<(), sqlx::Error>>) {
    let _ = DEFERRAL.try_with(|d| d.borrow_mut().writes.push(write));
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

    #[test]
    fn outside_a_request_scope_nothing_is_deferred() {
        combine_renewal();
        assert!(!defer_delete(b"a"));
        assert_eq!(take_deferred_delete(), None);
    }
}
