//! `GET /openapi.json`: the whole HTTP API as an OpenAPI 3 document. A test compares it with
//! the route table, so a route cannot be added without being described here.

use actix_web::HttpResponse;
use serde_json::{json, Value};

fn query(name: &str, description: &str, schema: Value, required: bool) -> Value {
    json!({"name": name, "in": "query", "required": required, "description": description, "schema": schema})
}

fn path(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description, "schema": schema})
}

fn time(name: &str, description: &str) -> Value {
    query(
        name,
        &format!("{description}; 2019-01-01T00:00:00 (UTC) or RFC 3339 with an offset"),
        json!({"type": "string", "minLength": 1}),
        false,
    )
}

fn limit(default: i64, max: i64) -> Value {
    query(
        "limit",
        "most rows returned",
        json!({"type": "integer", "minimum": 1, "maximum": max, "default": default}),
        false,
    )
}

fn ok(description: &str, schema: Value) -> Value {
    json!({
        "200": {"description": description, "content": {"application/json": {"schema": schema}}},
        "400": {"$ref": "#/components/responses/BadParam"},
        "503": {"$ref": "#/components/responses/Unavailable"}
    })
}

/// An export's answers: a stream of NDJSON or CSV.
fn stream() -> Value {
    json!({
        "200": {"description": "the rows, streamed", "content": {
            "application/x-ndjson": {"schema": {"type": "string"}},
            "text/csv": {"schema": {"type": "string"}}
        }},
        "400": {"$ref": "#/components/responses/BadParam"},
        "503": {"$ref": "#/components/responses/Unavailable"}
    })
}

