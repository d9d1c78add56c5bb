//! The network analytics API: `GET /chains`, `/chains/{genesis_hash}/propagation`,
//! `/finality`, `/versions`, `/hardware`, and per node `/nodes/propagation` and
//! `/nodes/hardware`. Each handler parses its parameters strictly, reads derived rows
//! (`db::queries::chains`, which also folds the series into steps) and shapes them; the
//! newest versions, the outdated nodes, hardware distributions and the comparison with the
//! reference hardware are computed here from those rows.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::error::ApiError;
use super::params::{segment, Params};
use super::{rfc3339, run_query, run_snapshot};
use crate::config::Config;
use crate::db::queries::chains::{self, percentile, Block, Hardware};
use crate::db::QueryPool;
use crate::metrics::Metrics;

const PROPAGATION_WINDOW: TimeDelta = TimeDelta::hours(24);
const FINALITY_WINDOW: TimeDelta = TimeDelta::hours(24);
const VERSIONS_WINDOW: TimeDelta = TimeDelta::days(30);
const HARDWARE_WINDOW: TimeDelta = TimeDelta::days(30);
const NODE_PROPAGATION_WINDOW: TimeDelta = TimeDelta::hours(1);
/// A node's rank reads every node's arrivals in the window: a week at most.
const NODE_PROPAGATION_MAX: TimeDelta = TimeDelta::days(7);
const NODE_HARDWARE_WINDOW: TimeDelta = TimeDelta::days(365);
const BLOCKS_DEFAULT: i64 = 100;
const BLOCKS_MAX: i64 = 100_000;
const NODE_BLOCKS_DEFAULT: i64 = 100;
const NODE_BLOCKS_MAX: i64 = 10_000;
/// A finality or propagation series has about this many points at most, unless `step_s`
/// asks for more.
const SERIES_POINTS: i64 = 1440;
/// A version series: hourly up to two months, then whole hours keeping about this many steps.
const VERSION_POINTS: i64 = 1440;

/// The stall threshold (`FINALITY_STALL_S`), for the handlers.
#[derive(Clone, Copy)]
pub struct Analytics {
    pub finality_stall_s: f64,
}

impl Analytics {
    pub fn new(config: &Config) -> Analytics {
        Analytics {
            finality_stall_s: config.finality_stall.as_secs_f64(),
        }
    }
}

/// `best` (block.import) or `finalized` (notify.finalized); `best` when absent.
fn kind(params: &Params) -> Result<&'static str, ApiError> {
    match params.text("kind")? {
        None | Some("best") => Ok("best"),
        Some("finalized") => Ok("finalized"),
        Some(_) => Err(ApiError::bad("kind", "must be best or finalized")),
    }
}

/// The chain in the path, which must be known.
async fn chain(
    path: web::Path<String>,
    pool: &web::Data<QueryPool>,
    metrics: &web::Data<Metrics>,
) -> Result<String, ApiError> {
    let genesis_hash = segment("genesis_hash", path.into_inner())?;
    let probe = genesis_hash.clone();
    if run_query(pool, metrics, move |c| chains::known(c, &probe)).await? {
        Ok(genesis_hash)
    } else {
        Err(ApiError::NotFound(
            "chain with this genesis hash (GET /chains lists the known ones)",
        ))
    }
}

/// `GET /chains`
pub async fn list(
    req: HttpRequest,
    pool: web::Data<QueryPool>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    Params::parse(req.query_string())?;
    let rows = run_query(&pool, &metrics, chains::chains).await?;
    Ok(HttpResponse::Ok().json(rows))
}

#[derive(Serialize)]
struct PropagationView {
    genesis_hash: String,
    kind: &'static str,
    start_time: String,
    end_time: String,
    step_s: i64,
    /// Over every block of the window.
    summary: chains::PropagationStep,
    /// Per step, oldest first (steps without blocks are left out).
    series: Vec<chains::PropagationStep>,
    /// True when `limit` cut the blocks short (the newest were kept).
    truncated: bool,
    /// The newest blocks, newest first.
    blocks: Vec<Block>,
}

