//! `GET /nodes`: each peer's newest session, with the cache's view of its latest state.

use std::time::Duration;

use serde_json::Value;

use crate::common::{count_on, raw_request, wait_for, FakeNode, TestApp, TestDb};

fn connected(peer: &str, name: &str) -> String {
    format!(
        r#"{{"id":1,"payload":{{"msg":"system.connected","name":"{name}","chain":"Testnet","version":"2.0.0","implementation":"Tetcore Node","genesis_hash":"0x0a","authority":true,"startup_time":"1700000000000","network_id":"{peer}"}},"ts":"t"}}"#
    )
}

fn nodes(app: &TestApp) -> Vec<Value> {
    let (status, body) = app.get("/nodes");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn nodes_lists_each_peers_newest_session_with_its_latest_state() {
    let db = TestDb::new();
    let app = TestApp::start(
        &db,
        &[
            ("CACHE_UPDATE_INTERVAL_MS", "100"),
            ("DB_SAVE_LATENCY_MS", "20"),
        ],
    );
    // P1's first session, since closed.
    let mut old = FakeNode::connect(&app.url("/"));
    old.binary(&connected("12D3KooWP1", "first-life"));
    old.binary(r#"{"id":1,"payload":{"msg":"block.import","height":3,"best":"0x03","origin":"Own"},"ts":"t"}"#);
    wait_for("stored", Duration::from_secs(10), || app.stored() == 2);
    drop(old);
    // P1 again, live, and P2, which leaves.
    let mut p1 = FakeNode::connect(&app.url("/audit"));
    p1.binary(&connected("12D3KooWP1", "second-life"));
    p1.binary(r#"{"id":1,"payload":{"msg":"block.import","height":10,"best":"0x10","origin":"Own"},"ts":"t"}"#);
    p1.binary(
        r#"{"id":1,"payload":{"msg":"notify.finalized","height":"8","best":"0x08"},"ts":"t"}"#,
    );
    p1.binary(r#"{"id":1,"payload":{"msg":"system.interval","peers":5,"bandwidth_download":1,"bandwidth_upload":1},"ts":"t"}"#);
    p1.binary(r#"{"id":1,"payload":{"msg":"system.interval","height":10,"txcount":3,"finalized_height":8},"ts":"t"}"#);
    let mut p2 = FakeNode::connect(&app.url("/"));
    p2.binary(&connected("12D3KooWP2", "other"));
    p2.binary(r#"{"id":1,"payload":{"msg":"block.import","height":"not a number","origin":"Own"},"ts":"t"}"#);
    // A session that never said who it is is not listed.
    let mut anonymous = FakeNode::connect(&app.url("/"));
    anonymous.binary(r#"{"msg":"system.interval","peers":1}"#);
    wait_for("all stored", Duration::from_secs(10), || app.stored() == 10);
    drop(p2);
    wait_for(
        "the cache to see P1's state and P2 gone",
        Duration::from_secs(10),
        || {
            let list = nodes(&app);
            list.len() == 2 && list[0]["txcount"] == 3 && list[1]["connected"] == false
        },
    );
    let list = nodes(&app);
    let p1_view = &list[0];
    assert_eq!(p1_view["peer_id"], "12D3KooWP1");
    assert_eq!(p1_view["name"], "second-life", "the newest session");
    assert_eq!(p1_view["audit"], true);
    assert_eq!(p1_view["ip_addr"], "127.0.0.1");
    assert_eq!(p1_view["chain"], "Testnet");
    assert_eq!(p1_view["version"], "2.0.0");
    assert_eq!(p1_view["implementation"], "Tetcore Node");
    assert_eq!(p1_view["genesis_hash"], "0x0a");
    assert_eq!(p1_view["authority"], true);
    assert_eq!(p1_view["startup_time"], 1_700_000_000_000i64);
    assert_eq!(p1_view["best_height"], 10);
    assert_eq!(p1_view["finalized_height"], 8);
    assert_eq!(p1_view["peers"], 5);
    assert_eq!(p1_view["connected"], true);
    assert!(p1_view["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(p1_view["last_message_at"].as_str().unwrap().ends_with('Z'));
    let p2_view = &list[1];
    assert_eq!(p2_view["peer_id"], "12D3KooWP2");
    assert_eq!(
        p2_view["best_height"],
        Value::Null,
        "a non-numeric height is not a height"
    );
    assert_eq!(p2_view["connected"], false);
    assert_eq!(app.get("/nodes/").0, 200);
    // One peer only, asked by id.
    let (status, body) = app.get("/nodes?peer_id=12D3KooWP2");
    assert_eq!(status, 200);
    let one: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["peer_id"], "12D3KooWP2");
    assert_eq!(app.get("/nodes?peer_id=nobody").1, "[]");
    assert_eq!(app.get("/nodes?peer_id=").0, 400);
    let (_, metrics) = app.get("/metrics");
    assert!(metrics.contains("tetcore_cache_entries 4"), "{metrics}");
    assert!(metrics.contains("tetcore_cache_refresh_failures_total 0"));
    drop((p1, anonymous));
}

#[test]
fn nodes_is_503_with_a_json_error_while_the_database_is_away() {
    let db = TestDb::unreachable();
    let app = TestApp::start(&db, &[("CACHE_UPDATE_INTERVAL_MS", "100")]);
    let (status, body) = app.get("/nodes");
    assert_eq!(status, 503);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["error"].as_str().unwrap().contains("unavailable"));
    assert!(
        !body.contains("127.0.0.1:9"),
        "no connection details to the client"
    );
    wait_for(
        "a failed refresh is counted",
        Duration::from_secs(15),
        || app.metrics.cache_refresh_failures.get() > 0,
    );
}

#[test]
fn cache_entries_of_silent_sessions_expire() {
    let db = TestDb::new();
    let app = TestApp::start(
        &db,
        &[
            ("CACHE_UPDATE_INTERVAL_MS", "100"),
            ("CACHE_EXPIRY_S", "1"),
            ("DB_SAVE_LATENCY_MS", "20"),
        ],
    );
    let mut node = FakeNode::connect(&app.url("/"));
    node.binary(&connected("12D3KooWP3", "brief"));
    wait_for("an entry", Duration::from_secs(10), || {
        app.metrics.cache_entries.get() == 1
    });
    // Silent from now on: once its messages leave the refresh window, the entry goes.
    wait_for("the entry to expire", Duration::from_secs(20), || {
        app.metrics.cache_entries.get() == 0
    });
    drop(node);
}

/// Sends a peer's messages: two sessions, kinds in known proportions, one with a target.
fn fill_peer(app: &TestApp) {
    for life in ["one", "two"] {
        let mut node = FakeNode::connect(&app.url("/"));
        node.binary(&connected("12D3KooWLogs", life));
        for i in 0..3 {
            node.binary(&format!(
                r#"{{"id":1,"payload":{{"msg":"block.import","height":{i},"best":"0x0{i}","origin":"Own"}},"ts":"t"}}"#
            ));
        }
        node.binary(r#"{"id":1,"payload":{"msg":"tracing.profiling","target":"sc_service","name":"x","time":1},"ts":"t"}"#);
    }
    let mut other = FakeNode::connect(&app.url("/"));
    other.binary(&connected("12D3KooWElse", "else"));
    wait_for("stored", Duration::from_secs(10), || app.stored() == 11);
}

fn get_json(app: &TestApp, path: &str) -> (u16, Value) {
    let (status, body) = app.get(path);
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: {body}")),
    )
}

#[test]
fn log_stats_counts_a_peers_messages_by_kind_biggest_first() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[("DB_SAVE_LATENCY_MS", "20")]);
    fill_peer(&app);
    let (status, stats) = get_json(&app, "/nodes/log_stats?peer_id=12D3KooWLogs&ignored=1");
    assert_eq!(status, 200);
    assert_eq!(
        stats,
        serde_json::json!([
            {"qty": 6, "log_type": "block.import"},
            {"qty": 2, "log_type": "system.connected"},
            {"qty": 2, "log_type": "tracing.profiling"}
        ])
    );
    assert_eq!(
        get_json(&app, "/nodes/log_stats/?peer_id=unknown").1,
        serde_json::json!([])
    );
    let (status, error) = get_json(&app, "/nodes/log_stats");
    assert_eq!(status, 400);
    assert_eq!(error["param"], "peer_id");
}

#[test]
fn logs_filters_orders_newest_first_and_validates_every_parameter() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[("DB_SAVE_LATENCY_MS", "20")]);
    fill_peer(&app);
    let (status, all) = get_json(&app, "/nodes/logs?peer_id=12D3KooWLogs");
    assert_eq!(status, 200);
    let all = all.as_array().unwrap().clone();
    assert_eq!(
        all.len(),
        10,
        "both sessions of the peer, not the other peer"
    );
    let times: Vec<&str> = all
        .iter()
        .map(|r| r["created_at"].as_str().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    assert_eq!(
        all[0]["msg"], "tracing.profiling",
        "the last message sent comes first"
    );
    assert_eq!(all[0]["ip_addr"], "127.0.0.1");
    assert_eq!(all[0]["peer_id"], "12D3KooWLogs");
    assert_eq!(all[0]["logs"]["target"], "sc_service");
    assert!(all[0]["created_at"].as_str().unwrap().ends_with('Z'));

    let count = |query: &str| -> usize {
        let (status, rows) = get_json(&app, &format!("/nodes/logs/?peer_id=12D3KooWLogs&{query}"));
        assert_eq!(status, 200, "{query}");
        rows.as_array().unwrap().len()
    };
    assert_eq!(count("msg=block.import"), 6);
    assert_eq!(count("target=sc_service"), 2);
    assert_eq!(count("msg=block.import&limit=2"), 2);
    assert_eq!(count("limit=10000"), 10);
    assert_eq!(count("end_time=2000-01-01T00:00:00"), 0);
    assert_eq!(count("start_time=2000-01-01T00:00:00Z"), 10);
    assert_eq!(count("start_time=2999-01-01T00:00:00%2B01:00"), 0);
    // Every combination of filters is a statement of its own.
    assert_eq!(count("msg=tracing.profiling&target=sc_service"), 2);
    assert_eq!(count("msg=block.import&target=sc_service"), 0);
    assert_eq!(
        count("msg=block.import&start_time=2000-01-01T00:00:00Z&limit=5"),
        5
    );
    assert_eq!(
        count("target=sc_service&start_time=2999-01-01T00:00:00Z"),
        0
    );
    assert_eq!(
        count("msg=tracing.profiling&target=sc_service&start_time=2000-01-01T00:00:00Z"),
        2
    );

    for (query, param) in [
        ("", "peer_id"),
        ("peer_id=", "peer_id"),
        ("peer_id=x&limit=0", "limit"),
        ("peer_id=x&limit=10001", "limit"),
        ("peer_id=x&limit=many", "limit"),
        ("peer_id=x&start_time=yesterday", "start_time"),
        ("peer_id=x&end_time=2019-13-01T00:00:00", "end_time"),
    ] {
        let (status, error) = get_json(&app, &format!("/nodes/logs?{query}"));
        assert_eq!(status, 400, "{query}");
        assert_eq!(error["param"], param, "{query}");
        assert!(error["error"].as_str().unwrap().contains(param), "{query}");
    }
}

/// The reads of a node's messages are planned once per connection, not on every request:
/// planning them over every partition of `tetcore_logs` costs more than running them.
#[test]
fn a_nodes_message_reads_stay_prepared_on_their_connection() {
    use tetcore_analytics::db::queries::nodes;
    let db = TestDb::new();
    let app = TestApp::start(&db, &[("DB_SAVE_LATENCY_MS", "20")]);
    fill_peer(&app);
    let mut conn = db.conn();
    let now = chrono::Utc::now();
    for msg in [None, Some("block.import"), None, Some("block.import")] {
        let filter = nodes::LogFilter {
            peer_id: "12D3KooWLogs",
            msg,
            target: None,
            start: None,
            end: now,
            limit: 100,
        };
        let rows = nodes::logs(&mut conn, &filter).expect("logs");
        assert_eq!(rows.len(), if msg.is_some() { 6 } else { 10 });
        let day = chrono::Duration::days(1);
        let stats = nodes::log_stats(&mut conn, "12D3KooWLogs", now - day, now).expect("stats");
        assert_eq!(stats.iter().map(|s| s.qty).sum::<i64>(), 10);
        nodes::series(&mut conn, "12D3KooWLogs", now - day, now, 60.0).expect("series");
    }
    let kept = count_on(
        &mut conn,
        "SELECT count(*) FROM pg_prepared_statements \
         WHERE statement LIKE '%tetcore_logs%' AND NOT from_sql",
    );
    assert_eq!(
        kept, 4,
        "two kinds of log list, the stats and the series, each kept once"
    );
}

#[test]
fn stats_db_lists_our_tables_and_indexes_biggest_first() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[("DB_SAVE_LATENCY_MS", "20")]);
    fill_peer(&app);
    let (status, rows) = get_json(&app, "/stats/db/");
    assert_eq!(status, 200);
    let rows = rows.as_array().unwrap();
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["relation"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"peer_connections"));
    assert!(names.contains(&"peer_connections_pkey"));
    assert!(names
        .iter()
        .any(|n| n.starts_with("tetcore_logs_expiring_p")));
    let bytes: Vec<i64> = rows.iter().map(|r| r["bytes"].as_i64().unwrap()).collect();
    assert!(bytes.windows(2).all(|w| w[0] >= w[1]), "biggest first");
    assert!(rows[0]["size"].as_str().unwrap().contains("B"));
    assert!(rows
        .iter()
        .all(|r| r["rows_estimate"].as_i64().unwrap() >= 0));
}

#[test]
fn logs_returns_100_by_default() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[("DB_SAVE_LATENCY_MS", "20")]);
    let mut node = FakeNode::connect(&app.url("/"));
    node.binary(&connected("12D3KooWMany", "many"));
    for i in 0..150 {
        node.binary(&format!(
            r#"{{"id":1,"payload":{{"msg":"txpool.import","ready":{i}}},"ts":"t"}}"#
        ));
    }
    wait_for("stored", Duration::from_secs(10), || app.stored() == 151);
    let (status, rows) = get_json(&app, "/nodes/logs?peer_id=12D3KooWMany");
    assert_eq!(status, 200);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 100);
    assert_eq!(rows[0]["logs"]["ready"], 149, "the newest first");
}

