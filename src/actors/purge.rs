//! The purge actor: every `PURGE_INTERVAL_S`, removes non-audit messages older than
//! `LOG_EXPIRY_H` (and the ended sessions they belonged to), removes analytics rows older than
//! `DERIVED_RETENTION_D`, and creates the partitions ingest will need. Runs on a blocking
//! thread with a connection of its own (long statements, no
//! statement timeout); only one instance purges at a time. A failed pass is
//! logged and counted and the next one tries again; nothing it skips is lost, only kept longer.

use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};

use crate::db::queries::purge::{self, PurgeReport};
use diesel::{Connection, PgConnection};

use crate::db::partition_hours;
use crate::db::queries::partitions::days_ahead;
use crate::metrics::Metrics;

pub struct Purge {
    database_url: String,
    interval: Duration,
    expiry: Duration,
    derived_retention: Duration,
    metrics: Metrics,
    running: bool,
}

/// What a pass came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurgeOutcome {
    Done(PurgeReport),
    /// Another instance holds the purge lock.
    Skipped,
    /// A pass was already running in this instance.
    Busy,
}

/// Run a pass now (the timer sends this too).
#[derive(Message)]
#[rtype(result = "Result<PurgeOutcome, String>")]
pub struct PurgeExpired;

impl Purge {
    pub fn new(
        database_url: String,
        interval: Duration,
        expiry: Duration,
        derived_retention: Duration,
        metrics: Metrics,
    ) -> Purge {
        Purge {
            database_url,
            interval,
            expiry,
            derived_retention,
            metrics,
            running: false,
        }
    }
}

impl Actor for Purge {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.interval, |_, ctx| {
            ctx.notify(PurgeExpired);
        });
    }
}

impl Handler<PurgeExpired> for Purge {
    type Result = ResponseActFuture<Self, Result<PurgeOutcome, String>>;

    fn handle(&mut self, _: PurgeExpired, _: &mut Context<Self>) -> Self::Result {
        if self.running {
            return Box::pin(fut::ready(Ok(PurgeOutcome::Busy)));
        }
        self.running = true;
        let url = self.database_url.clone();
        let before = |age: Duration| {
            chrono::TimeDelta::from_std(age)
                .ok()
                .and_then(|age| Utc::now().checked_sub_signed(age))
                .unwrap_or(DateTime::<Utc>::MIN_UTC)
        };
        let cutoff = before(self.expiry);
        let derived_cutoff = before(self.derived_retention);
        let started = Instant::now();
        let width = partition_hours(self.expiry);
        let ahead = days_ahead(self.interval);
        let job = actix_web::rt::task::spawn_blocking(move || {
            let mut conn = PgConnection::establish(&url).map_err(|e| e.to_string())?;
            purge::run(&mut conn, cutoff, derived_cutoff, width, ahead).map_err(|e| e.to_string())
        });
        Box::pin(job.into_actor(self).map(move |joined, purge, _| {
            purge.running = false;
            let result = match joined {
                Ok(Ok(Some(report))) => Ok(PurgeOutcome::Done(report)),
                Ok(Ok(None)) => Ok(PurgeOutcome::Skipped),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(e.to_string()),
            };
            purge.record(&result, started.elapsed());
            result
        }))
    }
}

impl Purge {
    fn record(&self, result: &Result<PurgeOutcome, String>, took: Duration) {
        let m = &self.metrics;
        match result {
            Ok(PurgeOutcome::Done(r)) => {
                m.purge_runs.with_label_values(&["done"]).inc();
                m.purge_seconds.observe(took.as_secs_f64());
                m.purge_partitions.inc_by(r.partitions_dropped);
                m.purge_rows
                    .inc_by(r.rows_deleted + r.rows_dropped_estimate);
                m.purge_sessions.inc_by(r.sessions_deleted);
                m.purge_steps_failed.inc_by(r.steps_failed);
                m.partitions_ahead_seconds.set(r.partitions_ahead_s);
                log::info!(
                    "purge pass: partitions_dropped={} rows_dropped_estimate={} rows_deleted={} sessions_deleted={} derived_rows_deleted={} partitions_deferred={} steps_failed={} took_ms={}",
                    r.partitions_dropped,
                    r.rows_dropped_estimate,
                    r.rows_deleted,
                    r.sessions_deleted,
                    r.derived_rows_deleted,
                    r.partitions_deferred,
                    r.steps_failed,
                    took.as_millis()
                );
            }
            Ok(PurgeOutcome::Skipped) => {
                m.purge_runs.with_label_values(&["skipped"]).inc();
                log::debug!("purge pass skipped: another instance is purging");
            }
            Ok(PurgeOutcome::Busy) => {}
            Err(e) => {
                m.purge_runs.with_label_values(&["failed"]).inc();
                log::warn!("purge pass failed, next one retries: error={e}");
            }
        }
    }
}
