//! The Prometheus registry: one per running app (never a global), served at `/metrics`.
//!
//! Every message that reaches a socket is counted in `tetcore_messages_received_total`, and then
//! in exactly one of `tetcore_rows_stored_total` or `tetcore_messages_dropped_total{reason}`;
//! until then it is in `tetcore_messages_queued`. Labels come only from the small enums below,
//! the route table and HTTP status codes. The process's own CPU, memory, open files and start
//! time are the standard `process_*` series.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Why a message was not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Not JSON (or a text frame that is not UTF-8).
    BadJson,
    /// JSON, but not an object.
    NotObject,
    /// Larger than `WS_MAX_PAYLOAD`; the socket was closed with 1009.
    Oversize,
    /// A frame the WebSocket codec could not read; the socket was closed with 1002.
    Protocol,
    /// PostgreSQL refused the row even on its own (the rest of its batch was stored).
    DbRejected,
    /// The writer could not take or write it: it had stopped (the service is shutting down),
    /// or its write failed on a bug.
    WriterGone,
    /// For a node id beyond `WS_MAX_IDS_PER_CONNECTION` on its connection.
    TooManyIds,
}

impl DropReason {
    pub const ALL: [DropReason; 7] = [
        DropReason::BadJson,
        DropReason::NotObject,
        DropReason::Oversize,
        DropReason::Protocol,
        DropReason::DbRejected,
        DropReason::WriterGone,
        DropReason::TooManyIds,
    ];

    pub fn label(self) -> &'static str {
        match self {
            DropReason::BadJson => "bad_json",
            DropReason::NotObject => "not_object",
            DropReason::Oversize => "oversize",
            DropReason::Protocol => "protocol_error",
            DropReason::DbRejected => "db_rejected",
            DropReason::WriterGone => "writer_gone",
            DropReason::TooManyIds => "too_many_ids",
        }
    }
}

/// Something odd about a message that was stored anyway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Oddity {
    /// `msg` is not one of the kinds in `telemetry_messages.json`.
    UnknownMsg,
    /// The object has no string `msg` at all.
    NoMsg,
    /// It held NUL characters, which jsonb refuses; they were replaced.
    Sanitized,
}

impl Oddity {
    pub const ALL: [Oddity; 3] = [Oddity::UnknownMsg, Oddity::NoMsg, Oddity::Sanitized];

    pub fn label(self) -> &'static str {
        match self {
            Oddity::UnknownMsg => "unknown_msg",
            Oddity::NoMsg => "no_msg",
            Oddity::Sanitized => "sanitized",
        }
    }
}

/// Why a WebSocket was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client went away (TCP closed or a Close frame).
    Client,
    /// No frame arrived for `CLIENT_TIMEOUT_S`.
    Timeout,
    /// A frame above `WS_MAX_PAYLOAD`.
    Oversize,
    /// A frame the codec could not read.
    Protocol,
    /// The service is stopping.
    Shutdown,
    /// Faster than `WS_MAX_BYTES_PER_S` over `WS_RATE_WINDOW_S`; the address is blocked.
    RateLimited,
    /// Nothing could be written to it (a ping, a pong, a close) for `CLIENT_TIMEOUT_S`: the
    /// client does not read.
    Unwritable,
}

impl CloseReason {
    pub const ALL: [CloseReason; 7] = [
        CloseReason::Client,
        CloseReason::Timeout,
        CloseReason::Oversize,
        CloseReason::Protocol,
        CloseReason::Shutdown,
        CloseReason::RateLimited,
        CloseReason::Unwritable,
    ];

    pub fn label(self) -> &'static str {
        match self {
            CloseReason::Client => "client",
            CloseReason::Timeout => "timeout",
            CloseReason::Unwritable => "unwritable",
            CloseReason::Oversize => "oversize",
            CloseReason::Protocol => "protocol_error",
            CloseReason::Shutdown => "shutdown",
            CloseReason::RateLimited => "rate_limited",
        }
    }
}

pub const MODES: [&str; 2] = ["live", "audit"];

