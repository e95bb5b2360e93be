-- When this session was last checked against Logto (sign-in, or a refresh that returned a
-- verified ID token). Sessions older than SESSION_REVALIDATE_AFTER are checked again before an
-- admin request, and in the background once they have been used since.
alter table sessions add column revalidated_at timestamptz not null default now();
create index sessions_revalidation_idx on sessions (revalidated_at) where user_id is not null;
