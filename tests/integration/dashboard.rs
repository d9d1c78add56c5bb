//! The browser dashboard, end to end: telemetry sent through the real WebSocket path, the real
//! service serving the files built into it, and Debian's Chromium driven by `tests/e2e/dashboard.mjs`
//! (playwright-core). Screenshots land in `target/e2e/`.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::{raw_request, wait_for, FakeNode, TestApp, TestDb};

fn connected(peer: &str, name: &str) -> String {
    format!(
        r#"{{"id":1,"payload":{{"msg":"system.connected","name":"{name}","chain":"Testnet","version":"1.2.3","implementation":"Tetcore Node","genesis_hash":"0x0a","authority":true,"startup_time":"1700000000000","network_id":"{peer}"}},"ts":"t"}}"#
    )
}

fn envelope(payload: &str) -> String {
    format!(r#"{{"id":1,"payload":{payload},"ts":"t"}}"#)
}

#[test]
fn a_plain_get_of_root_goes_to_the_dashboard_and_nodes_still_upgrade() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[]);
    let r = raw_request(
        app.addr,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close",
        b"",
    );
    assert_eq!(r.status, 307);
    assert_eq!(r.header("location"), Some("/dashboard/"));
    let r = raw_request(
        app.addr,
        "GET /dashboard/ HTTP/1.1\r\nHost: x\r\nConnection: close",
        b"",
    );
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.header("content-security-policy").is_some());
    // Page routes are answered with the page; files with themselves; no way out of ASSETS_PATH.
    let r = raw_request(
        app.addr,
        "GET /dashboard/node/12D3KooWX HTTP/1.1\r\nHost: x\r\nConnection: close",
        b"",
    );
    assert_eq!(r.status, 200);
    assert!(r.body.contains("<main id=\"view\""));
    let r = raw_request(
        app.addr,
        "GET /dashboard/app.js HTTP/1.1\r\nHost: x\r\nConnection: close",
        b"",
    );
    assert!(r.header("content-type").unwrap().contains("javascript"));
    let r = raw_request(
        app.addr,
        "GET /dashboard/..%2f..%2fCargo.toml HTTP/1.1\r\nHost: x\r\nConnection: close",
        b"",
    );
    assert!(!r.body.contains("[package]"), "escaped ASSETS_PATH");
    let mut node = FakeNode::connect(&app.url("/"));
    node.binary(&connected("12D3KooWX", "n"));
    wait_for("stored", Duration::from_secs(10), || app.stored() == 1);
    // The whole page stays small.
    let size: u64 = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/static"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(size < 300 * 1024, "static/ is {size} bytes");
}

