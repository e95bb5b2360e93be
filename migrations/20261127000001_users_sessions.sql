-- Users are keyed by (issuer, subject): the pair OpenID Connect guarantees to be stable and
-- never reassigned. Email is a plain attribute and is never used to link accounts.
create table users (
    user_id         uuid primary key default gen_random_uuid(),
    issuer          text not null,
    subject         text not null check (length(subject) between 1 and 255),
    name            text,
    username        text,
    email           text,
    email_verified  boolean not null default false,
    picture         text,
    roles           text[] not null default '{}',
    identities      jsonb not null default '{}',
    -- The Hugging Face account Logto linked (from the userinfo `identities` claim).
    hf_user_id      text,
    hf_username     text,
    hf_avatar       text,
    -- Every validated claim (ID token merged with userinfo) as last seen, for support and audits.
    claims          jsonb not null default '{}',
    first_seen_at   timestamptz not null default now(),
    last_sign_in_at timestamptz not null default now(),
    sign_in_count   bigint not null default 1,
    updated_at      timestamptz not null default now(),
    unique (issuer, subject)
);

-- One row per browser session. The primary key is the SHA-256 of the cookie's session key, so a
-- copy of this table holds no usable cookie. `state` is the actix-session state; the other
-- columns are kept by the session store (projections of the state) or, for the tokens, by SQL
-- that runs under a row lock (refreshes must be serialised: Logto revokes the whole grant when
-- a rotated refresh token is used twice). Tokens never leave the server.
create table sessions (
    key_hash      bytea primary key,
    state         jsonb not null,
    -- Stable public id of a signed-in session (the key changes at sign-in; this does not).
    session_id    uuid unique,
    user_id       uuid references users (user_id) on delete cascade,
    logto_sid     text,
    user_agent    text,
    client_ip     inet,
    id_token      text,
    access_token  text,
    access_token_expires_at timestamptz,
    refresh_token text,
    created_at    timestamptz not null default now(),
    last_seen_at  timestamptz not null default now(),
    expires_at    timestamptz not null
);
-- The sweeper deletes by expiry; the admin page and "sign out everywhere" find a user's
-- sessions; back-channel logout finds a session by Logto's `sid`.
create index sessions_expires_at_idx on sessions (expires_at);
create index sessions_user_id_idx on sessions (user_id) where user_id is not null;
create index sessions_logto_sid_idx on sessions (logto_sid) where logto_sid is not null;

-- Access tokens for Logto API resources / organizations (RFC 8707), cached per session until
-- shortly before they expire.
create table session_access_tokens (
    session_id    uuid not null references sessions (session_id) on delete cascade,
    audience      text not null,
    access_token  text not null,
    expires_at    timestamptz not null,
    primary key (session_id, audience)
);

-- Back-channel logout tokens already used (`jti`), kept until they expire: a replay is refused.
create table logout_token_jtis (
    jti_hash    bytea primary key,
    expires_at  timestamptz not null
);
create index logout_token_jtis_expires_at_idx on logout_token_jtis (expires_at);

-- A sign-in in progress: created by /sign-in, consumed (deleted) by the first /callback that
-- presents its state from the same browser. Several may be pending per browser (several tabs).
create table pending_logins (
    state_hash     bytea primary key,
    binding_hash   bytea not null,
    nonce          text not null,
    pkce_verifier  text not null,
    return_to      text not null,
    created_at     timestamptz not null default now(),
    expires_at     timestamptz not null
);
create index pending_logins_expires_at_idx on pending_logins (expires_at);
create index pending_logins_binding_idx on pending_logins (binding_hash);
