//! The derive actor: every `DERIVE_INTERVAL_S`, folds the messages received since its last
//! pass into the network analytics tables (`db::queries::derive`). One connection of its own,
//! on a blocking thread, every statement bounded; a failed pass is logged and counted, and the
//! next one starts from where the last good one ended, so nothing is skipped. Several
//! instances take turns (an advisory lock); the work is PostgreSQL's, the actor only paces it:
//! when passes run long (catching up after a flood or an outage), it waits between them so
//! that they take at most `DERIVE_MAX_BUSY_PCT` of the wall clock, and ingest keeps the rest.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use actix::prelude::*;
use diesel::{Connection, PgConnection};

use crate::db::queries::derive::{self, PassReport};
use crate::metrics::Metrics;

/// A pass is cut off after this long (the next one resumes where the last good one ended).
pub const PASS_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Derive {
    database_url: String,
    interval: Duration,
    max_busy_pct: u32,
    metrics: Metrics,
    /// The connection between passes (`None` while a pass holds it, or after a failure).
    conn: Option<PgConnection>,
    folded: HashSet<i64>,
    running: bool,
    /// No pass starts before this (the pause owed for the last one's length).
    resume_at: Instant,
}

/// Run a pass now (the timer sends this too). `None`: another instance holds the lock, or a
/// pass of this one is running or pausing after a long one.
#[derive(Message)]
#[rtype(result = "Result<Option<PassReport>, String>")]
pub struct DeriveNew;

impl Derive {
    pub fn new(
        database_url: String,
        interval: Duration,
        max_busy_pct: u32,
        metrics: Metrics,
    ) -> Derive {
        Derive {
            database_url,
            interval,
            max_busy_pct: max_busy_pct.clamp(1, 100),
            metrics,
            conn: None,
            folded: HashSet::new(),
            running: false,
            resume_at: Instant::now(),
        }
    }

    /// How long to wait after a pass of `took` so that passes take at most `max_busy_pct` of
    /// the time.
    fn pause_after(&self, took: Duration) -> Duration {
        took * (100 - self.max_busy_pct) / self.max_busy_pct
    }
}

impl Actor for Derive {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.interval, |_, ctx| ctx.notify(DeriveNew));
    }
}

impl Handler<DeriveNew> for Derive {
    type Result = ResponseActFuture<Self, Result<Option<PassReport>, String>>;

    fn handle(&mut self, _: DeriveNew, _: &mut Context<Self>) -> Self::Result {
        if self.running || Instant::now() < self.resume_at {
            return Box::pin(fut::ready(Ok(None)));
        }
        self.running = true;
        let url = self.database_url.clone();
        let conn = self.conn.take();
        let mut folded = std::mem::take(&mut self.folded);
        let started = Instant::now();
        let job = actix_web::rt::task::spawn_blocking(move || {
            let mut conn = match conn {
                Some(conn) => conn,
                None => match PgConnection::establish(&url) {
                    Ok(conn) => conn,
                    Err(e) => return (None, folded, Err(e.to_string())),
                },
            };
            match derive::pass(&mut conn, PASS_TIMEOUT, &mut folded) {
                Ok(report) => (Some(conn), folded, Ok(report)),
                // The connection may be broken; the next pass opens a new one.
                Err(e) => (None, folded, Err(e.to_string())),
            }
        });
        Box::pin(job.into_actor(self).map(move |joined, actor, _| {
            actor.running = false;
            let took = started.elapsed();
            actor.resume_at = Instant::now() + actor.pause_after(took);
            let result = match joined {
                Ok((conn, folded, result)) => {
                    actor.conn = conn;
                    actor.folded = folded;
                    result
                }
                Err(e) => Err(e.to_string()),
            };
            actor.record(&result, took);
            result
        }))
    }
}

impl Derive {
    fn record(&self, result: &Result<Option<PassReport>, String>, took: Duration) {
        let m = &self.metrics;
        match result {
            Ok(Some(r)) => {
                m.derive_runs.with_label_values(&["done"]).inc();
                m.derive_seconds.observe(took.as_secs_f64());
                m.derive_messages.inc_by(r.messages);
                m.derived_until.set(r.derived_until.timestamp());
                log::debug!(
                    "derive pass: messages={} late_batches={} derived_until={} took_ms={}",
                    r.messages,
                    r.late_batches,
                    r.derived_until,
                    took.as_millis()
                );
            }
            Ok(None) => {
                m.derive_runs.with_label_values(&["skipped"]).inc();
            }
            Err(e) => {
                m.derive_runs.with_label_values(&["failed"]).inc();
                log::warn!("derive pass failed, the next one retries: error={e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn derive(max_busy_pct: u32) -> Derive {
        Derive::new(
            String::new(),
            Duration::from_secs(5),
            max_busy_pct,
            Metrics::new(),
        )
    }

    #[test]
    fn the_pause_keeps_passes_to_their_share_of_the_time() {
        let pass = Duration::from_secs(3);
        for (pct, pause) in [(100, 0), (50, 3), (25, 9), (10, 27), (0, 297)] {
            assert_eq!(
                derive(pct).pause_after(pass),
                Duration::from_secs(pause),
                "{pct} %"
            );
        }
    }
}
