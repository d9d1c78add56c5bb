//! Network analytics end to end: fleets send what real nodes send over real WebSockets, the
//! derive actor folds it in, and the endpoints' answers are compared with what the test
//! computes on its own from the messages as stored (their receive times).

use std::collections::BTreeMap;
use std::thread::sleep;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{count_on, recordings, wait_for, Count, FakeNode, TestApp, TestDb};
use crate::export::body;

const GENESIS: &str = "0x00000000beef0000000000000000000000000000000000000000000000000001";
const SETTINGS: &[(&str, &str)] = &[("DERIVE_INTERVAL_S", "1"), ("FINALITY_STALL_S", "1")];

fn peer(i: usize) -> String {
    format!("12D3KooWTest{i:040}")
}

fn hash(height: u64, fork: u64) -> String {
    format!("0x{height:032x}{fork:032x}")
}

/// A modern-era message with id 1.
fn message(payload: Value) -> String {
    let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, false);
    json!({"id": 1, "payload": payload, "ts": ts}).to_string()
}

fn connected(i: usize, version: &str, authority: bool) -> String {
    message(json!({
        "msg": "system.connected", "name": format!("node-{i}"), "chain": "Beef Testnet",
        "genesis_hash": GENESIS, "implementation": "Parity Polkadot", "version": version,
        "authority": authority, "config": "", "startup_time": "1795768284264",
        "network_id": peer(i),
        "sysinfo": {"cpu": "AMD EPYC 7B13", "memory": 34359738368u64, "core_count": 8,
                    "linux_kernel": "6.1.0", "linux_distro": "Debian GNU/Linux 12",
                    "is_virtual_machine": false},
    }))
}

fn import(height: u64) -> String {
    message(
        json!({"msg": "block.import", "height": height, "best": hash(height, 0), "origin": "Own"}),
    )
}

fn finalized(height: u64) -> String {
    // notify.finalized sends the height as a string.
    message(
        json!({"msg": "notify.finalized", "height": height.to_string(), "best": hash(height, 0)}),
    )
}

