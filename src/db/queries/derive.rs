//! Folding raw messages into the network analytics tables (migrations 11 to 13): a pass
//! takes the messages received since the last one (less a margin for commits in flight) and
//! those of batches committed late, and hands the window to `tetcore_derive`, which does the
//! work in PostgreSQL. The window and the progress row move in one transaction, under a lock
//! only one instance holds at a time; since `tetcore_derive` is idempotent, a window read twice
//! (after a crash, or by a rebuild) changes nothing. Also: the derived tables' own retention,
//! and the rebuild from every raw message that still exists.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{BigInt, Bool, Nullable, Timestamptz};

/// The advisory lock key of a derive pass (and of a rebuild).
const DERIVE_LOCK: i64 = 0x7465_7463_6f72_6504;

/// Messages received this recently are left to the next pass: their batch may not have
/// committed yet. (A batch committed later than 2 s after its oldest message is marked late,
/// and a pass folds such batches in whole.)
pub const COMMIT_MARGIN: TimeDelta = TimeDelta::seconds(5);

/// At most this much of the raw stream per pass, so one statement stays short after the
/// derivation was off for a while; the next passes catch up. (The derive actor asks for less
/// after a pass that failed: a window of a long flood can hold more than a pass may take.)
pub const MAX_WINDOW: TimeDelta = TimeDelta::minutes(10);

/// The least a pass asks for (however many failed before it, or while ingest is behind).
pub const MIN_WINDOW: TimeDelta = TimeDelta::seconds(1);

/// How far back a late batch is folded in by a pass (beyond: by a rebuild, and a warning says so).
const MAX_LATE: TimeDelta = TimeDelta::minutes(30);

/// Late marks are looked at from this long before the previous pass on: a batch's mark is
/// stamped when its transaction begins and seen when it commits, which a write deadline bounds.
const LATE_OVERLAP: TimeDelta = TimeDelta::seconds(60);

/// What a pass did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassReport {
    pub messages: u64,
    pub derived_until: DateTime<Utc>,
    pub late_batches: usize,
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

#[derive(QueryableByName)]
struct Progress {
    #[diesel(sql_type = Timestamptz)]
    derived_until: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    updated_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    now: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct LateMark {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Timestamptz)]
    oldest: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Whether any message was received in `[from, to)` (stops at the first).
fn received_between(
    conn: &mut PgConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Any {
        #[diesel(sql_type = Bool)]
        any: bool,
    }
    let row: Any = sql_query(
        "SELECT EXISTS (SELECT 1 FROM tetcore_logs WHERE created_at >= $1 AND created_at < $2) \
         AS any",
    )
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .get_result(conn)?;
    Ok(row.any)
}

/// Folds one window in `[from, to)`; returns the messages read.
fn derive(conn: &mut PgConnection, from: DateTime<Utc>, to: DateTime<Utc>) -> QueryResult<u64> {
    let count: Count = sql_query("SELECT tetcore_derive($1, $2) AS n")
        .bind::<Timestamptz, _>(from)
        .bind::<Timestamptz, _>(to)
        .get_result(conn)?;
    Ok(u64::try_from(count.n).unwrap_or(0))
}

