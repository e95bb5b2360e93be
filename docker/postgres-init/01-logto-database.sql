-- Runs once, when the Postgres volume is created: Logto gets its own database on the same
-- server as the app's (POSTGRES_DB).
create database logto;