fn get_json(app: &TestApp, path: &str) -> Value {
    let (status, body) = app.get(path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// Nearest rank, as PostgreSQL's percentile_disc.
fn nearest_rank(sorted: &[i64], p: f64) -> i64 {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(us: i64) -> f64 {
    us as f64 / 1000.0
}

/// What the test expects of each block of `msg`, from the stored messages: by (height, hash),
/// the first peer, node count and (p50, p90, p99, max) in ms.
fn expected_blocks(db: &TestDb, msg: &str) -> BTreeMap<(i64, String), (String, usize, [f64; 4])> {
    let rows = db.json(&format!(
        "SELECT p.peer_id, tetcore_int(l.logs->>'height') AS height, l.logs->>'best' AS hash, \
                (extract(epoch FROM l.created_at) * 1000000)::bigint AS us \
         FROM tetcore_logs l JOIN peer_connections p ON p.id = l.peer_connection_id \
         WHERE l.logs->>'msg' = '{msg}' AND p.genesis_hash = '{GENESIS}'"
    ));
    // Each node's first report of each block.
    let mut firsts: BTreeMap<(i64, String), BTreeMap<String, i64>> = BTreeMap::new();
    for r in rows {
        let key = (
            r["height"].as_i64().unwrap(),
            r["hash"].as_str().unwrap().to_owned(),
        );
        let us = r["us"].as_i64().unwrap();
        let node = firsts.entry(key).or_default();
        let e = node
            .entry(r["peer_id"].as_str().unwrap().to_owned())
            .or_insert(us);
        *e = (*e).min(us);
    }
    firsts
        .into_iter()
        .map(|(key, nodes)| {
            let first = *nodes.values().min().unwrap();
            let first_peer = nodes
                .iter()
                .filter(|(_, us)| **us == first)
                .map(|(p, _)| p.clone())
                .min()
                .unwrap();
            let mut delays: Vec<i64> = nodes.values().map(|us| us - first).collect();
            delays.sort();
            let p = |q| ms(nearest_rank(&delays, q));
            let max = ms(*delays.last().unwrap());
            (
                key,
                (first_peer, nodes.len(), [p(0.5), p(0.9), p(0.99), max]),
            )
        })
        .collect()
}

/// The endpoint's blocks in the same shape.
fn answered_blocks(answer: &Value) -> BTreeMap<(i64, String), (String, usize, [f64; 4])> {
    answer["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let f = |k: &str| b[k].as_f64().unwrap();
            (
                (
                    b["height"].as_i64().unwrap(),
                    b["hash"].as_str().unwrap().to_owned(),
                ),
                (
                    b["first_peer_id"].as_str().unwrap().to_owned(),
                    b["nodes"].as_u64().unwrap() as usize,
                    [f("p50_ms"), f("p90_ms"), f("p99_ms"), f("max_ms")],
                ),
            )
        })
        .collect()
}

/// Connects `n` nodes (announcing themselves) to `apps` in turn.
fn fleet(apps: &[&TestApp], n: usize, version: &str) -> Vec<FakeNode> {
    (0..n)
        .map(|i| {
            let mut node = FakeNode::connect(&apps[i % apps.len()].url("/"));
            node.binary(&connected(i, version, true));
            node
        })
        .collect()
}

/// Blocks 1..=blocks: node i imports each `i * spacing` after node 0, then all finalize it.
fn import_blocks(nodes: &mut [FakeNode], blocks: u64, spacing: Duration) {
    for height in 1..=blocks {
        for node in nodes.iter_mut() {
            node.binary(&import(height));
            sleep(spacing);
        }
        for node in nodes.iter_mut() {
            node.binary(&finalized(height));
        }
    }
}

fn wait_for_blocks(app: &TestApp, kind: &str, blocks: usize, nodes: u64) -> Value {
    let path = format!("/chains/{GENESIS}/propagation?kind={kind}");
    let mut answer = Value::Null;
    wait_for("the blocks to be derived", Duration::from_secs(30), || {
        answer = get_json(app, &path);
        let rows = answer["blocks"].as_array().unwrap();
        rows.len() == blocks && rows.iter().all(|b| b["nodes"].as_u64() == Some(nodes))
    });
    answer
}

#[test]
fn each_blocks_propagation_is_what_the_nodes_receive_times_say() {
    let db = TestDb::new();
    let app = TestApp::start(&db, SETTINGS);
    let mut nodes = fleet(&[&app], 5, "1.0.0");
    sleep(Duration::from_millis(100));
    import_blocks(&mut nodes, 3, Duration::from_millis(40));
    app.settle();

    let best = wait_for_blocks(&app, "best", 3, 5);
    let expected = expected_blocks(&db, "block.import");
    assert_eq!(expected.len(), 3);
    assert_eq!(answered_blocks(&best), expected);
    for (first, _, [p50, _, _, max]) in expected.values() {
        // Node 0 sent first; the others 40 ms apart (the machine may add to that, never take).
        assert_eq!(first, &peer(0));
        assert!(*p50 >= 60.0 && *max >= 140.0, "p50 {p50} max {max}");
    }
    assert_eq!(best["summary"]["blocks"], 3);
    assert_eq!(best["summary"]["median_nodes"], 5);

    let fin = wait_for_blocks(&app, "finalized", 3, 5);
    assert_eq!(
        answered_blocks(&fin),
        expected_blocks(&db, "notify.finalized")
    );

    // The same series exported for notebooks: CSV with a header, NDJSON of each arrival.
    let (status, _, csv) = body(
        app.addr,
        &format!("/export/propagation?genesis_hash={GENESIS}&kind=best&format=csv"),
    );
    assert_eq!(status, 200, "{csv}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "genesis_hash,kind,height,hash,first_at,first_peer_id,nodes,p50_ms,p90_ms,p99_ms,max_ms"
    );
    assert_eq!(lines.len(), 4, "{csv}");
    let (status, _, ndjson) = body(
        app.addr,
        &format!(
            "/export/arrivals?genesis_hash={GENESIS}&kind=best&peer_id={}",
            peer(4)
        ),
    );
    assert_eq!(status, 200, "{ndjson}");
    let exported: Vec<f64> = ndjson
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["delay_ms"]
                .as_f64()
                .unwrap()
        })
        .collect();
    let maxes: Vec<f64> = expected.values().map(|(_, _, [.., max])| *max).collect();
    assert_eq!(
        exported, maxes,
        "node 4 was last: its delays are the blocks' max"
    );

    // Per node: node 4 was last on every block, node 0 first.
    let last = get_json(&app, &format!("/nodes/propagation?peer_id={}", peer(4)));
    let chain = &last["chains"][0];
    assert_eq!(chain["genesis_hash"], GENESIS);
    assert_eq!(chain["blocks_seen"], 3);
    assert_eq!(chain["blocks_missed"], 0);
    assert_eq!(chain["rank"], 5);
    assert_eq!(chain["nodes_ranked"], 5);
    let mut delays: Vec<f64> = expected.values().map(|(_, _, [.., max])| *max).collect();
    delays.sort_by(f64::total_cmp);
    assert_eq!(chain["median_ms"].as_f64(), Some(delays[1]));
    assert!(chain["clock_offset_ms"].as_f64().is_some());
    assert_eq!(last["blocks"].as_array().unwrap().len(), 3);
    let first = get_json(&app, &format!("/nodes/propagation?peer_id={}", peer(0)));
    assert_eq!(first["chains"][0]["rank"], 1);
    assert_eq!(first["chains"][0]["median_ms"].as_f64(), Some(0.0));

    // /chains lists the chain with its heights and nodes.
    let chains = get_json(&app, "/chains");
    let row = chains
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["genesis_hash"] == GENESIS)
        .expect("the chain is listed");
    assert_eq!(row["name"], "Beef Testnet");
    assert_eq!(row["nodes_connected"], 5);
    assert_eq!(row["best_height"], 3);
    assert_eq!(row["finalized_height"], 3);

    // Raw messages gone (retention), the derived answers stay the same.
    let mut conn = db.conn();
    tetcore_analytics::db::queries::purge::run(
        &mut conn,
        chrono::Utc::now() + chrono::TimeDelta::hours(1),
        chrono::DateTime::<chrono::Utc>::MIN_UTC,
        1,
        1,
    )
    .expect("purge runs")
    .expect("purge not locked");
    assert_eq!(
        db.count("SELECT count(*) FROM tetcore_logs WHERE NOT audit"),
        0
    );
    let after = get_json(&app, &format!("/chains/{GENESIS}/propagation"));
    assert_eq!(answered_blocks(&after), answered_blocks(&best));
    drop(nodes);
}

