//! The route table: every path the server answers, in one place.
//!
//! `/` and `/audit` (trailing slash optional) are the telemetry WebSockets; `/metrics` is the
//! Prometheus text exposition; `/healthz` and `/readyz` are the probes.

pub mod health;

use actix_web::{http::header, web, HttpResponse};

use crate::ingest::session;
use crate::metrics::Metrics;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").route(web::get().to(session::live)))
        .service(web::resource(["/audit", "/audit/"]).route(web::get().to(session::audit)))
        .service(web::resource(["/metrics", "/metrics/"]).route(web::get().to(metrics)))
        .service(web::resource(["/healthz", "/healthz/"]).route(web::get().to(health::healthz)))
        .service(web::resource(["/readyz", "/readyz/"]).route(web::get().to(health::readyz)));
}

async fn metrics(metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        ))
        .body(metrics.render())
}
