//! The cache actor: the latest state of every node session (heights, peers, tx count, last
//! message), refreshed from PostgreSQL every `CACHE_UPDATE_INTERVAL_MS` by reading only the
//! messages received since the last refresh (less a margin for batches still committing).
//! Reading the database, not this process's sockets, gives every instance behind a load
//! balancer the same answers.
//!
//! Every refresh reads a bounded window: the first after a start reads the last minute, and each
//! later one also fills in one more minute of older history, until `CACHE_EXPIRY_S` back. Rows
//! committed long after they were received (the backlog after an outage) are found through the
//! writers' marks in `tetcore_late_batches`: a new mark has the next refresh look back to its
//! oldest message. Newer values replace older ones; older ones only fill what is missing.
//!
//! Each refresh also reads every peer's newest session, and publishes them with their states as
//! one shared, immutable `Fleet`: `/nodes` answers every poll from it, without a query or a
//! copy of its own (at 10,000 nodes, a copy per poll was megabytes and a database round trip).
//!
//! A refresh slower than `CACHE_UPDATE_TIMEOUT_S` is logged and one that reaches four times that
//! is cut off by its statement timeout; entries untouched for `CACHE_EXPIRY_S` are dropped, so
//! memory follows the sessions that talk, not the traffic.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use diesel::{sql_query, Connection, RunQueryDsl};

use crate::db::queries::nodes::{self, SessionRow, SessionsFingerprint, StateRow};
use crate::db::{self, DbPool};
use crate::metrics::Metrics;

/// Messages committed up to this long after they were received are still seen; later ones are
/// marked late by the writer.
const COMMIT_MARGIN: Duration = Duration::from_secs(5);

/// The window of history the first refresh reads, and each later one adds, going back.
const CHUNK: Duration = Duration::from_secs(60);

/// Late marks are looked for this far back (a batch's transaction is far shorter).
const MARKS_WITHIN: Duration = Duration::from_secs(600);

pub struct CacheSettings {
    pub interval: Duration,
    pub timeout: Duration,
    pub expiry: Duration,
}

/// The state of one session, as its newest messages tell it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeState {
    pub last_message_at: DateTime<Utc>,
    pub best_height: Option<i64>,
    pub finalized_height: Option<i64>,
    pub peers: Option<i64>,
    pub txcount: Option<i64>,
    /// When this cache last saw the state change (server clock): what `/nodes?since=` follows.
    pub changed_at: DateTime<Utc>,
}

struct Entry {
    state: NodeState,
    touched: Instant,
}

pub struct Cache {
    pool: DbPool,
    settings: CacheSettings,
    metrics: Metrics,
    entries: HashMap<i64, Entry>,
    /// Messages received after this were read by the last refresh (less the margin).
    read_until: Option<DateTime<Utc>>,
    /// History from here on has been read (going back to `CACHE_EXPIRY_S`).
    backfilled_to: Option<DateTime<Utc>>,
    /// Late marks already acted on.
    seen_marks: HashSet<i64>,
    refreshing: bool,
    fleet: Option<Arc<Fleet>>,
    sessions_read: Option<SessionsFingerprint>,
    /// Whether the last refresh failed.
    failing: bool,
}

/// What one refresh reads: messages received after `after`, older history in `backfill`, and
/// late marks not in `seen` (all of them taken as seen on the first refresh, whose backfill
/// covers them).
struct Plan {
    after: DateTime<Utc>,
    backfill: Option<(DateTime<Utc>, DateTime<Utc>)>,
    floor: DateTime<Utc>,
    seen: HashSet<i64>,
    first: bool,
    /// The sessions' fingerprint when they were last read.
    sessions_read: Option<SessionsFingerprint>,
}

/// What it found.
struct Found {
    rows: Vec<StateRow>,
    marks: HashSet<i64>,
    /// The sessions, if they changed since they were last read, and their fingerprint.
    sessions: Option<Vec<SessionRow>>,
    fingerprint: SessionsFingerprint,
}

/// Every peer's newest session (in `peer_id` order) and the states this cache holds for them,
/// as of one refresh.
pub struct Fleet {
    pub sessions: Arc<Vec<SessionRow>>,
    pub states: HashMap<i64, NodeState>,
}