#[test]
fn a_rebuild_from_raw_messages_gives_the_same_answers() {
    let db = TestDb::new();
    let app = TestApp::start(&db, SETTINGS);
    let mut nodes = fleet(&[&app], 3, "1.0.0");
    import_blocks(&mut nodes, 2, Duration::from_millis(20));
    app.settle();
    let before = wait_for_blocks(&app, "best", 2, 3);
    let versions = get_json(&app, &format!("/chains/{GENESIS}/versions"));
    for table in [
        "tetcore_blocks",
        "tetcore_arrivals",
        "tetcore_version_hours",
        "tetcore_node_hours",
        "tetcore_chain_minutes",
        "tetcore_node_minutes",
    ] {
        diesel::RunQueryDsl::execute(
            diesel::sql_query(format!("DELETE FROM {table}")),
            &mut db.conn(),
        )
        .expect("derived rows deleted");
    }
    assert_eq!(db.count("SELECT count(*) FROM tetcore_blocks"), 0);
    let mut conn = db.conn();
    let report = tetcore_analytics::db::queries::derive::rebuild(&mut conn, |_, _, _| {})
        .expect("rebuild runs");
    assert!(report.messages >= 3 * (1 + 2 + 2), "{report:?}");
    let after = get_json(&app, &format!("/chains/{GENESIS}/propagation"));
    assert_eq!(answered_blocks(&after), answered_blocks(&before));
    assert_eq!(
        get_json(&app, &format!("/chains/{GENESIS}/versions"))["series"],
        versions["series"]
    );
    // Twice is the same as once.
    tetcore_analytics::db::queries::derive::rebuild(&mut conn, |_, _, _| {}).expect("again");
    let again = get_json(&app, &format!("/chains/{GENESIS}/propagation"));
    assert_eq!(answered_blocks(&again), answered_blocks(&before));
    drop(nodes);
}

#[test]
fn two_instances_ingesting_one_chain_agree_with_the_messages() {
    let db = TestDb::new();
    let one = TestApp::start(&db, SETTINGS);
    let two = TestApp::start(&db, SETTINGS);
    let mut nodes = fleet(&[&one, &two], 4, "1.0.0");
    sleep(Duration::from_millis(100));
    import_blocks(&mut nodes, 3, Duration::from_millis(30));
    one.settle();
    two.settle();
    let answer = wait_for_blocks(&one, "best", 3, 4);
    assert_eq!(
        answered_blocks(&answer),
        expected_blocks(&db, "block.import")
    );
    let other = wait_for_blocks(&two, "best", 3, 4);
    assert_eq!(answered_blocks(&other), answered_blocks(&answer));
    for app in [&one, &two] {
        assert_eq!(
            app.metrics.derive_runs.with_label_values(&["failed"]).get(),
            0
        );
    }
    drop(nodes);
}

