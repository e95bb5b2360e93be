-- When a live session ends, lock the user row first and only then recompute the user's latest
-- session expiry: in READ COMMITTED each statement of the function takes a new snapshot, so the
-- recount sees every delete committed while this one waited for the lock. (Computed in the same
-- UPDATE, the max() used the snapshot from before the wait: two sessions of one user ended at
-- once left the user "signed in" with no session.)
create or replace function sessions_maintain_user_activity() returns trigger
    language plpgsql
    as $$
begin
    if tg_op = 'DELETE' then
        -- Only a live session's end can change whether the user is signed in.
        if old.user_id is not null and old.expires_at > now() then
            perform 1 from users where user_id = old.user_id for update;
            update users
               set sessions_expire_at = (select max(expires_at) from sessions where user_id = old.user_id)
             where user_id = old.user_id;
        end if;
        return old;
    end if;
    if new.user_id is not null then
        update users
           set last_activity_at = greatest(last_activity_at, new.last_seen_at),
               sessions_expire_at = greatest(sessions_expire_at, new.expires_at)
         where user_id = new.user_id
           and (last_activity_at < new.last_seen_at
                or sessions_expire_at is null
                or sessions_expire_at < new.expires_at);
    end if;
    return new;
end
$$;