pub fn mode_label(audit: bool) -> &'static str {
    if audit {
        "audit"
    } else {
        "live"
    }
}

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub connections_open: IntGaugeVec,
    pub node_sessions_open: IntGaugeVec,
    pub connections_closed: IntCounterVec,
    pub ws_refused: IntCounterVec,
    pub messages_received: IntCounter,
    pub bytes_received: IntCounter,
    pub messages_dropped: IntCounterVec,
    pub messages_odd: IntCounterVec,
    pub messages_queued: IntGauge,
    pub bytes_queued: IntGauge,
    pub write_queue_max_bytes: IntGauge,
    pub partitions_ahead_seconds: IntGauge,
    pub cache_refreshed_at: IntGauge,
    pub heartbeat_at: IntGauge,
    pub rows_stored: IntCounter,
    pub batch_rows: Histogram,
    pub batch_write_seconds: Histogram,
    pub db_errors: IntCounterVec,
    pub db_retries: IntCounter,
    pub instances_ended: IntCounter,
    pub purge_runs: IntCounterVec,
    pub purge_seconds: Histogram,
    pub purge_partitions: IntCounter,
    pub purge_rows: IntCounter,
    pub purge_sessions: IntCounter,
    pub purge_steps_failed: IntCounter,
    pub derive_runs: IntCounterVec,
    pub derive_messages: IntCounter,
    pub derive_seconds: Histogram,
    pub derived_until: IntGauge,
    pub http_requests: IntCounterVec,
    pub http_seconds: HistogramVec,
    pub pool_connections: IntGaugeVec,
    pub pool_timeouts: IntCounter,
    pub pool_wait_seconds: Histogram,
    pub cache_entries: IntGauge,
    pub cache_refresh_seconds: Histogram,
    pub cache_refresh_failures: IntCounter,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let m = Metrics {
            connections_open: IntGaugeVec::new(
                Opts::new(
                    "tetcore_ws_connections_open",
                    "Open telemetry WebSocket connections, by endpoint (live = /, audit = /audit).",
                ),
                &["mode"],
            )
            .expect("valid metric"),
            node_sessions_open: IntGaugeVec::new(
                Opts::new(
                    "tetcore_node_sessions_open",
                    "Open node sessions (telemetry ids on open connections), by endpoint.",
                ),
                &["mode"],
            )
            .expect("valid metric"),
            connections_closed: IntCounterVec::new(
                Opts::new(
                    "tetcore_ws_connections_closed_total",
                    "Telemetry WebSocket connections closed, by reason.",
                ),
                &["reason"],
            )
            .expect("valid metric"),
            ws_refused: IntCounterVec::new(
                Opts::new(
                    "tetcore_ws_refused_total",
                    "Telemetry sockets refused before the upgrade, by reason (not_allowed, blocked: 403; address_full, server_full: 503).",
                ),
                &["reason"],
            )
            .expect("valid metric"),
            messages_received: IntCounter::new(
                "tetcore_messages_received_total",
                "Telemetry messages (data frames) received.",
            )
            .expect("valid metric"),
            bytes_received: IntCounter::new(
                "tetcore_received_bytes_total",
                "Bytes of telemetry messages received.",
            )
            .expect("valid metric"),
            messages_dropped: IntCounterVec::new(
                Opts::new(
                    "tetcore_messages_dropped_total",
                    "Telemetry messages received but not stored, by reason.",
                ),
                &["reason"],
            )
            .expect("valid metric"),
            messages_odd: IntCounterVec::new(
                Opts::new(
                    "tetcore_messages_odd_total",
                    "Telemetry messages stored although something about them was odd, by what.",
                ),
                &["reason"],
            )
            .expect("valid metric"),
            messages_queued: IntGauge::new(
                "tetcore_messages_queued",
                "Messages received and neither stored nor dropped yet.",
            )
            .expect("valid metric"),
            bytes_queued: IntGauge::new(
                "tetcore_write_queue_bytes",
                "Bytes of messages waiting for the database (bounded by WRITE_QUEUE_MAX_BYTES).",
            )
            .expect("valid metric"),
            rows_stored: IntCounter::new(
                "tetcore_rows_stored_total",
                "Message rows committed to tetcore_logs.",
            )
            .expect("valid metric"),
            batch_rows: Histogram::with_opts(
                HistogramOpts::new(
                    "tetcore_db_batch_rows",
                    "Message rows per batch written to PostgreSQL.",
                )
                .buckets(vec![1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0]),
            )
            .expect("valid metric"),
            batch_write_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "tetcore_db_batch_write_seconds",
                    "Time to write one batch to PostgreSQL.",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
                ]),
            )
            .expect("valid metric"),
            db_errors: IntCounterVec::new(
                Opts::new(
                    "tetcore_db_errors_total",
                    "Failed writer statements, by SQLSTATE class (connection: no answer; timeout: our deadline) and action (retry: the batch waits whole; isolate: the rows at fault are split out).",
                ),
                &["class", "action"],
            )
            .expect("valid metric"),
            db_retries: IntCounter::new(
                "tetcore_db_retries_total",
                "Batch writes retried after a failure that was not the rows' own.",
            )
            .expect("valid metric"),
            instances_ended: IntCounter::new(
                "tetcore_instances_ended_total",
                "Other instances this one found dead (heartbeat older than INSTANCE_DEAD_AFTER_S) and ended, with their sessions.",
            )
            .expect("valid metric"),
            purge_runs: IntCounterVec::new(
                Opts::new(
                    "tetcore_purge_runs_total",
                    "Retention passes, by result (done; skipped: another instance was purging; failed).",
                ),
                &["result"],
            )
            .expect("valid metric"),
            derive_runs: IntCounterVec::new(
                Opts::new(
                    "tetcore_derive_runs_total",
                    "Passes folding new messages into the network analytics tables, by result (done; skipped: another instance was deriving; failed).",
                ),
                &["result"],
            )
            .expect("valid metric"),
            derive_messages: IntCounter::new(
                "tetcore_derive_messages_total",
                "Raw messages the derive passes read (only the kinds the analytics use).",
            )
            .expect("valid metric"),
            derive_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "tetcore_derive_duration_seconds",
                    "Time of one completed derive pass.",
                )
                .buckets(vec![0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 15.0, 60.0]),
            )
            .expect("valid metric"),
            derived_until: IntGauge::new(
                "tetcore_derived_until_seconds",
                "Unix time up to which received messages are folded into the analytics tables (as of this instance's last pass).",
            )
            .expect("valid metric"),
            purge_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "tetcore_purge_duration_seconds",
                    "Time of one completed retention pass.",
                )
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 15.0, 60.0]),
            )
            .expect("valid metric"),
            purge_partitions: IntCounter::new(
                "tetcore_purge_partitions_removed_total",
                "Day partitions of expired messages dropped.",
            )
            .expect("valid metric"),
            purge_rows: IntCounter::new(
                "tetcore_purge_rows_removed_total",
                "Expired message rows removed (rows in dropped partitions by PostgreSQL's estimate).",
            )
            .expect("valid metric"),
            purge_sessions: IntCounter::new(
                "tetcore_purge_sessions_removed_total",
                "Ended sessions removed with their expired messages.",
            )
            .expect("valid metric"),
            purge_steps_failed: IntCounter::new(
                "tetcore_purge_steps_failed_total",
                "Steps of a retention pass that failed (making partitions, trimming, removing sessions); the pass went on and the next one retries.",
            )
            .expect("valid metric"),
            http_requests: IntCounterVec::new(
                Opts::new(
                    "tetcore_http_requests_total",
                    "HTTP requests by route pattern and status code (WebSocket upgrades included).",
                ),
                &["route", "status"],
            )
            .expect("valid metric"),
            http_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "tetcore_http_request_duration_seconds",
                    "Time to answer an HTTP request, by route pattern (for WebSockets: the upgrade).",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
                ]),
                &["route"],
            )
            .expect("valid metric"),
            pool_connections: IntGaugeVec::new(
                Opts::new(
                    "tetcore_db_pool_connections",
                    "Connections of the shared pool (purge, probes), by state; read at scrape time.",
                ),
                &["state"],
            )
            .expect("valid metric"),
            pool_timeouts: IntCounter::new(
                "tetcore_db_pool_timeouts_total",
                "Times a connection could not be had from the pool in time.",
            )
            .expect("valid metric"),
            pool_wait_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "tetcore_db_pool_wait_seconds",
                    "Time spent waiting for a connection from the query pool.",
                )
                .buckets(vec![0.0001, 0.001, 0.01, 0.1, 0.5, 1.0, 5.0]),
            )
            .expect("valid metric"),
            write_queue_max_bytes: IntGauge::new(
                "tetcore_write_queue_max_bytes",
                "WRITE_QUEUE_MAX_BYTES: what tetcore_write_queue_bytes may reach.",
            )
            .expect("valid metric"),
            partitions_ahead_seconds: IntGauge::new(
                "tetcore_partitions_ahead_seconds",
                "How far ahead of now the partitions of expiring messages reach, as the last purge pass found (0 until one ran).",
            )
            .expect("valid metric"),
            cache_refreshed_at: IntGauge::new(
                "tetcore_cache_last_refresh_timestamp_seconds",
                "When the cache last refreshed successfully (Unix time; 0 until it has).",
            )
            .expect("valid metric"),
            heartbeat_at: IntGauge::new(
                "tetcore_instance_heartbeat_timestamp_seconds",
                "When this instance last recorded its heartbeat in the database (Unix time; 0 until it has).",
            )
            .expect("valid metric"),
            cache_entries: IntGauge::new(
                "tetcore_cache_entries",
                "Node sessions whose latest state the cache holds.",
            )
            .expect("valid metric"),
            cache_refresh_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "tetcore_cache_refresh_duration_seconds",
                    "Time of one cache refresh from PostgreSQL.",
                )
                .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0]),
            )
            .expect("valid metric"),
            cache_refresh_failures: IntCounter::new(
                "tetcore_cache_refresh_failures_total",
                "Cache refreshes that failed (database unavailable or too slow).",
            )
            .expect("valid metric"),
            registry,
        };
        m.register_all();
        m.touch_labels();
        m
    }

    fn register_all(&self) {
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.connections_open.clone()),
            Box::new(self.node_sessions_open.clone()),
            Box::new(self.connections_closed.clone()),
            Box::new(self.ws_refused.clone()),
            Box::new(self.messages_received.clone()),
            Box::new(self.bytes_received.clone()),
            Box::new(self.messages_dropped.clone()),
            Box::new(self.messages_odd.clone()),
            Box::new(self.messages_queued.clone()),
            Box::new(self.bytes_queued.clone()),
            Box::new(self.rows_stored.clone()),
            Box::new(self.batch_rows.clone()),
            Box::new(self.batch_write_seconds.clone()),
            Box::new(self.db_errors.clone()),
            Box::new(self.db_retries.clone()),
            Box::new(self.instances_ended.clone()),
            Box::new(self.purge_runs.clone()),
            Box::new(self.purge_seconds.clone()),
            Box::new(self.derive_runs.clone()),
            Box::new(self.derive_messages.clone()),
            Box::new(self.derive_seconds.clone()),
            Box::new(self.derived_until.clone()),
            Box::new(self.purge_partitions.clone()),
            Box::new(self.purge_rows.clone()),
            Box::new(self.purge_sessions.clone()),
            Box::new(self.purge_steps_failed.clone()),
            Box::new(self.http_requests.clone()),
            Box::new(self.http_seconds.clone()),
            Box::new(self.pool_connections.clone()),
            Box::new(self.pool_timeouts.clone()),
            Box::new(self.pool_wait_seconds.clone()),
            Box::new(self.cache_entries.clone()),
            Box::new(self.write_queue_max_bytes.clone()),
            Box::new(self.partitions_ahead_seconds.clone()),
            Box::new(self.cache_refreshed_at.clone()),
            Box::new(self.heartbeat_at.clone()),
            Box::new(self.cache_refresh_seconds.clone()),
            Box::new(self.cache_refresh_failures.clone()),
            Box::new(prometheus::process_collector::ProcessCollector::for_self()),
        ];
        for c in collectors {
            self.registry.register(c).expect("metric names are unique");
        }
    }

    /// Creates every labelled series at zero so dashboards and rate() see them from the start.
    fn touch_labels(&self) {
        for mode in MODES {
            self.connections_open.with_label_values(&[mode]);
            self.node_sessions_open.with_label_values(&[mode]);
        }
        for r in DropReason::ALL {
            self.messages_dropped.with_label_values(&[r.label()]);
        }
        for r in Oddity::ALL {
            self.messages_odd.with_label_values(&[r.label()]);
        }
        for r in CloseReason::ALL {
            self.connections_closed.with_label_values(&[r.label()]);
        }
        for r in crate::access::gate::Refusal::ALL {
            self.ws_refused.with_label_values(&[r.label()]);
        }
        for state in ["idle", "in_use", "max"] {
            self.pool_connections.with_label_values(&[state]);
        }
        for result in ["done", "skipped", "failed"] {
            self.purge_runs.with_label_values(&[result]);
            self.derive_runs.with_label_values(&[result]);
        }
        for class in ["connection", "timeout"] {
            self.db_errors.with_label_values(&[class, "retry"]);
        }
    }

    /// `n` messages left the pipeline without being stored.
    pub fn dropped(&self, reason: DropReason, n: u64) {
        self.messages_dropped
            .with_label_values(&[reason.label()])
            .inc_by(n);
        self.messages_queued.sub(n as i64);
    }

    /// `n` messages were committed.
    pub fn stored(&self, n: u64) {
        self.rows_stored.inc_by(n);
        self.messages_queued.sub(n as i64);
    }

    pub fn dropped_count(&self, reason: DropReason) -> u64 {
        self.messages_dropped
            .with_label_values(&[reason.label()])
            .get()
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed families, which ours are.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            log::error!("metrics encoding failed: {e}");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