#[test]
fn every_query_route_is_503_while_the_database_is_away() {
    let db = TestDb::unreachable();
    let app = TestApp::start(&db, &[]);
    for path in [
        "/nodes",
        "/nodes/log_stats?peer_id=x",
        "/nodes/logs?peer_id=x",
        "/stats/db",
        "/reputation",
        "/reputation/logged",
        "/reputation/x",
        "/host_systems",
        "/host_systems/1",
        "/benchmarks",
        "/benchmarks/1",
        "/benchmarks/1/nodes",
        "/benchmarks/1/log_stats",
    ] {
        let (status, body) = app.get(path);
        assert_eq!(status, 503, "{path}: {body}");
        assert!(body.contains("\"error\""), "{path}: {body}");
    }
    let (status, _) = app.post(
        "/host_systems",
        br#"{"cpu_clock":1,"cpu_qty":1,"description":"d","disk_info":"x","os":"y","ram_mb":1}"#,
    );
    assert_eq!(status, 503);
    // Client mistakes are still told as such.
    assert_eq!(app.get("/nodes/logs").0, 400);
}

#[test]
fn extreme_numbers_from_a_node_read_back_through_every_endpoint() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[("DB_SAVE_LATENCY_MS", "20")]);
    let mut node = FakeNode::connect(&app.url("/"));
    node.binary(
        r#"{"id":1,"payload":{"msg":"system.connected","name":"extreme","network_id":"12D3KooWExtreme","sysinfo":{"memory":1.7976931348623157e308,"core_count":18446744073709551615}},"ts":"t"}"#,
    );
    node.binary(
        r#"{"id":1,"payload":{"msg":"system.interval","peers":-1.7976931348623157e308,"bandwidth_upload":2.5e-218,"txcount":"12345678901234567890"},"ts":"t"}"#,
    );
    wait_for("both stored", Duration::from_secs(10), || app.stored() == 2);
    let (status, logs) = get_json(
        &app,
        "/nodes/logs?peer_id=12D3KooWExtreme&msg=system.interval",
    );
    assert_eq!(status, 200, "{logs}");
    let logs = &logs.as_array().unwrap()[0]["logs"];
    assert_eq!(logs["peers"], serde_json::json!(-1.7976931348623157e308));
    assert_eq!(logs["bandwidth_upload"], serde_json::json!(2.5e-218));
    wait_for(
        "the cache to hold the node",
        Duration::from_secs(10),
        || {
            get_json(&app, "/nodes")
                .1
                .to_string()
                .contains("12D3KooWExtreme")
        },
    );
    let (status, nodes) = get_json(&app, "/nodes?peer_id=12D3KooWExtreme");
    assert_eq!(status, 200, "{nodes}");
    assert_eq!(nodes[0]["name"], "extreme");
    let (status, stats) = get_json(&app, "/nodes/log_stats?peer_id=12D3KooWExtreme");
    assert_eq!((status, stats.as_array().unwrap().len()), (200, 2));
    assert_eq!(
        db.count(
            "SELECT count(*) FROM peer_connections \
             WHERE (sysinfo->>'memory')::float8 = 1.7976931348623157e308"
        ),
        1,
        "sysinfo is stored as sent"
    );
}