/// `step_s` if given, else whole multiples of `unit` that keep the window near `points` steps.
fn step(
    params: &Params,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    unit: i64,
    points: i64,
) -> Result<i64, ApiError> {
    let fit = ((end - start).num_seconds() / points + unit - 1) / unit * unit;
    Ok(params
        .whole("step_s", unit, 366 * 86_400)?
        .unwrap_or(fit.max(unit)))
}

/// `GET /chains/{genesis_hash}/propagation?kind=&start_time=&end_time=&step_s=&limit=`
pub async fn propagation(
    req: HttpRequest,
    path: web::Path<String>,
    pool: web::Data<QueryPool>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string())?;
    let kind = kind(&params)?;
    let (start, end) = params.window(PROPAGATION_WINDOW)?;
    let step_s = step(&params, start, end, 60, SERIES_POINTS)?;
    let limit = params.limit("limit", BLOCKS_DEFAULT, BLOCKS_MAX)?;
    let genesis_hash = chain(path, &pool, &metrics).await?;
    let g = genesis_hash.clone();
    let ((summary, series), mut blocks) = run_snapshot(&pool, &metrics, move |c| {
        Ok((
            chains::propagation(c, &g, kind, start, end, step_s)?,
            chains::blocks(c, &g, kind, start, end, limit + 1)?,
        ))
    })
    .await?;
    let truncated = blocks.len() as i64 > limit;
    blocks.truncate(limit as usize);
    Ok(HttpResponse::Ok().json(PropagationView {
        genesis_hash,
        kind,
        start_time: rfc3339(start),
        end_time: rfc3339(end),
        step_s,
        summary,
        series,
        truncated,
        blocks,
    }))
}

#[derive(Serialize)]
struct NodePropagationView {
    peer_id: String,
    kind: &'static str,
    start_time: String,
    end_time: String,
    chains: Vec<chains::NodePropagation>,
    blocks: Vec<chains::NodeBlock>,
}

/// `GET /nodes/propagation?peer_id=&kind=&start_time=&end_time=&limit=`
pub async fn node_propagation(
    req: HttpRequest,
    pool: web::Data<QueryPool>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string())?;
    let peer_id = params.required("peer_id")?.to_owned();
    let kind = kind(&params)?;
    let (start, end) = params.window(NODE_PROPAGATION_WINDOW)?;
    if end - start > NODE_PROPAGATION_MAX {
        return Err(ApiError::bad(
            "start_time",
            "the window may be at most 7 days (a rank reads every node's blocks in it)",
        ));
    }
    let limit = params.limit("limit", NODE_BLOCKS_DEFAULT, NODE_BLOCKS_MAX)?;
    let p = peer_id.clone();
    let (chains, blocks) = run_snapshot(&pool, &metrics, move |c| {
        Ok((
            chains::node_propagation(c, &p, kind, start, end)?,
            chains::node_blocks(c, &p, kind, start, end, limit)?,
        ))
    })
    .await?;
    Ok(HttpResponse::Ok().json(NodePropagationView {
        peer_id,
        kind,
        start_time: rfc3339(start),
        end_time: rfc3339(end),
        chains,
        blocks,
    }))
}

#[derive(Serialize)]
struct FinalityView {
    genesis_hash: String,
    start_time: String,
    end_time: String,
    step_s: i64,
    stall_threshold_s: f64,
    series: Vec<chains::HeightStep>,
    stalls: Vec<StallView>,
    authority_sets: Vec<chains::AuthoritySet>,
    nodes: Vec<chains::NodeHeights>,
}

#[derive(Serialize)]
struct StallView {
    #[serde(flatten)]
    stall: chains::Stall,
    /// GRANDPA voters seen from a minute before the stall to a minute after it (nodes send
    /// votes at verbosity 1 and up only).
    voters: Vec<chains::Voter>,
}

/// Around a stall, the votes looked at reach this far either side.
const VOTES_AROUND: TimeDelta = TimeDelta::minutes(1);

