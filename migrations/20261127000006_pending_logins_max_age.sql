-- A step-up sign-in (before admin actions) sends `max_age`; the callback must then find a recent
-- `auth_time` in the ID token (OpenID Connect Core 3.1.2.1 and 3.1.3.7 #12).
alter table pending_logins add column max_age integer check (max_age is null or max_age >= 0);