/// A session `peer` with one message of each state kind, received `age` ago (SQL interval).
fn insert_history(db: &TestDb, id: i64, peer: &str, age: &str, height: i64) {
    use diesel::RunQueryDsl;
    let mut conn = db.conn();
    diesel::sql_query(format!(
        "INSERT INTO peer_connections (id, ip_addr, created_at, peer_id, name) \
         VALUES ({id}, '10.0.0.{id}', now() - interval '{age}' - interval '1 second', '{peer}', '{peer}') \
         ON CONFLICT (id) DO NOTHING"
    ))
    .execute(&mut conn)
    .unwrap();
    diesel::sql_query(format!(
        "INSERT INTO tetcore_logs (peer_connection_id, created_at, audit, logs) \
         VALUES ({id}, now() - interval '{age}', false, '{{\"msg\":\"block.import\",\"height\":{height}}}')"
    ))
    .execute(&mut conn)
    .unwrap();
}

/// A session heard from `age` ago with the state a writer would have left for it.
fn insert_state(db: &TestDb, id: i64, peer: &str, age: &str, height: i64) {
    use diesel::RunQueryDsl;
    let mut conn = db.conn();
    diesel::sql_query(format!(
        "INSERT INTO peer_connections (id, ip_addr, created_at, peer_id, name) \
         VALUES ({id}, '10.0.0.{id}', now() - interval '{age}' - interval '1 second', '{peer}', '{peer}')"
    ))
    .execute(&mut conn)
    .unwrap();
    diesel::sql_query(format!(
        "INSERT INTO tetcore_node_state (peer_connection_id, last_message_at, best_height) \
         VALUES ({id}, now() - interval '{age}', {height})"
    ))
    .execute(&mut conn)
    .unwrap();
}

