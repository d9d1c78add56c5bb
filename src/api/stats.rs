//! `GET /stats/db`: the size of every table and index of ours, biggest first.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::error::ApiError;
use super::run_query;
use crate::access::http::Authorized;
use crate::db::queries::stats;
use crate::db::QueryPool;
use crate::metrics::Metrics;

#[derive(Serialize)]
struct RelationView {
    relation: String,
    size: String,
    bytes: i64,
    rows_estimate: i64,
}

pub async fn db(
    _: Authorized,
    pool: web::Data<QueryPool>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let rows = run_query(&pool, &metrics, stats::relation_sizes).await?;
    let views: Vec<RelationView> = rows
        .into_iter()
        .map(|r| RelationView {
            relation: r.relation,
            size: r.size,
            bytes: r.bytes,
            rows_estimate: r.rows_estimate,
        })
        .collect();
    Ok(HttpResponse::Ok().json(views))
}
