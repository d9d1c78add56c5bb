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
    json!({
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
                "NotFound": {"description": "no such id", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "Unavailable": {"description": "the database cannot answer", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "Unauthorized": {"description": "API_TOKEN is set and the request lacks `Authorization: Bearer <API_TOKEN>`", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "the API_TOKEN setting; needed only when it is set"}
            }
        }
    })
}

pub async fn serve() -> HttpResponse {
    HttpResponse::Ok().json(document())
}
