//! The probes: `/healthz` needs nothing; `/readyz` needs room in the write queue and says
//! what state the database is in, without depending on it.

use std::time::{Duration, Instant};

use crate::common::{wait_for, FakeNode, TestApp, TestDb};

#[test]
fn probes_answer_ok_when_the_database_does() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[]);
    for path in ["/healthz", "/healthz/"] {
        let (status, body) = app.get(path);
        assert_eq!(status, 200);
        assert_eq!(body, r#"{"status":"ok"}"#);
    }
    let (status, body) = app.get("/readyz");
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"status":"ready","database":"up"}"#)
    );
}

#[test]
fn readyz_stays_ready_and_says_so_while_the_database_is_away() {
    // Ingest buffers while the shared database is away: taking every instance out of the
    // load balancer for it would only refuse nodes.
    let db = TestDb::unreachable();
    let app = TestApp::start(&db, &[]);
    assert_eq!(app.get("/healthz").0, 200, "alive without a database");
    let started = Instant::now();
    let (status, body) = app.get("/readyz");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "ready");
    assert!(
        v["database"].as_str().unwrap().starts_with("down: "),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(2), "cheap to poll");
}

#[test]
fn readyz_is_503_when_the_write_queue_is_saturated() {
    // Messages wait for a database that never answers, until the queue is full.
    let db = TestDb::unreachable();
    let app = TestApp::start(
        &db,
        &[
            ("WRITE_QUEUE_MAX_BYTES", "4096"),
            ("WS_MAX_PAYLOAD", "1024"),
        ],
    );
    let mut node = FakeNode::connect(&app.url("/"));
    for i in 0..40 {
        node.binary(&format!(
            r#"{{"msg":"system.interval","i":{i},"pad":"{}"}}"#,
            "x".repeat(100)
        ));
    }
    wait_for("the queue to fill", Duration::from_secs(10), || {
        app.metrics.bytes_queued.get() > 3700
    });
    let (status, body) = app.get("/readyz");
    assert_eq!(status, 503);
    assert!(body.contains("write queue saturated"), "{body}");
    assert!(body.contains(r#""database":"down: "#), "{body}");
}

#[test]
fn head_is_answered_wherever_get_is_without_a_body() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[]);
    for path in [
        "/healthz",
        "/nodes",
        "/metrics",
        "/openapi.json",
        "/dashboard/",
    ] {
        let get = crate::common::raw_request(
            app.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close"),
            b"",
        );
        let head = crate::common::raw_request(
            app.addr,
            &format!("HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close"),
            b"",
        );
        assert_eq!(head.status, get.status, "{path}");
        assert_eq!(head.body, "", "{path}: no body");
        assert_eq!(
            head.header("content-type"),
            get.header("content-type"),
            "{path}"
        );
    }
    let head = crate::common::raw_request(
        app.addr,
        "HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close",
        b"",
    );
    assert_eq!(head.status, 307, "a plain HEAD / goes to the dashboard too");
    // Other methods are refused naming what is allowed, once.
    let put = crate::common::raw_request(
        app.addr,
        "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close",
        b"",
    );
    assert_eq!((put.status, put.header("allow")), (405, Some("GET")));
}
