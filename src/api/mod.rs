//! The route table: every path the server answers, in one place.
//!
//! `/` and `/audit` (trailing slash optional) are the telemetry WebSockets; `/metrics` is the
//! Prometheus text exposition; `/healthz` and `/readyz` are the probes; `/nodes...` and
//! `/stats/db` answer JSON; `/chains...`, `/nodes/propagation` and `/nodes/hardware` answer
//! the network analytics (`chains`); `/export/...` streams raw rows as NDJSON or CSV (`export`);
//! `/dashboard/` is the browser page (`dashboard`), and a plain `GET /` without an upgrade goes
//! there. Handlers parse their parameters (`params`), run plain query
//! functions (`run_query`) and shape the rows into views.

pub mod benchmarks;
pub mod chains;
pub mod dashboard;
pub mod error;
pub mod export;
pub mod health;
pub mod nodes;
pub mod openapi;
pub mod params;
pub mod reputation;
pub mod stats;

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{http::header, web, HttpRequest, HttpResponse};

use diesel::pg::PgConnection;

use crate::db::{self, QueryPool};
use crate::ingest::session;
use crate::metrics::Metrics;
use error::ApiError;

/// Times in responses: RFC 3339 in UTC, microseconds.
pub fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Runs `query` on a connection of the query pool, on a blocking thread, within the pool's
/// deadline. The database unreachable, or too slow, is a 503; a fault of ours a 500
/// (`ApiError::from_query`); the detail goes to the log, not the client.
pub async fn run_query<T, F>(
    pool: &web::Data<QueryPool>,
    metrics: &web::Data<Metrics>,
    query: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut PgConnection) -> diesel::QueryResult<T> + Send + 'static,
{
    let QueryPool { pool, deadline } = pool.get_ref().clone();
    let metrics = metrics.get_ref().clone();
    let job = web::block(move || {
        let mut conn =
            db::checkout(&pool, db::POOL_TIMEOUT, &metrics).map_err(ApiError::Unavailable)?;
        query(&mut conn).map_err(ApiError::from_query)
    });
    match actix_web::rt::time::timeout(deadline, job).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => Err(ApiError::Internal(format!("query task: {e}"))),
        Err(_) => Err(ApiError::Unavailable(format!(
            "no answer within {} ms",
            deadline.as_millis()
        ))),
    }
}

/// `run_query` for answers made of several reads: all of them see one snapshot of the
/// database (a read-only, repeatable-read transaction), so the parts of one answer agree with
/// each other even while the derive passes commit between them.
pub async fn run_snapshot<T, F>(
    pool: &web::Data<QueryPool>,
    metrics: &web::Data<Metrics>,
    query: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut PgConnection) -> diesel::QueryResult<T> + Send + 'static,
{
    run_query(pool, metrics, move |c| {
        c.build_transaction()
            .read_only()
            .repeatable_read()
            .run(query)
    })
    .await
}

/// HEAD is answered wherever GET is: the request goes through as a GET, and actix-http, which
/// saw the HEAD on the wire, sends the answer's head without its body.
pub async fn head_as_get(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if req.method() == actix_web::http::Method::HEAD {
        req.head_mut().method = actix_web::http::Method::GET;
    }
    next.call(req).await
}

/// Counts every request by route pattern and status, with its latency.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let response = next.call(req).await;
    if let Some(metrics) = metrics {
        let (route, status) = match &response {
            Ok(res) => (res.request().match_pattern(), res.status()),
            Err(e) => (None, e.as_response_error().status_code()),
        };
        let route = route.unwrap_or_else(|| "unmatched".to_owned());
        metrics
            .http_requests
            .with_label_values(&[route.as_str(), status.as_str()])
            .inc();
        metrics
            .http_seconds
            .with_label_values(&[route.as_str()])
            .observe(started.elapsed().as_secs_f64());
    }
    response
}

