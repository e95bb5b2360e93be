//! All SQL of the admin pages.

use serde::Serialize;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::cursor::Cursor;
use crate::session::repo::Ended;

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
    sqlx::query_as(
        "select (select count(*) from users) as users,
                (select count(*) from users where sessions_expire_at > now()) as signed_in_users,
                (select count(*) from sessions where user_id is not null and expires_at > now()) as active_sessions,
                (select count(*) from sign_in_events where at > now() - interval '24 hours') as sign_ins_24h",
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
    pub hf_username: Option<String>,
    pub roles: Vec<String>,
    pub first_seen_at: time::OffsetDateTime,
    pub last_sign_in_at: time::OffsetDateTime,
    pub last_activity_at: time::OffsetDateTime,
    pub active_sessions: i64,
}

/// One page of users, newest activity first, after `cursor`. `active_only` keeps users with at
/// least one unexpired session. `search` is a case-insensitive substring of name, username or
/// email. Returns up to `PAGE_SIZE + 1` rows (the extra one tells there is a next page).
/// Up to this many matches of a search are ranked by activity in memory (only their ids and
/// times); a broader term is answered by walking the activity index instead.
const SELECTIVE_SEARCH_LIMIT: i64 = 50_000;
/// A search first looks at this many users in activity order: a common term fills a page there.
const SEARCH_WINDOW: i64 = 1000;

#[tracing::instrument(name = "admin.list_users", skip_all)]
pub async fn list_users(
    pool: &PgPool,
    active_only: bool,
    search: Option<&str>,
    cursor: Option<Cursor>,
) -> Result<Vec<UserRow>, sqlx::Error> {
    let Some(term) = search else {
        return page(pool, active_only, None, cursor, Strategy::ActivityIndex).await;
    };
    let pattern = format!("%{}%", escape_like(&term.to_lowercase()));
    // 1. A common term fills a page within the most recently active users.
    let recent = page(pool, active_only, Some(&pattern), cursor, Strategy::RecentWindow).await?;
    if recent.len() as i64 > PAGE_SIZE {
        return Ok(recent);
    }
    // 2. A selective term: the trigram index finds every match, then they are sorted.
    // 3. Otherwise (many matches, but sparse among recent users) walk the activity index.
    let (ranked, matched) = ranked_matches(pool, active_only, &pattern, cursor).await?;
    if matched <= SELECTIVE_SEARCH_LIMIT {
        return Ok(ranked);
    }
    page(pool, active_only, Some(&pattern), cursor, Strategy::ActivityIndex).await
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Strategy {
    /// Walk `users_activity_idx` newest first, filtering (broad or no search).
    ActivityIndex,
    /// Filter only the first `SEARCH_WINDOW` users in activity order.
    RecentWindow,
}

const USER_COLUMNS: &str = "u.user_id, u.subject, u.name, u.username, u.email, u.picture, u.hf_username, u.roles,
     u.first_seen_at, u.last_sign_in_at, u.last_activity_at, u.search_text";

/// One query per filter combination rather than `$n is null or …` guards: a generic plan with
/// such guards can use neither the trigram nor the activity index. The CTEs are `materialized`
/// so their LIMIT applies before anything else.
async fn page(
    pool: &PgPool,
    active_only: bool,
    pattern: Option<&str>,
    cursor: Option<Cursor>,
    strategy: Strategy,
) -> Result<Vec<UserRow>, sqlx::Error> {
    let mut sql = QueryBuilder::<Postgres>::new("with candidates as materialized (select ");
    sql.push(USER_COLUMNS).push(" from users u where true");
    match strategy {
        Strategy::ActivityIndex => {
            push_filters(&mut sql, active_only, pattern, cursor);
            sql.push(" order by u.last_activity_at desc, u.user_id desc limit ").push_bind(PAGE_SIZE + 1);
        }
        Strategy::RecentWindow => {
            push_filters(&mut sql, active_only, None, cursor);
            sql.push(" order by u.last_activity_at desc, u.user_id desc limit ").push_bind(SEARCH_WINDOW);
        }
    }
    sql.push(") select ").push(USER_COLUMNS).push(
        ", (select count(*) from sessions s where s.user_id = u.user_id and s.expires_at > now()) as active_sessions
           from candidates u where true",
    );
    if strategy == Strategy::RecentWindow {
        push_filters(&mut sql, false, pattern, None);
    }
    sql.push(" order by u.last_activity_at desc, u.user_id desc limit ").push_bind(PAGE_SIZE + 1);
    sql.build_query_as().fetch_all(pool).await
}

#[derive(sqlx::FromRow)]
struct RankedRow {
    #[sqlx(flatten)]
    row: UserRow,
    matched: i64,
}

/// Finds up to `SELECTIVE_SEARCH_LIMIT + 1` matches through the trigram index (ids and
/// activity only), ranks them, and loads the page's rows. Also returns how many matched.
async fn ranked_matches(
    pool: &PgPool,
    active_only: bool,
    pattern: &str,
    cursor: Option<Cursor>,
) -> Result<(Vec<UserRow>, i64), sqlx::Error> {
    let mut sql = QueryBuilder::<Postgres>::new(
        "with matches as materialized (select u.user_id, u.last_activity_at from users u where true",
    );
    push_filters(&mut sql, active_only, Some(pattern), cursor);
    sql.push(" limit ").push_bind(SELECTIVE_SEARCH_LIMIT + 1);
    sql.push(
        "), top as (select user_id from matches order by last_activity_at desc, user_id desc limit ",
    )
    .push_bind(PAGE_SIZE + 1)
    .push(") select ")
    .push(USER_COLUMNS)
    .push(
        ", (select count(*) from sessions s where s.user_id = u.user_id and s.expires_at > now()) as active_sessions,
           (select count(*) from matches) as matched
           from top join users u using (user_id)
          order by u.last_activity_at desc, u.user_id desc",
    );
    let rows: Vec<RankedRow> = sql.build_query_as().fetch_all(pool).await?;
    let matched = rows.first().map_or(0, |r| r.matched);
    Ok((rows.into_iter().map(|r| r.row).collect(), matched))
}

fn push_filters(sql: &mut QueryBuilder<Postgres>, active_only: bool, pattern: Option<&str>, cursor: Option<Cursor>) {
    if active_only {
        sql.push(" and u.sessions_expire_at > now()");
    }
    if let Some(pattern) = pattern {
        sql.push(" and u.search_text like ").push_bind(pattern.to_owned());
    }
    if let Some(c) = cursor {
        sql.push(" and (u.last_activity_at, u.user_id) < (to_timestamp(")
            .push_bind(c.activity_micros as f64 / 1_000_000.0)
            .push("), ")
            .push_bind(c.user_id)
            .push(")");
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
    sqlx::query_as(
        "select user_id, issuer, subject, name, username, email, email_verified, picture, roles, hf_user_id,
                hf_username, hf_avatar, first_seen_at, last_sign_in_at, last_activity_at, sign_in_count
           from users where user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await
}

/// Deletes one session by its public id; returns its user and refresh token if it existed.
#[tracing::instrument(name = "admin.revoke_session", skip_all)]
pub async fn revoke_session(pool: &PgPool, session_id: Uuid) -> Result<Option<(Option<Uuid>, Ended)>, sqlx::Error> {
    let row: Option<(Option<Uuid>, Vec<u8>, Option<String>)> =
        sqlx::query_as("delete from sessions where session_id = $1 returning user_id, key_hash, refresh_token")
            .bind(session_id)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(user_id, key_hash, refresh_token)| (user_id, Ended { key_hash, refresh_token })))
}
