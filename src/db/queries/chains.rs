//! Reads of the network analytics tables (migrations 11 to 13): chains, block propagation,
//! finality and its stalls, GRANDPA votes, versions and hardware. Every read is of derived rows
//! through an index on (chain, time) or (node, time), never of raw messages, so a year costs
//! what its derived rows cost. The propagation and version series read their rows once, in
//! time order, and fold them into steps here (cheaper than an ordered-set aggregate per step).

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::sql_types::{Array, BigInt, Bool, Double, Integer, Jsonb, Nullable, Text, Timestamptz};
use diesel::{sql_query, QueryResult, QueryableByName, RunQueryDsl};
use serde::Serialize;

use crate::db::models::{utc, utc_opt};

/// Every chain known, with its nodes now and its newest heights (each from the newest minute
/// that has it).
#[derive(QueryableByName, Serialize, Debug)]
pub struct Chain {
    #[diesel(sql_type = Text)]
    pub genesis_hash: String,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Timestamptz)]
    #[serde(serialize_with = "utc")]
    pub first_seen: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    #[serde(serialize_with = "utc")]
    pub last_seen: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    pub nodes_connected: i64,
    #[diesel(sql_type = BigInt)]
    pub authorities_connected: i64,
    #[diesel(sql_type = BigInt)]
    pub nodes_24h: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub best_height: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub finalized_height: Option<i64>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    #[serde(serialize_with = "utc_opt")]
    pub heights_at: Option<DateTime<Utc>>,
}

pub fn chains(conn: &mut PgConnection) -> QueryResult<Vec<Chain>> {
    sql_query(
        "SELECT c.genesis_hash, c.name, c.first_seen, c.last_seen, \
                coalesce(live.nodes, 0) AS nodes_connected, \
                coalesce(live.authorities, 0) AS authorities_connected, \
                (SELECT count(DISTINCT h.peer_id) FROM tetcore_node_hours h \
                 WHERE h.genesis_hash = c.genesis_hash \
                   AND h.hour >= date_trunc('hour', now() - interval '24 hours')) AS nodes_24h, \
                b.best_height, f.finalized_height, \
                greatest(b.minute, f.minute) AS heights_at \
         FROM tetcore_chains c \
         LEFT JOIN (SELECT genesis_hash, count(DISTINCT peer_id) AS nodes, \
                           count(DISTINCT peer_id) FILTER (WHERE authority) AS authorities \
                    FROM peer_connections WHERE ended_at IS NULL AND peer_id IS NOT NULL \
                    GROUP BY genesis_hash) live ON live.genesis_hash = c.genesis_hash \
         LEFT JOIN LATERAL (SELECT best_height, minute FROM tetcore_chain_minutes cm \
                            WHERE cm.genesis_hash = c.genesis_hash AND best_height IS NOT NULL \
                            ORDER BY minute DESC LIMIT 1) b ON true \
         LEFT JOIN LATERAL (SELECT finalized_height, minute FROM tetcore_chain_minutes cm \
                            WHERE cm.genesis_hash = c.genesis_hash \
                              AND finalized_height IS NOT NULL \
                            ORDER BY minute DESC LIMIT 1) f ON true \
         ORDER BY nodes_connected DESC, c.name, c.genesis_hash",
    )
    .load(conn)
}

/// Whether the chain is known: derived already, or announced by a stored session.
pub fn known(conn: &mut PgConnection, genesis_hash: &str) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Known {
        #[diesel(sql_type = Bool)]
        known: bool,
    }
    let row: Known = sql_query(
        "SELECT EXISTS (SELECT 1 FROM tetcore_chains WHERE genesis_hash = $1) \
             OR EXISTS (SELECT 1 FROM peer_connections WHERE genesis_hash = $1) AS known",
    )
    .bind::<Text, _>(genesis_hash)
    .get_result(conn)?;
    Ok(row.known)
}

/// One block's propagation.
#[derive(QueryableByName, Serialize, Debug)]
pub struct Block {
    #[diesel(sql_type = BigInt)]
    pub height: i64,
    #[diesel(sql_type = Text)]
    pub hash: String,
    #[diesel(sql_type = Timestamptz)]
    #[serde(serialize_with = "utc")]
    pub first_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    pub first_peer_id: String,
    #[diesel(sql_type = Integer)]
    pub nodes: i32,
    #[diesel(sql_type = Double)]
    pub p50_ms: f64,
    #[diesel(sql_type = Double)]
    pub p90_ms: f64,
    #[diesel(sql_type = Double)]
    pub p99_ms: f64,
    #[diesel(sql_type = Double)]
    pub max_ms: f64,
}

