//! Nodes: the newest session of every peer, and the latest state recent messages report.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::sql_types::{BigInt, Bool, Nullable, Text, Timestamptz};
use diesel::{sql_query, QueryResult, QueryableByName, RunQueryDsl};

use super::prepared::prepared;

/// A `peer_connections` row as `/nodes` shows it.
#[derive(QueryableByName, Debug, Clone)]
pub struct SessionRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub ip_addr: String,
    #[diesel(sql_type = Text)]
    pub peer_id: String,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub ended_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Bool)]
    pub audit: bool,
    #[diesel(sql_type = Nullable<Text>)]
    pub name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub chain: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub version: Option<String>,
    #[diesel(sql_type = Nullable<Bool>)]
    pub authority: Option<bool>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub startup_time: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    pub implementation: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub genesis_hash: Option<String>,
}

/// What changes when any session is added, ended, updated by `system.connected` or purged:
/// compared between refreshes, so the sessions are read again only when it changed.
#[derive(QueryableByName, Debug, Clone, PartialEq)]
pub struct SessionsFingerprint {
    #[diesel(sql_type = BigInt)]
    count: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    max_id: Option<i64>,
    #[diesel(sql_type = BigInt)]
    ended: i64,
    /// Any `connected_at` that moves moves the sum.
    #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
    connected_at_sum: Option<f64>,
}

/// One scan of `peer_connections` without sorting or sending its rows.
pub fn sessions_fingerprint(conn: &mut PgConnection) -> QueryResult<SessionsFingerprint> {
    sql_query(
        "SELECT count(*) AS count, max(id) AS max_id, count(ended_at) AS ended, \
                sum(extract(epoch FROM connected_at))::float8 AS connected_at_sum \
         FROM peer_connections",
    )
    .get_result(conn)
}

/// The newest session of every peer id, by peer id.
pub fn newest_sessions(conn: &mut PgConnection) -> QueryResult<Vec<SessionRow>> {
    sql_query(
        "SELECT DISTINCT ON (peer_id) id, ip_addr, peer_id, created_at, ended_at, audit, name, \
                chain, version, authority, startup_time, implementation, genesis_hash \
         FROM peer_connections WHERE peer_id IS NOT NULL \
         ORDER BY peer_id, created_at DESC, id DESC",
    )
    .load(conn)
}

/// A session's row of `tetcore_node_state`.
#[derive(QueryableByName, Debug, Clone, PartialEq)]
pub struct StateRow {
    #[diesel(sql_type = BigInt)]
    pub session: i64,
    #[diesel(sql_type = Timestamptz)]
    pub last_message_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub best_height: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub finalized_height: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub peers: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub txcount: Option<i64>,
}

/// The node states a writer changed after `updated_after`, or, without it, those of every
/// session heard from after `heard_after`.
pub fn states(
    conn: &mut PgConnection,
    updated_after: Option<DateTime<Utc>>,
    heard_after: DateTime<Utc>,
) -> QueryResult<Vec<StateRow>> {
    sql_query(
        "SELECT peer_connection_id AS session, last_message_at, best_height, finalized_height, \
                peers, txcount \
         FROM tetcore_node_state \
         WHERE last_message_at > $2 AND ($1::timestamptz IS NULL OR updated_at > $1)",
    )
    .bind::<Nullable<Timestamptz>, _>(updated_after)
    .bind::<Timestamptz, _>(heard_after)
    .load(conn)
}

/// Message counts by kind over every session of one peer.
#[derive(QueryableByName, Debug)]
pub struct LogStat {
    #[diesel(sql_type = BigInt)]
    pub qty: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub log_type: Option<String>,
}

/// Counts by `msg` of the messages received in [start, end], biggest first. Served by the
/// per-session indexes: the cost follows that peer's rows in the window, not the table's.
pub fn log_stats(
    conn: &mut PgConnection,
    peer_id: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> QueryResult<Vec<LogStat>> {
    prepared(
        "SELECT count(*) AS qty, l.logs->>'msg' AS log_type FROM tetcore_logs l \
         WHERE l.peer_connection_id IN (SELECT id FROM peer_connections WHERE peer_id = $1 \
                                        AND created_at <= $3 AND coalesce(ended_at, 'infinity') >= $2) \
           AND l.created_at BETWEEN $2 AND $3 \
         GROUP BY 2 ORDER BY qty DESC, log_type",
    )
    .bind::<Text, _>(peer_id)
    .bind::<Timestamptz, _>(start)
    .bind::<Timestamptz, _>(end)
    .load(conn)
}

/// One stored message with where it came from.
#[derive(QueryableByName, Debug)]
pub struct LogRow {
    #[diesel(sql_type = Text)]
    pub ip_addr: String,
    #[diesel(sql_type = Text)]
    pub peer_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub msg: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    pub logs: serde_json::Value,
}

/// What `/nodes/logs` asks for.
pub struct LogFilter<'a> {
    pub peer_id: &'a str,
    pub msg: Option<&'a str>,
    pub target: Option<&'a str>,
    pub start: Option<DateTime<Utc>>,
    pub end: DateTime<Utc>,
    pub limit: i64,
}

