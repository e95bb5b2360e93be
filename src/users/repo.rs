//! All SQL about users.

use sqlx::PgPool;
use uuid::Uuid;

use super::{Profile, User};

/// Creates or updates the user identified by (issuer, subject) and records a sign-in (the
/// `users_sign_in` function, which a returning user's session insert also calls).
/// Users are never matched by email.
#[tracing::instrument(name = "users.upsert", skip_all)]
pub async fn upsert_on_sign_in(pool: &PgPool, issuer: &str, subject: &str, p: &Profile) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar("select users_sign_in($1, $2, $3)")
        .bind(issuer)
        .bind(subject)
        .bind(sqlx::types::Json(p))
        .fetch_one(pool)
        .await
}

/// The id of the user known by (issuer, subject), if any (a read; nothing is written).
#[tracing::instrument(name = "users.find_id", skip_all)]
pub async fn find_id(pool: &PgPool, issuer: &str, subject: &str) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("select user_id from users where issuer = $1 and subject = $2")
        .bind(issuer)
        .bind(subject)
        .fetch_optional(pool)
        .await
}

#[tracing::instrument(name = "users.get", skip_all)]
pub async fn get(pool: &PgPool, user_id: Uuid) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(
        "select user_id, issuer, subject, name, username, email, email_verified, picture, roles,
                identities, hf_user_id, hf_username, hf_avatar
           from users where user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await
}

/// Updates a user's profile from a refreshed ID token (or a revalidation's userinfo): a field
/// changes only when `claims` carries its claim, so what only userinfo said at sign-in (and
/// `identities`) is kept rather than set to NULL.
#[tracing::instrument(name = "users.update_from_refresh", skip_all)]
pub async fn update_from_refresh(conn: &mut sqlx::PgConnection, user_id: Uuid, p: &Profile) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update users
            set name = case when $8 ? 'name' then $2 else name end,
                username = case when $8 ?| array['username', 'preferred_username'] then $3 else username end,
                email = case when $8 ? 'email' then $4 else email end,
                email_verified = case when $8 ? 'email_verified' then $5 else email_verified end,
                picture = case when $8 ? 'picture' then $6 else picture end,
                roles = case when $8 ? 'roles' then $7 else roles end,
                claims = claims || $8, updated_at = now()
          where user_id = $1",
    )
    .bind(user_id)
    .bind(&p.name)
    .bind(&p.username)
    .bind(&p.email)
    .bind(p.email_verified)
    .bind(&p.picture)
    .bind(&p.roles)
    .bind(&p.claims)
    .execute(conn)
    .await
    .map(|_| ())
}
