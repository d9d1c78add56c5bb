//! `GET /nodes`: the newest session of every known peer id, with the latest state the cache
//! holds for it. `GET /nodes/log_stats` and `GET /nodes/logs`: one peer's messages, counted by
//! kind or listed. `GET /nodes/sessions` and `GET /nodes/series`: one peer's sessions, and its
//! heights and peers over time (the dashboard's charts). Request → parameters → query (+ cache)
//! → JSON.

use std::time::Duration;

use actix::Addr;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::error::ApiError;
use super::params::Params;
use super::{rfc3339, run_query};
use crate::actors::cache::{Cache, CurrentFleet, Fleet, FleetUnknown, NodeState};
use crate::db::queries::nodes::{self, LogFilter};
use crate::db::QueryPool;
use crate::metrics::Metrics;

/// A session counts as connected while its socket is open and it was heard from this recently
/// (a session left open by an instance that died is not connected).
const CONNECTED_WITHIN: Duration = Duration::from_secs(60);

/// The fields of a node in `/nodes`, as `fields=` names them.
pub const NODE_FIELDS: [&str; 19] = [
    "id",
    "ip_addr",
    "peer_id",
    "created_at",
    "ended_at",
    "audit",
    "name",
    "chain",
    "version",
    "authority",
    "startup_time",
    "implementation",
    "genesis_hash",
    "best_height",
    "finalized_height",
    "peers",
    "txcount",
    "last_message_at",
    "connected",
];

/// Most nodes one page of `/nodes` holds.
const NODES_PAGE_MAX: i64 = 100_000;

/// `GET /nodes`: every peer's newest session and state, in `peer_id` order; by default all of
/// them with every field, as it always was. A client that shows a part asks for that part:
/// `peer_id`, `chain` and `connected` filter, `since` keeps only nodes that changed after that
/// time (a new or ended session, a new state in the cache, or `connected` turning false),
/// `fields` chooses the fields, `limit` and `offset` page. The answer says how many nodes
/// matched before paging (`x-total-count`) and when it was made (`x-as-of`: the `since` of the
/// next poll, less a few seconds for instances whose caches run a refresh behind). Answered
/// from the cache's fleet, as of its last refresh (`CACHE_UPDATE_INTERVAL_MS`).
pub async fn list(
    req: HttpRequest,
    pool: web::Data<QueryPool>,
    cache: web::Data<Addr<Cache>>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string())?;
    let only = params.text("peer_id")?;
    let chain = params.text("chain")?;
    let connected_only = params.flag("connected")?;
    let since = params.time("since")?;
    let fields = params.list("fields", &NODE_FIELDS)?;
    let limit = params.whole("limit", 1, NODES_PAGE_MAX)?;
    let offset = params.whole("offset", 0, i64::MAX)?.unwrap_or(0);
    let now = Utc::now();
    let fleet = current_fleet(&cache, pool.deadline).await?;
    let mask = fields.map_or(u32::MAX, |fields| {
        fields
            .iter()
            .filter_map(|f| NODE_FIELDS.iter().position(|n| n == f))
            .fold(0, |m, i| m | 1 << i)
    });
    let changed_since = |s: &nodes::SessionRow, state: Option<&NodeState>, t: DateTime<Utc>| {
        let gone_quiet = state
            .and_then(|st| {
                chrono::TimeDelta::from_std(CONNECTED_WITHIN)
                    .ok()
                    .and_then(|w| st.last_message_at.checked_add_signed(w))
            })
            .is_some_and(|quiet| quiet > t && quiet <= now);
        s.created_at > t
            || s.ended_at.is_some_and(|e| e > t)
            || state.is_some_and(|st| st.changed_at > t)
            || gone_quiet
    };
    let mut matching: Vec<Node> = Vec::new();
    for session in fleet.sessions.iter() {
        let state = fleet.states.get(&session.id);
        if only.is_some_and(|p| session.peer_id != p)
            || chain.is_some_and(|c| session.chain.as_deref() != Some(c))
            || since.is_some_and(|t| !changed_since(session, state, t))
        {
            continue;
        }
        let node = Node::new(session, state, now);
        if connected_only.is_none_or(|c| node.connected == c) {
            matching.push(node);
        }
    }
    let total = matching.len();
    let skip = usize::try_from(offset).unwrap_or(usize::MAX).min(total);
    let take = limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
    let page = &matching[skip..total.min(skip.saturating_add(take))];
    let body = serde_json::to_vec(&Answer { nodes: page, mask })
        .map_err(|e| ApiError::Internal(format!("serialising /nodes: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("x-total-count", total.to_string()))
        .insert_header(("x-as-of", rfc3339(now)))
        .body(body))
}

/// The cache's newest fleet. Right after start, the first refresh may still run: waits for it
/// (polling) up to `deadline`.
async fn current_fleet(
    cache: &Addr<Cache>,
    deadline: Duration,
) -> Result<std::sync::Arc<Fleet>, ApiError> {
    let until = std::time::Instant::now() + deadline;
    loop {
        let answer = cache
            .send(CurrentFleet)
            .await
            .map_err(|e| ApiError::Internal(format!("cache: {e}")))?;
        match answer {
            Ok(fleet) => return Ok(fleet),
            Err(FleetUnknown::NotYet) if std::time::Instant::now() < until => {
                actix_web::rt::time::sleep(Duration::from_millis(20)).await;
            }
            Err(FleetUnknown::NotYet) => {
                return Err(ApiError::Unavailable(
                    "the cache has not read the database yet".into(),
                ))
            }
            Err(FleetUnknown::Failed) => {
                return Err(ApiError::Unavailable(
                    "the cache's last read of the database failed".into(),
                ))
            }
        }
    }
}

/// One node as `/nodes` shows it: its newest session and the cache's view of its state.
struct Node<'a> {
    session: &'a nodes::SessionRow,
    state: Option<&'a NodeState>,
    connected: bool,
}