fn best_height(app: &TestApp, peer: &str) -> Option<i64> {
    nodes(app)
        .into_iter()
        .find(|n| n["peer_id"] == peer)
        .and_then(|n| n["best_height"].as_i64())
}

#[test]
fn the_cache_starts_from_every_state_heard_within_its_expiry() {
    let db = TestDb::new();
    // Before the start: nodes heard from 10 s, 20 minutes and 2 hours ago.
    insert_state(&db, 1, "12D3KooWRecent", "10 seconds", 7);
    insert_state(&db, 2, "12D3KooWEarlier", "20 minutes", 5);
    insert_state(&db, 3, "12D3KooWLongAgo", "2 hours", 3);
    let app = TestApp::start(
        &db,
        &[
            ("CACHE_UPDATE_INTERVAL_MS", "200"),
            ("CACHE_EXPIRY_S", "3600"),
        ],
    );
    wait_for("the first refresh", Duration::from_secs(10), || {
        best_height(&app, "12D3KooWRecent") == Some(7)
    });
    assert_eq!(best_height(&app, "12D3KooWEarlier"), Some(5));
    assert_eq!(
        best_height(&app, "12D3KooWLongAgo"),
        None,
        "beyond CACHE_EXPIRY_S"
    );
    assert_eq!(app.metrics.cache_entries.get(), 2);
    assert_eq!(app.metrics.cache_refresh_failures.get(), 0);
}