/// `GET /chains/{genesis_hash}/finality?start_time=&end_time=&step_s=&peer_id=`
pub async fn finality(
    req: HttpRequest,
    path: web::Path<String>,
    pool: web::Data<QueryPool>,
    metrics: web::Data<Metrics>,
    analytics: web::Data<Analytics>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string())?;
    let (start, end) = params.window(FINALITY_WINDOW)?;
    let step_s = step(&params, start, end, 60, SERIES_POINTS)?;
    let peer_id = params.text("peer_id")?.map(str::to_owned);
    let stall_s = analytics.finality_stall_s;
    let genesis_hash = chain(path, &pool, &metrics).await?;
    let g = genesis_hash.clone();
    let (series, stalls, authority_sets, nodes) = run_snapshot(&pool, &metrics, move |c| {
        let series = chains::finality_series(c, &g, start, end, step_s)?;
        let mut stalls = Vec::new();
        for stall in chains::stalls(c, &g, start, end, stall_s)? {
            let until = stall.ended_at.unwrap_or_else(Utc::now);
            let voters =
                chains::voters(c, &g, stall.started_at - VOTES_AROUND, until + VOTES_AROUND)?;
            stalls.push(StallView { stall, voters });
        }
        let sets = chains::authority_sets(c, &g, start, end)?;
        let nodes = chains::node_heights(c, &g, start, end, peer_id.as_deref())?;
        Ok((series, stalls, sets, nodes))
    })
    .await?;
    Ok(HttpResponse::Ok().json(FinalityView {
        genesis_hash,
        start_time: rfc3339(start),
        end_time: rfc3339(end),
        step_s,
        stall_threshold_s: stall_s,
        series,
        stalls,
        authority_sets,
        nodes,
    }))
}

/// The numbers at the front of a version string ("v1.2.3-dev-abc" → [1, 2, 3]); `None` when it
/// does not start with one. Versions compare by these.
pub fn version_key(version: &str) -> Option<Vec<u64>> {
    let digits = version.strip_prefix('v').unwrap_or(version);
    let end = digits
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(digits.len());
    let key: Option<Vec<u64>> = digits[..end]
        .split('.')
        .filter(|part| !part.is_empty())
        .map(|part| part.parse().ok())
        .collect();
    key.filter(|k| !k.is_empty())
}

#[derive(Serialize)]
struct VersionsView {
    genesis_hash: String,
    start_time: String,
    end_time: String,
    step_s: i64,
    series: Vec<chains::VersionStep>,
    versions: Vec<chains::VersionSeen>,
    newest: Vec<Newest>,
    outdated: Vec<Outdated>,
}

#[derive(Serialize, Clone)]
struct Newest {
    implementation: String,
    version: String,
}

#[derive(Serialize)]
struct Outdated {
    peer_id: String,
    name: Option<String>,
    implementation: String,
    version: String,
    newest_version: String,
}

