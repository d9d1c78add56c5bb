//! The derive actor: every `DERIVE_INTERVAL_S`, folds the messages received since its last
//! pass into the network analytics tables (`db::queries::derive`). One connection of its own,
//! on a blocking thread, every statement bounded; a failed pass is logged and counted, and the
//! next one starts from where the last good one ended, so nothing is skipped. Several
//! instances take turns (an advisory lock); the work is PostgreSQL's, the actor only paces it:
//! while this instance's writers have a backlog (a flood), passes are short and it waits
//! after each so that they take at most `DERIVE_MAX_BUSY_PCT` of the wall clock, and ingest
//! keeps the rest; with no backlog, passes follow each other as fast as they come.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::TimeDelta;
use diesel::{Connection, PgConnection};

use crate::db::queries::derive::{self, PassReport};
use crate::metrics::Metrics;

/// A pass is cut off after this long (the next one resumes where the last good one ended).
pub const PASS_TIMEOUT: Duration = Duration::from_secs(120);

/// While the writers are behind, a pass takes at most this much of the raw stream: short
/// passes, each followed by its pause, keep to their share over any few seconds, where one
/// long pass would take a core for its whole length first.
const BEHIND_WINDOW: TimeDelta = TimeDelta::seconds(1);

/// How passes yield to ingest.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// The share of the wall clock, in percent, passes may take while the writers are behind.
    pub max_busy_pct: u32,
    /// The writers are behind when more messages than this wait for them (a batch each).
    pub backlog_above: i64,
}

pub struct Derive {
    database_url: String,
    interval: Duration,
    pacing: Pacing,
    metrics: Metrics,
    /// The connection between passes (`None` while a pass holds it, or after a failure).
    conn: Option<PgConnection>,
    folded: HashSet<i64>,
    running: bool,
    /// No pass starts before this (the pause owed for the last one's length).
    resume_at: Instant,
    /// The most of the raw stream the next pass takes: halved after a failed pass (a window
    /// of a long flood may hold more than a pass can fold within its deadline), doubled back
    /// after a good one.
    window: TimeDelta,
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
        pacing: Pacing,
        metrics: Metrics,
    ) -> Derive {
        Derive {
            database_url,
            interval,
            pacing: Pacing {
                max_busy_pct: pacing.max_busy_pct.clamp(1, 100),
                ..pacing
            },
            metrics,
            conn: None,
            folded: HashSet::new(),
            running: false,
            resume_at: Instant::now(),
            window: derive::MAX_WINDOW,
        }
    }

    /// Whether more messages wait for this instance's writers than they take in a batch each.
    fn writers_behind(&self) -> bool {
        self.metrics.messages_queued.get() > self.pacing.backlog_above
    }

    /// How long to wait after a pass of `took`: none if the writers keep up, else enough that
    /// passes take at most `max_busy_pct` of the time.
    fn pause_after(&self, took: Duration, writers_behind: bool) -> Duration {
        if !writers_behind {
            return Duration::ZERO;
        }
        let pct = self.pacing.max_busy_pct;
        took * (100 - pct) / pct
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
        let window = if self.writers_behind() {
            self.window.min(BEHIND_WINDOW)
        } else {
            self.window
        };
        let started = Instant::now();
        let job = actix_web::rt::task::spawn_blocking(move || {
            let mut conn = match conn {
                Some(conn) => conn,
                None => match PgConnection::establish(&url) {
                    Ok(conn) => conn,
                    Err(e) => return (None, folded, Err(e.to_string())),
                },
            };
            match derive::pass(&mut conn, PASS_TIMEOUT, window, &mut folded) {
                Ok(report) => (Some(conn), folded, Ok(report)),
                // The connection may be broken; the next pass opens a new one.
                Err(e) => (None, folded, Err(e.to_string())),
            }
        });
        Box::pin(job.into_actor(self).map(move |joined, actor, _| {
            actor.running = false;
            let took = started.elapsed();
            actor.resume_at = Instant::now() + actor.pause_after(took, actor.writers_behind());
            let result = match joined {
                Ok((conn, folded, result)) => {
                    actor.conn = conn;
                    actor.folded = folded;
                    result
                }
                Err(e) => Err(e.to_string()),
            };
            actor.window = next_window(actor.window, &result);
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

/// The window after a pass with `result`: half after a failure, twice after a good pass,
/// within `MIN_WINDOW` and `MAX_WINDOW`.
fn next_window(window: TimeDelta, result: &Result<Option<PassReport>, String>) -> TimeDelta {
    match result {
        Ok(Some(_)) => (window * 2).min(derive::MAX_WINDOW),
        Ok(None) => window,
        Err(_) => (window / 2).max(derive::MIN_WINDOW),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn derive(max_busy_pct: u32) -> Derive {
        let pacing = Pacing {
            max_busy_pct,
            backlog_above: 2048,
        };
        Derive::new(
            String::new(),
            Duration::from_secs(5),
            pacing,
            Metrics::new(),
        )
    }

    #[test]
    fn behind_the_writers_passes_keep_to_their_share_of_the_time() {
        let pass = Duration::from_secs(3);
        for (pct, pause) in [(100, 0), (50, 3), (25, 9), (10, 27), (0, 297)] {
            assert_eq!(
                derive(pct).pause_after(pass, true),
                Duration::from_secs(pause),
                "{pct} %"
            );
        }
    }

    #[test]
    fn with_the_writers_keeping_up_passes_do_not_wait() {
        let d = derive(25);
        for queued in [0, 1, 2048, 2049] {
            d.metrics.messages_queued.set(queued);
            assert_eq!(d.writers_behind(), queued > 2048, "{queued}");
        }
        assert_eq!(d.pause_after(Duration::from_secs(3), false), Duration::ZERO);
    }

    #[test]
    fn a_failed_pass_halves_the_window_and_good_ones_double_it_back() {
        let failed = Err("statement timeout".to_owned());
        let mut window = derive::MAX_WINDOW;
        for _ in 0..20 {
            window = next_window(window, &failed);
        }
        assert_eq!(window, derive::MIN_WINDOW);
        assert_eq!(next_window(window, &Ok(None)), window);
        let good = Ok(Some(PassReport {
            messages: 1,
            derived_until: chrono::Utc::now(),
            late_batches: 0,
        }));
        assert_eq!(next_window(window, &good), window * 2);
        for _ in 0..20 {
            window = next_window(window, &good);
        }
        assert_eq!(window, derive::MAX_WINDOW);
    }
}