#[test]
fn the_writer_keeps_each_sessions_state_as_its_messages_tell_it() {
    let db = TestDb::new();
    let app = TestApp::start(
        &db,
        &[
            ("CACHE_UPDATE_INTERVAL_MS", "100"),
            ("DB_SAVE_LATENCY_MS", "20"),
        ],
    );
    let mut node = FakeNode::connect(&app.url("/"));
    node.binary(&connected("12D3KooWState", "stateful"));
    // In one batch and across batches: the newest value of each field wins, a message without
    // a field leaves it, and what is not a height is no height.
    for frame in [
        r#"{"id":1,"payload":{"msg":"block.import","height":5,"best":"0x05","origin":"Own"},"ts":"t"}"#,
        r#"{"id":1,"payload":{"msg":"block.import","height":7,"best":"0x07","origin":"Own"},"ts":"t"}"#,
        r#"{"id":1,"payload":{"msg":"notify.finalized","height":"6","best":"0x06"},"ts":"t"}"#,
        r#"{"id":1,"payload":{"msg":"system.interval","peers":3,"bandwidth_upload":1},"ts":"t"}"#,
    ] {
        node.binary(frame);
    }
    wait_for("stored", Duration::from_secs(10), || app.stored() == 5);
    node.binary(r#"{"id":1,"payload":{"msg":"system.interval","txcount":9,"height":99},"ts":"t"}"#);
    node.binary(
        r#"{"id":1,"payload":{"msg":"block.import","height":"eight","origin":"Own"},"ts":"t"}"#,
    );
    wait_for("stored", Duration::from_secs(10), || app.stored() == 7);
    let rows = db.json(
        "SELECT s.best_height, s.finalized_height, s.peers, s.txcount, \
                s.last_message_at = (SELECT max(created_at) FROM tetcore_logs) AS newest \
         FROM tetcore_node_state s",
    );
    assert_eq!(
        rows,
        vec![
            serde_json::json!({"best_height": 7, "finalized_height": 6, "peers": 3, "txcount": 9, "newest": true})
        ]
    );
    wait_for("the cache to follow", Duration::from_secs(10), || {
        let list = nodes(&app);
        list.len() == 1 && list[0]["txcount"] == 9
    });
    let view = &nodes(&app)[0];
    assert_eq!(view["best_height"], 7);
    assert_eq!(view["finalized_height"], 6);
    assert_eq!(view["peers"], 3);
    drop(node);
}

#[test]
fn log_stats_counts_the_last_day_unless_asked_for_more() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[]);
    insert_history(&db, 1, "12D3KooWOld", "3 days", 1);
    insert_history(&db, 1, "12D3KooWOld", "1 hour", 2);
    let count = |query: &str| {
        let (status, stats) = get_json(
            &app,
            &format!("/nodes/log_stats?peer_id=12D3KooWOld{query}"),
        );
        assert_eq!(status, 200, "{stats}");
        stats[0]["qty"].as_i64().unwrap_or(0)
    };
    assert_eq!(count(""), 1, "the last 24 hours by default");
    assert_eq!(count("&start_time=2000-01-01T00:00:00Z"), 2);
    let (status, error) = get_json(
        &app,
        "/nodes/log_stats?peer_id=12D3KooWOld&start_time=2030-01-01T00:00:00Z&end_time=2029-01-01T00:00:00Z",
    );
    assert_eq!((status, error["param"].as_str()), (400, Some("start_time")));
}

