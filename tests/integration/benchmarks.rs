//! Host systems and benchmarks, and the telemetry of a benchmark's window.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{wait_for, FakeNode, TestApp, TestDb};

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

const HOST: &str = r#"{"cpu_clock":2600,"cpu_qty":4,"description":"test box","disk_info":"NVME","os":"freebsd","ram_mb":8192}"#;

#[test]
fn host_systems_are_created_listed_and_found() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[]);
    let (status, body) = app.post("/host_systems", HOST.as_bytes());
    assert_eq!(status, 201, "{body}");
    let created = json(&body);
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["os"], "freebsd");
    assert_eq!(created["ram_mb"], 8192);
    let (status, body) = app.get(&format!("/host_systems/{id}"));
    assert_eq!((status, json(&body)), (200, created.clone()));
    assert_eq!(json(&app.get("/host_systems/").1), json!([created]));
    assert_eq!(app.get("/host_systems/999").0, 404);
    let (status, body) = app.get("/host_systems/abc");
    assert_eq!((status, json(&body)["param"].clone()), (400, json!("id")));
    for bad in [
        &b"{not json"[..],
        br#"{"cpu_clock":2600}"#,
        br#"{"cpu_clock":-1,"cpu_qty":4,"description":"d","disk_info":"x","os":"y","ram_mb":1}"#,
        br#"{"cpu_clock":"fast","cpu_qty":4,"description":"d","disk_info":"x","os":"y","ram_mb":1}"#,
        br#"{"cpu_clock":1,"cpu_qty":4,"description":"a\u0000b","disk_info":"x","os":"y","ram_mb":1}"#,
        br#"[1,2]"#,
    ] {
        let (status, body) = app.post("/host_systems", bad);
        assert_eq!(status, 400, "{}: {body}", String::from_utf8_lossy(bad));
        assert_eq!(json(&body)["param"], "body");
    }
    let huge = format!(r#"{{"description":"{}"}}"#, "x".repeat(70_000));
    let (status, body) = app.post("/host_systems", huge.as_bytes());
    assert_eq!(status, 413, "{body}");
    assert_eq!(
        json(&app.get("/host_systems").1).as_array().unwrap().len(),
        1
    );
}

#[test]
fn benchmarks_cross_reference_the_telemetry_of_their_window() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[("DB_SAVE_LATENCY_MS", "20")]);
    let host = json(&app.post("/host_systems", HOST.as_bytes()).1)["id"].clone();
    let mut node = FakeNode::connect(&app.url("/"));
    node.binary(r#"{"id":1,"payload":{"msg":"system.connected","name":"bench-node","network_id":"12D3KooWBench"},"ts":"t"}"#);
    for _ in 0..3 {
        node.binary(r#"{"id":1,"payload":{"msg":"block.import","height":1},"ts":"t"}"#);
    }
    wait_for("stored", Duration::from_secs(10), || app.stored() == 4);
    let body = json!({
        "benchmark_spec": {"txs": 1000},
        "chain_spec": {"name": "dev"},
        "description": "window around now",
        "host_system_id": host,
        "ts_start": "2000-01-01T00:00:01",
        "ts_end": "2999-10-28T14:05:27.618903+02:00",
    });
    let (status, text) = app.post("/benchmarks/", body.to_string().as_bytes());
    assert_eq!(status, 201, "{text}");
    let created = json(&text);
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["ts_start"], "2000-01-01T00:00:01.000000Z");
    assert_eq!(created["ts_end"], "2999-10-28T12:05:27.618903Z");
    assert_eq!(created["benchmark_spec"], json!({"txs": 1000}));
    assert_eq!(json(&app.get(&format!("/benchmarks/{id}/")).1), created);
    assert_eq!(json(&app.get("/benchmarks").1), json!([created]));

    let nodes = json(&app.get(&format!("/benchmarks/{id}/nodes")).1);
    assert_eq!(nodes.as_array().unwrap().len(), 1);
    assert_eq!(nodes[0]["peer_id"], "12D3KooWBench");
    assert_eq!(nodes[0]["ended_at"], Value::Null);
    let stats = json(&app.get(&format!("/benchmarks/{id}/log_stats")).1);
    assert_eq!(
        stats,
        json!([{"qty": 3, "log_type": "block.import"}, {"qty": 1, "log_type": "system.connected"}])
    );

    // A window in the past saw nothing.
    let past = json!({"host_system_id": host, "ts_start": "2001-01-01T00:00:00", "ts_end": "2001-01-02T00:00:00"});
    let past_id = json(&app.post("/benchmarks", past.to_string().as_bytes()).1)["id"].clone();
    assert_eq!(
        json(&app.get(&format!("/benchmarks/{past_id}/nodes")).1),
        json!([])
    );
    assert_eq!(
        json(&app.get(&format!("/benchmarks/{past_id}/log_stats")).1),
        json!([])
    );

    for (body, param) in [
        (
            json!({"host_system_id": 999, "ts_start": "2001-01-01T00:00:00", "ts_end": "2001-01-02T00:00:00"}),
            "host_system_id",
        ),
        (
            json!({"host_system_id": host, "ts_start": "yesterday", "ts_end": "2001-01-02T00:00:00"}),
            "ts_start",
        ),
        (
            json!({"host_system_id": host, "ts_start": "2001-01-03T00:00:00", "ts_end": "2001-01-02T00:00:00"}),
            "ts_end",
        ),
        (
            json!({"host_system_id": host, "ts_start": "2001-01-01T00:00:00"}),
            "body",
        ),
    ] {
        let (status, text) = app.post("/benchmarks", body.to_string().as_bytes());
        assert_eq!(status, 400, "{body}: {text}");
        assert_eq!(json(&text)["param"], param, "{body}");
    }
    assert_eq!(app.get("/benchmarks/424242").0, 404);
    assert_eq!(app.get("/benchmarks/424242/nodes").0, 404);
    assert_eq!(app.get("/benchmarks/0/log_stats").0, 400);
    drop(node);
}

