//! All SQL of the admin pages.

use serde::Serialize;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::cursor::Cursor;
use super::search::SearchTerm;

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

/// Up to this many matches of a search are ranked by activity in memory (only their ids and
/// times); a broader term is answered by walking the activity index instead.
const SELECTIVE_SEARCH_LIMIT: i64 = 50_000;
/// A search first looks at this many users in activity order: a common term fills a page there.
const SEARCH_WINDOW: i64 = 1000;
/// A second, longer look in activity order examines at most this many users.
const SEARCH_WALK_LIMIT: i64 = 10_000;

/// One page of users, newest activity first, after `cursor`. `active_only` keeps users with at
/// least one unexpired session. `search` is a case-insensitive substring of name, username or
/// email (see `search.rs`). Returns up to `PAGE_SIZE + 1` rows (the extra one tells there is a
/// next page).
#[tracing::instrument(name = "admin.list_users", skip_all)]
pub async fn list_users(
    pool: &PgPool,
    active_only: bool,
    search: Option<&SearchTerm>,
    cursor: Option<Cursor>,
) -> Result<Vec<UserRow>, sqlx::Error> {
    let Some(search) = search else {
        return page(pool, active_only, None, cursor, Strategy::ActivityIndex).await;
    };
    // 1. A common term fills a page within the most recently active users.
    let recent = page(pool, active_only, Some(search), cursor, Strategy::Walk { examine: SEARCH_WINDOW }).await?;
    if recent.len() as i64 > PAGE_SIZE {
        return Ok(recent);
    }
    // 2. The window measured how dense the matches are among active users: when a page is
    //    expected within a longer walk, take it (it stops at the page's last match).
    if let Some(examine) = further_walk(recent.len() as i64) {
        let walked = page(pool, active_only, Some(search), cursor, Strategy::Walk { examine }).await?;
        if walked.len() as i64 > PAGE_SIZE {
            return Ok(walked);
        }
    }
    // 3. A selective term: the trigram index finds every match, then they are sorted.
    // 4. Otherwise (many matches, but sparse among recent users) walk the activity index.
    let (ranked, matched) = ranked_matches(pool, active_only, search, cursor).await?;
    if matched <= SELECTIVE_SEARCH_LIMIT {
        return Ok(ranked);
    }
    page(pool, active_only, Some(search), cursor, Strategy::ActivityIndex).await
}

/// How many users to examine in a second walk, given the matches among the first
/// `SEARCH_WINDOW`: twice the expected distance to a full page, if that stays within
/// `SEARCH_WALK_LIMIT` (a term with a few recent matches and none after them costs at most that).
fn further_walk(found_in_window: i64) -> Option<i64> {
    if found_in_window == 0 {
        return None;
    }
    let expected = SEARCH_WINDOW * (PAGE_SIZE + 1) / found_in_window;
    (expected <= SEARCH_WALK_LIMIT / 2).then_some(2 * expected)
}

#[derive(Clone, Copy)]
enum Strategy {
    /// Walk `users_activity_idx` newest first, filtering (broad or no search).
    ActivityIndex,
    /// Walk `users_activity_idx` newest first, filtering, but examine at most `examine` users.
    Walk { examine: i64 },
}

const USER_COLUMNS: &str =
    "u.user_id, u.subject, u.name, u.username, u.email, u.picture, u.hf_user_id, u.hf_username, u.roles,
     u.first_seen_at, u.last_sign_in_at, u.last_activity_at, u.search_text";
const ACTIVE_SESSIONS: &str =
    "(select count(*) from sessions s where s.user_id = u.user_id and s.expires_at > now()) as active_sessions";

