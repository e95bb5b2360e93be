//! Database plumbing that belongs to no one domain.

use sqlx::PgPool;

/// True when Postgres answers a trivial query.
pub async fn ping(pool: &PgPool) -> bool {
    sqlx::query_scalar!(r#"select 1 as "one!""#).fetch_one(pool).await.is_ok()
}