#[test]
fn extreme_numbers_are_stored_so_that_they_read_back() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[("DB_SAVE_LATENCY_MS", "20")]);
    let host = json(&app.post("/host_systems", HOST.as_bytes()).1)["id"].clone();
    let specs = [
        r#"[-1.7976931348623157e308, ""]"#,
        r#"{"tiny": 2.5e-218, "least": 5e-324, "zero": -0.0}"#,
        r#"[1.7976931348623157e308, 1e20, 18446744073709551615, -9223372036854775808]"#,
        r#"[123456789012345678901234567890, 0.1, 1e-7]"#,
    ];
    for spec in specs {
        let body = format!(
            r#"{{"ts_start":"2026-01-01T00:00:00Z","ts_end":"2026-01-01T01:00:00Z","host_system_id":{host},"chain_spec":{spec},"benchmark_spec":{spec}}}"#
        );
        let (status, answer) = app.post("/benchmarks", body.as_bytes());
        assert_eq!(status, 201, "{spec}: {answer}");
        assert_eq!(json(&answer)["chain_spec"], json(spec), "{spec}");
    }
    let (status, list) = app.get("/benchmarks");
    assert_eq!(status, 200, "{list}");
    let list = json(&list);
    assert_eq!(list.as_array().unwrap().len(), specs.len());
    for (row, spec) in list.as_array().unwrap().iter().zip(specs) {
        assert_eq!(row["chain_spec"], json(spec));
        assert_eq!(row["benchmark_spec"], json(spec));
        let id = row["id"].as_i64().unwrap();
        assert_eq!(app.get(&format!("/benchmarks/{id}")).0, 200);
    }
}

#[test]
fn a_row_we_cannot_decode_is_a_500_not_database_unavailable() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[]);
    let host = json(&app.post("/host_systems", HOST.as_bytes()).1)["id"].clone();
    // Written by hand in SQL: beyond what a double holds, which no API or node path stores.
    {
        use diesel::RunQueryDsl;
        diesel::sql_query(format!(
            "INSERT INTO benchmarks (ts_start, ts_end, chain_spec, host_system_id) \
             VALUES (now(), now(), '[1e400]', {host})"
        ))
        .execute(&mut db.conn())
        .unwrap();
    }
    let (status, body) = app.get("/benchmarks");
    assert_eq!(status, 500, "{body}");
    assert!(!body.contains("unavailable"), "{body}");
    // The database is fine: everything else still answers.
    assert_eq!(app.get("/host_systems").0, 200);
}