/// The blocks first reported in `[start, end)`, newest first.
pub fn blocks(
    conn: &mut PgConnection,
    genesis_hash: &str,
    kind: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<Block>> {
    sql_query(
        "SELECT height, hash, first_at, first_peer_id, nodes, p50_ms, p90_ms, p99_ms, max_ms \
         FROM tetcore_blocks \
         WHERE genesis_hash = $1 AND kind = $2 AND first_at >= $3 AND first_at < $4 \
         ORDER BY first_at DESC, height DESC, hash LIMIT $5",
    )
    .bind::<Text, _>(genesis_hash)
    .bind::<Text, _>(kind)
    .bind::<Timestamptz, _>(start)
    .bind::<Timestamptz, _>(end)
    .bind::<BigInt, _>(limit)
    .load(conn)
}

/// Propagation over a span of blocks: how many, the median over them of each block's p50,
/// p90 and p99 delay, and the longest delay of any.
#[derive(Serialize, Debug, PartialEq)]
pub struct PropagationStep {
    #[serde(serialize_with = "utc_opt", skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    pub blocks: i64,
    pub median_nodes: Option<i32>,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

/// One block's figures, as a propagation series folds them.
#[derive(QueryableByName)]
struct BlockFigures {
    #[diesel(sql_type = Timestamptz)]
    first_at: DateTime<Utc>,
    #[diesel(sql_type = Integer)]
    nodes: i32,
    #[diesel(sql_type = Double)]
    p50_ms: f64,
    #[diesel(sql_type = Double)]
    p90_ms: f64,
    #[diesel(sql_type = Double)]
    p99_ms: f64,
    #[diesel(sql_type = Double)]
    max_ms: f64,
}

impl PropagationStep {
    /// The step over `blocks` (none: every figure null).
    fn over(at: Option<DateTime<Utc>>, blocks: &[BlockFigures]) -> PropagationStep {
        let median = |figure: fn(&BlockFigures) -> f64| {
            percentile(&mut blocks.iter().map(figure).collect::<Vec<_>>(), 0.5)
        };
        PropagationStep {
            at,
            blocks: blocks.len() as i64,
            median_nodes: percentile(&mut blocks.iter().map(|b| b.nodes).collect::<Vec<_>>(), 0.5),
            p50_ms: median(|b| b.p50_ms),
            p90_ms: median(|b| b.p90_ms),
            p99_ms: median(|b| b.p99_ms),
            max_ms: blocks.iter().map(|b| b.max_ms).reduce(f64::max),
        }
    }
}

/// Propagation over the blocks first reported in `[start, end)`: over all of them (`at`
/// null), and per `step_s` (oldest first; steps without blocks are left out). The blocks are
/// read once, from the index that holds their figures, and folded here.
pub fn propagation(
    conn: &mut PgConnection,
    genesis_hash: &str,
    kind: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    step_s: i64,
) -> QueryResult<(PropagationStep, Vec<PropagationStep>)> {
    let blocks: Vec<BlockFigures> = sql_query(
        "SELECT first_at, nodes, p50_ms, p90_ms, p99_ms, max_ms FROM tetcore_blocks \
         WHERE genesis_hash = $1 AND kind = $2 AND first_at >= $3 AND first_at < $4 \
         ORDER BY first_at",
    )
    .bind::<Text, _>(genesis_hash)
    .bind::<Text, _>(kind)
    .bind::<Timestamptz, _>(start)
    .bind::<Timestamptz, _>(end)
    .load(conn)?;
    let series = blocks
        .chunk_by(|a, b| bin(a.first_at, step_s) == bin(b.first_at, step_s))
        .map(|step| PropagationStep::over(Some(bin(step[0].first_at, step_s)), step))
        .collect();
    Ok((PropagationStep::over(None, &blocks), series))
}

/// The start of the `step_s`-long step (counted from the Unix epoch) that holds `at`, as
/// PostgreSQL's `date_bin` gives it.
fn bin(at: DateTime<Utc>, step_s: i64) -> DateTime<Utc> {
    let seconds = at.timestamp();
    DateTime::from_timestamp(seconds - seconds.rem_euclid(step_s.max(1)), 0).unwrap_or(at)
}

/// The nearest-rank percentile (as PostgreSQL's `percentile_disc`) of `values`, sorted here.
pub fn percentile<T: PartialOrd + Copy>(values: &mut [T], p: f64) -> Option<T> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let rank = (p * values.len() as f64).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}

/// One node's propagation on one chain over a window.
#[derive(QueryableByName, Serialize, Debug)]
pub struct NodePropagation {
    #[diesel(sql_type = Text)]
    pub genesis_hash: String,
    #[diesel(sql_type = BigInt)]
    pub blocks_seen: i64,
    #[diesel(sql_type = BigInt)]
    pub blocks_missed: i64,
    #[diesel(sql_type = Nullable<Double>)]
    pub median_ms: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub p90_ms: Option<f64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub rank: Option<i64>,
    #[diesel(sql_type = BigInt)]
    pub nodes_ranked: i64,
    #[diesel(sql_type = Nullable<Double>)]
    pub clock_offset_ms: Option<f64>,
}

/// The node's delays on every chain it reported blocks of in the window (by the blocks' first
/// report), its rank among that chain's nodes by median delay (1: fastest), and the median of
/// its receive time minus its own `ts` (network delay plus its clock's error). The rank needs
/// no other node's median: a node's nearest-rank median is below ours exactly when at least
/// half of its delays, rounded up, are, which one pass of counting tells (no sort of every
/// node's delays).
pub fn node_propagation(
    conn: &mut PgConnection,
    peer_id: &str,
    kind: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> QueryResult<Vec<NodePropagation>> {
    sql_query(
        "WITH me AS (SELECT id FROM tetcore_peers WHERE peer_id = $1), \
         arrivals AS ( \
             SELECT b.genesis_hash, b.height, a.peer_ref, a.received_at - b.first_at AS delay, \
                    a.received_at - a.node_ts AS clock \
             FROM tetcore_blocks b \
             JOIN tetcore_arrivals a ON a.block_id = b.id \
             WHERE b.kind = $2 AND b.first_at >= $3 AND b.first_at < $4 \
               AND b.genesis_hash IN (SELECT genesis_hash FROM peer_connections \
                                      WHERE peer_id = $1 AND genesis_hash IS NOT NULL)), \
         chains AS ( \
             SELECT DISTINCT genesis_hash FROM arrivals WHERE peer_ref = (SELECT id FROM me)), \
         mine AS ( \
             SELECT genesis_hash, count(DISTINCT height) AS seen, \
                    percentile_disc(0.5) WITHIN GROUP (ORDER BY delay) AS median, \
                    percentile_disc(0.9) WITHIN GROUP (ORDER BY delay) AS p90, \
                    percentile_disc(0.5) WITHIN GROUP (ORDER BY clock) AS clock \
             FROM arrivals WHERE peer_ref = (SELECT id FROM me) GROUP BY genesis_hash), \
         nodes AS ( \
             SELECT a.genesis_hash, a.peer_ref, count(*) AS n, \
                    count(*) FILTER (WHERE a.delay < m.median) AS faster \
             FROM arrivals a LEFT JOIN mine m ON m.genesis_hash = a.genesis_hash \
             GROUP BY a.genesis_hash, a.peer_ref) \
         SELECT c.genesis_hash, coalesce(m.seen, 0) AS blocks_seen, \
                (SELECT count(DISTINCT height) FROM arrivals x \
                 WHERE x.genesis_hash = c.genesis_hash) - coalesce(m.seen, 0) AS blocks_missed, \
                tetcore_ms(m.median) AS median_ms, tetcore_ms(m.p90) AS p90_ms, \
                CASE WHEN m.median IS NOT NULL THEN 1 + (SELECT count(*) FROM nodes d \
                     WHERE d.genesis_hash = c.genesis_hash AND d.faster >= (d.n + 1) / 2) \
                END AS rank, \
                (SELECT count(*) FROM nodes d WHERE d.genesis_hash = c.genesis_hash) \
                    AS nodes_ranked, \
                tetcore_ms(m.clock) AS clock_offset_ms \
         FROM chains c LEFT JOIN mine m ON m.genesis_hash = c.genesis_hash \
         ORDER BY c.genesis_hash",
    )
    .bind::<Text, _>(peer_id)
    .bind::<Text, _>(kind)
    .bind::<Timestamptz, _>(start)
    .bind::<Timestamptz, _>(end)
    .load(conn)
}

/// One of a node's blocks.
#[derive(QueryableByName, Serialize, Debug)]
pub struct NodeBlock {
    #[diesel(sql_type = Text)]
    pub genesis_hash: String,
    #[diesel(sql_type = BigInt)]
    pub height: i64,
    #[diesel(sql_type = Text)]
    pub hash: String,
    #[diesel(sql_type = Timestamptz)]
    #[serde(serialize_with = "utc")]
    pub received_at: DateTime<Utc>,
    #[diesel(sql_type = Double)]
    pub delay_ms: f64,
}

/// The node's newest reports in the window, with its delay behind the first node's.
pub fn node_blocks(
    conn: &mut PgConnection,
    peer_id: &str,
    kind: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<NodeBlock>> {
    sql_query(
        "SELECT b.genesis_hash, b.height, b.hash, a.received_at, \
                tetcore_ms(a.received_at - b.first_at) AS delay_ms \
         FROM tetcore_arrivals a JOIN tetcore_blocks b ON b.id = a.block_id \
         WHERE a.peer_ref = (SELECT id FROM tetcore_peers WHERE peer_id = $1) AND b.kind = $2 \
           AND a.received_at >= $3 AND a.received_at < $4 \
         ORDER BY a.received_at DESC LIMIT $5",
    )
    .bind::<Text, _>(peer_id)
    .bind::<Text, _>(kind)
    .bind::<Timestamptz, _>(start)
    .bind::<Timestamptz, _>(end)
    .bind::<BigInt, _>(limit)
    .load(conn)
}

/// The chain's heights at one step of a finality series.
#[derive(QueryableByName, Serialize, Debug)]
pub struct HeightStep {
    #[diesel(sql_type = Timestamptz)]
    #[serde(serialize_with = "utc")]
    pub at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub best_height: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub finalized_height: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub lag_blocks: Option<i64>,
    #[diesel(sql_type = BigInt)]
    pub nodes: i64,
}

/// The chain's best and finalized height per `step` (the highest in each), oldest first.
pub fn finality_series(
    conn: &mut PgConnection,
    genesis_hash: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    step_s: i64,
) -> QueryResult<Vec<HeightStep>> {
    sql_query(
        "SELECT date_bin(make_interval(secs => $4), minute, 'epoch') AS at, \
                max(best_height) AS best_height, max(finalized_height) AS finalized_height, \
                max(best_height) - max(finalized_height) AS lag_blocks, \
                max(nodes)::bigint AS nodes \
         FROM tetcore_chain_minutes \
         WHERE genesis_hash = $1 AND minute >= $2 AND minute < $3 \
         GROUP BY 1 ORDER BY 1",
    )
    .bind::<Text, _>(genesis_hash)
    .bind::<Timestamptz, _>(start)
    .bind::<Timestamptz, _>(end)
    .bind::<Double, _>(step_s as f64)
    .load(conn)
}

/// A node's heights at one minute, and how far its finality trails the chain's.
#[derive(QueryableByName, Serialize, Debug)]
pub struct NodeHeights {
    #[diesel(sql_type = Text)]
    pub peer_id: String,
    #[diesel(sql_type = Timestamptz)]
    #[serde(serialize_with = "utc")]
    pub minute: DateTime<Utc>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub best_height: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub finalized_height: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub finality_lag_blocks: Option<i64>,
}

/// Each node's newest minute in the last ten of the window; with `peer_id`, that node's
/// every minute in the window instead.
pub fn node_heights(
    conn: &mut PgConnection,
    genesis_hash: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    peer_id: Option<&str>,
) -> QueryResult<Vec<NodeHeights>> {
    let select = "SELECT m.peer_id, m.minute, m.best_height, m.finalized_height, \
                         c.finalized_height - m.finalized_height AS finality_lag_blocks \
                  FROM tetcore_node_minutes m \
                  JOIN tetcore_chain_minutes c ON c.genesis_hash = m.genesis_hash \
                       AND c.minute = m.minute";
    match peer_id {
        Some(peer_id) => sql_query(format!(
            "{select} WHERE m.genesis_hash = $1 AND m.minute >= $2 AND m.minute < $3 \
               AND m.peer_id = $4 ORDER BY m.minute"
        ))
        .bind::<Text, _>(genesis_hash)
        .bind::<Timestamptz, _>(start)
        .bind::<Timestamptz, _>(end)
        .bind::<Text, _>(peer_id)
        .load(conn),
        None => sql_query(format!(
            "SELECT * FROM ({select} WHERE m.genesis_hash = $1 \
               AND m.minute >= greatest($2, $3 - interval '10 minutes') AND m.minute < $3) n \
             ORDER BY finality_lag_blocks DESC NULLS LAST, peer_id, minute DESC"
        ))
        .bind::<Text, _>(genesis_hash)
        .bind::<Timestamptz, _>(start)
        .bind::<Timestamptz, _>(end)
        .load(conn)
        .map(|rows: Vec<NodeHeights>| {
            // The newest minute of each node.
            let mut newest: std::collections::HashMap<String, NodeHeights> =
                std::collections::HashMap::new();
            for row in rows {
                match newest.get(&row.peer_id) {
                    Some(seen) if seen.minute >= row.minute => {}
                    _ => {
                        newest.insert(row.peer_id.clone(), row);
                    }
                }
            }
            let mut rows: Vec<NodeHeights> = newest.into_values().collect();
            rows.sort_by(|a, b| {
                b.finality_lag_blocks
                    .cmp(&a.finality_lag_blocks)
                    .then_with(|| a.peer_id.cmp(&b.peer_id))
            });
            rows
        }),
    }
}

/// A finality stall: the finalized height stood still longer than the threshold while the
/// best height advanced.
#[derive(QueryableByName, Serialize, Debug)]
pub struct Stall {
    #[diesel(sql_type = Timestamptz)]
    #[serde(serialize_with = "utc")]
    pub started_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    #[serde(serialize_with = "utc_opt")]
    pub ended_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Double)]
    pub duration_ms: f64,
    #[diesel(sql_type = BigInt)]
    pub finalized_height: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub resumed_height: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub best_height_at_start: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub best_height_at_end: Option<i64>,
    #[diesel(sql_type = Array<Text>)]
    pub nodes: Vec<String>,
}

/// Stalls overlapping `[start, end)`. Finality advances when a height above every earlier one
/// is first reported finalized (`tetcore_blocks`, kind finalized); a gap between two advances
/// (or from the last one to `now`: ongoing, `ended_at` null) longer than `stall` during which
/// a new best block was first reported is a stall. Its nodes are those that reported best
/// blocks during it.
pub fn stalls(
    conn: &mut PgConnection,
    genesis_hash: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    stall_s: f64,
) -> QueryResult<Vec<Stall>> {
    sql_query(
        "WITH fin AS ( \
             (SELECT height, first_at FROM tetcore_blocks \
              WHERE genesis_hash = $1 AND kind = 'finalized' AND first_at < $2 \
              ORDER BY first_at DESC LIMIT 1) \
             UNION ALL \
             SELECT height, first_at FROM tetcore_blocks \
             WHERE genesis_hash = $1 AND kind = 'finalized' AND first_at >= $2 AND first_at < $3 \
             UNION ALL \
             (SELECT height, first_at FROM tetcore_blocks \
              WHERE genesis_hash = $1 AND kind = 'finalized' AND first_at >= $3 \
              ORDER BY first_at LIMIT 1)), \
         advances AS ( \
             SELECT height, first_at FROM ( \
                 SELECT height, first_at, max(height) OVER (ORDER BY first_at, height \
                     ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before \
                 FROM fin) f \
             WHERE before IS NULL OR height > before), \
         gaps AS ( \
             SELECT height, first_at AS started_at, \
                    lead(first_at) OVER (ORDER BY first_at) AS ended_at, \
                    lead(height) OVER (ORDER BY first_at) AS resumed_height \
             FROM advances), \
         long AS ( \
             SELECT g.*, coalesce(g.ended_at, now()) AS until FROM gaps g \
             WHERE coalesce(g.ended_at, now()) - g.started_at > make_interval(secs => $4) \
               AND g.started_at < $3 AND coalesce(g.ended_at, 'infinity') > $2) \
         SELECT l.started_at, l.ended_at, tetcore_ms(l.until - l.started_at) AS duration_ms, \
                l.height AS finalized_height, l.resumed_height, \
                (SELECT max(height) FROM tetcore_blocks b WHERE b.genesis_hash = $1 \
                   AND b.kind = 'best' AND b.first_at <= l.started_at \
                   AND b.first_at > l.started_at - interval '1 hour') AS best_height_at_start, \
                (SELECT max(height) FROM tetcore_blocks b WHERE b.genesis_hash = $1 \
                   AND b.kind = 'best' AND b.first_at < l.until \
                   AND b.first_at > l.started_at) AS best_height_at_end, \
                coalesce((SELECT array_agg(DISTINCT a.peer_id ORDER BY a.peer_id) \
                   FROM tetcore_block_arrivals a WHERE a.genesis_hash = $1 AND a.kind = 'best' \
                   AND a.received_at > l.started_at AND a.received_at < l.until), '{}') AS nodes \
         FROM long l \
         WHERE EXISTS (SELECT 1 FROM tetcore_blocks b WHERE b.genesis_hash = $1 \
                 AND b.kind = 'best' AND b.first_at > l.started_at AND b.first_at < l.until \
                 AND b.height > l.height) \
         ORDER BY l.started_at",
    )
    .bind::<Text, _>(genesis_hash)
    .bind::<Timestamptz, _>(start)
    .bind::<Timestamptz, _>(end)
    .bind::<Double, _>(stall_s)
    .load(conn)
}

/// What one voter was seen voting in a window.
#[derive(QueryableByName, Serialize, Debug)]
pub struct Voter {
    #[diesel(sql_type = Text)]
    pub voter: String,
    #[diesel(sql_type = BigInt)]
    pub prevotes: i64,
    #[diesel(sql_type = BigInt)]
    pub precommits: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub highest_target: Option<i64>,
    #[diesel(sql_type = Timestamptz)]
    #[serde(serialize_with = "utc")]
    pub last_vote_at: DateTime<Utc>,
}

/// The GRANDPA voters nodes saw in `[start, end)`.
pub fn voters(
    conn: &mut PgConnection,
    genesis_hash: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> QueryResult<Vec<Voter>> {
    sql_query(
        "SELECT voter, count(*) FILTER (WHERE kind = 'prevote') AS prevotes, \
                count(*) FILTER (WHERE kind = 'precommit') AS precommits, \
                max(target_number) AS highest_target, max(first_at) AS last_vote_at \
         FROM tetcore_grandpa_votes \
         WHERE genesis_hash = $1 AND first_at >= $2 AND first_at < $3 \
         GROUP BY voter ORDER BY voter",
    )
    .bind::<Text, _>(genesis_hash)
    .bind::<Timestamptz, _>(start)
    .bind::<Timestamptz, _>(end)
    .load(conn)
}

/// A GRANDPA authority set as first announced.
#[derive(QueryableByName, Serialize, Debug)]
pub struct AuthoritySet {
    #[diesel(sql_type = BigInt)]
    pub set_id: i64,
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub authorities: Option<serde_json::Value>,
    #[diesel(sql_type = Timestamptz)]
    #[serde(serialize_with = "utc")]
    pub first_at: DateTime<Utc>,
}

/// Authority sets first announced in `[start, end)`, and the one in force at `start`.
pub fn authority_sets(
    conn: &mut PgConnection,
    genesis_hash: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> QueryResult<Vec<AuthoritySet>> {
    sql_query(
        "(SELECT set_id, authorities, first_at FROM tetcore_authority_sets \
          WHERE genesis_hash = $1 AND first_at < $2 ORDER BY set_id DESC LIMIT 1) \
         UNION ALL \
         SELECT set_id, authorities, first_at FROM tetcore_authority_sets \
         WHERE genesis_hash = $1 AND first_at >= $2 AND first_at < $3 \
         ORDER BY set_id",
    )
    .bind::<Text, _>(genesis_hash)
    .bind::<Timestamptz, _>(start)
    .bind::<Timestamptz, _>(end)
    .load(conn)
}

/// Nodes on one implementation and version over one step: on average over the step's hours
/// (those with any node), and their share of the chain's nodes then.
#[derive(Serialize, Debug)]
pub struct VersionStep {
    #[serde(serialize_with = "utc")]
    pub at: DateTime<Utc>,
    pub implementation: String,
    pub version: String,
    pub nodes: f64,
    pub share: f64,
}

/// One implementation and version's nodes in one hour.
#[derive(QueryableByName)]
struct VersionHour {
    #[diesel(sql_type = Timestamptz)]
    hour: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    implementation: String,
    #[diesel(sql_type = Text)]
    version: String,
    #[diesel(sql_type = Integer)]
    nodes: i32,
}

/// Adoption per `step_s` over the hours of `[start, end)`, oldest first and within a step
/// the most nodes first. The hours are read once, in order, and folded here.
pub fn version_steps(
    conn: &mut PgConnection,
    genesis_hash: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    step_s: i64,
) -> QueryResult<Vec<VersionStep>> {
    let hours: Vec<VersionHour> = sql_query(
        "SELECT hour, implementation, version, nodes FROM tetcore_version_hours \
         WHERE genesis_hash = $1 AND hour >= date_trunc('hour', $2::timestamptz) AND hour < $3 \
         ORDER BY hour",
    )
    .bind::<Text, _>(genesis_hash)
    .bind::<Timestamptz, _>(start)
    .bind::<Timestamptz, _>(end)
    .load(conn)?;
    let mut series = Vec::new();
    for step in hours.chunk_by(|a, b| bin(a.hour, step_s) == bin(b.hour, step_s)) {
        let at = bin(step[0].hour, step_s);
        let hours_with_nodes = step.chunk_by(|a, b| a.hour == b.hour).count() as f64;
        let total: i64 = step.iter().map(|h| i64::from(h.nodes)).sum();
        let mut sums: std::collections::BTreeMap<(&str, &str), i64> = Default::default();
        for h in step {
            *sums.entry((&h.implementation, &h.version)).or_default() += i64::from(h.nodes);
        }
        let first = series.len();
        series.extend(
            sums.into_iter()
                .map(|((implementation, version), nodes)| VersionStep {
                    at,
                    implementation: implementation.to_owned(),
                    version: version.to_owned(),
                    nodes: nodes as f64 / hours_with_nodes,
                    share: if total > 0 {
                        nodes as f64 / total as f64
                    } else {
                        0.0
                    },
                }),
        );
        // Stable: among equals, implementation and version order stays.
        series[first..].sort_by(|a: &VersionStep, b: &VersionStep| b.nodes.total_cmp(&a.nodes));
    }
    Ok(series)
}

/// A version's whole known life on a chain.
#[derive(QueryableByName, Serialize, Debug)]
pub struct VersionSeen {
    #[diesel(sql_type = Text)]
    pub implementation: String,
    #[diesel(sql_type = Text)]
    pub version: String,
    #[diesel(sql_type = Timestamptz)]
    #[serde(serialize_with = "utc")]
    pub first_seen: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    #[serde(serialize_with = "utc")]
    pub last_seen: DateTime<Utc>,
    #[diesel(sql_type = Integer)]
    pub peak_nodes: i32,
}

/// Every version ever seen on the chain: its first and last node-hour (`last_seen` is the end
/// of that hour).
pub fn versions_seen(conn: &mut PgConnection, genesis_hash: &str) -> QueryResult<Vec<VersionSeen>> {
    sql_query(
        "SELECT h.implementation, h.version, min(h.hour) AS first_seen, \
                max(h.hour) + interval '1 hour' AS last_seen, max(h.nodes) AS peak_nodes \
         FROM tetcore_version_hours h WHERE h.genesis_hash = $1 \
         GROUP BY 1, 2 ORDER BY first_seen, implementation, version",
    )
    .bind::<Text, _>(genesis_hash)
    .load(conn)
}

/// A node connected now.
#[derive(QueryableByName, Debug)]
pub struct LiveNode {
    #[diesel(sql_type = Text)]
    pub peer_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub name: Option<String>,
    #[diesel(sql_type = Text)]
    pub implementation: String,
    #[diesel(sql_type = Text)]
    pub version: String,
}

/// The chain's nodes connected now (one row per node; its newest session).
pub fn live_nodes(conn: &mut PgConnection, genesis_hash: &str) -> QueryResult<Vec<LiveNode>> {
    sql_query(
        "SELECT DISTINCT ON (peer_id) peer_id, name, coalesce(implementation, '') AS implementation, \
                coalesce(version, '') AS version \
         FROM peer_connections \
         WHERE genesis_hash = $1 AND ended_at IS NULL AND peer_id IS NOT NULL \
         ORDER BY peer_id, connected_at DESC NULLS LAST, id DESC",
    )
    .bind::<Text, _>(genesis_hash)
    .load(conn)
}

/// What a node said about its hardware on one connection.
#[derive(QueryableByName, Serialize, Debug, Clone)]
pub struct Hardware {
    #[diesel(sql_type = Text)]
    pub peer_id: String,
    #[diesel(sql_type = Text)]
    pub genesis_hash: String,
    #[diesel(sql_type = Timestamptz)]
    #[serde(serialize_with = "utc")]
    pub reported_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Bool>)]
    pub authority: Option<bool>,
    #[diesel(sql_type = Nullable<Text>)]
    pub cpu: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub memory: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub core_count: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    pub linux_kernel: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub linux_distro: Option<String>,
    #[diesel(sql_type = Nullable<Bool>)]
    pub is_virtual_machine: Option<bool>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub cpu_hashrate_score: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub parallel_cpu_hashrate_score: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub parallel_cpu_cores: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub memory_memcpy_score: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub disk_sequential_write_score: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub disk_random_write_score: Option<i64>,
}

const HARDWARE_COLUMNS: &str = "peer_id, genesis_hash, reported_at, authority, cpu, memory, \
    core_count, linux_kernel, linux_distro, is_virtual_machine, cpu_hashrate_score, \
    parallel_cpu_hashrate_score, parallel_cpu_cores, memory_memcpy_score, \
    disk_sequential_write_score, disk_random_write_score";

/// Each node's newest report in the window.
pub fn hardware_latest(
    conn: &mut PgConnection,
    genesis_hash: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> QueryResult<Vec<Hardware>> {
    sql_query(format!(
        "SELECT DISTINCT ON (peer_id) {HARDWARE_COLUMNS} FROM tetcore_hardware \
         WHERE genesis_hash = $1 AND reported_at >= $2 AND reported_at < $3 \
         ORDER BY peer_id, reported_at DESC"
    ))
    .bind::<Text, _>(genesis_hash)
    .bind::<Timestamptz, _>(start)
    .bind::<Timestamptz, _>(end)
    .load(conn)
}

/// Every report of one node in the window, on any chain, oldest first.
pub fn hardware_of(
    conn: &mut PgConnection,
    peer_id: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> QueryResult<Vec<Hardware>> {
    sql_query(format!(
        "SELECT {HARDWARE_COLUMNS} FROM tetcore_hardware \
         WHERE peer_id = $1 AND reported_at >= $2 AND reported_at < $3 \
         ORDER BY reported_at, genesis_hash"
    ))
    .bind::<Text, _>(peer_id)
    .bind::<Timestamptz, _>(start)
    .bind::<Timestamptz, _>(end)
    .load(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_like_percentile_disc() {
        let mut v = vec![40.0, 10.0, 30.0, 20.0];
        assert_eq!(percentile(&mut v, 0.5), Some(20.0));
        assert_eq!(percentile(&mut v, 0.9), Some(40.0));
        assert_eq!(percentile(&mut v, 0.0), Some(10.0));
        assert_eq!(percentile::<f64>(&mut [], 0.5), None);
        let mut ten: Vec<i64> = (1..=10).collect();
        assert_eq!(percentile(&mut ten, 0.1), Some(1));
        assert_eq!(percentile(&mut ten, 0.99), Some(10));
    }

    #[test]
    fn steps_start_where_date_bin_starts_them() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        for (time, step_s, start) in [
            ("2026-11-30T10:17:42.5Z", 60, "2026-11-30T10:17:00Z"),
            ("2026-11-30T10:17:42Z", 21_600, "2026-11-30T06:00:00Z"),
            ("2026-11-30T06:00:00Z", 21_600, "2026-11-30T06:00:00Z"),
            ("1969-12-31T23:59:30Z", 60, "1969-12-31T23:59:00Z"),
        ] {
            assert_eq!(
                bin(at(time), step_s),
                at(start),
                "{time} in steps of {step_s} s"
            );
        }
    }
}