fn list(item: &str) -> Value {
    json!({"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}})
}

fn one(item: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{item}")})
}

fn get(summary: &str, parameters: Vec<Value>, responses: Value) -> Value {
    json!({"get": {"summary": summary, "parameters": parameters, "responses": responses}})
}

fn object(properties: &[(&str, &str)]) -> Value {
    let props: serde_json::Map<String, Value> = properties
        .iter()
        .map(|(name, ty)| {
            let schema = match *ty {
                "json" => json!({}),
                "string?" => json!({"type": "string", "nullable": true}),
                "integer?" => json!({"type": "integer", "nullable": true}),
                "boolean?" => json!({"type": "boolean", "nullable": true}),
                "time" => json!({"type": "string", "format": "date-time"}),
                "time?" => json!({"type": "string", "format": "date-time", "nullable": true}),
                other => json!({"type": other}),
            };
            (name.to_string(), schema)
        })
        .collect();
    json!({"type": "object", "properties": props})
}

pub fn document() -> Value {
    let peer = || {
        query(
            "peer_id",
            "libp2p peer id of the node",
            json!({"type": "string", "minLength": 1}),
            true,
        )
    };
    let id = || {
        path(
            "id",
            "positive whole number",
            json!({"type": "integer", "minimum": 1}),
        )
    };
    let genesis = |in_path: bool| {
        let schema = json!({"type": "string", "minLength": 1});
        if in_path {
            path(
                "genesis_hash",
                "genesis hash of the chain (GET /chains)",
                schema,
            )
        } else {
            query("genesis_hash", "only this chain", schema, false)
        }
    };
    let kind = || {
        query(
            "kind",
            "best: blocks as imported (block.import); finalized: as finalized (notify.finalized)",
            json!({"type": "string", "enum": ["best", "finalized"], "default": "best"}),
            false,
        )
    };
    let format = || {
        query(
            "format",
            "ndjson or csv",
            json!({"type": "string", "enum": ["ndjson", "csv"], "default": "ndjson"}),
            false,
        )
    };
    let created = |item: &str| {
        json!({
            "201": {"description": "created", "content": {"application/json": {"schema": one(item)}}},
            "400": {"$ref": "#/components/responses/BadParam"},
            "413": {"description": "body larger than API_MAX_BODY_BYTES"},
            "503": {"$ref": "#/components/responses/Unavailable"}
        })
    };
    // Writes (and /stats/db) need the API_TOKEN when one is set.
    let guarded = |mut op: Value| {
        op["security"] = json!([{"bearer": []}]);
        op["responses"]["401"] = json!({"$ref": "#/components/responses/Unauthorized"});
        op
    };
    let socket = json!({
        "101": {"description": "switching to WebSocket"},
        "403": {"description": "the client's address is not in ALLOWED_NODE_IPS, or is blocked for a while after sending faster than WS_MAX_BYTES_PER_S"},
        "503": {"description": "too many sockets from this address (WS_MAX_CONNECTIONS_PER_ADDRESS) or in all (WS_MAX_CONNECTIONS)"}
    });
    let found = |item: Value| {
        let mut r = ok("found", item);
        r["404"] = json!({"$ref": "#/components/responses/NotFound"});
        r
    };
    let text = |description: &str, media: &str| json!({"200": {"description": description, "content": {media: {"schema": {"type": "string"}}}}});
    let session_fields = [
        ("id", "integer"),
        ("ip_addr", "string"),
        ("peer_id", "string?"),
        ("created_at", "time"),
        ("audit", "boolean"),
        ("name", "string?"),
        ("chain", "string?"),
        ("version", "string?"),
        ("authority", "boolean?"),
        ("startup_time", "integer?"),
        ("implementation", "string?"),
        ("genesis_hash", "string?"),
    ];
    let mut node = session_fields.to_vec();
    node.extend([
        ("ended_at", "time?"),
        ("best_height", "integer?"),
        ("finalized_height", "integer?"),
        ("peers", "integer?"),
        ("txcount", "integer?"),
        ("last_message_at", "time?"),
        ("connected", "boolean"),
    ]);
    let mut session = session_fields.to_vec();
    session.push(("ended_at", "time?"));
    let host_fields = [
        ("cpu_clock", "integer"),
        ("cpu_qty", "integer"),
        ("description", "string"),
        ("disk_info", "string"),
        ("os", "string"),
        ("ram_mb", "integer"),
    ];
    let mut host = vec![("id", "integer")];
    host.extend(host_fields);
    let benchmark_fields = [
        ("benchmark_spec", "json"),
        ("chain_spec", "json"),
        ("description", "string?"),
        ("host_system_id", "integer"),
        ("ts_start", "string"),
        ("ts_end", "string"),
    ];
    let mut benchmark = vec![("id", "integer"), ("created_at", "time")];
    benchmark.extend(benchmark_fields);
    // What POST takes, exactly as the handlers check it (unknown fields are refused).
    let int = |max: i64| json!({"type": "integer", "minimum": 0, "maximum": max});
    let new_host = json!({
        "type": "object", "additionalProperties": false,
        "required": ["cpu_clock", "cpu_qty", "description", "disk_info", "os", "ram_mb"],
        "properties": {
            "cpu_clock": int(2_147_483_647), "cpu_qty": int(65_535), "ram_mb": int(2_147_483_647),
            "description": {"type": "string"}, "disk_info": {"type": "string"}, "os": {"type": "string"}
        }
    });
    let time_pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}";
    let new_benchmark = json!({
        "type": "object", "additionalProperties": false,
        "required": ["host_system_id", "ts_start", "ts_end"],
        "properties": {
            "host_system_id": {"type": "integer", "minimum": 1},
            "ts_start": {"type": "string", "pattern": time_pattern, "description": "2019-01-01T00:00:00 (UTC) or RFC 3339 with an offset"},
            "ts_end": {"type": "string", "pattern": time_pattern, "description": "as ts_start"},
            "description": {"type": "string", "nullable": true},
            "chain_spec": {}, "benchmark_spec": {}
        }
    });
    let exports = json!({
            "/export/propagation": {"get": {"summary": "Blocks first reported in the window, oldest first, with their propagation (the Block fields plus genesis_hash and kind), streamed as NDJSON or CSV", "parameters": [
                time("start_time", "window start (default: end_time minus one hour)"),
                time("end_time", "window end, exclusive (default: now)"),
                genesis(false),
                kind(),
                format(),
            ], "responses": stream()}},
            "/export/arrivals": {"get": {"summary": "Each node's first report of each block received in the window, oldest first (genesis_hash, kind, height, hash, peer_id, received_at, delay_ms, node_ts), streamed as NDJSON or CSV", "parameters": [
                time("start_time", "window start (default: end_time minus one hour)"),
                time("end_time", "window end, exclusive (default: now)"),
                genesis(false),
                kind(),
                query("peer_id", "only this node's reports", json!({"type": "string", "minLength": 1}), false),
                format(),
            ], "responses": stream()}},
            "/export/finality": {"get": {"summary": "Each chain's best and finalized height per minute (genesis_hash, minute, best_height, finalized_height, nodes), streamed as NDJSON or CSV", "parameters": [
                time("start_time", "window start (default: end_time minus one hour)"),
                time("end_time", "window end, exclusive (default: now)"),
                genesis(false),
                format(),
            ], "responses": stream()}},
            "/export/versions": {"get": {"summary": "Nodes per implementation and version per hour (genesis_hash, hour, implementation, version, nodes), streamed as NDJSON or CSV", "parameters": [
                time("start_time", "window start (default: end_time minus one hour)"),
                time("end_time", "window end, exclusive (default: now)"),
                genesis(false),
                format(),
            ], "responses": stream()}},
            "/export/hardware": {"get": {"summary": "Hardware reports made in the window (the Hardware fields), streamed as NDJSON or CSV", "parameters": [
                time("start_time", "window start (default: end_time minus one hour)"),
                time("end_time", "window end, exclusive (default: now)"),
                genesis(false),
                query("peer_id", "only this node's reports", json!({"type": "string", "minLength": 1}), false),
                format(),
            ], "responses": stream()}}
    });
    let analytics = json!({
            "/chains": get("Every chain a node reported (by genesis hash): its name, nodes connected now (and authorities), nodes heard from in 24 hours, and its newest best and finalized height, most nodes first", vec![], ok("chains", list("Chain"))),
            "/chains/{genesis_hash}/propagation": get("Block propagation: for each block, when the first node reported it (server receive time) and the other nodes' delays after it (percentiles nearest-rank over the reporting nodes, the first one's 0 included). The summary (whole window) and the series (per step) give the median over their blocks of each percentile and the longest delay; blocks lists the newest blocks (limit; /export/propagation streams them all)", vec![
                genesis(true),
                kind(),
                time("start_time", "window start (default: end_time minus 24 hours)"),
                time("end_time", "window end, exclusive (default: now)"),
                query("step_s", "seconds per point of the series (default: a minute, or more to keep about 1440 points)", json!({"type": "integer", "minimum": 60, "maximum": 31_622_400}), false),
                limit(100, 100_000),
            ], found(one("Propagation"))),
            "/chains/{genesis_hash}/finality": get("Finality: the chain's best and finalized height per step (the highest any node reported), the stalls overlapping the window (finalized height standing still longer than FINALITY_STALL_S while the best advances; ended_at null while ongoing) with the GRANDPA voters seen around each, the authority sets, and each node's newest heights and finality lag (with peer_id: that node's every minute)", vec![
                genesis(true),
                time("start_time", "window start (default: end_time minus 24 hours)"),
                time("end_time", "window end, exclusive (default: now)"),
                query("step_s", "seconds per point of the series (default: a minute, or more to keep about 1440 points)", json!({"type": "integer", "minimum": 60, "maximum": 31_622_400}), false),
                query("peer_id", "the nodes part holds this node's every minute", json!({"type": "string", "minLength": 1}), false),
            ], found(one("Finality"))),
            "/chains/{genesis_hash}/versions": get("Upgrades: nodes per implementation and version per hour in the window (with their share of that hour's nodes), every version's first and last hour ever, the newest version of each implementation, and the connected nodes that run an older one (versions compare by their leading numbers)", vec![
                genesis(true),
                time("start_time", "window start (default: end_time minus 30 days)"),
                time("end_time", "window end, exclusive (default: now)"),
                query("step_s", "seconds per step of the series, whole hours (default: an hour, or more to keep about 1440 steps)", json!({"type": "integer", "minimum": 3600, "maximum": 31_622_400}), false),
            ], found(one("Versions"))),
            "/chains/{genesis_hash}/hardware": get("Hardware: each node's newest report in the window (sysinfo and sysinfo.hwbench scores in MiB/s), the distribution of each score, and the authorities below Substrate's reference hardware (polkadot-sdk SUBSTRATE_REFERENCE_HARDWARE; the source is in the answer)", vec![
                genesis(true),
                time("start_time", "window start (default: end_time minus 30 days)"),
                time("end_time", "window end, exclusive (default: now)"),
            ], found(one("HardwareReport"))),
            "/nodes/propagation": get("One node's propagation on each chain it reported blocks of: blocks seen and missed (by height), median and p90 delay behind the first node, its rank among the chain's nodes by median (1: fastest), the median of receive time minus its own ts (network delay plus clock error), and its newest blocks", vec![
                peer(),
                kind(),
                time("start_time", "window start (default: end_time minus one hour; at most 7 days before end_time)"),
                time("end_time", "window end, exclusive (default: now)"),
                limit(100, 10_000),
            ], ok("the node's propagation", one("NodePropagation"))),
            "/nodes/hardware": get("One node's hardware reports over time, oldest first, each with the scores below the reference", vec![
                peer(),
                time("start_time", "window start (default: end_time minus 365 days)"),
                time("end_time", "window end, exclusive (default: now)"),
            ], ok("reports", object(&[("peer_id", "string"), ("start_time", "time"), ("end_time", "time"), ("reports", "array")])))
    });
    let schemas = json!({
                "Chain": object(&[("genesis_hash", "string"), ("name", "string"), ("first_seen", "time"), ("last_seen", "time"), ("nodes_connected", "integer"), ("authorities_connected", "integer"), ("nodes_24h", "integer"), ("best_height", "integer?"), ("finalized_height", "integer?"), ("heights_at", "time?")]),
                "Block": object(&[("height", "integer"), ("hash", "string"), ("first_at", "time"), ("first_peer_id", "string"), ("nodes", "integer"), ("p50_ms", "number"), ("p90_ms", "number"), ("p99_ms", "number"), ("max_ms", "number")]),
                "Propagation": {"type": "object", "properties": {
                    "genesis_hash": {"type": "string"}, "kind": {"type": "string"},
                    "start_time": {"type": "string", "format": "date-time"}, "end_time": {"type": "string", "format": "date-time"},
                    "step_s": {"type": "integer"},
                    "summary": object(&[("blocks", "integer"), ("median_nodes", "integer?"), ("p50_ms", "number"), ("p90_ms", "number"), ("p99_ms", "number"), ("max_ms", "number")]),
                    "series": {"type": "array", "description": "per step, oldest first: blocks first reported in it, the median over them of each block's percentile, the longest delay", "items": object(&[("at", "time"), ("blocks", "integer"), ("median_nodes", "integer?"), ("p50_ms", "number"), ("p90_ms", "number"), ("p99_ms", "number"), ("max_ms", "number")])},
                    "truncated": {"type": "boolean", "description": "limit cut the blocks short (the newest were kept)"},
                    "blocks": list("Block")
                }},
                "Finality": {"type": "object", "properties": {
                    "genesis_hash": {"type": "string"}, "start_time": {"type": "string", "format": "date-time"}, "end_time": {"type": "string", "format": "date-time"},
                    "step_s": {"type": "integer"}, "stall_threshold_s": {"type": "number"},
                    "series": {"type": "array", "items": object(&[("at", "time"), ("best_height", "integer?"), ("finalized_height", "integer?"), ("lag_blocks", "integer?"), ("nodes", "integer")])},
                    "stalls": {"type": "array", "items": object(&[("started_at", "time"), ("ended_at", "time?"), ("duration_ms", "number"), ("finalized_height", "integer"), ("resumed_height", "integer?"), ("best_height_at_start", "integer?"), ("best_height_at_end", "integer?"), ("nodes", "array"), ("voters", "array")])},
                    "authority_sets": {"type": "array", "items": object(&[("set_id", "integer"), ("authorities", "json"), ("first_at", "time")])},
                    "nodes": {"type": "array", "items": object(&[("peer_id", "string"), ("minute", "time"), ("best_height", "integer?"), ("finalized_height", "integer?"), ("finality_lag_blocks", "integer?")])}
                }}
    });
    let more_schemas = json!({
                "Versions": {"type": "object", "properties": {
                    "genesis_hash": {"type": "string"}, "start_time": {"type": "string", "format": "date-time"}, "end_time": {"type": "string", "format": "date-time"},
                    "step_s": {"type": "integer"},
                    "series": {"type": "array", "description": "per step, oldest first: nodes on each version on average over the step's hours, and their share of the chain's nodes", "items": object(&[("at", "time"), ("implementation", "string"), ("version", "string"), ("nodes", "number"), ("share", "number")])},
                    "versions": {"type": "array", "items": object(&[("implementation", "string"), ("version", "string"), ("first_seen", "time"), ("last_seen", "time"), ("peak_nodes", "integer")])},
                    "newest": {"type": "array", "items": object(&[("implementation", "string"), ("version", "string")])},
                    "outdated": {"type": "array", "items": object(&[("peer_id", "string"), ("name", "string?"), ("implementation", "string"), ("version", "string"), ("newest_version", "string")])}
                }},
                "Hardware": object(&[("peer_id", "string"), ("genesis_hash", "string"), ("reported_at", "time"), ("authority", "boolean?"), ("cpu", "string?"), ("memory", "integer?"), ("core_count", "integer?"), ("linux_kernel", "string?"), ("linux_distro", "string?"), ("is_virtual_machine", "boolean?"), ("cpu_hashrate_score", "integer?"), ("parallel_cpu_hashrate_score", "integer?"), ("parallel_cpu_cores", "integer?"), ("memory_memcpy_score", "integer?"), ("disk_sequential_write_score", "integer?"), ("disk_random_write_score", "integer?"), ("below_reference", "array")]),
                "HardwareReport": {"type": "object", "properties": {
                    "genesis_hash": {"type": "string"}, "start_time": {"type": "string", "format": "date-time"}, "end_time": {"type": "string", "format": "date-time"},
                    "reference": object(&[("source", "string"), ("unit", "string"), ("minimums", "object")]),
                    "distribution": {"type": "object", "description": "per score: nodes, min, p10, p50, p90, max (null when no node reported it)"},
                    "authorities": object(&[("benchmarked", "integer"), ("below_reference", "integer"), ("share_below", "number"), ("by_score", "object")]),
                    "nodes": list("Hardware")
                }},
                "NodePropagation": {"type": "object", "properties": {
                    "peer_id": {"type": "string"}, "kind": {"type": "string"}, "start_time": {"type": "string", "format": "date-time"}, "end_time": {"type": "string", "format": "date-time"},
                    "chains": {"type": "array", "items": object(&[("genesis_hash", "string"), ("blocks_seen", "integer"), ("blocks_missed", "integer"), ("median_ms", "number"), ("p90_ms", "number"), ("rank", "integer?"), ("nodes_ranked", "integer"), ("clock_offset_ms", "number")])},
                    "blocks": {"type": "array", "items": object(&[("genesis_hash", "string"), ("height", "integer"), ("hash", "string"), ("received_at", "time"), ("delay_ms", "number")])}
                }}
    });
    let mut doc = json!({
        "openapi": "3.0.3",
        "info": {
            "title": "tetcore-analytics",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Telemetry of Tetcore and Substrate nodes, stored in PostgreSQL. Nodes send to the WebSockets / and /audit. Every route takes an optional trailing slash; unknown query parameters are ignored."
        },
        "paths": {
            "/": {"get": {"summary": "Telemetry WebSocket (data expires after LOG_EXPIRY_H); without an Upgrade header, a 307 to the dashboard at /dashboard/", "responses": socket.clone()}},
            "/audit": {"get": {"summary": "Telemetry WebSocket (data kept for ever)", "responses": socket}},
            "/metrics": get("Prometheus metrics", vec![], text("text exposition format", "text/plain")),
            "/healthz": get("The process is alive (no database call)", vec![], json!({"200": {"description": "alive"}})),
            "/readyz": get("The write queue has room and the service is not stopping (the database's state is in the body, and does not decide)", vec![], json!({"200": {"description": "ready"}, "503": {"description": "not ready, with a reason"}})),
            "/openapi.json": get("This document", vec![], json!({"200": {"description": "OpenAPI 3"}})),
            "/nodes": {"get": {
                "summary": "Each peer's newest session with its latest state, in peer_id order; every node with every field unless asked for less",
                "parameters": [
                    query("peer_id", "only this peer", json!({"type": "string", "minLength": 1}), false),
                    query("chain", "only nodes of this chain", json!({"type": "string", "minLength": 1}), false),
                    query("connected", "only connected (true) or gone (false) nodes", json!({"type": "boolean"}), false),
                    time("since", "only nodes that changed after this: a new or ended session, a new state, or connected turning false (poll with the last answer's x-as-of, less a few seconds)"),
                    json!({"name": "fields", "in": "query", "required": false, "style": "form", "explode": false, "description": "only these fields, comma-separated", "schema": {"type": "array", "items": {"type": "string", "enum": crate::api::nodes::NODE_FIELDS}, "minItems": 1}}),
                    query("limit", "most nodes returned (default: all)", json!({"type": "integer", "minimum": 1, "maximum": 100_000}), false),
                    query("offset", "nodes skipped first", json!({"type": "integer", "minimum": 0, "default": 0}), false),
                ],
                "responses": {
                    "200": {"description": "nodes (objects with only the fields asked for, if fields is given)",
                        "headers": {
                            "x-total-count": {"description": "nodes that matched before limit and offset", "schema": {"type": "integer"}},
                            "x-as-of": {"description": "when the answer was made (RFC 3339 UTC): the since of the next poll", "schema": {"type": "string", "format": "date-time"}}
                        },
                        "content": {"application/json": {"schema": list("Node")}}},
                    "400": {"$ref": "#/components/responses/BadParam"},
                    "503": {"$ref": "#/components/responses/Unavailable"}
                }
            }},
            "/nodes/log_stats": get("A peer's messages received in the window, counted by kind, biggest first", vec![
                peer(),
                time("start_time", "window start (default: end_time minus 24 hours)"),
                time("end_time", "window end (default: now)"),
            ], ok("counts", list("LogStat"))),
            "/nodes/logs": get("A peer's messages, newest first", vec![
                peer(),
                query("msg", "only this logs->>'msg'", json!({"type": "string", "minLength": 1}), false),
                query("target", "only this logs->>'target'", json!({"type": "string", "minLength": 1}), false),
                time("start_time", "no earlier than this (default: no bound)"),
                time("end_time", "no later than this (default: now)"),
                limit(100, 10_000),
            ], ok("messages", list("Log"))),
            "/nodes/sessions": get("Every session of one peer, newest first", vec![peer(), limit(50, 1_000)], ok("sessions", list("Session"))),
            "/nodes/series": get("A peer's best and finalized height, peers and tx pool over time, as the highest value in each of at most `points` equal buckets of the window (buckets without messages are left out)", vec![
                peer(),
                time("start_time", "window start (default: end_time minus one hour)"),
                time("end_time", "window end (default: now)"),
                query("points", "most buckets", json!({"type": "integer", "minimum": 1, "maximum": 2000, "default": 240}), false),
            ], ok("points, oldest first", list("SeriesPoint"))),
            "/export/messages": {"get": {"summary": "A window of raw messages, oldest first, streamed as NDJSON (one object a line: created_at, session, peer_id, name, chain, msg, logs) or CSV with a header", "parameters": [
                time("start_time", "window start (default: end_time minus one hour)"),
                time("end_time", "window end, exclusive (default: now)"),
                query("peer_id", "only this peer's messages", json!({"type": "string", "minLength": 1}), false),
                query("chain", "only messages of sessions of this chain", json!({"type": "string", "minLength": 1}), false),
                query("msg", "only this logs->>'msg'", json!({"type": "string", "minLength": 1}), false),
                query("format", "ndjson or csv", json!({"type": "string", "enum": ["ndjson", "csv"], "default": "ndjson"}), false),
            ], "responses": stream()}},
            "/export/sessions": {"get": {"summary": "The sessions open at some time in the window, oldest first, streamed as NDJSON or CSV (session, peer_id, name, chain, version, implementation, genesis_hash, authority, ip_addr, audit, created_at, ended_at, startup_time, target_os, target_arch, sysinfo)", "parameters": [
                time("start_time", "window start (default: end_time minus one hour)"),
                time("end_time", "window end (default: now)"),
                query("peer_id", "only this peer's sessions", json!({"type": "string", "minLength": 1}), false),
                query("chain", "only sessions of this chain", json!({"type": "string", "minLength": 1}), false),
                query("format", "ndjson or csv", json!({"type": "string", "enum": ["ndjson", "csv"], "default": "ndjson"}), false),
            ], "responses": stream()}},
            "/stats/db": {"get": guarded(json!({"summary": "Size of every table and index, biggest first", "parameters": [], "responses": ok("relations", list("Relation"))}))},
            "/reputation": get("Every reporting peer's newest network state, expanded", vec![
                query("max_age_s", "newest report no older than this", json!({"type": "integer", "minimum": 1, "default": 60}), false),
                limit(100, 10_000),
            ], ok("reports", list("ExpandedReputation"))),
            "/reputation/logged": get("As /reputation, only about peers that are sessions of ours", vec![
                query("max_age_s", "newest report no older than this", json!({"type": "integer", "minimum": 1, "default": 60}), false),
                limit(100, 10_000),
            ], ok("reports", list("ExpandedReputation"))),
            "/reputation/{peer_id}": get("What other peers report about one peer, newest first", vec![
                path("peer_id", "libp2p peer id", json!({"type": "string"})),
                time("start_time", "no earlier than this (default: end_time minus 24 hours)"),
                time("end_time", "no later than this (default: now)"),
                limit(100, 10_000),
            ], ok("reports", list("Reputation"))),
            "/host_systems": {
                "get": {"summary": "All host systems", "responses": ok("host systems", list("HostSystem"))},
                "post": guarded(json!({"summary": "Create a host system", "requestBody": {"required": true, "content": {"application/json": {"schema": new_host}}}, "responses": created("HostSystem")}))
            },
            "/host_systems/{id}": get("One host system", vec![id()], found(one("HostSystem"))),
            "/benchmarks": {
                "get": {"summary": "All benchmarks", "responses": ok("benchmarks", list("Benchmark"))},
                "post": guarded(json!({"summary": "Create a benchmark (an unknown host_system_id is a 400)", "requestBody": {"required": true, "content": {"application/json": {"schema": new_benchmark}}}, "responses": created("Benchmark")}))
            },
            "/benchmarks/{id}": get("One benchmark", vec![id()], found(one("Benchmark"))),
            "/benchmarks/{id}/nodes": get("Sessions open during the benchmark's window", vec![id()], found(list("Session"))),
            "/benchmarks/{id}/log_stats": get("Messages by kind received during the benchmark's window", vec![id()], found(list("LogStat")))
        },
        "components": {
            "schemas": {
                "Error": object(&[("error", "string"), ("param", "string")]),
                "Node": object(&node),
                "Session": object(&session),
                "SeriesPoint": object(&[("at", "time"), ("best_height", "integer?"), ("finalized_height", "integer?"), ("peers", "integer?"), ("txcount", "integer?")]),
                "LogStat": object(&[("qty", "integer"), ("log_type", "string?")]),
                "Log": object(&[("ip_addr", "string"), ("peer_id", "string"), ("msg", "string?"), ("created_at", "time"), ("logs", "json")]),
                "Relation": object(&[("relation", "string"), ("size", "string"), ("bytes", "integer"), ("rows_estimate", "integer")]),
                "Reputation": object(&[("reporting_peer", "string"), ("reputation", "json"), ("connected", "json"), ("ts", "time")]),
                "ExpandedReputation": object(&[("reporting_peer", "string"), ("remote_peer", "array"), ("reputation", "array"), ("connected", "array"), ("ts", "time")]),
                "HostSystem": object(&host),

                "Benchmark": object(&benchmark)
            },
            "responses": {
                "BadParam": {"description": "a parameter or body is wrong; `param` names it", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "NotFound": {"description": "no such id, or no such chain", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "Unavailable": {"description": "the database cannot answer", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "Unauthorized": {"description": "API_TOKEN is set and the request lacks `Authorization: Bearer <API_TOKEN>`", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "the API_TOKEN setting; needed only when it is set"}
            }
        }
    });
    // In parts: one json! of it all is deeper than the macro's recursion limit.
    merge(&mut doc["paths"], exports);
    merge(&mut doc["paths"], analytics);
    merge(&mut doc["components"]["schemas"], schemas);
    merge(&mut doc["components"]["schemas"], more_schemas);
    doc
}

/// Adds the members of `part` to the object `target`.
fn merge(target: &mut Value, part: Value) {
    if let (Some(target), Value::Object(part)) = (target.as_object_mut(), part) {
        target.extend(part);
    }
}

pub async fn serve() -> HttpResponse {
    HttpResponse::Ok().json(document())
}
