//! `tetcore_instances`: this process registers at start and heartbeats; whichever live instance
//! first sees another's heartbeat older than `INSTANCE_DEAD_AFTER_S` ends it and the sessions it
//! held, at the time of its last heartbeat. One statement each, so two instances noticing the
//! same death at once end it once (the second finds it ended under the row lock).

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::sql_types::{BigInt, Double, Integer, Nullable, Text, Timestamptz};
use diesel::{sql_query, QueryResult, QueryableByName, RunQueryDsl};

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Registers this process; returns its instance id.
pub fn register(conn: &mut PgConnection, hostname: &str, pid: u32) -> QueryResult<i64> {
    let pid = i32::try_from(pid).unwrap_or(i32::MAX);
    sql_query(
        "INSERT INTO tetcore_instances (hostname, pid, version) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind::<Text, _>(hostname)
    .bind::<Integer, _>(pid)
    .bind::<Text, _>(env!("CARGO_PKG_VERSION"))
    .get_result::<Id>(conn)
    .map(|row| row.id)
}

#[derive(QueryableByName)]
struct Beat {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    was_ended: Option<DateTime<Utc>>,
}

/// Records that this instance is alive. If another instance had declared it dead (its
/// heartbeat stalled), it is live again and the answer is when it had been ended; the sessions
/// ended then stay ended.
pub fn heartbeat(conn: &mut PgConnection, instance: i64) -> QueryResult<Option<DateTime<Utc>>> {
    let beats: Vec<Beat> = sql_query(
        "UPDATE tetcore_instances i SET heartbeat_at = now(), ended_at = NULL, ended_by = NULL \
         FROM (SELECT ended_at FROM tetcore_instances WHERE id = $1) AS old(was_ended) \
         WHERE i.id = $1 AND (i.ended_at IS NULL OR i.ended_by <> i.id) \
         RETURNING old.was_ended",
    )
    .bind::<BigInt, _>(instance)
    .load(conn)?;
    Ok(beats.into_iter().find_map(|b| b.was_ended))
}

#[derive(QueryableByName, Debug, PartialEq)]
pub struct Ended {
    #[diesel(sql_type = BigInt)]
    pub instance: i64,
    #[diesel(sql_type = Timestamptz)]
    pub last_heartbeat: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    pub sessions: i64,
}

/// Ends every other instance whose heartbeat is older than `dead_after`, and the sessions it
/// held, at its last heartbeat (or a session's start, if later).
pub fn end_dead(conn: &mut PgConnection, me: i64, dead_after: Duration) -> QueryResult<Vec<Ended>> {
    sql_query(
        "WITH dead AS ( \
             UPDATE tetcore_instances SET ended_at = heartbeat_at, ended_by = $1 \
             WHERE ended_at IS NULL AND id <> $1 \
               AND heartbeat_at < now() - make_interval(secs => $2) \
             RETURNING id, heartbeat_at), \
         sessions AS ( \
             UPDATE peer_connections p SET ended_at = greatest(d.heartbeat_at, p.created_at) \
             FROM dead d WHERE p.instance_id = d.id AND p.ended_at IS NULL \
             RETURNING p.instance_id) \
         SELECT d.id AS instance, d.heartbeat_at AS last_heartbeat, \
             (SELECT count(*) FROM sessions s WHERE s.instance_id = d.id) AS sessions \
         FROM dead d",
    )
    .bind::<BigInt, _>(me)
    .bind::<Double, _>(dead_after.as_secs_f64())
    .load(conn)
}
