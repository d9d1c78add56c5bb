//! Host systems and benchmarks: `GET`/`POST /host_systems`, `GET /host_systems/{id}`,
//! `GET`/`POST /benchmarks`, `GET /benchmarks/{id}`, and the telemetry of a benchmark's window:
//! `GET /benchmarks/{id}/nodes` (sessions open during it) and `GET /benchmarks/{id}/log_stats`
//! (messages by kind received during it). Request → body/parameters → query → JSON.

use actix_web::{web, HttpResponse};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::ApiError;
use super::nodes::{LogStatView, SessionView};
use super::params::{id, time};
use super::run_query;
use crate::access::http::Authorized;
use crate::db::queries::benchmarks::{self as q, Benchmark, HostSystem};
use crate::db::QueryPool;
use crate::metrics::Metrics;

/// The largest request body, from `API_MAX_BODY_BYTES`.
#[derive(Clone, Copy)]
pub struct BodyLimit(pub usize);

/// Reads a JSON body of at most `limit` bytes: 413 beyond it, 400 naming `body` when it is not
/// the JSON expected (or holds NUL characters, which PostgreSQL refuses).
async fn read_json<T: DeserializeOwned>(
    mut payload: web::Payload,
    limit: BodyLimit,
) -> Result<T, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::bad("body", "could not be read"))?;
        if body.len() + chunk.len() > limit.0 {
            return Err(ApiError::TooLarge(limit.0));
        }
        body.extend_from_slice(&chunk);
    }
    if body.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000")) {
        return Err(ApiError::bad("body", "must not contain NUL characters"));
    }
    serde_json::from_slice(&body).map_err(|e| ApiError::bad("body", &format!("is not valid: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostSystemBody {
    description: String,
    os: String,
    cpu_qty: u16,
    cpu_clock: u32,
    ram_mb: u32,
    disk_info: String,
}

#[derive(Serialize)]
struct HostSystemView {
    id: i64,
    description: String,
    os: String,
    cpu_qty: i32,
    cpu_clock: i32,
    ram_mb: i32,
    disk_info: String,
}

impl From<HostSystem> for HostSystemView {
    fn from(h: HostSystem) -> Self {
        HostSystemView {
            id: h.id,
            description: h.description,
            os: h.os,
            cpu_qty: h.cpu_qty,
            cpu_clock: h.cpu_clock,
            ram_mb: h.ram_mb,
            disk_info: h.disk_info,
        }
    }
}

fn int(name: &'static str, n: u32) -> Result<i32, ApiError> {
    i32::try_from(n).map_err(|_| ApiError::bad(name, "is too large"))
}

pub async fn list_host_systems(
    pool: web::Data<QueryPool>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let rows = run_query(&pool, &metrics, q::host_systems).await?;
    let views: Vec<HostSystemView> = rows.into_iter().map(Into::into).collect();
    Ok(HttpResponse::Ok().json(views))
}

pub async fn get_host_system(
    path: web::Path<String>,
    pool: web::Data<QueryPool>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let id = id(&path)?;
    let row = run_query(&pool, &metrics, move |c| q::host_system(c, id)).await?;
    let row = row.ok_or(ApiError::NotFound("host system"))?;
    Ok(HttpResponse::Ok().json(HostSystemView::from(row)))
}

pub async fn create_host_system(
    _: Authorized,
    payload: web::Payload,
    limit: web::Data<BodyLimit>,
    pool: web::Data<QueryPool>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let body: HostSystemBody = read_json(payload, **limit).await?;
    let new = q::NewHostSystem {
        description: body.description,
        os: body.os,
        cpu_qty: i32::from(body.cpu_qty),
        cpu_clock: int("cpu_clock", body.cpu_clock)?,
        ram_mb: int("ram_mb", body.ram_mb)?,
        disk_info: body.disk_info,
    };
    let row = run_query(&pool, &metrics, move |c| q::insert_host_system(c, &new)).await?;
    Ok(HttpResponse::Created().json(HostSystemView::from(row)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BenchmarkBody {
    ts_start: String,
    ts_end: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    chain_spec: Option<Value>,
    #[serde(default)]
    benchmark_spec: Option<Value>,
    host_system_id: i64,
}

#[derive(Serialize)]
struct BenchmarkView {
    id: i64,
    ts_start: String,
    ts_end: String,
    description: Option<String>,
    chain_spec: Option<Value>,
    benchmark_spec: Option<Value>,
    host_system_id: i64,
    created_at: String,
}

impl From<Benchmark> for BenchmarkView {
    fn from(b: Benchmark) -> Self {
        BenchmarkView {
            id: b.id,
            ts_start: super::rfc3339(b.ts_start),
            ts_end: super::rfc3339(b.ts_end),
            description: b.description,
            chain_spec: b.chain_spec,
            benchmark_spec: b.benchmark_spec,
            host_system_id: b.host_system_id,
            created_at: super::rfc3339(b.created_at),
        }
    }
}

pub async fn list_benchmarks(
    pool: web::Data<QueryPool>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let rows = run_query(&pool, &metrics, q::benchmarks).await?;
    let views: Vec<BenchmarkView> = rows.into_iter().map(Into::into).collect();
    Ok(HttpResponse::Ok().json(views))
}

async fn find_benchmark(
    path: &str,
    pool: &web::Data<QueryPool>,
    metrics: &web::Data<Metrics>,
) -> Result<Benchmark, ApiError> {
    let id = id(path)?;
    run_query(pool, metrics, move |c| q::benchmark(c, id))
        .await?
        .ok_or(ApiError::NotFound("benchmark"))
}

pub async fn get_benchmark(
    path: web::Path<String>,
    pool: web::Data<QueryPool>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let benchmark = find_benchmark(&path, &pool, &metrics).await?;
    Ok(HttpResponse::Ok().json(BenchmarkView::from(benchmark)))
}

pub async fn create_benchmark(
    _: Authorized,
    payload: web::Payload,
    limit: web::Data<BodyLimit>,
    pool: web::Data<QueryPool>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let body: BenchmarkBody = read_json(payload, **limit).await?;
    let new = q::NewBenchmark {
        ts_start: time("ts_start", &body.ts_start)?,
        ts_end: time("ts_end", &body.ts_end)?,
        description: body.description,
        chain_spec: body.chain_spec,
        benchmark_spec: body.benchmark_spec,
        host_system_id: body.host_system_id,
    };
    if new.ts_end < new.ts_start {
        return Err(ApiError::bad("ts_end", "is before ts_start"));
    }
    let row = run_query(&pool, &metrics, move |c| q::insert_benchmark(c, &new)).await?;
    let row = row.ok_or_else(|| ApiError::bad("host_system_id", "names no host system"))?;
    Ok(HttpResponse::Created().json(BenchmarkView::from(row)))
}

pub async fn benchmark_nodes(
    path: web::Path<String>,
    pool: web::Data<QueryPool>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let b = find_benchmark(&path, &pool, &metrics).await?;
    let (start, end) = (b.ts_start, b.ts_end);
    let rows = run_query(&pool, &metrics, move |c| q::sessions_during(c, start, end)).await?;
    let views: Vec<SessionView> = rows.into_iter().map(Into::into).collect();
    Ok(HttpResponse::Ok().json(views))
}

pub async fn benchmark_log_stats(
    path: web::Path<String>,
    pool: web::Data<QueryPool>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let b = find_benchmark(&path, &pool, &metrics).await?;
    let (start, end) = (b.ts_start, b.ts_end);
    let rows = run_query(&pool, &metrics, move |c| q::log_stats_during(c, start, end)).await?;
    let views: Vec<LogStatView> = rows.into_iter().map(Into::into).collect();
    Ok(HttpResponse::Ok().json(views))
}
