-- actix-session deletes a browser's previous session row when a sign-in renews the session (and
-- on sign-out). When that row is a pre-login one (a login binding, nothing else: its pending
-- sign-in was consumed), the delete is committed without waiting for the WAL flush: should
-- Postgres crash within that instant, the row merely lives on until its 10-minute expiry. Every
-- other delete stays fully durable (a revoked signed-in session must stay revoked).
create function delete_session_row(p_key_hash bytea) returns void
    language plpgsql
    as $$
begin
    if exists (select 1 from sessions where key_hash = p_key_hash and user_id is null) then
        perform set_config('synchronous_commit', 'off', true);
    end if;
    delete from sessions where key_hash = p_key_hash;
end
$$;
