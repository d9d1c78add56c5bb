//! The cache actor: the latest state of every node session (heights, peers, tx count, last
//! message), refreshed from PostgreSQL every `CACHE_UPDATE_INTERVAL_MS`. The writers keep each
//! session's state in `tetcore_node_state`, in the transaction that stores its messages; a
//! refresh reads only the rows changed since the last one (less a margin for transactions
//! still committing), so its cost follows the sessions that talk, not the messages they send.
//! The first refresh after a start reads every session heard from within `CACHE_EXPIRY_S`.
//! Reading the database, not this process's sockets, gives every instance behind a load
//! balancer the same answers.
//!
//! Each refresh also reads every peer's newest session (when they changed), and publishes them
//! with their states as one shared, immutable `Fleet`: `/nodes` answers every poll from it,
//! without a query or a copy of its own (at 10,000 nodes, a copy per poll was megabytes and a
//! database round trip).
//!
//! A refresh slower than `CACHE_UPDATE_TIMEOUT_S` is logged and one that reaches four times that
//! is cut off by its statement timeout; entries untouched for `CACHE_EXPIRY_S` are dropped, so
//! memory follows the sessions that talk.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use diesel::{sql_query, Connection, RunQueryDsl};

use crate::db::queries::nodes::{self, SessionRow, SessionsFingerprint, StateRow};
use crate::db::{self, DbPool};
use crate::metrics::Metrics;

/// A state changed this long before a refresh started is still read by it: a writer's
/// transaction commits this soon after it changed the row.
const COMMIT_MARGIN: Duration = Duration::from_secs(5);

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

pub struct Cache {
    pool: DbPool,
    settings: CacheSettings,
    metrics: Metrics,
    entries: HashMap<i64, NodeState>,
    /// When the last successful refresh started (its reads saw every change before it).
    read_until: Option<DateTime<Utc>>,
    refreshing: bool,
    fleet: Option<Arc<Fleet>>,
    sessions_read: Option<SessionsFingerprint>,
    /// Whether the last refresh failed.
    failing: bool,
}

/// What one refresh reads: states changed after `after` (every state heard from after `floor`
/// when `None`), and the sessions unless they still match `sessions_read`.
struct Plan {
    after: Option<DateTime<Utc>>,
    floor: DateTime<Utc>,
    sessions_read: Option<SessionsFingerprint>,
}

/// What it found.
struct Found {
    rows: Vec<StateRow>,
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
            refreshing: false,
            fleet: None,
            sessions_read: None,
            failing: false,
        }
    }

    fn merge(&mut self, rows: Vec<StateRow>) {
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
                // Read again within the margin, unchanged: it keeps when it changed.
                Some(known)
                    if NodeState {
                        changed_at: known.changed_at,
                        ..fresh
                    } == *known => {}
                _ => {
                    self.entries.insert(row.session, fresh);
                }
            }
        }
        let expiry =
            chrono::TimeDelta::from_std(self.settings.expiry).unwrap_or(chrono::TimeDelta::MAX);
        self.entries
            .retain(|_, state| wall - state.last_message_at < expiry);
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
            .filter_map(|s| self.entries.get(&s.id).map(|state| (s.id, state.clone())))
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
        let plan = Plan {
            after: self.read_until.map(|until| until - COMMIT_MARGIN),
            floor,
            sessions_read: self.sessions_read.clone(),
        };
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
    Ok(Found {
        rows: nodes::states(conn, plan.after, plan.floor)?,
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
