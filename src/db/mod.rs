//! PostgreSQL: the connection pool, the embedded migrations and the queries, and (`ingest`) the
//! writer's and exports' own tokio-postgres connections.
//!
//! Queries are plain functions over a `PgConnection` (no actix types) and run on blocking
//! threads only. Migrations are applied at start-up under an advisory lock, so several instances
//! starting at once apply them exactly once; `diesel migration run` applies the same files.

pub mod ingest;
pub mod models;
pub mod queries;
pub mod schema;

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};
use diesel::{sql_query, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::config::Config;
use crate::metrics::Metrics;

pub type DbPool = Pool<ConnectionManager<PgConnection>>;
pub type DbConn = PooledConnection<ConnectionManager<PgConnection>>;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// How long taking a connection from the pool may wait before the write counts as failed.
pub const POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// Days of `tetcore_logs_expiring` partitions made ready ahead of now at start-up (purge passes
/// keep at least as many, `queries::partitions::days_ahead`).
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

/// The database URL for libpq (diesel's connections: the query pool, purge, migrations), with a
/// deadline on connecting and TCP keepalives, so a host that vanished without a reset is noticed
/// (settings already in the URL win).
pub fn libpq_url(url: &str, connect_timeout: Duration) -> String {
    let mut url = url.to_owned();
    let defaults = [
        (
            "connect_timeout",
            connect_timeout.as_secs().max(1).to_string(),
        ),
        ("keepalives", "1".into()),
        ("keepalives_idle", "10".into()),
        ("keepalives_interval", "5".into()),
        ("keepalives_count", "3".into()),
    ];
    for (key, value) in defaults {
        let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
        if query.split('&').any(|kv| kv.split('=').next() == Some(key)) {
            continue;
        }
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("{key}={value}"));
    }
    url
}

/// Any i64 that no other code of ours uses as an advisory lock key.
const MIGRATION_LOCK: i64 = 0x7465_7463_6f72_6501;

/// The query pool (API, probes, cache refreshes), apart from the writer's and the purge's own
/// connections, so heavy reads never stall ingest. Every statement on it is cut off after
/// `statement_timeout`. It connects lazily: building it never fails because the database is
/// down; each checkout is tested, so connections broken by a database restart are replaced.
pub fn pool(config: &Config) -> DbPool {
    let url = libpq_url(&config.database_url, config.db_connect_timeout);
    Pool::builder()
        .max_size(config.db_pool_size)
        .min_idle(Some(0))
        .connection_timeout(POOL_TIMEOUT)
        .test_on_check_out(true)
        .connection_customizer(Box::new(QuerySession(config.query_timeout)))
        // Callers report what failed; r2d2 would log every failed connection attempt.
        .error_handler(Box::new(diesel::r2d2::NopErrorHandler))
        .build_unchecked(ConnectionManager::new(url))
}

/// The query pool as the API uses it, with the deadline of one API query: waiting for a
/// connection, the statement (`QUERY_TIMEOUT_MS`), and a second for the answer to arrive. A
/// server that froze answers nothing, so its own statement timeout cannot be relied on.
#[derive(Clone)]
pub struct QueryPool {
    pub pool: DbPool,
    pub deadline: Duration,
}

impl QueryPool {
    pub fn new(pool: DbPool, config: &Config) -> QueryPool {
        QueryPool {
            pool,
            deadline: POOL_TIMEOUT + config.query_timeout + Duration::from_secs(1),
        }
    }
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

/// How a query-pool connection is set up: statements cut off after `statement_timeout`, and
/// no JIT compilation. Our reads take few rows through indexes, yet a plan whose estimate
/// crosses `jit_above_cost` was compiled on every call: 317 ms of a 355 ms finality read.
#[derive(Debug)]
struct QuerySession(Duration);

impl diesel::r2d2::CustomizeConnection<PgConnection, diesel::r2d2::Error> for QuerySession {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(&format!(
            "SET statement_timeout = {}; SET jit = off",
            self.0.as_millis()
        ))
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
    queries::partitions::ensure_ahead(
        conn,
        partition_hours,
        Duration::from_secs(86_400),
        PARTITION_DAYS_AHEAD,
    )
    .map_err(|e| SetupError(format!("creating partitions: {e}")))?;
    Ok(applied)
}

/// Registers this process in `tetcore_instances` (host name and pid, for operators).
pub fn register_instance(conn: &mut PgConnection) -> Result<i64, SetupError> {
    // Start-up work is not cut short by a statement_timeout set on the role.
    sql_query("SET statement_timeout = 0")
        .execute(conn)
        .map_err(|e| SetupError(format!("registering the instance: {e}")))?;
    queries::instances::register(conn, &hostname(), std::process::id())
        .map_err(|e| SetupError(format!("registering the instance: {e}")))
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    match (ok, std::str::from_utf8(&buf[..end])) {
        (true, Ok(name)) if !name.is_empty() => name.to_owned(),
        _ => "unknown".to_owned(),
    }
}

/// Whether a connection answers a `SELECT 1` (what `/readyz` reports of the database).
pub fn answers(conn: &mut PgConnection) -> bool {
    sql_query("SELECT 1").execute(conn).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_urls_get_deadlines_unless_they_have_their_own() {
        let url = libpq_url("postgres://u@h:5/db", Duration::from_secs(7));
        assert_eq!(
            url,
            "postgres://u@h:5/db?connect_timeout=7&keepalives=1&keepalives_idle=10\
             &keepalives_interval=5&keepalives_count=3"
        );
        let url = libpq_url(
            "postgres://u@h/db?connect_timeout=2",
            Duration::from_secs(7),
        );
        assert!(url.starts_with("postgres://u@h/db?connect_timeout=2&keepalives=1"));
        assert_eq!(url.matches("connect_timeout").count(), 1);
    }

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
