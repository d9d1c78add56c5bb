//! Rows as the queries take them: the columns of `peer_connections` and `tetcore_logs`, without
//! any wire or actor types. Borrowed where they can be, so a retry re-reads the same data.

use chrono::{DateTime, Utc};

/// What `system.connected` says about a node: the descriptive `peer_connections` columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeInfo {
    pub peer_id: Option<String>,
    pub name: Option<String>,
    pub chain: Option<String>,
    pub version: Option<String>,
    pub authority: Option<bool>,
    pub startup_time: Option<i64>,
    pub implementation: Option<String>,
    pub genesis_hash: Option<String>,
    pub target_os: Option<String>,
    pub target_arch: Option<String>,
    pub target_env: Option<String>,
    /// JSON text of the `sysinfo` object.
    pub sysinfo: Option<String>,
}

/// A `peer_connections` row to create; `id` was taken from its sequence beforehand.
#[derive(Debug, Clone, Copy)]
pub struct NewSession<'a> {
    pub id: i64,
    pub ip_addr: &'a str,
    pub audit: bool,
    pub telemetry_id: u64,
    pub created_at: DateTime<Utc>,
    /// The latest `system.connected` seen so far, and when it arrived.
    pub connected: Option<(DateTime<Utc>, &'a NodeInfo)>,
}

/// A `tetcore_logs` row to append.
#[derive(Debug, Clone, Copy)]
pub struct LogRow<'a> {
    pub peer_connection_id: i64,
    pub created_at: DateTime<Utc>,
    pub audit: bool,
    /// The normalised message, JSON object text.
    pub logs: &'a str,
}

/// What one message says about its node's state (`tetcore_node_state`): a number, or a string
/// of at most 18 digits; anything else is no value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StateUpdate {
    /// `block.import`: its height.
    Best(i64),
    /// `notify.finalized`: its height.
    Finalized(i64),
    /// `system.interval`: its peers and tx pool size, either may be missing.
    Interval {
        peers: Option<i64>,
        txcount: Option<i64>,
    },
}

/// A session's state after a batch: `None` where the batch told nothing new (the stored value
/// stays).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeStateRow {
    pub peer_connection_id: i64,
    pub last_message_at: DateTime<Utc>,
    pub best_height: Option<i64>,
    pub finalized_height: Option<i64>,
    pub peers: Option<i64>,
    pub txcount: Option<i64>,
}

impl NodeStateRow {
    pub fn new(peer_connection_id: i64, at: DateTime<Utc>) -> NodeStateRow {
        NodeStateRow {
            peer_connection_id,
            last_message_at: at,
            best_height: None,
            finalized_height: None,
            peers: None,
            txcount: None,
        }
    }
}

/// Serialises a time as the API shows every instant: RFC 3339 in UTC, microseconds
/// (`#[serde(serialize_with = "utc")]` on rows that go out as they are).
pub fn utc<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

/// `utc` for a time that may be absent (`null`).
pub fn utc_opt<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => utc(t, s),
        None => s.serialize_none(),
    }
}
