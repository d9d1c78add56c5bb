//! The Grafana dashboards as Grafana runs them: every panel's SQL, with Grafana's macros and
//! variables expanded, runs as the read-only role against data that came through the real
//! ingest path, and returns rows.

use std::process::Command;
use std::time::Duration;

use diesel::{sql_query, Connection, QueryableByName, RunQueryDsl};
use serde_json::Value;

use crate::common::{wait_for, FakeNode, TestApp, TestDb};

const FROM: &str = "now() - interval '1 hour'";
const TO: &str = "now() + interval '1 minute'";

/// Seconds of a Grafana interval such as `1m`, `'30s'` or `$__interval` (taken as 1m).
fn seconds(interval: &str) -> u64 {
    let interval = interval.trim().trim_matches('\'');
    if interval == "$__interval" {
        return 60;
    }
    let (number, unit) = interval.split_at(interval.len() - 1);
    let n: u64 = number
        .parse()
        .unwrap_or_else(|_| panic!("interval {interval}"));
    n * match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => panic!("unit {other}"),
    }
}

/// Expands the macros and variables the dashboards use, as Grafana's PostgreSQL source does.
fn expand(sql: &str, chain: &str) -> String {
    let mut out = sql.replace("$chain", &format!("'{chain}'"));
    for name in ["$__timeGroupAlias(", "$__timeGroup(", "$__timeFilter("] {
        while let Some(start) = out.find(name) {
            let args_start = start + name.len();
            let end = args_start + out[args_start..].find(')').expect("closing parenthesis");
            let args: Vec<&str> = out[args_start..end].split(',').map(str::trim).collect();
            let replacement = match name {
                "$__timeFilter(" => format!("{} BETWEEN {FROM} AND {TO}", args[0]),
                _ => {
                    let n = seconds(args[1]);
                    let bucket = format!(
                        "to_timestamp(floor(extract(epoch FROM {}) / {n}) * {n})",
                        args[0]
                    );
                    if name == "$__timeGroupAlias(" {
                        format!("{bucket} AS \"time\"")
                    } else {
                        bucket
                    }
                }
            };
            out.replace_range(start..=end, &replacement);
        }
    }
    assert!(
        !out.contains("$__") && !out.contains("$chain"),
        "unexpanded macro or variable in {out}"
    );
    out
}

#[derive(QueryableByName)]
struct Rows {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Runs `sql` as `tetcore_reader`, read-only, and returns how many rows it gave.
fn run_as_reader(url: &str, sql: &str) -> Result<i64, String> {
    let mut conn = diesel::PgConnection::establish(url).map_err(|e| e.to_string())?;
    conn.transaction(|c| {
        sql_query("SET LOCAL ROLE tetcore_reader").execute(c)?;
        // count(q), not count(*): the whole row is needed, so every column is computed.
        let rows: Rows = sql_query(format!("SELECT count(q) AS n FROM ({sql}) q")).get_result(c)?;
        Ok::<_, diesel::result::Error>(rows.n)
    })
    .map_err(|e| e.to_string())
}

#[test]
fn every_panel_query_runs_as_the_reader_and_finds_the_data() {
    let db = TestDb::new();
    let app = TestApp::start(
        &db,
        &[
            ("DB_SAVE_LATENCY_MS", "20"),
            ("HEARTBEAT_INTERVAL", "1"),
            ("CLIENT_TIMEOUT_S", "1"),
            ("DERIVE_INTERVAL_S", "1"),
        ],
    );
    // A fleet that has come and gone...
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--url", &app.url("/"), "--connections", "3", "--ids", "2"])
        .args(["--rate", "12", "--seconds", "2", "--threads", "1"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut sent = report["sent"].as_u64().unwrap();
    // ...and a node still connected, sending as nodes do.
    let mut node = FakeNode::connect(&app.url("/"));
    for frame in [
        r#"{"id":1,"payload":{"msg":"system.connected","name":"live-node","chain":"Loadgen","version":"1.0.0","network_id":"12D3KooWLive"},"ts":"t"}"#,
        r#"{"id":1,"payload":{"msg":"block.import","height":99,"best":"0x01","origin":"Own"},"ts":"t"}"#,
        // Values no cast takes: the panels must skip them, not fail.
        r#"{"id":1,"payload":{"msg":"block.import","height":"12345678901234567890","best":"0x02","origin":"Own"},"ts":"t"}"#,
        r#"{"id":1,"payload":{"msg":"notify.finalized","height":"99999999999999999999","best":"0x02"},"ts":"t"}"#,
        r#"{"id":1,"payload":{"msg":"system.interval","height":"12345678901234567890","finalized_height":"1e999","peers":"12345678901234567890","txcount":-1.7976931348623157e308,"bandwidth_download":"1.2.3","bandwidth_upload":1e308},"ts":"t"}"#,
    ] {
        node.binary(frame);
        sent += 1;
    }
    wait_for("everything stored", Duration::from_secs(20), || {
        app.stored() == sent
    });
    // The analytics panels read what the derive passes made of it.
    wait_for("the analytics derived", Duration::from_secs(30), || {
        [
            "tetcore_blocks",
            "tetcore_version_hours",
            "tetcore_hardware",
            "tetcore_chain_minutes",
        ]
        .iter()
        .all(|t| db.count(&format!("SELECT count(*) FROM {t}")) > 0)
    });

    let role = concat!(env!("CARGO_MANIFEST_DIR"), "/grafana/reader-role.sql");
    let status = Command::new("psql")
        .args([&db.url, "-q", "-v", "ON_ERROR_STOP=1", "-f", role])
        .status()
        .expect("psql runs");
    assert!(status.success(), "the reader role SQL applies");

    let provisioning = include_str!("../../grafana/provisioning/datasources/tetcore.yml");
    assert!(provisioning.contains("uid: tetcore-pg"));
    assert!(provisioning.contains("maxOpenConns:"));
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana/dashboards");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(
            dashboard.get("__inputs").is_none(),
            "{path:?} is for import, not provisioning"
        );
        for variable in dashboard["templating"]["list"].as_array().unwrap() {
            let sql = variable["query"].as_str().unwrap();
            let rows = run_as_reader(&db.url, &expand(sql, "Loadgen"))
                .unwrap_or_else(|e| panic!("variable {}: {e}", variable["name"]));
            assert!(rows > 0, "variable {} has values", variable["name"]);
        }
        for panel in dashboard["panels"].as_array().unwrap() {
            assert_eq!(panel["datasource"]["uid"], "tetcore-pg");
            for target in panel["targets"].as_array().unwrap() {
                let sql = expand(target["rawSql"].as_str().unwrap(), "Loadgen");
                let rows = run_as_reader(&db.url, &sql)
                    .unwrap_or_else(|e| panic!("{}: {e}\n{sql}", panel["title"]));
                assert!(rows > 0, "{} found no rows:\n{sql}", panel["title"]);
                checked += 1;
            }
        }
    }
    assert!(checked >= 21, "{checked} panels checked");
    // The reader may read, and nothing else.
    let write = run_as_reader(
        &db.url,
        "SELECT 1 FROM (SELECT nextval('tetcore_logs_id_seq')) s",
    );
    assert!(write.is_err(), "the reader cannot write");
    drop(node);
}
