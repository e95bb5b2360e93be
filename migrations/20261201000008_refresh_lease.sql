-- A refresh claims the session's refresh token with a short lease (committed at once) instead
-- of holding a row lock while Logto answers: no pooled connection and no lock is held across
-- the call. The result is stored only by the holder of the lease.
alter table sessions
    add column refresh_lease uuid,
    add column refresh_lease_until timestamptz;
