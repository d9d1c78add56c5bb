//! PostgreSQL: the connection pool, the embedded migrations and the queries.
//!
//! Queries are plain functions over a `PgConnection` (no actix types) and run on blocking
//! threads only. Migrations are applied at start-up under an advisory lock, so several instances
//! starting at once apply them exactly once; `diesel migration run` applies the same files.

pub mod models;
pub mod queries;
pub mod schema;

use std::time::Duration;

use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};
use diesel::{sql_query, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::metrics::Metrics;

pub type DbPool = Pool<ConnectionManager<PgConnection>>;
pub type DbConn = PooledConnection<ConnectionManager<PgConnection>>;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// How long taking a connection from the pool may wait before the write counts as failed.
pub const POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// Days of `tetcore_logs_expiring` partitions kept ready ahead of now.
pub const PARTITION_DAYS_AHEAD: i32 = 7;

/// The partition widths (hours) that tile a day.
const PARTITION_WIDTHS: [i32; 8] = [1, 2, 3, 4, 6, 8, 12, 24];

/// How wide the partitions of expiring messages are: about a 24th of the retention, from 1 hour
/// to a day. The oldest partition is only partly expired, so its rows are deleted one by one;
/// narrow partitions keep that work small for short retentions, and a day keeps the number of
/// partitions small for long ones.
pub fn partition_hours(log_expiry: Duration) -> i32 {
    let share = log_expiry.as_secs() / 3600 / 24;
    PARTITION_WIDTHS
        .into_iter()
        .filter(|w| u64::try_from(*w).is_ok_and(|w| w <= share.max(1)))
        .max()
        .unwrap_or(1)
}

/// Any i64 that no other code of ours uses as an advisory lock key.
const MIGRATION_LOCK: i64 = 0x7465_7463_6f72_6501;

/// The query pool (API, probes, cache refreshes), apart from the writer's and the purge's own
/// connections, so heavy reads never stall ingest. Every statement on it is cut off after
/// `statement_timeout`. It connects lazily: building it never fails because the database is
/// down; each checkout is tested, so connections broken by a database restart are replaced.
pub fn pool(database_url: &str, size: u32, statement_timeout: Duration) -> DbPool {
    Pool::builder()
        .max_size(size)
        .min_idle(Some(0))
        .connection_timeout(POOL_TIMEOUT)
        .test_on_check_out(true)
        .connection_customizer(Box::new(StatementTimeout(statement_timeout)))
        // Callers report what failed; r2d2 would log every failed connection attempt.
        .error_handler(Box::new(diesel::r2d2::NopErrorHandler))
        .build_unchecked(ConnectionManager::new(database_url))
}

/// A connection from the query pool, waiting at most `wait`; the wait and any timeout are
/// counted (`tetcore_db_pool_wait_seconds`, `tetcore_db_pool_timeouts_total`).
pub fn checkout(pool: &DbPool, wait: Duration, metrics: &Metrics) -> Result<DbConn, String> {
    let started = std::time::Instant::now();
    let conn = pool.get_timeout(wait);
    metrics
        .pool_wait_seconds
        .observe(started.elapsed().as_secs_f64());
    conn.map_err(|e| {
        metrics.pool_timeouts.inc();
        e.to_string()
    })
}

#[derive(Debug)]
struct StatementTimeout(Duration);

impl diesel::r2d2::CustomizeConnection<PgConnection, diesel::r2d2::Error> for StatementTimeout {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        sql_query(format!("SET statement_timeout = {}", self.0.as_millis()))
            .execute(conn)
            .map(|_| ())
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

#[derive(Debug)]
pub struct SetupError(pub String);

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SetupError {}

/// Applies pending migrations (one instance at a time) and makes sure the partitions ingest
/// needs exist, `partition_hours` wide. Returns the versions it applied.
pub fn prepare(conn: &mut PgConnection, partition_hours: i32) -> Result<Vec<String>, SetupError> {
    sql_query("SELECT pg_advisory_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK)
        .execute(conn)
        .map_err(|e| SetupError(format!("taking the migration lock: {e}")))?;
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(|v| v.to_string()).collect())
        .map_err(|e| SetupError(format!("applying migrations: {e}")));
    let unlocked = sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK)
        .execute(conn);
    let applied = applied?;
    unlocked.map_err(|e| SetupError(format!("releasing the migration lock: {e}")))?;
    queries::partitions::ensure_ahead(conn, partition_hours, PARTITION_DAYS_AHEAD)
        .map_err(|e| SetupError(format!("creating partitions: {e}")))?;
    Ok(applied)
}

/// Whether a connection still answers: after an error, tells "the database refused this" from
/// "the database is gone".
pub fn answers(conn: &mut PgConnection) -> bool {
    sql_query("SELECT 1").execute(conn).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_a_24th_of_the_retention_from_an_hour_to_a_day() {
        let hours = |h: u64| partition_hours(Duration::from_secs(h * 3600));
        assert_eq!(hours(0), 1);
        assert_eq!(hours(24), 1);
        assert_eq!(hours(72), 3);
        assert_eq!(hours(168), 6);
        assert_eq!(hours(240), 8);
        assert_eq!(hours(24 * 30), 24);
        assert_eq!(hours(280_320), 24);
    }
}
