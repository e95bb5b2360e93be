-- The typed session record: what the sign-in knows about a session is written by the sign-in
-- itself, in columns (src/session/repo.rs), not parsed out of actix-session's state. The state
-- keeps only what actix-session and actix-identity need (the login binding, the user id, the
-- session id).
alter table sessions
    add column auth_time  timestamptz,
    add column csrf_token text;

-- Sessions already signed in keep working: their values move from the state to the columns.
update sessions
   set auth_time = to_timestamp((state->>'auth_time')::float8),
       csrf_token = state->>'csrf_token',
       state = state - 'auth_time' - 'csrf_token' - 'logto_sid' - 'user_agent' - 'client_ip'
 where user_id is not null;

-- NOTIFY only on changes a cached copy must not outlive (src/session/cache.rs): the session
-- ended while it was still live, or what a request reads from it changed, or its timing moved
-- earlier. The once-a-minute touch (later expiry), refresh leases, tokens and revalidation
-- stamps are not announced: a cached copy never holds them, and a later expiry only makes a
-- cached copy conservative. Sweeping already-expired sessions is not announced either (no cache
-- serves an expired session). Each NOTIFY takes Postgres's cluster-wide notify lock at commit.
drop trigger sessions_notify_change on sessions;

create trigger sessions_notify_end
    after delete on sessions
    for each row
    when (old.expires_at > now())
    execute function notify_session_change();

create trigger sessions_notify_change
    after update on sessions
    for each row
    when ((old.key_hash, old.state, old.user_id, old.session_id) is distinct from
          (new.key_hash, new.state, new.user_id, new.session_id)
          or new.expires_at < old.expires_at
          or new.created_at < old.created_at
          or new.last_seen_at < old.last_seen_at)
    execute function notify_session_change();

-- A session's expiry after activity, in one place: the idle timeout (or, before sign-in, the
-- pre-login lifetime) from now, never past the absolute lifetime counted from creation.
create function session_expiry(signed_in boolean, created_at timestamptz,
                               pre_login_secs float8, idle_secs float8, max_secs float8)
    returns timestamptz
    language sql
    stable
    as $$
    select least(now() + (case when signed_in then idle_secs else pre_login_secs end) * interval '1 second',
                 created_at + max_secs * interval '1 second')
$$;