/// Objects of a JSON array answer, by `peer_id`.
fn peers_of(body: &str) -> Vec<Value> {
    serde_json::from_str::<Vec<Value>>(body).unwrap()
}

#[test]
fn nodes_answers_only_the_fields_pages_filters_and_changes_asked_for() {
    let db = TestDb::new();
    let app = TestApp::start(
        &db,
        &[
            ("CACHE_UPDATE_INTERVAL_MS", "100"),
            ("DB_SAVE_LATENCY_MS", "20"),
        ],
    );
    let import = |h: i64| {
        format!(
            r#"{{"id":1,"payload":{{"msg":"block.import","height":{h},"best":"0x01","origin":"Own"}},"ts":"t"}}"#
        )
    };
    let mut fleet = Vec::new();
    for (i, peer) in ["12D3KooWA", "12D3KooWB", "12D3KooWC"].iter().enumerate() {
        let mut node = FakeNode::connect(&app.url("/"));
        let hello = connected(peer, &format!("n{i}"));
        // The third node is on another chain.
        node.binary(&if i == 2 {
            hello.replace("Testnet", "Other")
        } else {
            hello
        });
        node.binary(&import(10 + i as i64));
        fleet.push(node);
    }
    wait_for(
        "the cache to know every height",
        Duration::from_secs(10),
        || {
            let list = nodes(&app);
            list.len() == 3 && list.iter().all(|n| n["best_height"].is_i64())
        },
    );

    // Every field by default, as always.
    let all = nodes(&app);
    assert_eq!(all.len(), 3);
    let keys: Vec<&str> = all[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = tetcore_analytics::api::nodes::NODE_FIELDS.to_vec();
    expected.sort_unstable();
    let mut keys_sorted = keys.clone();
    keys_sorted.sort_unstable();
    assert_eq!(
        keys_sorted, expected,
        "fields= names every field /nodes has"
    );

    // Only the fields asked for.
    let (status, body) = app.get("/nodes?fields=peer_id,best_height");
    assert_eq!(status, 200, "{body}");
    let slim = peers_of(&body);
    assert_eq!(
        slim[1],
        serde_json::json!({"peer_id": "12D3KooWB", "best_height": 11})
    );
    assert!(body.len() * 4 < serde_json::to_string(&all).unwrap().len());

    // Pages in peer_id order, with the total before paging.
    let page = raw_request(
        app.addr,
        "GET /nodes?fields=peer_id&limit=2&offset=1 HTTP/1.1\r\nHost: x\r\nConnection: close",
        b"",
    );
    assert_eq!(page.status, 200);
    assert_eq!(page.header("x-total-count"), Some("3"));
    assert_eq!(
        peers_of(&page.body),
        vec![
            serde_json::json!({"peer_id": "12D3KooWB"}),
            serde_json::json!({"peer_id": "12D3KooWC"})
        ]
    );
    assert_eq!(app.get("/nodes?offset=3").1, "[]");

    // Filters.
    let (_, body) = app.get("/nodes?chain=Other&fields=peer_id");
    assert_eq!(
        peers_of(&body),
        vec![serde_json::json!({"peer_id": "12D3KooWC"})]
    );

    // Only what changed since the last answer.
    let as_of = page.header("x-as-of").unwrap().to_owned();
    assert!(as_of.ends_with('Z'), "{as_of}");
    std::thread::sleep(Duration::from_millis(300));
    let (_, body) = app.get(&format!("/nodes?since={as_of}&fields=peer_id"));
    assert_eq!(body, "[]", "nothing changed yet");
    fleet[1].binary(&import(20));
    wait_for("B's new height, alone", Duration::from_secs(10), || {
        let (_, body) = app.get(&format!("/nodes?since={as_of}&fields=peer_id,best_height"));
        peers_of(&body) == vec![serde_json::json!({"peer_id": "12D3KooWB", "best_height": 20})]
    });
    // A node that leaves changes too, and `connected` filters.
    drop(fleet.pop());
    wait_for("C gone", Duration::from_secs(10), || {
        let (_, body) = app.get(&format!(
            "/nodes?since={as_of}&connected=false&fields=peer_id"
        ));
        peers_of(&body) == vec![serde_json::json!({"peer_id": "12D3KooWC"})]
    });
    let (_, body) = app.get("/nodes?connected=true&fields=peer_id");
    assert_eq!(peers_of(&body).len(), 2);

    // Every mistake is a 400 naming its parameter.
    for (query, param) in [
        ("fields=peer_id,nope", "fields"),
        ("fields=", "fields"),
        ("limit=0", "limit"),
        ("limit=100001", "limit"),
        ("offset=-1", "offset"),
        ("since=yesterday", "since"),
        ("connected=maybe", "connected"),
    ] {
        let (status, body) = app.get(&format!("/nodes?{query}"));
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(param), "{query}: {body}");
    }
}
