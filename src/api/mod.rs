//! The route table: every path the server answers, in one place.
//!
//! `/` and `/audit` (trailing slash optional) are the telemetry WebSockets; `/metrics` is the
//! Prometheus text exposition.

use actix_web::{http::header, web, HttpResponse};

use crate::ingest::session;
use crate::metrics::Metrics;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").route(web::get().to(session::live)))
        .service(web::resource(["/audit", "/audit/"]).route(web::get().to(session::audit)))
        .service(web::resource(["/metrics", "/metrics/"]).route(web::get().to(metrics)));
}

async fn metrics(metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        ))
        .body(metrics.render())
}
