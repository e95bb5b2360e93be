//! Database plumbing that belongs to no one domain.

use sqlx::PgPool;

/// True when Postgres answers a trivial query.
pub async fn ping(pool: &PgPool) -> bool {
    sqlx::query("select 1").execute(pool).await.is_ok()
}
