//! Host systems and benchmarks, and the telemetry of a benchmark's window.

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::sql_types::{BigInt, Integer, Jsonb, Nullable, Text, Timestamptz};
use diesel::{sql_query, Connection, OptionalExtension, QueryResult, QueryableByName, RunQueryDsl};
use serde_json::Value;

use super::nodes::{LogStat, SessionRow};

#[derive(QueryableByName, Debug)]
pub struct HostSystem {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub description: String,
    #[diesel(sql_type = Text)]
    pub os: String,
    #[diesel(sql_type = Integer)]
    pub cpu_qty: i32,
    #[diesel(sql_type = Integer)]
    pub cpu_clock: i32,
    #[diesel(sql_type = Integer)]
    pub ram_mb: i32,
    #[diesel(sql_type = Text)]
    pub disk_info: String,
}

pub struct NewHostSystem {
    pub description: String,
    pub os: String,
    pub cpu_qty: i32,
    pub cpu_clock: i32,
    pub ram_mb: i32,
    pub disk_info: String,
}

const HOST_COLUMNS: &str = "id, description, os, cpu_qty, cpu_clock, ram_mb, disk_info";

pub fn host_systems(conn: &mut PgConnection) -> QueryResult<Vec<HostSystem>> {
    sql_query(format!(
        "SELECT {HOST_COLUMNS} FROM host_systems ORDER BY id"
    ))
    .load(conn)
}

pub fn host_system(conn: &mut PgConnection, id: i64) -> QueryResult<Option<HostSystem>> {
    sql_query(format!(
        "SELECT {HOST_COLUMNS} FROM host_systems WHERE id = $1"
    ))
    .bind::<BigInt, _>(id)
    .get_result(conn)
    .optional()
}

pub fn insert_host_system(conn: &mut PgConnection, h: &NewHostSystem) -> QueryResult<HostSystem> {
    sql_query(format!(
        "INSERT INTO host_systems (description, os, cpu_qty, cpu_clock, ram_mb, disk_info) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {HOST_COLUMNS}"
    ))
    .bind::<Text, _>(&h.description)
    .bind::<Text, _>(&h.os)
    .bind::<Integer, _>(h.cpu_qty)
    .bind::<Integer, _>(h.cpu_clock)
    .bind::<Integer, _>(h.ram_mb)
    .bind::<Text, _>(&h.disk_info)
    .get_result(conn)
}

#[derive(QueryableByName, Debug)]
pub struct Benchmark {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Timestamptz)]
    pub ts_start: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub ts_end: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Text>)]
    pub description: Option<String>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub chain_spec: Option<Value>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub benchmark_spec: Option<Value>,
    #[diesel(sql_type = BigInt)]
    pub host_system_id: i64,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
}

pub struct NewBenchmark {
    pub ts_start: DateTime<Utc>,
    pub ts_end: DateTime<Utc>,
    pub description: Option<String>,
    pub chain_spec: Option<Value>,
    pub benchmark_spec: Option<Value>,
    pub host_system_id: i64,
}

const BENCHMARK_COLUMNS: &str =
    "id, ts_start, ts_end, description, chain_spec, benchmark_spec, host_system_id, created_at";

pub fn benchmarks(conn: &mut PgConnection) -> QueryResult<Vec<Benchmark>> {
    sql_query(format!(
        "SELECT {BENCHMARK_COLUMNS} FROM benchmarks ORDER BY id"
    ))
    .load(conn)
}

pub fn benchmark(conn: &mut PgConnection, id: i64) -> QueryResult<Option<Benchmark>> {
    sql_query(format!(
        "SELECT {BENCHMARK_COLUMNS} FROM benchmarks WHERE id = $1"
    ))
    .bind::<BigInt, _>(id)
    .get_result(conn)
    .optional()
}

/// Creates the benchmark; `None` if its host system does not exist. One transaction: if the
/// row cannot be read back as it was stored, nothing is kept. (Numbers do read back: the specs
/// are sent as serde_json writes them, at most 17 digits and exponents within ±308, and read
/// with `float_roundtrip` parsing, which gives back the same double from PostgreSQL's exact
/// decimal.)
pub fn insert_benchmark(
    conn: &mut PgConnection,
    b: &NewBenchmark,
) -> QueryResult<Option<Benchmark>> {
    conn.transaction(|c| insert_benchmark_row(c, b))
}

fn insert_benchmark_row(
    conn: &mut PgConnection,
    b: &NewBenchmark,
) -> QueryResult<Option<Benchmark>> {
    sql_query(format!(
        "INSERT INTO benchmarks (ts_start, ts_end, description, chain_spec, benchmark_spec, host_system_id) \
         SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM host_systems WHERE id = $6) \
         RETURNING {BENCHMARK_COLUMNS}"
    ))
    .bind::<Timestamptz, _>(b.ts_start)
    .bind::<Timestamptz, _>(b.ts_end)
    .bind::<Nullable<Text>, _>(&b.description)
    .bind::<Nullable<Jsonb>, _>(&b.chain_spec)
    .bind::<Nullable<Jsonb>, _>(&b.benchmark_spec)
    .bind::<BigInt, _>(b.host_system_id)
    .get_result(conn)
    .optional()
}

/// Sessions that were open at some time in [start, end], by peer id then time.
pub fn sessions_during(
    conn: &mut PgConnection,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> QueryResult<Vec<SessionRow>> {
    sql_query(
        "SELECT id, ip_addr, coalesce(peer_id, '') AS peer_id, created_at, ended_at, audit, name, \
                chain, version, authority, startup_time, implementation, genesis_hash \
         FROM peer_connections WHERE created_at <= $2 AND coalesce(ended_at, 'infinity') >= $1 \
         ORDER BY peer_id, created_at, id",
    )
    .bind::<Timestamptz, _>(start)
    .bind::<Timestamptz, _>(end)
    .load(conn)
}

/// Message counts by kind received in [start, end], biggest first.
pub fn log_stats_during(
    conn: &mut PgConnection,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> QueryResult<Vec<LogStat>> {
    sql_query(
        "SELECT count(*) AS qty, logs->>'msg' AS log_type FROM tetcore_logs \
         WHERE created_at BETWEEN $1 AND $2 GROUP BY 2 ORDER BY qty DESC, log_type",
    )
    .bind::<Timestamptz, _>(start)
    .bind::<Timestamptz, _>(end)
    .load(conn)
}
