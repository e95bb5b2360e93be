-- Pending sign-ins live at most ten minutes and are used once. They need no crash safety: after
-- a Postgres crash (an unlogged table is emptied) a user whose sign-in was in flight just
-- signs in again. Skipping the WAL takes a flush off both ends of every sign-in
-- (`/sign-in` inserts a row, `/callback` deletes it).
alter table pending_logins set unlogged;