#[test]
fn a_finality_stall_is_found_with_its_length_heights_nodes_and_voters() {
    let db = TestDb::new();
    let app = TestApp::start(&db, SETTINGS);
    let mut nodes = fleet(&[&app], 2, "1.0.0");
    nodes[0].binary(&message(json!({
        "msg": "afg.authority_set", "authority_id": "Alice", "authority_set_id": "3",
        "authorities": "[\"Alice\",\"Bob\"]",
    })));
    import_blocks(&mut nodes, 2, Duration::from_millis(10));
    // Best goes on for about 2.5 s while finality stands at 2 (FINALITY_STALL_S is 1).
    for height in 3..=6 {
        for node in nodes.iter_mut() {
            node.binary(&import(height));
        }
        nodes[0].binary(&message(json!({
            "msg": "afg.received_prevote", "voter": "Alice",
            "target_number": height.to_string(), "target_hash": hash(height, 0),
        })));
        sleep(Duration::from_millis(700));
    }
    for node in nodes.iter_mut() {
        node.binary(&finalized(6));
    }
    // 2 system.connected, the authority set, 2 blocks × 2 nodes × (import, finalized), 4 × (2
    // imports, a prevote), 2 finalized.
    wait_for("every message stored", Duration::from_secs(20), || {
        app.stored() == 2 + 1 + 8 + 12 + 2
    });

    let first_at = |msg: &str, height: i64| {
        db.json(&format!(
            "SELECT to_json(min(l.created_at)) AS t FROM tetcore_logs l \
             WHERE l.logs->>'msg' = '{msg}' AND tetcore_int(l.logs->>'height') = {height}"
        ))[0]["t"]
            .as_str()
            .map(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .unwrap()
                    .with_timezone(&chrono::Utc)
            })
            .unwrap()
    };
    let started = first_at("notify.finalized", 2);
    let ended = first_at("notify.finalized", 6);
    let path = format!("/chains/{GENESIS}/finality");
    let mut answer = Value::Null;
    // Everything folded in: the stall can show before the last imports' batch (committed
    // late on a busy machine) is folded into the heights.
    let highest = |answer: &Value, field: &str| {
        answer["series"]
            .as_array()
            .and_then(|s| s.iter().filter_map(|p| p[field].as_i64()).max())
    };
    wait_for("the stall to be derived", Duration::from_secs(30), || {
        answer = get_json(&app, &path);
        answer["stalls"].as_array().is_some_and(|s| s.len() == 1)
            && answer["stalls"][0]["ended_at"].is_string()
            && highest(&answer, "best_height") == Some(6)
            && highest(&answer, "finalized_height") == Some(6)
    });
    let stall = &answer["stalls"][0];
    let utc =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    assert_eq!(stall["started_at"], utc(started));
    assert_eq!(stall["ended_at"], utc(ended));
    assert_eq!(
        stall["duration_ms"].as_f64(),
        Some(ms((ended - started).num_microseconds().unwrap()))
    );
    assert_eq!(stall["finalized_height"], 2);
    assert_eq!(stall["resumed_height"], 6);
    assert_eq!(stall["best_height_at_end"], 6);
    assert_eq!(stall["nodes"], json!([peer(0), peer(1)]));
    let voters = stall["voters"].as_array().unwrap();
    assert_eq!(voters.len(), 1);
    assert_eq!(voters[0]["voter"], "Alice");
    assert_eq!(voters[0]["prevotes"], 4);
    assert_eq!(voters[0]["highest_target"], 6);
    assert_eq!(answer["authority_sets"][0]["set_id"], 3);
    assert_eq!(
        answer["authority_sets"][0]["authorities"],
        json!(["Alice", "Bob"])
    );
    assert_eq!(answer["stall_threshold_s"], 1.0);
    // The series and each node's lag.
    // (Highest values: the test may straddle a minute, whose newest part holds only the
    // finalization.)
    assert!(!answer["series"].as_array().unwrap().is_empty());
    let node_rows = answer["nodes"].as_array().unwrap();
    assert_eq!(node_rows.len(), 2);
    assert!(node_rows.iter().all(|n| n["finalized_height"] == 6));
    // Finalized: 1, 2 and 6.
    assert!(db.count(&format!(
        "SELECT count(*) FROM tetcore_blocks WHERE genesis_hash = '{GENESIS}' AND kind = 'finalized'"
    )) == 3);
    drop(nodes);
}

