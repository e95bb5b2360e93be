-- A sign-in's write to its user, in one place: create or update the profile from the validated
-- claims, count the sign-in, and record a sign_in_events row. The profile is one JSON object whose
-- keys are the users columns (src/users/mod.rs `Profile`).
--
-- A new user's sign-in calls it on its own (the session needs the new user id). A returning
-- user's sign-in calls it from the statement that inserts their new session
-- (src/session/store.rs): one round trip and one commit instead of two writes that wait for each
-- other on the user row (the session insert's activity trigger updates it too), and a sign-in
-- is recorded exactly when its session is created. That caller passes the user id it looked up
-- (`p_expected`): if the user was deleted and signed up again in between, the statement fails
-- (and writes nothing) rather than create a session for an id that is gone. It also passes the
-- new session's expiry, so the user row is written once: the session's activity trigger then
-- finds nothing to change (an update of this row is not HOT: it touches the activity and
-- trigram indexes).
create function users_sign_in(p_issuer text, p_subject text, p_profile jsonb, p_expected uuid default null,
                              p_session_expires_at timestamptz default null)
    returns uuid
    language plpgsql
    as $$
declare
    signed_in uuid;
begin
    insert into users as u (issuer, subject, name, username, email, email_verified, picture, roles,
                            identities, hf_user_id, hf_username, hf_avatar, claims)
    select p_issuer, p_subject, p.name, p.username, p.email, coalesce(p.email_verified, false), p.picture,
           coalesce(p.roles, '{}'), coalesce(p.identities, '{}'), p.hf_user_id, p.hf_username, p.hf_avatar,
           coalesce(p.claims, '{}')
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