/// A peer's messages, newest first. Each of the peer's sessions is read backwards along the
/// `(peer_connection_id, created_at)` index, or `(peer_connection_id, msg, created_at)` when a
/// kind is asked for, and stops after `limit` rows: the cost follows `limit` × sessions, not
/// the peer's history. One prepared statement per combination of filters, so each keeps a plan
/// that fits it.
pub fn logs(conn: &mut PgConnection, f: &LogFilter<'_>) -> QueryResult<Vec<LogRow>> {
    prepared(logs_sql(
        f.msg.is_some(),
        f.target.is_some(),
        f.start.is_some(),
    ))
    .bind::<Text, _>(f.peer_id)
    .bind::<Nullable<Text>, _>(f.msg)
    .bind::<Nullable<Text>, _>(f.target)
    .bind::<Nullable<Timestamptz>, _>(f.start)
    .bind::<Timestamptz, _>(f.end)
    .bind::<BigInt, _>(f.limit)
    .load(conn)
}

/// The statement of `logs` for the filters given; the parameters are always the same six.
fn logs_sql(msg: bool, target: bool, start: bool) -> &'static str {
    static VARIANTS: OnceLock<Vec<String>> = OnceLock::new();
    let variants = VARIANTS.get_or_init(|| {
        (0..8)
            .map(|i| {
                let mut filters = String::new();
                for (bit, filter) in [
                    " AND logs->>'msg' = $2",
                    " AND logs->>'target' = $3",
                    " AND created_at >= $4",
                ]
                .iter()
                .enumerate()
                {
                    if i & (1 << bit) != 0 {
                        filters.push_str(filter);
                    }
                }
                format!(
                    "SELECT p.ip_addr, p.peer_id, l.logs->>'msg' AS msg, l.created_at, l.logs \
                     FROM peer_connections p CROSS JOIN LATERAL ( \
                         SELECT created_at, id, logs FROM tetcore_logs \
                         WHERE peer_connection_id = p.id AND created_at <= $5{filters} \
                         ORDER BY created_at DESC LIMIT $6) l \
                     WHERE p.peer_id = $1 \
                     ORDER BY l.created_at DESC, l.id DESC LIMIT $6"
                )
            })
            .collect()
    });
    &variants[usize::from(msg) | usize::from(target) << 1 | usize::from(start) << 2]
}

/// Every session of one peer, newest first.
pub fn sessions_of(
    conn: &mut PgConnection,
    peer_id: &str,
    limit: i64,
) -> QueryResult<Vec<SessionRow>> {
    sql_query(
        "SELECT id, ip_addr, peer_id, created_at, ended_at, audit, name, chain, version, \
                authority, startup_time, implementation, genesis_hash \
         FROM peer_connections WHERE peer_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind::<Text, _>(peer_id)
    .bind::<BigInt, _>(limit)
    .load(conn)
}

/// One point of a peer's chain and network state over time: the highest heights and peer count
/// its messages reported within a time bucket starting at `at`.
#[derive(QueryableByName, Debug, Clone, PartialEq)]
pub struct SeriesPoint {
    #[diesel(sql_type = Timestamptz)]
    pub at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub best_height: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub finalized_height: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub peers: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub txcount: Option<i64>,
}

/// A peer's best and finalized height, peers and transaction pool in [start, end], in buckets
/// of `bucket` seconds. Heights come from `block.import`, `notify.finalized` and
/// `system.interval` (which carries both in some eras); only whole numbers count. Read along
/// the `(peer_connection_id, msg, created_at)` index, so the cost follows that peer's rows of
/// those kinds in the window.
pub fn series(
    conn: &mut PgConnection,
    peer_id: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    bucket_seconds: f64,
) -> QueryResult<Vec<SeriesPoint>> {
    prepared(
        "WITH m AS ( \
             SELECT created_at, logs->>'msg' AS msg, \
                    CASE WHEN logs->>'height' ~ '^[0-9]{1,18}$' THEN (logs->>'height')::bigint END AS height, \
                    CASE WHEN logs->>'finalized_height' ~ '^[0-9]{1,18}$' THEN (logs->>'finalized_height')::bigint END AS finalized, \
                    CASE WHEN logs->>'peers' ~ '^[0-9]{1,18}$' THEN (logs->>'peers')::bigint END AS peers, \
                    CASE WHEN logs->>'txcount' ~ '^[0-9]{1,18}$' THEN (logs->>'txcount')::bigint END AS txcount \
             FROM tetcore_logs \
             WHERE peer_connection_id IN (SELECT id FROM peer_connections WHERE peer_id = $1) \
               AND logs->>'msg' IN ('block.import', 'notify.finalized', 'system.interval') \
               AND created_at BETWEEN $2 AND $3) \
         SELECT date_bin(make_interval(secs => $4), created_at, $2) AS at, \
                max(height) FILTER (WHERE msg IN ('block.import', 'system.interval')) AS best_height, \
                greatest(max(height) FILTER (WHERE msg = 'notify.finalized'), max(finalized)) AS finalized_height, \
                max(peers) AS peers, max(txcount) AS txcount \
         FROM m GROUP BY 1 ORDER BY 1",
    )
    .bind::<Text, _>(peer_id)
    .bind::<Timestamptz, _>(start)
    .bind::<Timestamptz, _>(end)
    .bind::<diesel::sql_types::Double, _>(bucket_seconds)
    .load(conn)
}