#[test]
fn a_version_rollout_and_hardware_scores_are_counted_per_chain() {
    let db = TestDb::new();
    let app = TestApp::start(&db, SETTINGS);
    let mut nodes = fleet(&[&app], 3, "1.0.0-dev-aaa");
    let scores = [
        // Above every reference score.
        json!({"cpu_hashrate_score": 1500, "parallel_cpu_hashrate_score": 1400, "parallel_cpu_cores": 8,
               "memory_memcpy_score": 20000, "disk_sequential_write_score": 2000, "disk_random_write_score": 800}),
        // Memory copy below 11768.341 MiB/s.
        json!({"cpu_hashrate_score": 1000, "parallel_cpu_hashrate_score": 1000, "parallel_cpu_cores": 8,
               "memory_memcpy_score": 11562, "disk_sequential_write_score": 1830, "disk_random_write_score": 540}),
    ];
    for (node, s) in nodes.iter_mut().zip(&scores) {
        let mut payload = s.clone();
        payload["msg"] = json!("sysinfo.hwbench");
        node.binary(&message(payload));
    }
    app.settle();
    sleep(Duration::from_millis(50));
    // Nodes 0 and 1 upgrade: a new connection each, a new version.
    for (i, node) in nodes.iter_mut().enumerate().take(2) {
        let mut old = std::mem::replace(node, FakeNode::connect(&app.url("/")));
        let _ = old.ws.close(None);
        node.binary(&connected(i, "1.1.0-dev-bbb", true));
    }
    // Every node reports a block after the upgrades: all three count in the newest hour.
    for node in nodes.iter_mut() {
        node.binary(&import(1));
    }
    app.settle();

    let path = format!("/chains/{GENESIS}/versions");
    let mut answer = Value::Null;
    wait_for("the rollout to be derived", Duration::from_secs(30), || {
        answer = get_json(&app, &path);
        answer["outdated"].as_array().is_some_and(|o| o.len() == 1)
            && answer["series"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|p| p["version"] == "1.1.0-dev-bbb" && p["nodes"].as_f64() == Some(2.0))
            })
    });
    let hour: Vec<&Value> = answer["series"].as_array().unwrap().iter().collect();
    let newest_hour = hour.last().unwrap()["at"].clone();
    let now: Vec<(&str, f64, f64)> = hour
        .iter()
        .filter(|p| p["at"] == newest_hour)
        .map(|p| {
            (
                p["version"].as_str().unwrap(),
                p["nodes"].as_f64().unwrap(),
                p["share"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        now,
        vec![
            ("1.1.0-dev-bbb", 2.0, 2.0 / 3.0),
            ("1.0.0-dev-aaa", 1.0, 1.0 / 3.0)
        ]
    );
    assert_eq!(answer["step_s"], 3600);
    assert_eq!(answer["outdated"][0]["peer_id"], peer(2));
    assert_eq!(answer["outdated"][0]["newest_version"], "1.1.0-dev-bbb");
    assert_eq!(
        answer["newest"],
        json!([{"implementation": "Parity Polkadot", "version": "1.1.0-dev-bbb"}])
    );
    assert_eq!(answer["versions"].as_array().unwrap().len(), 2);

    let hw = get_json(&app, &format!("/chains/{GENESIS}/hardware"));
    let rows = hw["nodes"].as_array().unwrap();
    // Every node's newest report: nodes 0 and 1 reconnected without a new hwbench.
    assert_eq!(rows.len(), 3);
    assert_eq!(
        hw["reference"]["minimums"]["memory_memcpy_score"],
        11768.341
    );
    assert!(hw["reference"]["source"]
        .as_str()
        .unwrap()
        .contains("polkadot-sdk"));
    let hw_of = |i: usize| get_json(&app, &format!("/nodes/hardware?peer_id={}", peer(i)));
    let zero = hw_of(0);
    let reports = zero["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2, "{zero}");
    assert_eq!(reports[0]["cpu_hashrate_score"], 1500);
    assert_eq!(reports[0]["below_reference"], json!([]));
    assert_eq!(reports[0]["cpu"], "AMD EPYC 7B13");
    assert_eq!(reports[0]["core_count"], 8);
    let one = hw_of(1);
    assert_eq!(
        one["reports"][0]["below_reference"],
        json!(["memory_memcpy_score"])
    );
    drop(nodes);
}

#[test]
fn hardware_authorities_below_the_reference_are_counted() {
    let db = TestDb::new();
    let app = TestApp::start(&db, SETTINGS);
    let mut nodes = fleet(&[&app], 3, "1.0.0");
    let cpu = [1500, 700, 900];
    for (node, cpu) in nodes.iter_mut().zip(cpu) {
        node.binary(&message(
            json!({"msg": "sysinfo.hwbench", "cpu_hashrate_score": cpu,
            "memory_memcpy_score": 20000, "disk_sequential_write_score": 2000,
            "disk_random_write_score": 800}),
        ));
    }
    app.settle();
    let path = format!("/chains/{GENESIS}/hardware");
    let mut hw = Value::Null;
    wait_for("the scores to be derived", Duration::from_secs(30), || {
        hw = get_json(&app, &path);
        hw["authorities"]["benchmarked"] == 3
    });
    assert_eq!(hw["authorities"]["below_reference"], 1);
    assert_eq!(
        hw["authorities"]["by_score"],
        json!({"cpu_hashrate_score": 1})
    );
    assert_eq!(hw["distribution"]["cpu_hashrate_score"]["p50"], 900);
    assert_eq!(hw["distribution"]["cpu_hashrate_score"]["min"], 700);
    assert_eq!(hw["distribution"]["cpu_hashrate_score"]["max"], 1500);
    drop(nodes);
}

#[test]
fn recorded_real_client_traffic_yields_propagation_rows() {
    let db = TestDb::new();
    let app = TestApp::start(&db, SETTINGS);
    let mut sent = 0;
    for r in recordings() {
        let mut node = FakeNode::connect(&app.url("/"));
        for (_, payload) in &r.frames {
            node.binary(payload);
            sent += 1;
        }
    }
    wait_for("every frame stored", Duration::from_secs(20), || {
        app.stored() == sent
    });
    let genesis = "0x00000000feed0000000000000000000000000000000000000000000000000000";
    wait_for("real blocks derived", Duration::from_secs(30), || {
        db.count(&format!(
            "SELECT count(*) FROM tetcore_blocks WHERE genesis_hash = '{genesis}' AND kind = 'best'"
        )) > 0
            && db.count(&format!(
                "SELECT count(*) FROM tetcore_blocks WHERE genesis_hash = '{genesis}' AND kind = 'finalized'"
            )) > 0
    });
    let answer = get_json(&app, &format!("/chains/{genesis}/propagation"));
    assert!(!answer["blocks"].as_array().unwrap().is_empty());
    // Every recorded client has the same peer id; the modern one sent hwbench.
    let hw = get_json(
        &app,
        "/nodes/hardware?peer_id=12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp",
    );
    assert!(hw["reports"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["cpu_hashrate_score"] == 1480));
}

#[test]
fn analytics_parameters_are_strict() {
    let db = TestDb::new();
    let app = TestApp::start(&db, SETTINGS);
    for (path, status) in [
        (format!("/chains/{GENESIS}/propagation"), 404),
        ("/chains/0xnope/finality".to_owned(), 404),
        ("/nodes/propagation".to_owned(), 400),
        ("/nodes/propagation?peer_id=x&kind=worst".to_owned(), 400),
        (
            "/nodes/propagation?peer_id=x&start_time=2020-01-01T00:00:00".to_owned(),
            400,
        ),
        ("/nodes/hardware".to_owned(), 400),
        ("/nodes/propagation?peer_id=x".to_owned(), 200),
        ("/chains".to_owned(), 200),
    ] {
        let (got, body) = app.get(&path);
        assert_eq!(got, status, "{path}: {body}");
    }
}

/// One `tetcore_derive` over `window` (its two arguments, as SQL) in a transaction of its own,
/// as a pass runs it; the messages it read.
fn derive_pass(conn: &mut diesel::PgConnection, window: &str) -> diesel::QueryResult<i64> {
    use diesel::{Connection, RunQueryDsl};
    conn.transaction(|c| {
        diesel::sql_query(format!("SELECT tetcore_derive({window}) AS n"))
            .get_result::<Count>(c)
            .map(|r| r.n)
    })
}

/// A pass over a window large enough for PostgreSQL to plan it in parallel (catching up, a
/// rebuild) folds its messages in like any other: the casts that catch errors in a
/// subtransaction must keep such a plan serial. Here every plan that may be parallel is.
#[test]
fn a_derive_pass_planned_in_parallel_folds_its_messages() {
    use diesel::{sql_query, RunQueryDsl};
    let db = TestDb::new();
    let mut conn = db.conn();
    sql_query(format!(
        "INSERT INTO peer_connections (id, ip_addr, peer_id, genesis_hash, connected_at) \
         VALUES (1, '10.0.0.1', '{}', '{GENESIS}', now() - interval '2 minutes')",
        peer(0)
    ))
    .execute(&mut conn)
    .unwrap();
    sql_query(
        "INSERT INTO tetcore_logs (peer_connection_id, created_at, audit, logs) \
         SELECT 1, now() - interval '1 minute' + h * interval '1 ms', false, \
                jsonb_build_object('msg', 'block.import', 'height', h, \
                                   'best', '0x' || lpad(to_hex(h), 64, '0'), \
                                   'ts', '2026-11-30T10:00:00.5+01:00') \
         FROM generate_series(1, 1000) h",
    )
    .execute(&mut conn)
    .unwrap();
    // The setting's name up to PostgreSQL 15, and from 16 on.
    if sql_query("SET force_parallel_mode = on")
        .execute(&mut conn)
        .is_err()
    {
        sql_query("SET debug_parallel_query = on")
            .execute(&mut conn)
            .unwrap();
    }
    let read = derive_pass(&mut conn, "now() - interval '1 hour', now()")
        .expect("a pass planned in parallel succeeds");
    assert_eq!(read, 1000);
    let stored = count_on(
        &mut conn,
        "SELECT count(*) AS n FROM tetcore_block_arrivals \
         WHERE node_ts = '2026-11-30T09:00:00.5Z' AND kind = 'best'",
    );
    assert_eq!(stored, 1000);
}

/// A block's figures are read off its arrivals sorted once (migration 13): for every node
/// count from 1 to 40 they are exactly PostgreSQL's own nearest-rank `percentile_disc` over
/// the arrivals, the first node is the earliest (ties: lowest peer id), and a block whose
/// reports come in over two passes gets the figures of all of them.
#[test]
fn block_figures_are_nearest_rank_percentiles_of_all_their_arrivals() {
    use diesel::{sql_query, RunQueryDsl};
    let db = TestDb::new();
    let mut conn = db.conn();
    sql_query(format!(
        "INSERT INTO peer_connections (id, ip_addr, peer_id, genesis_hash, connected_at) \
         SELECT n, '10.0.0.1', 'FigurePeer' || lpad(n::text, 3, '0'), '{GENESIS}', \
                now() - interval '1 hour' FROM generate_series(1, 40) n"
    ))
    .execute(&mut conn)
    .unwrap();
    // Block h is reported by nodes 1..=h; node n's delay is a spread of (n * 37) % 101 ms, and
    // nodes 1 and 2 tie on the first report. Nodes above 30 report in the second window.
    sql_query(
        "INSERT INTO tetcore_logs (peer_connection_id, created_at, audit, logs) \
         SELECT n, now() - interval '30 minutes' + h * interval '1 s' \
                   + CASE WHEN n <= 2 THEN interval '0' ELSE (n * 37 % 101) * interval '1 ms' END \
                   + CASE WHEN n > 30 THEN interval '10 minutes' ELSE interval '0' END, \
                false, jsonb_build_object('msg', 'block.import', 'height', h, \
                                          'best', '0x' || lpad(to_hex(h), 64, '0')) \
         FROM generate_series(1, 40) h, generate_series(1, 40) n WHERE n <= h",
    )
    .execute(&mut conn)
    .unwrap();
    for window in [
        "now() - interval '31 minutes', now() - interval '25 minutes'",
        "now() - interval '25 minutes', now()",
    ] {
        derive_pass(&mut conn, window).expect("the pass runs");
    }
    assert_eq!(
        count_on(&mut conn, "SELECT count(*) AS n FROM tetcore_blocks"),
        40
    );
    let wrong = count_on(
        &mut conn,
        "SELECT count(*) AS n FROM tetcore_blocks b \
         JOIN (SELECT height, min(received_at) AS first_at, count(*) AS nodes, \
                      (array_agg(peer_id ORDER BY received_at, peer_id))[1] AS first_peer_id, \
                      tetcore_ms(percentile_disc(0.5) WITHIN GROUP (ORDER BY received_at) - min(received_at)) AS p50, \
                      tetcore_ms(percentile_disc(0.9) WITHIN GROUP (ORDER BY received_at) - min(received_at)) AS p90, \
                      tetcore_ms(percentile_disc(0.99) WITHIN GROUP (ORDER BY received_at) - min(received_at)) AS p99, \
                      tetcore_ms(max(received_at) - min(received_at)) AS max \
               FROM tetcore_block_arrivals GROUP BY height) e ON e.height = b.height \
         WHERE (b.first_at, b.nodes, b.first_peer_id, b.p50_ms, b.p90_ms, b.p99_ms, b.max_ms) \
               IS DISTINCT FROM (e.first_at, e.nodes::int, e.first_peer_id, e.p50, e.p90, e.p99, e.max) \
            OR b.nodes <> b.height",
    );
    assert_eq!(
        wrong, 0,
        "every block's figures are its arrivals' percentiles"
    );
    let first = count_on(
        &mut conn,
        "SELECT count(*) AS n FROM tetcore_blocks WHERE height >= 2 AND first_peer_id = 'FigurePeer001'",
    );
    assert_eq!(
        first, 39,
        "a tie on the first report goes to the lowest peer id"
    );
}

/// A node's `ts` is read as `tetcore_time` reads it: a pass casts it directly, and when one
/// message's `ts` is a date that does not exist the window is read again the careful way;
/// either way only that message's time is empty.
#[test]
fn an_impossible_node_time_empties_only_its_own_arrival() {
    use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};
    use diesel::{sql_query, QueryableByName, RunQueryDsl};
    #[derive(QueryableByName, Debug, PartialEq)]
    struct Arrival {
        #[diesel(sql_type = BigInt)]
        height: i64,
        #[diesel(sql_type = Nullable<Timestamptz>)]
        node_ts: Option<chrono::DateTime<chrono::Utc>>,
        #[diesel(sql_type = Nullable<Timestamptz>)]
        expected: Option<chrono::DateTime<chrono::Utc>>,
        #[diesel(sql_type = Text)]
        ts: String,
    }
    let times = [
        "2026-11-30T10:00:00.5+01:00",
        "2026-02-30T10:00:00Z",
        "2026-11-30T10:00:00",
        "yesterday",
        "2026-11-30 10:00:00.123456789Z",
    ];
    for bad_one_in in [true, false] {
        let db = TestDb::new();
        let mut conn = db.conn();
        sql_query(format!(
            "INSERT INTO peer_connections (id, ip_addr, peer_id, genesis_hash, connected_at) \
             VALUES (1, '10.0.0.1', '{}', '{GENESIS}', now() - interval '2 minutes')",
            peer(0)
        ))
        .execute(&mut conn)
        .unwrap();
        for (i, ts) in times.iter().enumerate() {
            if !bad_one_in && i == 1 {
                continue;
            }
            sql_query(
                "INSERT INTO tetcore_logs (peer_connection_id, created_at, audit, logs) \
                 VALUES (1, now() - interval '1 minute', false, jsonb_build_object('msg', \
                     'block.import', 'height', $1, 'best', '0x' || lpad(to_hex($1), 64, '0'), \
                     'ts', $2))",
            )
            .bind::<BigInt, _>(i as i64)
            .bind::<Text, _>(*ts)
            .execute(&mut conn)
            .unwrap();
        }
        let read =
            derive_pass(&mut conn, "now() - interval '1 hour', now()").expect("the pass runs");
        assert_eq!(read, if bad_one_in { 5 } else { 4 });
        let arrivals: Vec<Arrival> = sql_query(
            "SELECT a.height, a.node_ts, tetcore_time(l.logs->>'ts') AS expected, \
                    l.logs->>'ts' AS ts \
             FROM tetcore_block_arrivals a \
             JOIN tetcore_logs l ON tetcore_int(l.logs->>'height') = a.height \
             ORDER BY a.height",
        )
        .load(&mut conn)
        .unwrap();
        assert_eq!(arrivals.len(), read as usize);
        for a in &arrivals {
            assert_eq!(a.node_ts, a.expected, "{a:?}");
        }
        assert_eq!(
            arrivals.iter().filter(|a| a.node_ts.is_some()).count(),
            2,
            "{arrivals:?}"
        );
    }
}

/// The API's connections cut statements off at `QUERY_TIMEOUT_MS` and never JIT-compile: a
/// finality read whose plan crossed `jit_above_cost` spent 317 of its 355 ms compiling.
#[test]
fn query_connections_have_the_statement_timeout_and_no_jit() {
    use diesel::sql_types::Text;
    use diesel::{sql_query, QueryableByName, RunQueryDsl};
    use tetcore_analytics::config::Config;
    #[derive(QueryableByName)]
    struct Settings {
        #[diesel(sql_type = Text)]
        jit: String,
        #[diesel(sql_type = Text)]
        statement_timeout: String,
    }
    let db = TestDb::new();
    let config = Config::from_lookup(|k| match k {
        "DATABASE_URL" => Some(db.url.clone()),
        "QUERY_TIMEOUT_MS" => Some("4321".to_owned()),
        _ => None,
    })
    .expect("config");
    let pool = tetcore_analytics::db::pool(&config);
    let mut conn = pool.get().expect("a query connection");
    let settings: Settings = sql_query(
        "SELECT current_setting('jit') AS jit, \
                current_setting('statement_timeout') AS statement_timeout",
    )
    .get_result(&mut conn)
    .unwrap();
    assert_eq!(settings.jit, "off");
    assert_eq!(settings.statement_timeout, "4321ms");
}
