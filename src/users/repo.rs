//! All SQL about users.

use sqlx::PgPool;
use uuid::Uuid;

use super::{Profile, User};

/// Creates or updates the user identified by (issuer, subject) and records a sign-in.
/// Users are never matched by email.
#[tracing::instrument(name = "users.upsert", skip_all)]
pub async fn upsert_on_sign_in(
    pool: &PgPool,
    issuer: &str,
    subject: &str,
    p: &Profile,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "insert into users (issuer, subject, name, username, email, email_verified, picture, roles,
                            identities, hf_user_id, hf_username, hf_avatar, claims)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         on conflict (issuer, subject) do update
            set name = excluded.name, username = excluded.username, email = excluded.email,
                email_verified = excluded.email_verified, picture = excluded.picture,
                roles = excluded.roles, identities = excluded.identities,
                hf_user_id = excluded.hf_user_id, hf_username = excluded.hf_username,
                hf_avatar = excluded.hf_avatar, claims = excluded.claims,
                last_sign_in_at = now(), sign_in_count = users.sign_in_count + 1, updated_at = now()
         returning user_id",
    )
    .bind(issuer)
    .bind(subject)
    .bind(&p.name)
    .bind(&p.username)
    .bind(&p.email)
    .bind(p.email_verified)
    .bind(&p.picture)
    .bind(&p.roles)
    .bind(&p.identities)
    .bind(&p.hf_user_id)
    .bind(&p.hf_username)
    .bind(&p.hf_avatar)
    .bind(&p.claims)
    .fetch_one(pool)
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