/// `GET /`: the telemetry WebSocket when the request asks for one, else the dashboard. (One
/// route, so a 405 names GET once.)
async fn root(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<session::IngestState>,
) -> actix_web::Result<HttpResponse> {
    if dashboard::wants_websocket(req.headers()) {
        session::live(req, body, state).await
    } else {
        Ok(dashboard::to_dashboard().await)
    }
}

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").route(web::get().to(root)))
        .service(web::resource(["/audit", "/audit/"]).route(web::get().to(session::audit)))
        .service(web::resource(["/metrics", "/metrics/"]).route(web::get().to(metrics)))
        .service(
            web::resource(["/openapi.json", "/openapi.json/"]).route(web::get().to(openapi::serve)),
        )
        .service(web::resource(["/healthz", "/healthz/"]).route(web::get().to(health::healthz)))
        .service(web::resource(["/readyz", "/readyz/"]).route(web::get().to(health::readyz)))
        .service(web::resource(["/nodes", "/nodes/"]).route(web::get().to(nodes::list)))
        .service(
            web::resource(["/nodes/log_stats", "/nodes/log_stats/"])
                .route(web::get().to(nodes::log_stats)),
        )
        .service(web::resource(["/nodes/logs", "/nodes/logs/"]).route(web::get().to(nodes::logs)))
        .service(
            web::resource(["/nodes/sessions", "/nodes/sessions/"])
                .route(web::get().to(nodes::sessions)),
        )
        .service(
            web::resource(["/nodes/series", "/nodes/series/"]).route(web::get().to(nodes::series)),
        )
        .service(
            web::resource(["/nodes/propagation", "/nodes/propagation/"])
                .route(web::get().to(chains::node_propagation)),
        )
        .service(
            web::resource(["/nodes/hardware", "/nodes/hardware/"])
                .route(web::get().to(chains::node_hardware)),
        )
        .service(web::resource(["/chains", "/chains/"]).route(web::get().to(chains::list)))
        .service(
            web::resource([
                "/chains/{genesis_hash}/propagation",
                "/chains/{genesis_hash}/propagation/",
            ])
            .route(web::get().to(chains::propagation)),
        )
        .service(
            web::resource([
                "/chains/{genesis_hash}/finality",
                "/chains/{genesis_hash}/finality/",
            ])
            .route(web::get().to(chains::finality)),
        )
        .service(
            web::resource([
                "/chains/{genesis_hash}/versions",
                "/chains/{genesis_hash}/versions/",
            ])
            .route(web::get().to(chains::versions)),
        )
        .service(
            web::resource([
                "/chains/{genesis_hash}/hardware",
                "/chains/{genesis_hash}/hardware/",
            ])
            .route(web::get().to(chains::hardware)),
        )
        .service(web::resource(["/stats/db", "/stats/db/"]).route(web::get().to(stats::db)))
        .service(
            web::resource(["/export/messages", "/export/messages/"])
                .route(web::get().to(export::messages)),
        )
        .service(
            web::resource(["/export/sessions", "/export/sessions/"])
                .route(web::get().to(export::sessions)),
        )
        .service(
            web::resource(["/export/propagation", "/export/propagation/"])
                .route(web::get().to(export::propagation)),
        )
        .service(
            web::resource(["/export/arrivals", "/export/arrivals/"])
                .route(web::get().to(export::arrivals)),
        )
        .service(
            web::resource(["/export/finality", "/export/finality/"])
                .route(web::get().to(export::finality)),
        )
        .service(
            web::resource(["/export/versions", "/export/versions/"])
                .route(web::get().to(export::versions)),
        )
        .service(
            web::resource(["/export/hardware", "/export/hardware/"])
                .route(web::get().to(export::hardware)),
        )
        .service(
            web::resource(["/reputation", "/reputation/"]).route(web::get().to(reputation::all)),
        )
        .service(
            web::resource(["/reputation/logged", "/reputation/logged/"])
                .route(web::get().to(reputation::logged)),
        )
        .service(
            web::resource(["/reputation/{peer_id}", "/reputation/{peer_id}/"])
                .route(web::get().to(reputation::about)),
        )
        .service(
            web::resource(["/host_systems", "/host_systems/"])
                .route(web::get().to(benchmarks::list_host_systems))
                .route(web::post().to(benchmarks::create_host_system)),
        )
        .service(
            web::resource(["/host_systems/{id}", "/host_systems/{id}/"])
                .route(web::get().to(benchmarks::get_host_system)),
        )
        .service(
            web::resource(["/benchmarks", "/benchmarks/"])
                .route(web::get().to(benchmarks::list_benchmarks))
                .route(web::post().to(benchmarks::create_benchmark)),
        )
        .service(
            web::resource(["/benchmarks/{id}", "/benchmarks/{id}/"])
                .route(web::get().to(benchmarks::get_benchmark)),
        )
        .service(
            web::resource(["/benchmarks/{id}/nodes", "/benchmarks/{id}/nodes/"])
                .route(web::get().to(benchmarks::benchmark_nodes)),
        )
        .service(
            web::resource(["/benchmarks/{id}/log_stats", "/benchmarks/{id}/log_stats/"])
                .route(web::get().to(benchmarks::benchmark_log_stats)),
        );
}

async fn metrics(metrics: web::Data<Metrics>, health: web::Data<health::Health>) -> HttpResponse {
    let state = health.pool.state();
    let pool = &metrics.pool_connections;
    pool.with_label_values(&["idle"])
        .set(i64::from(state.idle_connections));
    pool.with_label_values(&["in_use"])
        .set(i64::from(state.connections - state.idle_connections));
    pool.with_label_values(&["max"])
        .set(i64::from(health.pool.max_size()));
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        ))
        .body(metrics.render())
}

#[cfg(test)]
mod tests {
    #[test]
    fn rows_and_views_show_instants_alike() {
        let t = chrono::DateTime::from_timestamp(1_795_768_284, 264_000).unwrap_or_default();
        let mut out = Vec::new();
        let mut json = serde_json::Serializer::new(&mut out);
        crate::db::models::utc(&t, &mut json).unwrap_or(());
        assert_eq!(
            String::from_utf8_lossy(&out),
            format!("\"{}\"", super::rfc3339(t))
        );
    }
}
