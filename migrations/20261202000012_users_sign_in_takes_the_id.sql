-- The sign-in (src/lifecycle/sign_in.rs) now always knows the user's id before it writes: the
-- id it looked up for a returning user, or a fresh one for a new user. The new session's row
-- carries that id in its state (actix-identity's user id), so the session insert calls
-- `users_sign_in` with it, in one statement (src/session/repo.rs `insert_signed_in`): a new user
-- is created with `p_expected` as their id; an existing user must have that id, or the
-- statement fails and writes nothing (the user was deleted and signed up again, or another tab
-- created them a moment ago: the sign-in is a 503 and the next attempt succeeds).
create or replace function users_sign_in(p_issuer text, p_subject text, p_profile jsonb, p_expected uuid default null,
                                         p_session_expires_at timestamptz default null)
    returns uuid
    language plpgsql
    as $$
declare
    signed_in uuid;
begin
    insert into users as u (user_id, issuer, subject, name, username, email, email_verified, picture, roles,
                            identities, hf_user_id, hf_username, hf_avatar, claims, sessions_expire_at)
    select coalesce(p_expected, gen_random_uuid()), p_issuer, p_subject, p.name, p.username, p.email,
           coalesce(p.email_verified, false), p.picture, coalesce(p.roles, '{}'), coalesce(p.identities, '{}'),
           p.hf_user_id, p.hf_username, p.hf_avatar, coalesce(p.claims, '{}'), p_session_expires_at
      from jsonb_populate_record(null::users, p_profile) p
    on conflict (issuer, subject) do update
       set name = excluded.name, username = excluded.username, email = excluded.email,
           email_verified = excluded.email_verified, picture = excluded.picture,
           roles = excluded.roles, identities = excluded.identities,
           hf_user_id = excluded.hf_user_id, hf_username = excluded.hf_username,
           hf_avatar = excluded.hf_avatar, claims = excluded.claims,
           last_sign_in_at = now(), sign_in_count = u.sign_in_count + 1, updated_at = now(),
           last_activity_at = now(),
           sessions_expire_at = greatest(u.sessions_expire_at, p_session_expires_at)
    returning user_id into signed_in;
    if p_expected is not null and signed_in is distinct from p_expected then
        raise exception 'user (%, %) is % now, not %', p_issuer, p_subject, signed_in, p_expected;
    end if;
    insert into sign_in_events (user_id) values (signed_in);
    return signed_in;
end
$$;
