-- Registers logto-signin in the bundled Logto, idempotently (docker compose runs it on every
-- `up`). Columns follow Logto 1.42's `applications` and `roles` tables
-- (logto-io/logto packages/schemas/tables/applications.sql and roles.sql); .ci/run checks them
-- against docker/logto-schema.json.
--
-- psql variables: app_id, app_secret (from .env: LOGTO_APP_ID, LOGTO_APP_SECRET).

\set ON_ERROR_STOP 1

-- A Traditional web app (client_secret_basic). The secret goes straight into
-- `applications.secret`: Logto accepts it when no `application_secrets` row matches.
insert into applications
    (tenant_id, id, name, secret, description, type, oidc_client_metadata, custom_client_metadata)
values (
    'default',
    :'app_id',
    'logto-signin',
    :'app_secret',
    'The Rust sign-in demo (logto-signin), registered by docker compose.',
    'Traditional',
    jsonb_build_object(
        'redirectUris', jsonb_build_array('http://localhost:3000/callback'),
        'postLogoutRedirectUris', jsonb_build_array('http://localhost:3000/'),
        'backchannelLogoutUri', 'http://app:3000/backchannel-logout',
        'backchannelLogoutSessionRequired', true
    ),
    '{"idTokenTtl": 3600, "refreshTokenTtlInDays": 14, "rotateRefreshToken": true}'::jsonb
)
on conflict (id) do update
    set secret = excluded.secret,
        oidc_client_metadata = excluded.oidc_client_metadata,
        custom_client_metadata = excluded.custom_client_metadata;

-- The role the app treats as admin (ADMIN_ROLE=admin). Assign it to a user in the console at
-- http://localhost:3002 (User management → the user → Roles).
insert into roles (tenant_id, id, name, description, type)
values ('default', 'logtosigninadmin', 'admin', 'Administrator of the logto-signin app', 'User')
on conflict (tenant_id, name) do nothing;