/// `GET /chains/{genesis_hash}/versions?start_time=&end_time=`
pub async fn versions(
    req: HttpRequest,
    path: web::Path<String>,
    pool: web::Data<QueryPool>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string())?;
    let (start, end) = params.window(VERSIONS_WINDOW)?;
    let step_s = step(&params, start, end, 3600, VERSION_POINTS)?;
    let genesis_hash = chain(path, &pool, &metrics).await?;
    let g = genesis_hash.clone();
    let (series, seen, live) = run_snapshot(&pool, &metrics, move |c| {
        Ok((
            chains::version_steps(c, &g, start, end, step_s)?,
            chains::versions_seen(c, &g)?,
            chains::live_nodes(c, &g)?,
        ))
    })
    .await?;
    // The newest version of each implementation ever seen on the chain.
    let mut newest: BTreeMap<String, (Vec<u64>, String)> = BTreeMap::new();
    for v in &seen {
        let Some(key) = version_key(&v.version) else {
            continue;
        };
        match newest.get(&v.implementation) {
            Some((best, _)) if *best >= key => {}
            _ => {
                newest.insert(v.implementation.clone(), (key, v.version.clone()));
            }
        }
    }
    let outdated = live
        .into_iter()
        .filter_map(|n| {
            let (best, newest_version) = newest.get(&n.implementation)?;
            let key = version_key(&n.version)?;
            (key < *best).then(|| Outdated {
                peer_id: n.peer_id,
                name: n.name,
                implementation: n.implementation,
                version: n.version,
                newest_version: newest_version.clone(),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(VersionsView {
        genesis_hash,
        start_time: rfc3339(start),
        end_time: rfc3339(end),
        step_s,
        series,
        versions: seen,
        newest: newest
            .into_iter()
            .map(|(implementation, (_, version))| Newest {
                implementation,
                version,
            })
            .collect(),
        outdated,
    }))
}

/// The scores Substrate checks validators' hardware against (`SUBSTRATE_REFERENCE_HARDWARE`),
/// in MiB/s as `sysinfo.hwbench` reports them: paritytech/polkadot-sdk,
/// `substrate/utils/frame/benchmarking-cli/src/machine/reference_hardware.json` (commit
/// 0df211c4c8824179418138cb6fbdc3c3dd197665). The parallel BLAKE2 minimum is checked on
/// relay-chain authorities only, with 8 cores.
pub const REFERENCE: [(&str, f64); 5] = [
    ("cpu_hashrate_score", 783.27),
    ("parallel_cpu_hashrate_score", 966.43),
    ("memory_memcpy_score", 11_768.341),
    ("disk_sequential_write_score", 950.0),
    ("disk_random_write_score", 420.0),
];

pub const REFERENCE_SOURCE: &str = "https://github.com/paritytech/polkadot-sdk/blob/0df211c4c8824179418138cb6fbdc3c3dd197665/substrate/utils/frame/benchmarking-cli/src/machine/reference_hardware.json";

fn score(h: &Hardware, metric: &str) -> Option<i64> {
    match metric {
        "cpu_hashrate_score" => h.cpu_hashrate_score,
        "parallel_cpu_hashrate_score" => h.parallel_cpu_hashrate_score,
        "memory_memcpy_score" => h.memory_memcpy_score,
        "disk_sequential_write_score" => h.disk_sequential_write_score,
        "disk_random_write_score" => h.disk_random_write_score,
        "core_count" => h.core_count,
        _ => None,
    }
}

/// The scores of `h` below the reference (only those it reported).
fn below_reference(h: &Hardware) -> Vec<&'static str> {
    REFERENCE
        .iter()
        .filter(|(metric, minimum)| score(h, metric).is_some_and(|s| (s as f64) < *minimum))
        .map(|(metric, _)| *metric)
        .collect()
}

/// A report with the scores it is below the reference in.
#[derive(Serialize)]
struct HardwareNode {
    #[serde(flatten)]
    report: Hardware,
    below_reference: Vec<&'static str>,
}

impl From<Hardware> for HardwareNode {
    fn from(report: Hardware) -> HardwareNode {
        HardwareNode {
            below_reference: below_reference(&report),
            report,
        }
    }
}

#[derive(Serialize, PartialEq, Debug)]
struct Distribution {
    nodes: usize,
    min: i64,
    p10: i64,
    p50: i64,
    p90: i64,
    max: i64,
}

#[derive(Serialize)]
struct AuthorityCheck {
    /// Authorities that reported hwbench scores.
    benchmarked: usize,
    /// Of those, how many are below the reference in at least one score.
    below_reference: usize,
    share_below: Option<f64>,
    by_score: BTreeMap<&'static str, usize>,
}

#[derive(Serialize)]
struct HardwareView {
    genesis_hash: String,
    start_time: String,
    end_time: String,
    reference: Reference,
    distribution: BTreeMap<&'static str, Option<Distribution>>,
    authorities: AuthorityCheck,
    nodes: Vec<HardwareNode>,
}

#[derive(Serialize)]
struct Reference {
    source: &'static str,
    unit: &'static str,
    minimums: BTreeMap<&'static str, f64>,
}

fn distribution(reports: &[Hardware], metric: &str) -> Option<Distribution> {
    let mut values: Vec<i64> = reports.iter().filter_map(|h| score(h, metric)).collect();
    let p = |values: &mut [i64], p: f64| percentile(values, p).unwrap_or_default();
    Some(Distribution {
        nodes: values.len(),
        min: p(&mut values, 0.0),
        p10: p(&mut values, 0.1),
        p50: p(&mut values, 0.5),
        p90: p(&mut values, 0.9),
        max: *values.last()?,
    })
}

const HARDWARE_SCORES: [&str; 6] = [
    "cpu_hashrate_score",
    "parallel_cpu_hashrate_score",
    "memory_memcpy_score",
    "disk_sequential_write_score",
    "disk_random_write_score",
    "core_count",
];

/// `GET /chains/{genesis_hash}/hardware?start_time=&end_time=`: each node's newest report.
pub async fn hardware(
    req: HttpRequest,
    path: web::Path<String>,
    pool: web::Data<QueryPool>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string())?;
    let (start, end) = params.window(HARDWARE_WINDOW)?;
    let genesis_hash = chain(path, &pool, &metrics).await?;
    let g = genesis_hash.clone();
    let reports = run_query(&pool, &metrics, move |c| {
        chains::hardware_latest(c, &g, start, end)
    })
    .await?;
    let distribution = HARDWARE_SCORES
        .iter()
        .map(|metric| {
            let d = distribution(&reports, metric);
            (*metric, d)
        })
        .collect();
    let benchmarked: Vec<&Hardware> = reports
        .iter()
        .filter(|h| h.authority == Some(true) && h.cpu_hashrate_score.is_some())
        .collect();
    let mut by_score = BTreeMap::new();
    let mut below = 0;
    for h in &benchmarked {
        let failed = below_reference(h);
        if !failed.is_empty() {
            below += 1;
        }
        for metric in failed {
            *by_score.entry(metric).or_insert(0) += 1;
        }
    }
    let authorities = AuthorityCheck {
        benchmarked: benchmarked.len(),
        below_reference: below,
        share_below: (!benchmarked.is_empty()).then(|| below as f64 / benchmarked.len() as f64),
        by_score,
    };
    let nodes = reports.into_iter().map(HardwareNode::from).collect();
    Ok(HttpResponse::Ok().json(HardwareView {
        genesis_hash,
        start_time: rfc3339(start),
        end_time: rfc3339(end),
        reference: Reference {
            source: REFERENCE_SOURCE,
            unit: "MiB/s",
            minimums: REFERENCE.into_iter().collect(),
        },
        distribution,
        authorities,
        nodes,
    }))
}

