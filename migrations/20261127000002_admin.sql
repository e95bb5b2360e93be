-- The admin page lists users by most recent activity and searches names, usernames and emails,
-- at a million users and sessions. Two per-user columns are kept up to date by a trigger on
-- `sessions`, so the listing never aggregates the sessions table:
--   last_activity_at   - the latest `last_seen_at` of any of the user's sessions;
--   sessions_expire_at - the latest `expires_at`: the user is signed in now iff it is in the future.
create extension if not exists pg_trgm;

alter table users
    add column last_activity_at timestamptz not null default now(),
    add column sessions_expire_at timestamptz;

-- Keyset pagination walks this index newest-first; a page is an index range scan of 51 rows.
create index users_activity_idx on users (last_activity_at desc, user_id desc);

-- Case-insensitive substring search over name, username and email in one trigram index.
-- The lower-cased text is stored (a generated column) so that rechecking thousands of index
-- hits does not recompute lower() for each; fields are joined by a newline, which a search
-- term cannot contain.
create function users_search_text(name text, username text, email text) returns text
    language sql immutable parallel safe
    as $$ select lower(coalesce(name, '') || E'\n' || coalesce(username, '') || E'\n' || coalesce(email, '')) $$;
alter table users add column search_text text generated always as (users_search_text(name, username, email)) stored;
create index users_search_idx on users using gin (search_text gin_trgm_ops);

create function sessions_maintain_user_activity() returns trigger
    language plpgsql
    as $$
begin
    if tg_op = 'DELETE' then
        -- Only a live session's end can change whether the user is signed in.
        if old.user_id is not null and old.expires_at > now() then
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

create trigger sessions_user_activity
    after insert or delete or update of user_id, last_seen_at, expires_at on sessions
    for each row execute function sessions_maintain_user_activity();

-- One row per completed sign-in, for the "sign-ins in the last 24 hours" count; the sweeper
-- drops rows older than 30 days.
create table sign_in_events (
    at       timestamptz not null default now(),
    user_id  uuid not null references users (user_id) on delete cascade
);
create index sign_in_events_at_idx on sign_in_events (at);