impl<'a> Node<'a> {
    fn new(
        session: &'a nodes::SessionRow,
        state: Option<&'a NodeState>,
        now: DateTime<Utc>,
    ) -> Node<'a> {
        let recent = state.is_some_and(|st| {
            (now - st.last_message_at).to_std().unwrap_or_default() < CONNECTED_WITHIN
        });
        let connected = session.ended_at.is_none() && recent;
        Node {
            session,
            state,
            connected,
        }
    }
}

/// The answer of `/nodes`: each node as an object of the fields in `mask` (bit i: field i of
/// `NODE_FIELDS`), written straight from the rows, with nothing built per node in between
/// (at 10,000 nodes an answer is megabytes; a copy of it per node would be several more).
struct Answer<'a> {
    nodes: &'a [Node<'a>],
    mask: u32,
}

impl Serialize for Answer<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.nodes.iter().map(|node| Shown {
            node,
            mask: self.mask,
        }))
    }
}

struct Shown<'a> {
    node: &'a Node<'a>,
    mask: u32,
}

impl Serialize for Shown<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (s, st) = (self.node.session, self.node.state);
        let mut map = serializer.serialize_map(None)?;
        // Field i of NODE_FIELDS, its value worked out only when it is shown.
        macro_rules! field {
            ($i:expr, $value:expr) => {
                if self.mask & (1 << $i) != 0 {
                    map.serialize_entry(NODE_FIELDS[$i], &$value)?;
                }
            };
        }
        field!(0, s.id);
        field!(1, s.ip_addr);
        field!(2, Some(&s.peer_id).filter(|p| !p.is_empty()));
        field!(3, rfc3339(s.created_at));
        field!(4, s.ended_at.map(rfc3339));
        field!(5, s.audit);
        field!(6, s.name);
        field!(7, s.chain);
        field!(8, s.version);
        field!(9, s.authority);
        field!(10, s.startup_time);
        field!(11, s.implementation);
        field!(12, s.genesis_hash);
        field!(13, st.and_then(|st| st.best_height));
        field!(14, st.and_then(|st| st.finalized_height));
        field!(15, st.and_then(|st| st.peers));
        field!(16, st.and_then(|st| st.txcount));
        field!(17, st.map(|st| rfc3339(st.last_message_at)));
        field!(18, self.node.connected);
        map.end()
    }
}

/// Most messages `/nodes/logs` returns at once, and how many when `limit` is not given.
const LOGS_MAX: i64 = 10_000;
const LOGS_DEFAULT: i64 = 100;

#[derive(Serialize)]
pub struct LogStatView {
    qty: i64,
    log_type: Option<String>,
}

impl From<nodes::LogStat> for LogStatView {
    fn from(r: nodes::LogStat) -> Self {
        LogStatView {
            qty: r.qty,
            log_type: r.log_type,
        }
    }
}

/// A session's connection fields, as `/nodes/sessions` and benchmark windows list them.
#[derive(Serialize)]
pub struct SessionView {
    id: i64,
    ip_addr: String,
    peer_id: Option<String>,
    created_at: String,
    ended_at: Option<String>,
    audit: bool,
    name: Option<String>,
    chain: Option<String>,
    version: Option<String>,
    authority: Option<bool>,
    startup_time: Option<i64>,
    implementation: Option<String>,
    genesis_hash: Option<String>,
}

