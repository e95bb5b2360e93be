//! All SQL of the admin pages.

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::cursor::Cursor;

pub const PAGE_SIZE: i64 = 50;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Counts {
    pub users: i64,
    pub signed_in_users: i64,
    pub active_sessions: i64,
    pub sign_ins_24h: i64,
}

/// The headline counts (exact; the caller caches them for a few seconds).
#[tracing::instrument(name = "admin.counts", skip_all)]
pub async fn counts(pool: &PgPool) -> Result<Counts, sqlx::Error> {
    sqlx::query_as!(
        Counts,
        r#"select (select count(*) from users) as "users!",
                (select count(*) from users where sessions_expire_at > now()) as "signed_in_users!",
                (select count(*) from sessions where user_id is not null and expires_at > now()) as "active_sessions!",
                (select count(*) from sign_in_events where at > now() - interval '24 hours') as "sign_ins_24h!""#
    )
    .fetch_one(pool)
    .await
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct UserRow {
    pub user_id: Uuid,
    pub subject: String,
    pub name: Option<String>,
    pub username: Option<String>,
    pub email: Option<String>,
    pub picture: Option<String>,
    pub hf_user_id: Option<String>,
    pub hf_username: Option<String>,
    pub roles: Vec<String>,
    pub first_seen_at: time::OffsetDateTime,
    pub last_sign_in_at: time::OffsetDateTime,
    pub last_activity_at: time::OffsetDateTime,
    pub active_sessions: i64,
}

/// One page of users, newest activity first, after `cursor`. `active_only` keeps users with at
/// least one unexpired session. `search` is a case-insensitive substring of name, username or
/// email: a `like` on the stored lower-case search text, which the trigram index answers (the
/// term is folded by Postgres `lower()` here, exactly as the stored text was). Returns up to
/// `PAGE_SIZE + 1` rows (the extra one tells there is a next page). One fixed query per filter
/// combination, so each gets its own plan: the planner walks the activity index for a broad
/// term (a page of matches comes soon) and asks the trigram index for a selective one.
#[tracing::instrument(name = "admin.list_users", skip_all)]
pub async fn list_users(
    pool: &PgPool,
    active_only: bool,
    search: Option<&str>,
    cursor: Option<Cursor>,
) -> Result<Vec<UserRow>, sqlx::Error> {
    // Without a cursor the first page starts after the newest possible (activity, id).
    let after_activity = cursor.map(|c| c.activity_micros as f64 / 1_000_000.0);
    let after_user = cursor.map(|c| c.user_id);
    let limit = PAGE_SIZE + 1;
    let pattern = search.map(|term| format!("%{}%", escape_like(term)));
    match (active_only, pattern) {
        (false, None) => sqlx::query_as!(
            UserRow,
            r#"select u.user_id, u.subject, u.name, u.username, u.email, u.picture, u.hf_user_id, u.hf_username, u.roles,
                      u.first_seen_at, u.last_sign_in_at, u.last_activity_at,
                      (select count(*) from sessions s where s.user_id = u.user_id and s.expires_at > now()) as "active_sessions!"
                 from users u
                where (u.last_activity_at, u.user_id) < (coalesce(to_timestamp($1::float8), 'infinity'),
                                                         coalesce($2::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
                order by u.last_activity_at desc, u.user_id desc
                limit $3"#,
            after_activity,
            after_user,
            limit
        )
        .fetch_all(pool)
        .await,
        (true, None) => sqlx::query_as!(
            UserRow,
            r#"select u.user_id, u.subject, u.name, u.username, u.email, u.picture, u.hf_user_id, u.hf_username, u.roles,
                      u.first_seen_at, u.last_sign_in_at, u.last_activity_at,
                      (select count(*) from sessions s where s.user_id = u.user_id and s.expires_at > now()) as "active_sessions!"
                 from users u
                where u.sessions_expire_at > now()
                  and (u.last_activity_at, u.user_id) < (coalesce(to_timestamp($1::float8), 'infinity'),
                                                         coalesce($2::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
                order by u.last_activity_at desc, u.user_id desc
                limit $3"#,
            after_activity,
            after_user,
            limit
        )
        .fetch_all(pool)
        .await,
        (false, Some(pattern)) => sqlx::query_as!(
            UserRow,
            r#"select u.user_id, u.subject, u.name, u.username, u.email, u.picture, u.hf_user_id, u.hf_username, u.roles,
                      u.first_seen_at, u.last_sign_in_at, u.last_activity_at,
                      (select count(*) from sessions s where s.user_id = u.user_id and s.expires_at > now()) as "active_sessions!"
                 from users u
                where u.search_text like lower($4::text)
                  and (u.last_activity_at, u.user_id) < (coalesce(to_timestamp($1::float8), 'infinity'),
                                                         coalesce($2::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
                order by u.last_activity_at desc, u.user_id desc
                limit $3"#,
            after_activity,
            after_user,
            limit,
            pattern
        )
        .fetch_all(pool)
        .await,
        (true, Some(pattern)) => sqlx::query_as!(
            UserRow,
            r#"select u.user_id, u.subject, u.name, u.username, u.email, u.picture, u.hf_user_id, u.hf_username, u.roles,
                      u.first_seen_at, u.last_sign_in_at, u.last_activity_at,
                      (select count(*) from sessions s where s.user_id = u.user_id and s.expires_at > now()) as "active_sessions!"
                 from users u
                where u.sessions_expire_at > now()
                  and u.search_text like lower($4::text)
                  and (u.last_activity_at, u.user_id) < (coalesce(to_timestamp($1::float8), 'infinity'),
                                                         coalesce($2::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
                order by u.last_activity_at desc, u.user_id desc
                limit $3"#,
            after_activity,
            after_user,
            limit,
            pattern
        )
        .fetch_all(pool)
        .await,
    }
}

/// Escapes LIKE's wildcards so a search term matches literally.
fn escape_like(term: &str) -> String {
    term.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct UserDetail {
    pub user_id: Uuid,
    pub issuer: String,
    pub subject: String,
    pub name: Option<String>,
    pub username: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
    pub picture: Option<String>,
    pub roles: Vec<String>,
    pub hf_user_id: Option<String>,
    pub hf_username: Option<String>,
    pub hf_avatar: Option<String>,
    pub first_seen_at: time::OffsetDateTime,
    pub last_sign_in_at: time::OffsetDateTime,
    pub last_activity_at: time::OffsetDateTime,
    pub sign_in_count: i64,
}

#[tracing::instrument(name = "admin.user", skip_all)]
pub async fn user(pool: &PgPool, user_id: Uuid) -> Result<Option<UserDetail>, sqlx::Error> {
    sqlx::query_as!(
        UserDetail,
        "select user_id, issuer, subject, name, username, email, email_verified, picture, roles, hf_user_id,
                hf_username, hf_avatar, first_seen_at, last_sign_in_at, last_activity_at, sign_in_count
           from users where user_id = $1",
        user_id
    )
    .fetch_optional(pool)
    .await
}
