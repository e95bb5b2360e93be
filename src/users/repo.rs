//! All SQL about users.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{ClaimedProfile, Profile, User};

/// Creates or updates the user identified by (issuer, subject) and records a sign-in (the
/// `users_sign_in` SQL function: profile, counters, sign-in event). Users are never matched by
/// email.
#[tracing::instrument(name = "users.sign_in", skip_all)]
pub async fn sign_in(
    conn: &mut PgConnection,
    issuer: &str,
    subject: &str,
    p: &ClaimedProfile,
) -> Result<Uuid, sqlx::Error> {
    let profile = serde_json::to_value(p).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query_scalar!(r#"select users_sign_in($1, $2, $3) as "user_id!""#, issuer, subject, profile)
        .fetch_one(conn)
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