impl From<nodes::SessionRow> for SessionView {
    fn from(s: nodes::SessionRow) -> Self {
        SessionView {
            id: s.id,
            ip_addr: s.ip_addr,
            peer_id: Some(s.peer_id).filter(|p| !p.is_empty()),
            created_at: rfc3339(s.created_at),
            ended_at: s.ended_at.map(rfc3339),
            audit: s.audit,
            name: s.name,
            chain: s.chain,
            version: s.version,
            authority: s.authority,
            startup_time: s.startup_time,
            implementation: s.implementation,
            genesis_hash: s.genesis_hash,
        }
    }
}

pub async fn log_stats(
    req: HttpRequest,
    pool: web::Data<QueryPool>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string())?;
    let peer_id = params.required("peer_id")?.to_owned();
    let (start, end) = params.window(STATS_WINDOW)?;
    let rows = run_query(&pool, &metrics, move |c| {
        nodes::log_stats(c, &peer_id, start, end)
    })
    .await?;
    let views: Vec<LogStatView> = rows.into_iter().map(Into::into).collect();
    Ok(HttpResponse::Ok().json(views))
}

#[derive(Serialize)]
struct LogView {
    ip_addr: String,
    peer_id: String,
    msg: Option<String>,
    created_at: String,
    logs: serde_json::Value,
}

pub async fn logs(
    req: HttpRequest,
    pool: web::Data<QueryPool>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string())?;
    let peer_id = params.required("peer_id")?.to_owned();
    let msg = params.text("msg")?.map(str::to_owned);
    let target = params.text("target")?.map(str::to_owned);
    let start = params.time("start_time")?;
    let end = params.time("end_time")?.unwrap_or_else(Utc::now);
    let limit = params.limit("limit", LOGS_DEFAULT, LOGS_MAX)?;
    let rows = run_query(&pool, &metrics, move |c| {
        nodes::logs(
            c,
            &LogFilter {
                peer_id: &peer_id,
                msg: msg.as_deref(),
                target: target.as_deref(),
                start,
                end,
                limit,
            },
        )
    })
    .await?;
    let views: Vec<LogView> = rows
        .into_iter()
        .map(|r| LogView {
            ip_addr: r.ip_addr,
            peer_id: r.peer_id,
            msg: r.msg,
            created_at: rfc3339(r.created_at),
            logs: r.logs,
        })
        .collect();
    Ok(HttpResponse::Ok().json(views))
}

/// Most sessions `/nodes/sessions` returns.
const SESSIONS_MAX: i64 = 1_000;
const SESSIONS_DEFAULT: i64 = 50;

/// `GET /nodes/sessions?peer_id=`: every session of one peer, newest first.
pub async fn sessions(
    req: HttpRequest,
    pool: web::Data<QueryPool>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string())?;
    let peer_id = params.required("peer_id")?.to_owned();
    let limit = params.limit("limit", SESSIONS_DEFAULT, SESSIONS_MAX)?;
    let rows = run_query(&pool, &metrics, move |c| {
        nodes::sessions_of(c, &peer_id, limit)
    })
    .await?;
    let views: Vec<SessionView> = rows.into_iter().map(Into::into).collect();
    Ok(HttpResponse::Ok().json(views))
}

/// Buckets `/nodes/series` returns at most, and by default.
const POINTS_MAX: i64 = 2_000;
const POINTS_DEFAULT: i64 = 240;
/// The window `/nodes/log_stats` counts when `start_time` is not given.
const STATS_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// The window `/nodes/series` covers when `start_time` is not given.
const SERIES_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(1);

#[derive(Serialize)]
struct SeriesView {
    at: String,
    best_height: Option<i64>,
    finalized_height: Option<i64>,
    peers: Option<i64>,
    txcount: Option<i64>,
}

/// `GET /nodes/series?peer_id=`: best and finalized height, peers and tx pool of one peer over
/// time, in at most `points` equal buckets of [start_time, end_time].
pub async fn series(
    req: HttpRequest,
    pool: web::Data<QueryPool>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string())?;
    let peer_id = params.required("peer_id")?.to_owned();
    let (start, end) = params.window(SERIES_WINDOW)?;
    let points = params.limit("points", POINTS_DEFAULT, POINTS_MAX)?;
    let span = (end - start).to_std().unwrap_or_default().as_secs_f64();
    let bucket = (span / points as f64).max(0.001);
    let rows = run_query(&pool, &metrics, move |c| {
        nodes::series(c, &peer_id, start, end, bucket)
    })
    .await?;
    let views: Vec<SeriesView> = rows
        .into_iter()
        .map(|p| SeriesView {
            at: rfc3339(p.at),
            best_height: p.best_height,
            finalized_height: p.finalized_height,
            peers: p.peers,
            txcount: p.txcount,
        })
        .collect();
    Ok(HttpResponse::Ok().json(views))
}