#[test]
fn the_built_in_files_are_served_with_types_and_etags_and_assets_path_replaces_them() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[]);
    let get = |path: &str, extra: &str| {
        raw_request(
            app.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close{extra}"),
            b"",
        )
    };
    for (path, file, kind) in [
        ("/dashboard/", "index.html", "text/html"),
        ("/dashboard/app.js", "app.js", "text/javascript"),
        ("/dashboard/style.css", "style.css", "text/css"),
        ("/dashboard/favicon.svg", "favicon.svg", "image/svg+xml"),
        ("/dashboard/node/12D3KooWX", "index.html", "text/html"),
    ] {
        let r = get(path, "");
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.header("content-type").unwrap().starts_with(kind),
            "{path}"
        );
        assert!(r.header("content-security-policy").is_some(), "{path}");
        let on_disk =
            std::fs::read_to_string(format!("{}/static/{file}", env!("CARGO_MANIFEST_DIR")))
                .unwrap();
        assert_eq!(r.body, on_disk, "{path} is the file built in");
        let etag = r.header("etag").expect("an ETag").to_owned();
        let again = get(path, &format!("\r\nIf-None-Match: {etag}"));
        assert_eq!((again.status, again.body.as_str()), (304, ""), "{path}");
    }
    // ASSETS_PATH serves a directory of one's own instead.
    let dir = std::env::temp_dir().join(format!("tetcore-assets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "<p>our own page</p>").unwrap();
    let own = TestApp::start(&db, &[("ASSETS_PATH", dir.to_str().unwrap())]);
    let r = raw_request(
        own.addr,
        "GET /dashboard/ HTTP/1.1\r\nHost: x\r\nConnection: close",
        b"",
    );
    assert_eq!((r.status, r.body.as_str()), (200, "<p>our own page</p>"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_dashboard_shows_the_fleet_a_node_and_benchmarks_in_chromium() {
    let db = TestDb::new();
    // The files built into the binary.
    let app = TestApp::start(
        &db,
        &[
            ("CACHE_UPDATE_INTERVAL_MS", "200"),
            ("DB_SAVE_LATENCY_MS", "20"),
            ("DERIVE_INTERVAL_S", "1"),
        ],
    );
    let peer = "12D3KooWDashboardE2E";
    let mut node = FakeNode::connect(&app.url("/"));
    node.binary(&connected(peer, "e2e-validator"));
    node.binary(&envelope(
        r#"{"msg":"sysinfo.hwbench","cpu_hashrate_score":1480,"memory_memcpy_score":11562,"disk_sequential_write_score":1830,"disk_random_write_score":540}"#,
    ));
    let mut laggard = FakeNode::connect(&app.url("/audit"));
    laggard.binary(&connected("12D3KooWLaggard", "laggard"));
    laggard.binary(&envelope(
        r#"{"msg":"block.import","height":80,"best":"0x50","origin":"Own"}"#,
    ));
    // Eight rounds over about three seconds, so the charts have several points.
    for i in 0..8u64 {
        node.binary(&envelope(&format!(
            r#"{{"msg":"block.import","height":{},"best":"0x{i:02x}","origin":"NetworkInitialSync"}}"#,
            113 + i
        )));
        node.binary(&envelope(&format!(
            r#"{{"msg":"notify.finalized","height":"{}","best":"0x{i:02x}"}}"#,
            110 + i
        )));
        node.binary(&envelope(&format!(
            r#"{{"msg":"system.interval","peers":{},"txcount":{i},"bandwidth_download":10,"bandwidth_upload":5}}"#,
            5 + i % 3
        )));
        std::thread::sleep(Duration::from_millis(400));
    }
    wait_for("stored", Duration::from_secs(10), || app.stored() == 28);
    wait_for("the analytics derived", Duration::from_secs(30), || {
        db.count("SELECT count(*) FROM tetcore_blocks WHERE genesis_hash = '0x0a'") >= 8
            && db.count(
                "SELECT count(*) FROM tetcore_hardware WHERE memory_memcpy_score IS NOT NULL",
            ) == 1
    });
    let (status, _) = app.post(
        "/host_systems",
        br#"{"description":"bench box","os":"linux","cpu_qty":8,"cpu_clock":3200,"ram_mb":16384,"disk_info":"nvme"}"#,
    );
    assert_eq!(status, 201);
    let (status, _) = app.post(
        "/benchmarks",
        br#"{"host_system_id":1,"ts_start":"2026-01-01T00:00:00","ts_end":"2030-01-01T00:00:00","description":"sync speed","chain_spec":{},"benchmark_spec":{}}"#,
    );
    assert_eq!(status, 201);
    wait_for(
        "the cache to hold the heights",
        Duration::from_secs(10),
        || {
            let nodes: Value = serde_json::from_str(&app.get("/nodes").1).unwrap();
            nodes
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["peer_id"] == peer && n["best_height"] == 120)
        },
    );
    // Over the last minute in 240 buckets (what the page asks for a new session), those three
    // seconds make several points.
    let start = (chrono::Utc::now() - chrono::TimeDelta::seconds(60)).format("%Y-%m-%dT%H:%M:%S");
    let (status, body) = app.get(&format!(
        "/nodes/series?peer_id={peer}&points=240&start_time={start}"
    ));
    assert_eq!(status, 200, "{body}");
    let series: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert!(series.len() >= 2, "{body}");
    assert_eq!(
        series
            .iter()
            .filter_map(|p| p["best_height"].as_i64())
            .max(),
        Some(120)
    );

    // Like real nodes, both keep talking while the browser looks (silent sockets are closed
    // after CLIENT_TIMEOUT_S).
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let talker = {
        let done = done.clone();
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                node.binary(&envelope(
                    r#"{"msg":"system.interval","peers":6,"txcount":1}"#,
                ));
                laggard.binary(&envelope(r#"{"msg":"system.interval","peers":2}"#));
                std::thread::sleep(Duration::from_millis(1000));
            }
        })
    };
    let artifacts = concat!(env!("CARGO_MANIFEST_DIR"), "/target/e2e");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/dashboard.mjs");
    let out = Command::new("node")
        .args([
            script,
            &format!("http://{}", app.addr),
            peer,
            "e2e-validator",
            "120",
            artifacts,
        ])
        .output()
        .expect(
            "node runs (scripts/test, through ensure-build-deps --test, installs nodejs, chromium and playwright-core)",
        );
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{log}");
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    talker.join().unwrap();
    assert!(out.status.success(), "the browser test failed:\n{log}");
    for shot in [
        "fleet-1280",
        "fleet-390",
        "node-1280",
        "node-390",
        "chain-1280",
        "chain-390",
    ] {
        let png = std::fs::read(format!("{artifacts}/{shot}.png")).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{shot}");
    }
}
