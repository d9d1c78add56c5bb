//! `GET /reputation/{peer_id}`: what other peers report about one peer over time.
//! `GET /reputation` and `GET /reputation/logged`: every reporting peer's newest report,
//! expanded (the latter only about peers that are sessions of ours).

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Serialize;
use serde_json::Value;

use super::error::ApiError;
use super::params::{segment, Params};
use super::{rfc3339, run_query};
use crate::db::queries::reputation::{self, Report};
use crate::db::QueryPool;
use crate::metrics::Metrics;

/// The window `/reputation/{peer_id}` reads when `start_time` is not given.
const ABOUT_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(24);
const LIMIT_MAX: i64 = 10_000;
const LIMIT_DEFAULT: i64 = 100;
const MAX_AGE_DEFAULT_S: i64 = 60;
/// A year: older reports are not "latest" in any useful sense.
const MAX_AGE_MAX_S: i64 = 366 * 86_400;

#[derive(Serialize)]
struct ReportView {
    reporting_peer: String,
    reputation: Option<Value>,
    connected: Option<Value>,
    ts: String,
}

pub async fn about(
    req: HttpRequest,
    path: web::Path<String>,
    pool: web::Data<QueryPool>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string())?;
    let peer_id = segment("peer_id", path.into_inner())?;
    let (start, end) = params.window(ABOUT_WINDOW)?;
    let limit = params.limit("limit", LIMIT_DEFAULT, LIMIT_MAX)?;
    let rows = run_query(&pool, &metrics, move |c| {
        reputation::about(c, &peer_id, start, end, limit)
    })
    .await?;
    let views: Vec<ReportView> = rows
        .into_iter()
        .map(|r| ReportView {
            reporting_peer: r.reporting_peer,
            reputation: r.reputation,
            connected: r.connected,
            ts: rfc3339(r.ts),
        })
        .collect();
    Ok(HttpResponse::Ok().json(views))
}

#[derive(Serialize)]
struct ExpandedView {
    reporting_peer: String,
    remote_peer: Vec<String>,
    reputation: Vec<Option<Value>>,
    connected: Vec<Option<Value>>,
    ts: String,
}

async fn latest(
    req: HttpRequest,
    pool: web::Data<QueryPool>,
    metrics: web::Data<Metrics>,
    only_logged: bool,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string())?;
    let max_age = params.limit("max_age_s", MAX_AGE_DEFAULT_S, MAX_AGE_MAX_S)?;
    let limit = params.limit("limit", LIMIT_DEFAULT, LIMIT_MAX)?;
    let since = Utc::now() - chrono::TimeDelta::seconds(max_age);
    let rows = run_query(&pool, &metrics, move |c| {
        reputation::latest(c, since, limit, only_logged)
    })
    .await?;
    Ok(HttpResponse::Ok().json(expand(rows)))
}

/// Rows ordered by reporting peer become one view per reporting peer.
fn expand(rows: Vec<Report>) -> Vec<ExpandedView> {
    let mut views: Vec<ExpandedView> = Vec::new();
    for r in rows {
        let view = match views.last_mut() {
            Some(v) if v.reporting_peer == r.reporting_peer => v,
            _ => {
                views.push(ExpandedView {
                    reporting_peer: r.reporting_peer,
                    remote_peer: Vec::new(),
                    reputation: Vec::new(),
                    connected: Vec::new(),
                    ts: rfc3339(r.ts),
                });
                match views.last_mut() {
                    Some(v) => v,
                    None => continue,
                }
            }
        };
        view.remote_peer.push(r.remote_peer);
        view.reputation.push(r.reputation);
        view.connected.push(r.connected);
    }
    views
}

pub async fn all(
    req: HttpRequest,
    pool: web::Data<QueryPool>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    latest(req, pool, metrics, false).await
}

pub async fn logged(
    req: HttpRequest,
    pool: web::Data<QueryPool>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    latest(req, pool, metrics, true).await
}