/// One pass over at most `max_window` of new messages. `None`: another instance is deriving.
/// `folded` holds the late marks this instance has folded in already (they stay visible for
/// `LATE_OVERLAP`).
pub fn pass(
    conn: &mut PgConnection,
    statement_timeout: Duration,
    max_window: TimeDelta,
    folded: &mut HashSet<i64>,
) -> QueryResult<Option<PassReport>> {
    // No JIT: a pass's statements would be compiled anew every pass, for rows they go
    // through once.
    conn.batch_execute(&format!(
        "SET statement_timeout = {}; SET jit = off",
        statement_timeout.as_millis()
    ))?;
    conn.transaction(|c| {
        let locked: Locked = sql_query("SELECT pg_try_advisory_xact_lock($1) AS locked")
            .bind::<BigInt, _>(DERIVE_LOCK)
            .get_result(c)?;
        if !locked.locked {
            return Ok(None);
        }
        let progress: Progress = sql_query(
            "SELECT derived_until, updated_at, now() AS now FROM tetcore_derive_progress \
             WHERE id = 1 FOR UPDATE",
        )
        .get_result(c)?;
        let from = progress.derived_until;
        let horizon = progress.now - COMMIT_MARGIN;
        let mut to = horizon.min(from + max_window.clamp(MIN_WINDOW, MAX_WINDOW));
        let mut messages = 0;
        if to > from {
            messages += derive(c, from, to)?;
        }
        // Far behind with nothing here (the derivation was off, or the service idle): skip
        // to the horizon if nothing at all was received in between.
        if messages == 0 && to < horizon && !received_between(c, to, horizon)? {
            to = horizon;
        }
        let marks: Vec<LateMark> = sql_query(
            "SELECT id, oldest FROM tetcore_late_batches \
             WHERE marked_at > $1 AND oldest < $2 ORDER BY id",
        )
        .bind::<Timestamptz, _>(progress.updated_at - LATE_OVERLAP)
        .bind::<Timestamptz, _>(from)
        .load(c)?;
        let late: Vec<&LateMark> = marks.iter().filter(|m| !folded.contains(&m.id)).collect();
        if let Some(oldest) = late.iter().map(|m| m.oldest).min() {
            // A late window is read whole, folded rows included: bounded, so that one batch
            // stuck for a long time cannot make every pass too long to finish.
            let floor = from - MAX_LATE;
            if oldest < floor {
                log::warn!(
                    "a batch was committed more than {} min after its oldest message: messages \
                     received from {oldest} to {floor} are not folded in; `tetcore-analytics \
                     rebuild` folds them",
                    MAX_LATE.num_minutes()
                );
            }
            messages += derive(c, oldest.max(floor), from)?;
        }
        let derived_until = to.max(from);
        sql_query(
            "UPDATE tetcore_derive_progress SET derived_until = $1, updated_at = now() \
             WHERE id = 1",
        )
        .bind::<Timestamptz, _>(derived_until)
        .execute(c)?;
        let late_batches = late.len();
        folded.retain(|id| marks.iter().any(|m| m.id == *id));
        folded.extend(late.iter().map(|m| m.id));
        Ok(Some(PassReport {
            messages,
            derived_until,
            late_batches,
        }))
    })
}

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    pub messages: u64,
    pub windows: u64,
    pub from: Option<DateTime<Utc>>,
    pub until: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct Span {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    oldest: Option<DateTime<Utc>>,
    #[diesel(sql_type = Timestamptz)]
    derived_until: DateTime<Utc>,
}

/// Folds in every raw message received before the progress mark, an hour at a time, holding
/// the derive lock (waiting for a running pass to end). Rows derived from messages already
/// purged are kept: the rebuild only adds and corrects. `each` hears of every window done.
pub fn rebuild(
    conn: &mut PgConnection,
    mut each: impl FnMut(DateTime<Utc>, DateTime<Utc>, u64),
) -> QueryResult<RebuildReport> {
    sql_query("SET statement_timeout = 0").execute(conn)?;
    sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(DERIVE_LOCK)
        .execute(conn)?;
    let result = (|| {
        let span: Span = sql_query(
            "SELECT (SELECT min(created_at) FROM tetcore_logs) AS oldest, derived_until \
             FROM tetcore_derive_progress WHERE id = 1",
        )
        .get_result(conn)?;
        let mut report = RebuildReport {
            messages: 0,
            windows: 0,
            from: span.oldest,
            until: span.derived_until,
        };
        let Some(oldest) = span.oldest else {
            return Ok(report);
        };
        let step = TimeDelta::hours(1);
        let mut at = oldest;
        while at < span.derived_until {
            let next = (at + step).min(span.derived_until);
            let n = derive(conn, at, next)?;
            report.messages += n;
            report.windows += 1;
            each(at, next, n);
            at = next;
        }
        Ok(report)
    })();
    let _ = sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(DERIVE_LOCK)
        .execute(conn);
    result
}

/// The derived tables and the column each ages by.
const AGES: [(&str, &str); 10] = [
    ("tetcore_arrivals", "received_at"),
    ("tetcore_blocks", "first_at"),
    ("tetcore_node_minutes", "minute"),
    ("tetcore_chain_minutes", "minute"),
    ("tetcore_node_hours", "hour"),
    ("tetcore_version_hours", "hour"),
    ("tetcore_hardware", "reported_at"),
    ("tetcore_grandpa_votes", "first_at"),
    ("tetcore_authority_sets", "first_at"),
    ("tetcore_chains", "last_seen"),
];

/// Deletes derived rows older than `cutoff`; returns how many.
pub fn purge(conn: &mut PgConnection, cutoff: DateTime<Utc>) -> QueryResult<u64> {
    let mut removed = 0;
    for (table, column) in AGES {
        removed += sql_query(format!("DELETE FROM {table} WHERE {column} < $1"))
            .bind::<Timestamptz, _>(cutoff)
            .execute(conn)? as u64;
    }
    Ok(removed)
}