/// One query per filter combination rather than `$n is null or …` guards: a generic plan with
/// such guards can use neither the trigram nor the activity index.
async fn page(
    pool: &PgPool,
    active_only: bool,
    search: Option<&SearchTerm>,
    cursor: Option<Cursor>,
    strategy: Strategy,
) -> Result<Vec<UserRow>, sqlx::Error> {
    let mut sql = QueryBuilder::<Postgres>::new("");
    match strategy {
        Strategy::ActivityIndex => {
            // `materialized`: the page's LIMIT applies before the session counts are computed.
            sql.push("with candidates as materialized (select ").push(USER_COLUMNS).push(" from users u where true");
            push_filters(&mut sql, active_only, search, cursor);
            sql.push(" order by u.last_activity_at desc, u.user_id desc limit ").push_bind(PAGE_SIZE + 1);
            sql.push(") select ").push(USER_COLUMNS).push(", ").push(ACTIVE_SESSIONS).push(" from candidates u");
        }
        Strategy::Walk { examine } => {
            // The inner LIMIT keeps the subquery apart, and both levels stream in index order:
            // the walk stops at the page's last match or after `examine` users.
            sql.push("select ").push(USER_COLUMNS).push(", ").push(ACTIVE_SESSIONS);
            sql.push(" from (select ").push(USER_COLUMNS).push(" from users u where true");
            push_filters(&mut sql, active_only, None, cursor);
            sql.push(" order by u.last_activity_at desc, u.user_id desc limit ").push_bind(examine);
            sql.push(") u where true");
            push_filters(&mut sql, false, search, None);
        }
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
    search: &SearchTerm,
    cursor: Option<Cursor>,
) -> Result<(Vec<UserRow>, i64), sqlx::Error> {
    let mut sql = QueryBuilder::<Postgres>::new(
        "with matches as materialized (select u.user_id, u.last_activity_at from users u where true",
    );
    push_filters(&mut sql, active_only, Some(search), cursor);
    sql.push(" limit ").push_bind(SELECTIVE_SEARCH_LIMIT + 1);
    sql.push("), top as (select user_id from matches order by last_activity_at desc, user_id desc limit ")
        .push_bind(PAGE_SIZE + 1)
        .push(") select ")
        .push(USER_COLUMNS)
        .push(", ")
        .push(ACTIVE_SESSIONS)
        .push(
            ", (select count(*) from matches) as matched
           from top join users u using (user_id)
          order by u.last_activity_at desc, u.user_id desc",
        );
    let rows: Vec<RankedRow> = sql.build_query_as().fetch_all(pool).await?;
    let matched = rows.first().map_or(0, |r| r.matched);
    Ok((rows.into_iter().map(|r| r.row).collect(), matched))
}

fn push_filters(
    sql: &mut QueryBuilder<Postgres>,
    active_only: bool,
    search: Option<&SearchTerm>,
    cursor: Option<Cursor>,
) {
    if active_only {
        sql.push(" and u.sessions_expire_at > now()");
    }
    if let Some(search) = search {
        sql.push(" and u.search_text like ").push_bind(search.index_pattern());
        if search.needs_full_check() {
            // Not indexable on purpose: checked on the rows the index found.
            sql.push(" and strpos(u.search_text, ").push_bind(search.lowered.clone()).push(") > 0");
        }
    }
    if let Some(c) = cursor {
        sql.push(" and (u.last_activity_at, u.user_id) < (to_timestamp(")
            .push_bind(c.activity_micros as f64 / 1_000_000.0)
            .push("), ")
            .push_bind(c.user_id)
            .push(")");
    }
}

/// The trigrams found in at least `share` of the users' search texts, from a sample of about
/// 20,000 users (all of them when there are fewer): see `search.rs`. The sample is a share of
/// the table's pages sized by the planner's row count, and never more than 50,000 rows (a table
/// that was never analyzed is sampled whole, up to that bound).
#[tracing::instrument(name = "admin.common_trigrams", skip_all)]
pub async fn common_trigrams(pool: &PgPool, share: f64) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(r#"with sample as (
             select search_text from users
             tablesample system (least(100, 2000000.0 / greatest((select reltuples from pg_class where oid = 'users'::regclass), 1)))
             limit 50000),
         sampled as (select count(*) as users from sample)
         select t as "t!" from sample, unnest(show_trgm(sample.search_text)) t
          group by t
         having count(*) >= $1::float8 * (select users from sampled)"#, share)
    .fetch_all(pool)
    .await
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

/// `term` folded by Postgres `lower()`, as `users.search_text` is.
pub async fn fold_like_search_text(pool: &PgPool, term: &str) -> Result<String, sqlx::Error> {
    sqlx::query_scalar!(r#"select lower($1) as "lowered!""#, term).fetch_one(pool).await
}
