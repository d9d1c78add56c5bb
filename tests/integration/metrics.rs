//! `/metrics` as Prometheus reads it: complete, and clean by `promtool check metrics`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{wait_for, FakeNode, TestApp, TestDb};

fn promtool() -> String {
    let local = concat!(env!("CARGO_MANIFEST_DIR"), "/.local/bin/promtool");
    if std::path::Path::new(local).exists() {
        local.to_owned()
    } else {
        "promtool".to_owned() // scripts/ensure-build-deps provides one or the other
    }
}

#[test]
fn metrics_cover_the_service_and_pass_promtool() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[("DB_SAVE_LATENCY_MS", "20")]);
    let mut node = FakeNode::connect(&app.url("/"));
    node.binary(r#"{"msg":"system.interval","peers":1}"#);
    wait_for("stored", Duration::from_secs(10), || app.stored() == 1);
    assert_eq!(app.get("/readyz").0, 200);
    assert_eq!(app.get("/nowhere").0, 404);
    let (status, body) = app.get("/metrics");
    assert_eq!(status, 200);
    for series in [
        "tetcore_ws_connections_open{mode=\"live\"} 1",
        "tetcore_http_requests_total{route=\"/readyz\",status=\"200\"} 1",
        "tetcore_http_requests_total{route=\"unmatched\",status=\"404\"} 1",
        "tetcore_http_requests_total{route=\"/\",status=\"101\"} 1",
        "tetcore_http_request_duration_seconds_bucket{route=\"/readyz\"",
        "tetcore_db_pool_connections{state=\"max\"} 4",
        "tetcore_db_pool_wait_seconds_count",
        "tetcore_purge_runs_total{result=\"done\"} 0",
        "tetcore_cache_entries",
        "tetcore_cache_refresh_duration_seconds_count",
        "tetcore_cache_refresh_failures_total 0",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(body.contains(series), "{series} missing from:\n{body}");
    }
    let mut check = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (scripts/ensure-build-deps fetches it)");
    check
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_alerting_rules_pass_promtool_and_their_unit_tests_and_name_real_series() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/prometheus");
    for args in [
        ["check", "rules", "tetcore-analytics.rules.yml"],
        ["test", "rules", "tetcore-analytics.rules.test.yml"],
    ] {
        let out = Command::new(promtool())
            .args(args)
            .current_dir(dir)
            .output()
            .expect("promtool runs (scripts/ensure-build-deps fetches it)");
        assert!(
            out.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Every series a rule reads is one the service exports.
    let db = TestDb::new();
    let app = TestApp::start(&db, &[]);
    wait_for("a heartbeat", Duration::from_secs(20), || {
        app.metrics.heartbeat_at.get() > 0
    });
    let (_, body) = app.get("/metrics");
    let rules = include_str!("../../prometheus/tetcore-analytics.rules.yml");
    let mut names: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("tetcore_") && !w.starts_with("tetcore_analytics"))
        .collect();
    names.sort_unstable();
    names.dedup();
    assert!(names.len() >= 12, "{names:?}");
    for name in names {
        assert!(
            body.lines().any(|l| l.starts_with(name)),
            "a rule reads {name}, which /metrics lacks"
        );
    }
}