/// The newest `Fleet`.
#[derive(Message)]
#[rtype(result = "Result<Arc<Fleet>, FleetUnknown>")]
pub struct CurrentFleet;

/// Why there is no fleet to answer with.
#[derive(Debug)]
pub enum FleetUnknown {
    /// The first refresh has not finished.
    NotYet,
    /// The last refresh failed (the database is away or too slow).
    Failed,
}

/// Refresh now (the timer sends this too); answers once the refresh is merged.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct Refresh;

impl Cache {
    pub fn new(pool: DbPool, settings: CacheSettings, metrics: Metrics) -> Cache {
        Cache {
            pool,
            settings,
            metrics,
            entries: HashMap::new(),
            read_until: None,
            backfilled_to: None,
            seen_marks: HashSet::new(),
            refreshing: false,
            fleet: None,
            sessions_read: None,
            failing: false,
        }
    }

    fn merge(&mut self, rows: Vec<StateRow>) {
        let now = Instant::now();
        let wall = Utc::now();
        for row in rows {
            let fresh = NodeState {
                last_message_at: row.last_message_at,
                best_height: row.best_height,
                finalized_height: row.finalized_height,
                peers: row.peers,
                txcount: row.txcount,
                changed_at: wall,
            };
            match self.entries.get_mut(&row.session) {
                Some(entry) => {
                    let state = &mut entry.state;
                    let before = state.clone();
                    if state.last_message_at <= fresh.last_message_at {
                        // What is newer replaces what is known; a value the window lacks stays.
                        state.last_message_at = fresh.last_message_at;
                        state.best_height = fresh.best_height.or(state.best_height);
                        state.finalized_height = fresh.finalized_height.or(state.finalized_height);
                        state.peers = fresh.peers.or(state.peers);
                        state.txcount = fresh.txcount.or(state.txcount);
                        entry.touched = now;
                    } else {
                        // What is older (history, a late batch) only fills what is missing.
                        state.best_height = state.best_height.or(fresh.best_height);
                        state.finalized_height = state.finalized_height.or(fresh.finalized_height);
                        state.peers = state.peers.or(fresh.peers);
                        state.txcount = state.txcount.or(fresh.txcount);
                    }
                    if *state != before {
                        state.changed_at = wall;
                    }
                }
                None => {
                    self.entries.insert(
                        row.session,
                        Entry {
                            state: fresh,
                            touched: now,
                        },
                    );
                }
            }
        }
        let expiry = self.settings.expiry;
        self.entries
            .retain(|_, e| now.duration_since(e.touched) < expiry);
        self.metrics.cache_entries.set(self.entries.len() as i64);
    }

    /// Makes `sessions` (or, if they did not change, the ones it has), with the states now
    /// known, the fleet `/nodes` answers from.
    fn publish(&mut self, sessions: Option<Vec<SessionRow>>) {
        let sessions = match (sessions, &self.fleet) {
            (Some(sessions), _) => Arc::new(sessions),
            (None, Some(fleet)) => fleet.sessions.clone(),
            (None, None) => Arc::new(Vec::new()),
        };
        let states = sessions
            .iter()
            .filter_map(|s| self.entries.get(&s.id).map(|e| (s.id, e.state.clone())))
            .collect();
        self.fleet = Some(Arc::new(Fleet { sessions, states }));
    }
}

impl Actor for Cache {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.notify(Refresh);
        ctx.run_interval(self.settings.interval, |_, ctx| ctx.notify(Refresh));
    }
}

impl Handler<Refresh> for Cache {
    type Result = ResponseActFuture<Self, Result<(), String>>;

