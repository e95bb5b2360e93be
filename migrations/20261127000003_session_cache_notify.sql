-- App instances keep recently loaded sessions in memory (see src/session/cache.rs). Any change
-- to a session row or a user row is announced with NOTIFY so every instance drops its copy at
-- once: a revoked session is anonymous on its next request on every instance, and a changed
-- role applies at once.
create function notify_session_change() returns trigger
    language plpgsql
    as $$
begin
    perform pg_notify('logto_signin_sessions', encode(old.key_hash, 'hex'));
    return null;
end
$$;

create trigger sessions_notify_change
    after update or delete on sessions
    for each row execute function notify_session_change();

create function notify_user_change() returns trigger
    language plpgsql
    as $$
begin
    perform pg_notify('logto_signin_users', old.user_id::text);
    return null;
end
$$;

create trigger users_notify_change
    after update or delete on users
    for each row execute function notify_user_change();
