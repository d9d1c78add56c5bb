//! `peer_connections`: creating node sessions in bulk, updating them when a node re-sends
//! `system.connected`, and marking them ended.

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::sql_types::{Array, BigInt, Bool, Integer, Nullable, Text, Timestamptz};
use diesel::{sql_query, QueryResult, QueryableByName, RunQueryDsl};

use crate::db::models::{NewSession, NodeInfo};

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Takes `n` ids from the session sequence, so that rows can be created (and refer to each
/// other) in one statement. Ids are unique across every instance sharing the database.
pub fn allocate_ids(conn: &mut PgConnection, n: usize) -> QueryResult<Vec<i64>> {
    let n = i32::try_from(n).unwrap_or(i32::MAX);
    let ids: Vec<Id> =
        sql_query("SELECT nextval('peer_connections_id_seq') AS id FROM generate_series(1, $1)")
            .bind::<Integer, _>(n)
            .load(conn)?;
    Ok(ids.into_iter().map(|i| i.id).collect())
}

/// Creates the sessions in one statement (arrays, so any number fits).
pub fn insert(conn: &mut PgConnection, sessions: &[NewSession<'_>]) -> QueryResult<usize> {
    if sessions.is_empty() {
        return Ok(0);
    }
    let info = |f: fn(&NodeInfo) -> &Option<String>| -> Vec<Option<String>> {
        sessions
            .iter()
            .map(|s| s.connected.and_then(|(_, i)| f(i).clone()))
            .collect()
    };
    sql_query(
        "INSERT INTO peer_connections (id, ip_addr, audit, telemetry_id, created_at, connected_at, \
             peer_id, name, chain, version, authority, startup_time, implementation, genesis_hash, \
             target_os, target_arch, target_env, sysinfo) \
         SELECT id, ip, audit, tid::numeric, created, connected, peer_id, name, chain, version, \
             authority, startup_time, implementation, genesis_hash, target_os, target_arch, \
             target_env, sysinfo::jsonb \
         FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
             AS s(id, ip, audit, tid, created, connected, peer_id, name, chain, version, authority, \
                  startup_time, implementation, genesis_hash, target_os, target_arch, target_env, sysinfo)",
    )
    .bind::<Array<BigInt>, _>(sessions.iter().map(|s| s.id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(sessions.iter().map(|s| s.ip_addr).collect::<Vec<_>>())
    .bind::<Array<Bool>, _>(sessions.iter().map(|s| s.audit).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(
        sessions
            .iter()
            .map(|s| s.telemetry_id.to_string())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Timestamptz>, _>(sessions.iter().map(|s| s.created_at).collect::<Vec<_>>())
    .bind::<Array<Nullable<Timestamptz>>, _>(
        sessions
            .iter()
            .map(|s| s.connected.map(|(at, _)| at))
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<Text>>, _>(info(|i| &i.peer_id))
    .bind::<Array<Nullable<Text>>, _>(info(|i| &i.name))
    .bind::<Array<Nullable<Text>>, _>(info(|i| &i.chain))
    .bind::<Array<Nullable<Text>>, _>(info(|i| &i.version))
    .bind::<Array<Nullable<Bool>>, _>(
        sessions
            .iter()
            .map(|s| s.connected.and_then(|(_, i)| i.authority))
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<BigInt>>, _>(
        sessions
            .iter()
            .map(|s| s.connected.and_then(|(_, i)| i.startup_time))
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<Text>>, _>(info(|i| &i.implementation))
    .bind::<Array<Nullable<Text>>, _>(info(|i| &i.genesis_hash))
    .bind::<Array<Nullable<Text>>, _>(info(|i| &i.target_os))
    .bind::<Array<Nullable<Text>>, _>(info(|i| &i.target_arch))
    .bind::<Array<Nullable<Text>>, _>(info(|i| &i.target_env))
    .bind::<Array<Nullable<Text>>, _>(info(|i| &i.sysinfo))
    .execute(conn)
}

/// A node re-sent `system.connected` (it restarted, or changed its name): the row follows.
pub fn update_info(
    conn: &mut PgConnection,
    id: i64,
    at: DateTime<Utc>,
    info: &NodeInfo,
) -> QueryResult<usize> {
    sql_query(
        "UPDATE peer_connections SET connected_at = $2, peer_id = $3, name = $4, chain = $5, \
             version = $6, authority = $7, startup_time = $8, implementation = $9, \
             genesis_hash = $10, target_os = $11, target_arch = $12, target_env = $13, \
             sysinfo = $14::jsonb \
         WHERE id = $1",
    )
    .bind::<BigInt, _>(id)
    .bind::<Timestamptz, _>(at)
    .bind::<Nullable<Text>, _>(&info.peer_id)
    .bind::<Nullable<Text>, _>(&info.name)
    .bind::<Nullable<Text>, _>(&info.chain)
    .bind::<Nullable<Text>, _>(&info.version)
    .bind::<Nullable<Bool>, _>(info.authority)
    .bind::<Nullable<BigInt>, _>(info.startup_time)
    .bind::<Nullable<Text>, _>(&info.implementation)
    .bind::<Nullable<Text>, _>(&info.genesis_hash)
    .bind::<Nullable<Text>, _>(&info.target_os)
    .bind::<Nullable<Text>, _>(&info.target_arch)
    .bind::<Nullable<Text>, _>(&info.target_env)
    .bind::<Nullable<Text>, _>(&info.sysinfo)
    .execute(conn)
}

/// Marks sessions ended at the given times (only those not ended yet).
pub fn end(conn: &mut PgConnection, ended: &[(i64, DateTime<Utc>)]) -> QueryResult<usize> {
    if ended.is_empty() {
        return Ok(0);
    }
    sql_query(
        "UPDATE peer_connections p SET ended_at = e.at \
         FROM unnest($1, $2) AS e(id, at) \
         WHERE p.id = e.id AND p.ended_at IS NULL",
    )
    .bind::<Array<BigInt>, _>(ended.iter().map(|e| e.0).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(ended.iter().map(|e| e.1).collect::<Vec<_>>())
    .execute(conn)
}
