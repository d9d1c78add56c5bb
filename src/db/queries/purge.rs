//! Retention: removes non-audit messages older than a cutoff by dropping whole time partitions
//! and trimming only the one the cutoff falls in, then the ended sessions that had them. The
//! cost follows what expired, not the size of the table. One instance at a time: the pass runs
//! under a session-level advisory lock and is skipped where another instance holds it. A step
//! that fails is logged and counted (`steps_failed`), and the pass goes on with the others.

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::sql_types::{BigInt, Bool, Text, Timestamptz};
use diesel::{sql_query, Connection, QueryResult, QueryableByName, RunQueryDsl};

use super::partitions;

/// The advisory lock key of a purge pass.
pub const PURGE_LOCK: i64 = 0x7465_7463_6f72_6502;

/// How long dropping a partition may wait for ingest's locks before it gives up until the next
/// pass (it needs a moment of exclusive access to the parent table).
const DROP_LOCK_TIMEOUT: &str = "2s";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PurgeReport {
    pub partitions_dropped: u64,
    /// Rows in dropped partitions, by PostgreSQL's estimate (counting them would cost a scan).
    pub rows_dropped_estimate: u64,
    /// Rows deleted from the partition the cutoff falls in, and from the default one (exact).
    pub rows_deleted: u64,
    pub sessions_deleted: u64,
    /// Rows of the network analytics tables older than `DERIVED_RETENTION_D`.
    pub derived_rows_deleted: u64,
    /// Partitions that could not be dropped this time (lock timeout); retried next pass.
    pub partitions_deferred: u64,
    /// Steps that failed (making partitions, trimming, removing sessions); retried next pass.
    pub steps_failed: u64,
    /// How far ahead of now the partitions reach after the pass, in seconds.
    pub partitions_ahead_s: i64,
}

impl PurgeReport {
    /// Logs a failed step and counts it.
    fn failed(&mut self, step: &str, error: diesel::result::Error) {
        log::warn!("purge step failed, the pass goes on: step={step} error={error}");
        self.steps_failed += 1;
    }
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

#[derive(QueryableByName)]
struct Partition {
    #[diesel(sql_type = Text)]
    name: String,
    /// Entirely before the cutoff: dropped whole; otherwise trimmed.
    #[diesel(sql_type = Bool)]
    whole: bool,
    #[diesel(sql_type = BigInt)]
    rows_estimate: i64,
}

/// One pass with everything non-audit received before `cutoff` expired. `None`: another
/// instance is purging.
pub fn run(
    conn: &mut PgConnection,
    cutoff: DateTime<Utc>,
    derived_cutoff: DateTime<Utc>,
    width_hours: i32,
    days_ahead: i32,
) -> QueryResult<Option<PurgeReport>> {
    // A pass may run long; a statement_timeout on the role must not cut it short.
    sql_query("SET statement_timeout = 0").execute(conn)?;
    let locked: Locked = sql_query("SELECT pg_try_advisory_lock($1) AS locked")
        .bind::<BigInt, _>(PURGE_LOCK)
        .get_result(conn)?;
    if !locked.locked {
        return Ok(None);
    }
    let report = pass(conn, cutoff, width_hours, days_ahead).map(|mut report| {
        match super::derive::purge(conn, derived_cutoff) {
            Ok(n) => report.derived_rows_deleted = n,
            Err(e) => report.failed("removing expired analytics rows", e),
        }
        report
    });
    // If this fails the connection is broken, and the lock went with it.
    let _ = sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(PURGE_LOCK)
        .execute(conn);
    report.map(Some)
}

fn pass(
    conn: &mut PgConnection,
    cutoff: DateTime<Utc>,
    width_hours: i32,
    days_ahead: i32,
) -> QueryResult<PurgeReport> {
    let mut report = PurgeReport::default();
    // Partitions from the cutoff on (never behind it: the pass would drop them again).
    let behind = (Utc::now() - cutoff).to_std().unwrap_or_default();
    if let Err(e) = partitions::ensure_ahead(conn, width_hours, behind, days_ahead) {
        report.failed("making partitions", e);
    }
    let expired: Vec<Partition> = sql_query(
        "SELECT name, hi <= $1 AS whole, rows_estimate FROM tetcore_log_partitions() \
         WHERE lo < $1 ORDER BY lo",
    )
    .bind::<Timestamptz, _>(cutoff)
    .load(conn)?;
    for partition in expired {
        if !partition.whole {
            match delete_before(conn, &partition.name, cutoff) {
                Ok(n) => report.rows_deleted += n as u64,
                Err(e) => report.failed("trimming a partition", e),
            }
            continue;
        }
        let dropped = conn.transaction(|c| {
            sql_query(format!("SET LOCAL lock_timeout = '{DROP_LOCK_TIMEOUT}'")).execute(c)?;
            sql_query(format!("DROP TABLE \"{}\"", partition.name)).execute(c)
        });
        match dropped {
            Ok(_) => {
                report.partitions_dropped += 1;
                report.rows_dropped_estimate += partition.rows_estimate as u64;
            }
            Err(e) => {
                log::warn!(
                    "purge deferred a partition: partition={} error={e}",
                    partition.name
                );
                report.partitions_deferred += 1;
            }
        }
    }
    match delete_before(conn, "tetcore_logs_expiring_default", cutoff) {
        Ok(n) => report.rows_deleted += n as u64,
        Err(e) => report.failed("trimming the default partition", e),
    }
    // A session's messages all arrived before it ended, so a non-audit session that ended
    // before the cutoff has none left. Live sessions (ended_at NULL) are never removed.
    match sql_query("DELETE FROM peer_connections WHERE NOT audit AND ended_at < $1")
        .bind::<Timestamptz, _>(cutoff)
        .execute(conn)
    {
        Ok(n) => report.sessions_deleted = n as u64,
        Err(e) => report.failed("removing ended sessions", e),
    }
    #[derive(QueryableByName)]
    struct Ahead {
        #[diesel(sql_type = BigInt)]
        seconds: i64,
    }
    match sql_query(
        "SELECT coalesce(extract(epoch FROM max(hi) - now()), 0)::bigint AS seconds \
         FROM tetcore_log_partitions()",
    )
    .get_result::<Ahead>(conn)
    {
        Ok(ahead) => report.partitions_ahead_s = ahead.seconds,
        Err(e) => report.failed("measuring the partitions ahead", e),
    }
    // Late-batch marks are read within minutes of being made.
    if let Err(e) =
        sql_query("DELETE FROM tetcore_late_batches WHERE marked_at < now() - interval '1 day'")
            .execute(conn)
    {
        report.failed("removing late-batch marks", e);
    }
    Ok(report)
}

fn delete_before(
    conn: &mut PgConnection,
    table: &str,
    cutoff: DateTime<Utc>,
) -> QueryResult<usize> {
    sql_query(format!("DELETE FROM \"{table}\" WHERE created_at < $1"))
        .bind::<Timestamptz, _>(cutoff)
        .execute(conn)
}
