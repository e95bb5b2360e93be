//! All SQL about users.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{ClaimedProfile, Profile, User};

/// The id of the user known by (issuer, subject), if any (a read; nothing is written).
#[tracing::instrument(name = "users.find_id", skip_all)]
pub async fn find_id(pool: &PgPool, issuer: &str, subject: &str) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!("select user_id from users where issuer = $1 and subject = $2", issuer, subject)
        .fetch_optional(pool)
        .await
}

#[tracing::instrument(name = "users.get", skip_all)]
pub async fn get(pool: &PgPool, user_id: Uuid) -> Result<Option<User>, sqlx::Error> {
    let row = sqlx::query!(
        "select user_id, issuer, subject, name, username, email, email_verified, picture, roles,
                identities, hf_user_id, hf_username, hf_avatar
           from users where user_id = $1",
        user_id
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| User {
        user_id: r.user_id,
        issuer: r.issuer,
        subject: r.subject,
        profile: Profile {
            name: r.name,
            username: r.username,
            email: r.email,
            email_verified: r.email_verified,
            picture: r.picture,
            roles: r.roles,
            identities: r.identities,
            hf_user_id: r.hf_user_id,
            hf_username: r.hf_username,
            hf_avatar: r.hf_avatar,
        },
    }))
}

/// Updates a user's profile from a refreshed ID token (or a revalidation's userinfo): a field
/// changes only when the claims carry it, so what only userinfo said at sign-in (and
/// `identities`) is kept rather than set to NULL.
#[tracing::instrument(name = "users.update_from_refresh", skip_all)]
pub async fn update_from_refresh(
    conn: &mut PgConnection,
    user_id: Uuid,
    p: &ClaimedProfile,
) -> Result<(), sqlx::Error> {
    let q = &p.profile;
    sqlx::query!(
        "update users
            set name = case when $8::jsonb ? 'name' then $2 else name end,
                username = case when $8 ?| array['username', 'preferred_username'] then $3 else username end,
                email = case when $8 ? 'email' then $4 else email end,
                email_verified = case when $8 ? 'email_verified' then $5 else email_verified end,
                picture = case when $8 ? 'picture' then $6 else picture end,
                roles = case when $8 ? 'roles' then $7 else roles end,
                claims = claims || $8, updated_at = now()
          where user_id = $1",
        user_id,
        q.name.as_deref(),
        q.username.as_deref(),
        q.email.as_deref(),
        q.email_verified,
        q.picture.as_deref(),
        &q.roles,
        &p.claims,
    )
    .execute(conn)
    .await
    .map(|_| ())
}
