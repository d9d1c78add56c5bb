//! `/healthz` (the process answers; no database call) and `/readyz` (the database answers and
//! the write queue has room), for load balancers and Kubernetes probes. Both are cheap enough
//! to poll every second: `/readyz` makes one `SELECT 1` with a short pool timeout.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::db::{self, DbPool};
use crate::metrics::Metrics;

/// How long `/readyz` waits for a pooled connection before answering 503.
const READY_POOL_TIMEOUT: Duration = Duration::from_millis(500);

/// Above this share of `WRITE_QUEUE_MAX_BYTES` in use, the writer counts as saturated.
const SATURATED_SHARE: f64 = 0.9;

pub struct Health {
    pub pool: DbPool,
    pub budget: Arc<Semaphore>,
    pub budget_total: usize,
}

#[derive(Serialize)]
struct Status {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Status {
        status: "ok",
        reason: None,
    })
}

pub async fn readyz(health: web::Data<Health>, metrics: web::Data<Metrics>) -> HttpResponse {
    let in_use = health
        .budget_total
        .saturating_sub(health.budget.available_permits());
    if in_use as f64 > health.budget_total as f64 * SATURATED_SHARE {
        return unavailable(format!(
            "write queue saturated: {in_use} of {} bytes waiting for the database",
            health.budget_total
        ));
    }
    let pool = health.pool.clone();
    let metrics = metrics.get_ref().clone();
    let answered = web::block(move || {
        let mut conn = db::checkout(&pool, READY_POOL_TIMEOUT, &metrics)?;
        if db::answers(&mut conn) {
            Ok(())
        } else {
            Err("the database does not answer".to_owned())
        }
    })
    .await;
    match answered {
        Ok(Ok(())) => HttpResponse::Ok().json(Status {
            status: "ready",
            reason: None,
        }),
        Ok(Err(e)) => unavailable(format!("database: {e}")),
        Err(e) => unavailable(format!("database check failed: {e}")),
    }
}

fn unavailable(reason: String) -> HttpResponse {
    HttpResponse::ServiceUnavailable().json(Status {
        status: "unavailable",
        reason: Some(reason),
    })
}