    fn handle(&mut self, _: Refresh, _: &mut Context<Self>) -> Self::Result {
        if self.refreshing {
            return Box::pin(fut::ready(Ok(())));
        }
        self.refreshing = true;
        let started_at = Utc::now();
        let floor = chrono::TimeDelta::from_std(self.settings.expiry)
            .ok()
            .and_then(|expiry| started_at.checked_sub_signed(expiry))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let plan = match (self.read_until, self.backfilled_to) {
            (Some(until), Some(back)) => Plan {
                after: until - COMMIT_MARGIN,
                backfill: (back > floor).then(|| ((back - CHUNK).max(floor), back)),
                floor,
                seen: self.seen_marks.clone(),
                first: false,
                sessions_read: self.sessions_read.clone(),
            },
            _ => Plan {
                after: (started_at - CHUNK).max(floor),
                backfill: None,
                floor,
                seen: HashSet::new(),
                first: true,
                sessions_read: None,
            },
        };
        let backfill = plan.backfill;
        let pool = self.pool.clone();
        let metrics = self.metrics.clone();
        let cutoff = self.settings.timeout * 4;
        let job = actix_web::rt::task::spawn_blocking(move || {
            let mut conn = db::checkout(&pool, db::POOL_TIMEOUT, &metrics)?;
            conn.transaction(|c| {
                sql_query(format!(
                    "SET LOCAL statement_timeout = {}",
                    cutoff.as_millis()
                ))
                .execute(c)?;
                read(c, &plan)
            })
            .map_err(|e| e.to_string())
        });
        let started = Instant::now();
        Box::pin(job.into_actor(self).map(move |joined, cache, _| {
            cache.refreshing = false;
            let took = started.elapsed();
            cache
                .metrics
                .cache_refresh_seconds
                .observe(took.as_secs_f64());
            if took > cache.settings.timeout {
                log::warn!(
                    "cache refresh slow: took_ms={} limit_ms={}",
                    took.as_millis(),
                    cache.settings.timeout.as_millis()
                );
            }
            let found = joined.map_err(|e| e.to_string()).and_then(|r| r);
            match found {
                Ok(found) => {
                    cache.merge(found.rows);
                    cache.publish(found.sessions);
                    cache.sessions_read = Some(found.fingerprint);
                    cache.failing = false;
                    cache.read_until = Some(started_at);
                    cache.metrics.cache_refreshed_at.set(Utc::now().timestamp());
                    cache.seen_marks = found.marks;
                    cache.backfilled_to = match backfill {
                        Some((from, _)) => Some(from),
                        None => cache.backfilled_to.or(Some(started_at - CHUNK)),
                    };
                    Ok(())
                }
                Err(e) => {
                    cache.failing = true;
                    cache.metrics.cache_refresh_failures.inc();
                    log::warn!("cache refresh failed: error={e}");
                    Err(e)
                }
            }
        }))
    }
}

/// One refresh's reads, in one transaction.
fn read(conn: &mut diesel::PgConnection, plan: &Plan) -> diesel::QueryResult<Found> {
    let fingerprint = nodes::sessions_fingerprint(conn)?;
    let marks = nodes::late_marks(conn, MARKS_WITHIN)?;
    let mut rows = nodes::states_between(conn, plan.after, None)?;
    if let Some((from, to)) = plan.backfill {
        rows.extend(nodes::states_between(conn, from, Some(to))?);
    }
    // Rows committed late: from the oldest of them (not behind what the cache keeps) up to
    // where this refresh's own window starts.
    let late = marks
        .iter()
        .filter(|m| !plan.first && !plan.seen.contains(&m.id))
        .map(|m| m.oldest)
        .min();
    if let Some(oldest) = late.filter(|t| *t <= plan.after) {
        let from = (oldest - chrono::TimeDelta::milliseconds(1)).max(plan.floor);
        rows.extend(nodes::states_between(conn, from, Some(plan.after))?);
    }
    Ok(Found {
        rows,
        marks: marks.into_iter().map(|m| m.id).collect(),
        sessions: match &plan.sessions_read {
            Some(read) if *read == fingerprint => None,
            _ => Some(nodes::newest_sessions(conn)?),
        },
        fingerprint,
    })
}

impl Handler<CurrentFleet> for Cache {
    type Result = Result<Arc<Fleet>, FleetUnknown>;

    fn handle(&mut self, _: CurrentFleet, _: &mut Context<Self>) -> Self::Result {
        match (&self.fleet, self.failing) {
            (_, true) => Err(FleetUnknown::Failed),
            (Some(fleet), false) => Ok(fleet.clone()),
            (None, false) => Err(FleetUnknown::NotYet),
        }
    }
}
