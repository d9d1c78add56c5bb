//! `/healthz` (the process answers; no database call) and `/readyz`, for load balancers and
//! Kubernetes probes. Ingest keeps accepting and buffering while PostgreSQL is away, and every
//! instance shares the one database, so the database's state does not decide readiness (it
//! would take every instance out of the balancer at once, for nothing): ready means the write
//! queue has room and the service is not stopping. The body says the database's state, from
//! one `SELECT 1` bounded to a second. Both are cheap enough to poll every second.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde::Serialize;
use tokio::sync::{watch, Semaphore};

use crate::db::{self, DbPool};
use crate::metrics::Metrics;

/// How long `/readyz` waits for a pooled connection, and for the database's answer.
const READY_POOL_TIMEOUT: Duration = Duration::from_millis(500);
const READY_DB_TIMEOUT: Duration = Duration::from_secs(1);

/// Above this share of `WRITE_QUEUE_MAX_BYTES` in use, the writer counts as saturated.
const SATURATED_SHARE: f64 = 0.9;

pub struct Health {
    pub pool: DbPool,
    pub budget: Arc<Semaphore>,
    pub budget_total: usize,
    /// Becomes true when the service stops.
    pub shutdown: watch::Receiver<bool>,
}

#[derive(Serialize)]
struct Status {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// `up`, or `down: <why>` (`/readyz` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<String>,
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Status {
        status: "ok",
        reason: None,
        database: None,
    })
}

pub async fn readyz(health: web::Data<Health>, metrics: web::Data<Metrics>) -> HttpResponse {
    let database = Some(database_state(&health, metrics.get_ref().clone()).await);
    let in_use = health
        .budget_total
        .saturating_sub(health.budget.available_permits());
    let reason = if *health.shutdown.borrow() {
        Some("stopping".to_owned())
    } else if in_use as f64 > health.budget_total as f64 * SATURATED_SHARE {
        Some(format!(
            "write queue saturated: {in_use} of {} bytes waiting for the database",
            health.budget_total
        ))
    } else {
        None
    };
    match reason {
        None => HttpResponse::Ok().json(Status {
            status: "ready",
            reason: None,
            database,
        }),
        Some(reason) => HttpResponse::ServiceUnavailable().json(Status {
            status: "unavailable",
            reason: Some(reason),
            database,
        }),
    }
}

/// `up`, or `down: ` and why, within `READY_DB_TIMEOUT`.
async fn database_state(health: &Health, metrics: Metrics) -> String {
    let pool = health.pool.clone();
    let check = web::block(move || {
        let mut conn = db::checkout(&pool, READY_POOL_TIMEOUT, &metrics)?;
        if db::answers(&mut conn) {
            Ok(())
        } else {
            Err("it does not answer".to_owned())
        }
    });
    match actix_web::rt::time::timeout(READY_DB_TIMEOUT, check).await {
        Ok(Ok(Ok(()))) => "up".to_owned(),
        Ok(Ok(Err(e))) => format!("down: {e}"),
        Ok(Err(e)) => format!("down: the check failed: {e}"),
        Err(_) => format!("down: no answer within {} ms", READY_DB_TIMEOUT.as_millis()),
    }
}