#[derive(Serialize)]
struct NodeHardwareView {
    peer_id: String,
    start_time: String,
    end_time: String,
    reports: Vec<HardwareNode>,
}

/// `GET /nodes/hardware?peer_id=&start_time=&end_time=`: a node's reports over time.
pub async fn node_hardware(
    req: HttpRequest,
    pool: web::Data<QueryPool>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string())?;
    let peer_id = params.required("peer_id")?.to_owned();
    let (start, end) = params.window(NODE_HARDWARE_WINDOW)?;
    let p = peer_id.clone();
    let reports = run_query(&pool, &metrics, move |c| {
        chains::hardware_of(c, &p, start, end)
    })
    .await?;
    Ok(HttpResponse::Ok().json(NodeHardwareView {
        peer_id,
        start_time: rfc3339(start),
        end_time: rfc3339(end),
        reports: reports.into_iter().map(HardwareNode::from).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_their_leading_numbers() {
        assert_eq!(version_key("1.2.3-dev-abc"), Some(vec![1, 2, 3]));
        assert_eq!(version_key("v0.9.42"), Some(vec![0, 9, 42]));
        assert_eq!(
            version_key("2.0.0-dev-1e7331a11-x86_64-linux-gnu"),
            Some(vec![2, 0, 0])
        );
        assert_eq!(version_key("unknown"), None);
        assert_eq!(version_key(""), None);
        assert!(version_key("1.10.0") > version_key("1.9.9"));
        assert!(version_key("1.2") < version_key("1.2.1"));
    }
}
