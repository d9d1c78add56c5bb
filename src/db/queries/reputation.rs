//! Reputation: what `system.network_state` messages (`state.peerset.nodes.<peer id>`) say about
//! other peers. Served by the `(logs->>'msg', created_at)` index.

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::sql_types::{BigInt, Bool, Jsonb, Nullable, Text, Timestamptz};
use diesel::{sql_query, QueryResult, QueryableByName, RunQueryDsl};
use serde_json::Value;

/// One report about one remote peer.
#[derive(QueryableByName, Debug)]
pub struct Report {
    #[diesel(sql_type = Text)]
    pub reporting_peer: String,
    #[diesel(sql_type = Text)]
    pub remote_peer: String,
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub reputation: Option<Value>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub connected: Option<Value>,
    #[diesel(sql_type = Timestamptz)]
    pub ts: DateTime<Utc>,
}

/// Reports about `peer_id` by any peer, newest first.
pub fn about(
    conn: &mut PgConnection,
    peer_id: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<Report>> {
    sql_query(
        "SELECT p.peer_id AS reporting_peer, $1 AS remote_peer, \
                l.logs->'state'->'peerset'->'nodes'->$1->'reputation' AS reputation, \
                l.logs->'state'->'peerset'->'nodes'->$1->'connected' AS connected, \
                l.created_at AS ts \
         FROM tetcore_logs l JOIN peer_connections p ON p.id = l.peer_connection_id \
         WHERE l.logs->>'msg' = 'system.network_state' AND p.peer_id IS NOT NULL \
           AND jsonb_typeof(l.logs->'state'->'peerset'->'nodes') = 'object' \
           AND l.logs->'state'->'peerset'->'nodes' ? $1 \
           AND l.created_at >= $2 AND l.created_at <= $3 \
         ORDER BY l.created_at DESC, l.id DESC LIMIT $4",
    )
    .bind::<Text, _>(peer_id)
    .bind::<Timestamptz, _>(start)
    .bind::<Timestamptz, _>(end)
    .bind::<BigInt, _>(limit)
    .load(conn)
}

/// The newest report of up to `limit` reporting peers (by peer id), no older than `since`, one
/// row per remote peer; with `only_logged`, only remote peers that are sessions of ours.
pub fn latest(
    conn: &mut PgConnection,
    since: DateTime<Utc>,
    limit: i64,
    only_logged: bool,
) -> QueryResult<Vec<Report>> {
    sql_query(
        "WITH latest AS ( \
             SELECT DISTINCT ON (p.peer_id) p.peer_id AS reporting_peer, l.created_at AS ts, \
                    l.logs->'state'->'peerset'->'nodes' AS nodes \
             FROM tetcore_logs l JOIN peer_connections p ON p.id = l.peer_connection_id \
             WHERE l.logs->>'msg' = 'system.network_state' AND l.created_at > $1 \
               AND p.peer_id IS NOT NULL \
               AND jsonb_typeof(l.logs->'state'->'peerset'->'nodes') = 'object' \
             ORDER BY p.peer_id, l.created_at DESC, l.id DESC \
             LIMIT $2) \
         SELECT reporting_peer, n.key AS remote_peer, n.value->'reputation' AS reputation, \
                n.value->'connected' AS connected, ts \
         FROM latest, jsonb_each(nodes) AS n \
         WHERE NOT $3 OR EXISTS (SELECT 1 FROM peer_connections pc WHERE pc.peer_id = n.key) \
         ORDER BY reporting_peer, remote_peer",
    )
    .bind::<Timestamptz, _>(since)
    .bind::<BigInt, _>(limit)
    .bind::<Bool, _>(only_logged)
    .load(conn)
}
