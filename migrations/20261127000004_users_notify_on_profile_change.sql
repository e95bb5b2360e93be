-- Cached sessions carry the user's profile (src/session/cache.rs), so a change to it must be
-- announced. Activity bookkeeping (last_activity_at, sessions_expire_at, sign-in counters) is
-- not part of it: announcing those woke every instance and evicted every cached session of
-- the user on each sign-in and each session touch, for nothing.
drop trigger users_notify_change on users;

create trigger users_notify_profile_change
    after update on users
    for each row
    when ((old.issuer, old.subject, old.name, old.username, old.email, old.email_verified, old.picture,
           old.roles, old.identities, old.hf_user_id, old.hf_username, old.hf_avatar)
          is distinct from
          (new.issuer, new.subject, new.name, new.username, new.email, new.email_verified, new.picture,
           new.roles, new.identities, new.hf_user_id, new.hf_username, new.hf_avatar))
    execute function notify_user_change();

create trigger users_notify_delete
    after delete on users
    for each row execute function notify_user_change();
