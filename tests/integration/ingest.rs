//! The ingest path end to end: real sockets in, rows in PostgreSQL out.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{close_code, recordings, wait_for, FakeNode, TestApp, TestDb};

fn connected_payload(frames: &[(String, String)]) -> Vec<Value> {
    frames
        .iter()
        .filter_map(|(_, p)| {
            let v: Value = serde_json::from_str(p.trim()).unwrap();
            let body = v.get("payload").cloned().unwrap_or(v);
            (body["msg"] == "system.connected").then_some(body)
        })
        .collect()
}

#[test]
fn every_recorded_scenario_is_stored_with_its_sessions() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[]);
    let recordings = recordings();
    assert!(recordings.len() >= 7, "all scenarios are recorded");
    let mut sent = 0;
    for (i, rec) in recordings.iter().enumerate() {
        // Alternate the endpoints (and their trailing slashes) so both modes see every era.
        let path = ["/", "/audit", "/audit/"][i % 3];
        let mut node = FakeNode::connect(&app.url(path));
        for (opcode, payload) in &rec.frames {
            assert_eq!(opcode, "binary", "recorded clients send binary frames");
            node.binary(payload);
            sent += 1;
        }
        drop(node);
    }
    wait_for("every frame stored", Duration::from_secs(20), || {
        app.stored() == sent
    });
    app.settle();
    app.assert_ledger_balances();
    assert_eq!(db.count("SELECT count(*) FROM tetcore_logs"), sent as i64);
    assert_eq!(
        db.count("SELECT count(*) FROM tetcore_logs WHERE logs->>'msg' IS NULL"),
        0,
        "logs->>'msg' works for every era"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM tetcore_logs WHERE logs ? 'payload'"),
        0,
        "envelopes are unwrapped"
    );

    // One session per (connection, id): the multiplexed recording carries two ids.
    let expected_sessions: usize = recordings
        .iter()
        .map(|r| {
            let mut ids: Vec<u64> = r
                .frames
                .iter()
                .map(|(_, p)| {
                    let v: Value = serde_json::from_str(p.trim()).unwrap();
                    v["id"].as_u64().unwrap_or(0)
                })
                .collect();
            ids.sort();
            ids.dedup();
            ids.len()
        })
        .sum();
    wait_for("all sessions ended", Duration::from_secs(10), || {
        db.count("SELECT count(*) FROM peer_connections WHERE ended_at IS NULL") == 0
    });
    assert_eq!(
        db.count("SELECT count(*) FROM peer_connections"),
        expected_sessions as i64
    );
    assert_eq!(
        db.count("SELECT count(*) FROM peer_connections WHERE ip_addr <> '127.0.0.1'"),
        0
    );

    // Every session's row carries what its system.connected said.
    let sessions = db.json(
        "SELECT p.*, (SELECT count(*) FROM tetcore_logs l WHERE l.peer_connection_id = p.id) AS rows, \
                (SELECT bool_and(l.audit = p.audit) FROM tetcore_logs l WHERE l.peer_connection_id = p.id) AS audit_consistent \
         FROM peer_connections p ORDER BY id",
    );
    // The columns a session row takes from system.connected, as one comparable string.
    let describe = |v: &Value, peer_id: &Value, startup: String| {
        format!(
            "{}|{peer_id}|{}|{}|{}|{}|{}|{startup}",
            v["name"],
            v["chain"],
            v["version"],
            v["implementation"],
            v["genesis_hash"],
            v["authority"]
        )
    };
    let expected: std::collections::HashSet<String> = recordings
        .iter()
        .flat_map(|r| connected_payload(&r.frames))
        .map(|c| {
            let startup = c["startup_time"].as_str().unwrap().to_owned();
            describe(&c, &c["network_id"], startup)
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for s in &sessions {
        assert_eq!(s["audit_consistent"], true);
        let row = describe(s, &s["peer_id"], s["startup_time"].to_string());
        assert!(expected.contains(&row), "{row} is what a node sent");
        seen.insert(row);
        assert!(s["created_at"].is_string() && s["connected_at"].is_string());
        assert!(s["ended_at"].is_string());
        assert!(s["rows"].as_i64().unwrap() > 0);
    }
    assert_eq!(seen, expected, "every system.connected has its session");
    assert!(db.count("SELECT count(*) FROM peer_connections WHERE audit") > 0);
    assert!(db.count("SELECT count(*) FROM peer_connections WHERE NOT audit") > 0);
    // Modern clients describe their machine.
    assert!(
        db.count("SELECT count(*) FROM peer_connections WHERE sysinfo->>'core_count' = '2' AND target_os = 'linux'")
            > 0
    );
    // The multiplexed socket: two sessions, ids 1 and 2, same connection time.
    let mux = db.json(
        "SELECT telemetry_id::text AS tid, name FROM peer_connections \
         WHERE id IN (SELECT peer_connection_id FROM tetcore_logs) AND telemetry_id > 1",
    );
    assert!(!mux.is_empty(), "telemetry id 2 has its own session");

    // The normalised forms, one per era.
    let flat = db.json(
        "SELECT logs FROM tetcore_logs WHERE logs->>'level' = 'INFO' AND logs->>'msg' = 'block.import' LIMIT 1",
    );
    assert_eq!(flat[0]["logs"]["height"], 1, "slog rows are stored as sent");
    assert!(flat[0]["logs"].get("id").is_none());
    let enveloped = db.json(
        "SELECT logs FROM tetcore_logs WHERE logs ? 'id' AND logs->>'msg' = 'notify.finalized' LIMIT 1",
    );
    assert!(enveloped[0]["logs"]["ts"]
        .as_str()
        .unwrap()
        .contains("+00:00"));
    assert_eq!(
        enveloped[0]["logs"]["height"], "0",
        "types are kept as sent"
    );
}

#[test]
fn text_frames_trailing_whitespace_and_routes_with_slashes_are_accepted() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[]);
    let mut live = FakeNode::connect(&app.url("/"));
    live.text("{\"msg\":\"system.interval\",\"peers\":3}\n \t");
    let mut audit = FakeNode::connect(&app.url("/audit/"));
    audit.text(
        r#"{"id":9,"payload":{"msg":"block.import","height":5},"ts":"2026-11-27T08:00:00+00:00"}"#,
    );
    wait_for("two rows", Duration::from_secs(10), || app.stored() == 2);
    assert_eq!(
        db.count("SELECT count(*) FROM tetcore_logs WHERE audit AND logs->>'id' = '9'"),
        1
    );
    assert_eq!(
        db.count("SELECT count(*) FROM tetcore_logs WHERE NOT audit AND (logs->>'peers')::int = 3"),
        1
    );
    assert_eq!(
        db.count("SELECT count(*) FROM peer_connections WHERE audit AND telemetry_id = 9"),
        1
    );
}

#[test]
fn messages_before_system_connected_are_kept_and_a_later_one_updates_the_row() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[("DB_SAVE_LATENCY_MS", "20")]);
    let mut node = FakeNode::connect(&app.url("/"));
    node.binary(r#"{"id":1,"payload":{"msg":"system.interval","peers":1},"ts":"t"}"#);
    wait_for("first row", Duration::from_secs(10), || app.stored() == 1);
    assert_eq!(
        db.count("SELECT count(*) FROM peer_connections WHERE name IS NULL AND peer_id IS NULL"),
        1
    );
    let connected = |name: &str| {
        format!(
            r#"{{"id":1,"payload":{{"msg":"system.connected","name":"{name}","chain":"c","network_id":"12D3KooWA","authority":false,"startup_time":"5","version":"1","implementation":"i","genesis_hash":"0x01","config":""}},"ts":"t"}}"#
        )
    };
    node.binary(&connected("first"));
    wait_for("connected stored", Duration::from_secs(10), || {
        app.stored() == 2
    });
    assert_eq!(
        db.count("SELECT count(*) FROM peer_connections WHERE name = 'first' AND peer_id = '12D3KooWA' AND startup_time = 5 AND NOT authority"),
        1
    );
    node.binary(&connected("restarted"));
    wait_for("update stored", Duration::from_secs(10), || {
        app.stored() == 3
    });
    assert_eq!(db.count("SELECT count(*) FROM peer_connections"), 1);
    assert_eq!(
        db.count("SELECT count(*) FROM peer_connections WHERE name = 'restarted'"),
        1
    );
    assert_eq!(
        db.count("SELECT count(DISTINCT peer_connection_id) FROM tetcore_logs"),
        1
    );
}

#[test]
fn a_node_that_never_answers_pings_stays_connected_while_it_sends() {
    let db = TestDb::new();
    let app = TestApp::start(
        &db,
        &[("HEARTBEAT_INTERVAL", "1"), ("CLIENT_TIMEOUT_S", "2")],
    );
    let mut node = FakeNode::connect(&app.url("/"));
    // Like a real client: writes every 500 ms and never reads, so pings go unanswered.
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(7) {
        node.binary(r#"{"id":1,"payload":{"msg":"system.interval","peers":2},"ts":"t"}"#);
        sent += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        started.elapsed() > Duration::from_secs(6),
        "over 3 × CLIENT_TIMEOUT_S"
    );
    wait_for("every message stored", Duration::from_secs(10), || {
        app.stored() == sent
    });
    assert_eq!(app.closed("timeout"), 0);
    assert_eq!(
        app.metrics
            .connections_open
            .with_label_values(&["live"])
            .get(),
        1
    );
    assert_eq!(db.count("SELECT count(*) FROM peer_connections"), 1);
    assert_eq!(
        db.count("SELECT count(*) FROM peer_connections WHERE ended_at IS NULL"),
        1,
        "the session is still live"
    );
}

#[test]
fn a_silent_client_is_disconnected_after_client_timeout() {
    let db = TestDb::new();
    let app = TestApp::start(
        &db,
        &[("HEARTBEAT_INTERVAL", "1"), ("CLIENT_TIMEOUT_S", "2")],
    );
    let mut node = FakeNode::connect(&app.url("/"));
    node.binary(r#"{"msg":"system.interval","peers":1}"#);
    let started = Instant::now();
    let raw = node.read_until_eof(Duration::from_secs(10));
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(1900),
        "closed after {after:?}"
    );
    assert!(raw.contains(&0x89), "the server pinged first");
    assert_eq!(close_code(&raw), Some(1001));
    wait_for("the timeout is counted", Duration::from_secs(5), || {
        app.closed("timeout") == 1
    });
    wait_for("the session ended", Duration::from_secs(5), || {
        db.count("SELECT count(*) FROM peer_connections WHERE ended_at IS NOT NULL") == 1
    });
}

#[test]
fn a_full_batch_is_written_without_waiting_for_the_latency() {
    let db = TestDb::new();
    let app = TestApp::start(
        &db,
        &[("DB_BATCH_SIZE", "10"), ("DB_SAVE_LATENCY_MS", "600000")],
    );
    let mut node = FakeNode::connect(&app.url("/"));
    for i in 0..25 {
        node.binary(&format!(r#"{{"msg":"txpool.import","ready":{i}}}"#));
    }
    wait_for("two full batches", Duration::from_secs(10), || {
        app.stored() == 20
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        app.stored(),
        20,
        "the last 5 wait for a full batch or the latency"
    );
    assert_eq!(app.metrics.messages_queued.get(), 5);
    assert_eq!(app.metrics.batch_rows.get_sample_count(), 2);
    assert_eq!(app.metrics.batch_rows.get_sample_sum(), 20.0);
    app.assert_ledger_balances();
}

#[test]
fn a_partial_batch_is_written_after_the_latency() {
    let db = TestDb::new();
    let app = TestApp::start(
        &db,
        &[("DB_BATCH_SIZE", "100000"), ("DB_SAVE_LATENCY_MS", "300")],
    );
    let mut node = FakeNode::connect(&app.url("/"));
    let sent_at = Instant::now();
    for i in 0..3 {
        node.binary(&format!(r#"{{"msg":"txpool.import","ready":{i}}}"#));
    }
    wait_for("the latency flush", Duration::from_secs(10), || {
        app.stored() == 3
    });
    assert!(sent_at.elapsed() >= Duration::from_millis(290));
    assert_eq!(app.metrics.batch_rows.get_sample_count(), 1);
    assert_eq!(db.count("SELECT count(*) FROM tetcore_logs"), 3);
}

#[test]
fn bad_frames_are_counted_by_reason_and_the_socket_survives() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[("DB_SAVE_LATENCY_MS", "20")]);
    let mut node = FakeNode::connect(&app.url("/"));
    node.binary("{\"msg\":\"block.import\",");
    node.text("not json at all");
    node.binary("[1,2,3]");
    node.text("42");
    node.raw_frame(0x1, true, &[0x7b, 0xff, 0xfe, 0x7d]); // text frame, not UTF-8
    node.binary(r#"{"id":1,"payload":{"msg":"brand.new.kind","x":1},"ts":"t"}"#);
    node.binary(r#"{"id":1,"payload":{"nomsg":true},"ts":"t"}"#);
    node.binary(r#"{"id":1,"payload":{"msg":"bad\u0000nul","":"\u0000"},"ts":"t"}"#);
    node.binary(r#"{"id":1,"payload":{"msg":"system.interval","peers":1},"ts":"t"}"#);
    wait_for("the good ones stored", Duration::from_secs(10), || {
        app.stored() == 4
    });
    assert_eq!(app.dropped("bad_json"), 3);
    assert_eq!(app.dropped("not_object"), 2);
    assert_eq!(app.odd("unknown_msg"), 1);
    assert_eq!(app.odd("no_msg"), 1);
    assert_eq!(app.odd("sanitized"), 1);
    assert_eq!(app.closed("protocol_error") + app.closed("oversize"), 0);
    assert_eq!(
        db.count("SELECT count(*) FROM tetcore_logs WHERE logs->>'_sanitized' = 'true' AND logs->>'msg' = E'bad\\uFFFDnul'"),
        1
    );
    app.settle();
    app.assert_ledger_balances();
    assert_eq!(app.metrics.messages_received.get(), 9);
}

#[test]
fn an_oversize_frame_closes_the_socket_with_1009_and_is_counted() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[("WS_MAX_PAYLOAD", "1024")]);
    let mut node = FakeNode::connect(&app.url("/"));
    node.binary(r#"{"msg":"system.interval","peers":1}"#);
    let big = format!(r#"{{"msg":"x","pad":"{}"}}"#, "a".repeat(2000));
    node.binary(&big);
    let raw = node.read_until_eof(Duration::from_secs(10));
    assert_eq!(close_code(&raw), Some(1009));
    wait_for("counted", Duration::from_secs(5), || {
        app.dropped("oversize") == 1 && app.stored() == 1
    });
    assert_eq!(app.closed("oversize"), 1);

    // Continuation frames that add up to too much are oversize too.
    let mut node = FakeNode::connect(&app.url("/"));
    node.raw_frame(0x2, false, &[b' '; 600]);
    node.raw_frame(0x0, true, &[b' '; 600]);
    let raw = node.read_until_eof(Duration::from_secs(10));
    assert_eq!(close_code(&raw), Some(1009));
    wait_for("counted", Duration::from_secs(5), || {
        app.dropped("oversize") == 2
    });

    // Other sockets are untouched and a fragmented message within the limit is one message.
    let mut node = FakeNode::connect(&app.url("/"));
    node.raw_frame(0x1, false, br#"{"msg":"system."#);
    node.raw_frame(0x0, true, br#"interval","peers":7}"#);
    wait_for("fragmented message stored", Duration::from_secs(10), || {
        app.stored() == 2
    });
    app.settle();
    app.assert_ledger_balances();
}

#[test]
fn a_nul_in_a_batch_of_a_thousand_costs_nothing() {
    let db = TestDb::new();
    let app = TestApp::start(
        &db,
        &[("DB_BATCH_SIZE", "1000"), ("DB_SAVE_LATENCY_MS", "60000")],
    );
    let mut node = FakeNode::connect(&app.url("/"));
    for i in 0..1000 {
        if i == 500 {
            node.binary(
                r#"{"id":1,"payload":{"msg":"system.interval","name":"a\u0000b"},"ts":"t"}"#,
            );
        } else {
            node.binary(&format!(
                r#"{{"id":1,"payload":{{"msg":"system.interval","i":{i}}},"ts":"t"}}"#
            ));
        }
    }
    wait_for("the batch", Duration::from_secs(20), || {
        app.stored() == 1000
    });
    assert_eq!(app.metrics.batch_rows.get_sample_count(), 1, "one batch");
    assert_eq!(app.dropped("db_rejected"), 0);
    assert_eq!(db.count("SELECT count(*) FROM tetcore_logs"), 1000);
}

#[test]
fn metrics_are_served_for_prometheus() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[("DB_SAVE_LATENCY_MS", "20")]);
    let mut node = FakeNode::connect(&app.url("/audit"));
    node.binary(r#"{"msg":"system.interval","peers":1}"#);
    wait_for("stored", Duration::from_secs(10), || app.stored() == 1);
    for path in ["/metrics", "/metrics/"] {
        let (status, body) = app.get(path);
        assert_eq!(status, 200);
        assert!(body.contains("tetcore_messages_received_total 1"), "{body}");
        assert!(body.contains("tetcore_rows_stored_total 1"));
        assert!(body.contains("tetcore_ws_connections_open{mode=\"audit\"} 1"));
        assert!(body.contains("tetcore_node_sessions_open{mode=\"audit\"} 1"));
        assert!(body.contains("tetcore_messages_dropped_total{reason=\"bad_json\"} 0"));
        assert!(body.contains("tetcore_db_batch_write_seconds_bucket"));
    }
}

#[test]
fn stopping_writes_everything_received_and_ends_the_sessions() {
    let db = TestDb::new();
    let app = TestApp::start(
        &db,
        &[
            ("DB_BATCH_SIZE", "100000"),
            ("DB_SAVE_LATENCY_MS", "600000"),
        ],
    );
    let mut nodes: Vec<FakeNode> = (0..3).map(|_| FakeNode::connect(&app.url("/"))).collect();
    for i in 0..50 {
        nodes[i % 3].binary(&format!(
            r#"{{"id":{i},"payload":{{"msg":"system.interval"}},"ts":"t"}}"#
        ));
    }
    wait_for("all 50 received", Duration::from_secs(10), || {
        app.metrics.messages_received.get() == 50
    });
    assert_eq!(app.stored(), 0, "nothing is due before the latency");
    let metrics = app.metrics.clone();
    let stop = std::thread::spawn(move || app.stop());
    // The nodes go away while the server waits for them, as they do on a real shutdown.
    std::thread::sleep(Duration::from_millis(200));
    drop(nodes);
    assert!(stop.join().unwrap(), "drained before the deadline");
    assert_eq!(metrics.rows_stored.get(), 50);
    assert_eq!(db.count("SELECT count(*) FROM tetcore_logs"), 50);
    assert_eq!(db.count("SELECT count(*) FROM peer_connections"), 50);
    assert_eq!(
        db.count("SELECT count(*) FROM peer_connections WHERE ended_at IS NULL"),
        0
    );
}

#[test]
fn the_upgrade_does_not_wait_for_the_database() {
    // A database that does not answer: nothing listens on port 9 of localhost.
    let db = crate::common::TestDb::unreachable();
    let app = TestApp::start(&db, &[]);
    let started = Instant::now();
    let mut node = FakeNode::connect(&app.url("/"));
    assert!(started.elapsed() < Duration::from_secs(2));
    node.binary(r#"{"msg":"system.interval","peers":1}"#);
    wait_for("received and queued", Duration::from_secs(5), || {
        app.metrics.messages_queued.get() == 1
    });
    assert_eq!(app.stored(), 0);
}

#[test]
fn two_instances_write_to_one_database_at_once() {
    let db = TestDb::new();
    let apps = [
        TestApp::start(
            &db,
            &[("DB_SAVE_LATENCY_MS", "10"), ("DB_BATCH_SIZE", "50")],
        ),
        TestApp::start(
            &db,
            &[("DB_SAVE_LATENCY_MS", "10"), ("DB_BATCH_SIZE", "50")],
        ),
    ];
    let senders: Vec<_> = (0..8)
        .map(|n| {
            let url = apps[n % 2].url(if n % 4 < 2 { "/" } else { "/audit" });
            std::thread::spawn(move || {
                let mut node = FakeNode::connect(&url);
                for id in 1..=2 {
                    node.binary(&format!(
                        r#"{{"id":{id},"payload":{{"msg":"system.connected","name":"n{n}-{id}","network_id":"12D3KooW{n}x{id}"}},"ts":"t"}}"#
                    ));
                }
                for i in 0..500 {
                    node.binary(&format!(
                        r#"{{"id":{},"payload":{{"msg":"block.import","height":{i}}},"ts":"t"}}"#,
                        1 + i % 2
                    ));
                }
                node
            })
        })
        .collect();
    let nodes: Vec<FakeNode> = senders.into_iter().map(|t| t.join().unwrap()).collect();
    wait_for(
        "both instances stored everything",
        Duration::from_secs(30),
        || apps[0].stored() + apps[1].stored() == 8 * 502,
    );
    assert!(apps[0].stored() > 0 && apps[1].stored() > 0);
    assert_eq!(db.count("SELECT count(*) FROM tetcore_logs"), 8 * 502);
    assert_eq!(db.count("SELECT count(*) FROM peer_connections"), 16);
    assert_eq!(
        db.count("SELECT count(DISTINCT peer_id) FROM peer_connections"),
        16
    );
    assert_eq!(
        db.count("SELECT count(*) FROM (SELECT peer_connection_id FROM tetcore_logs GROUP BY 1 HAVING count(*) = 251) s"),
        16,
        "each node session got exactly its own messages"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM peer_connections WHERE audit"),
        8
    );
    drop(nodes);
}

#[test]
fn never_reading_ping_flooders_are_closed_and_their_slots_come_back() {
    const FLOODERS: usize = 4;
    let db = TestDb::new();
    let app = TestApp::start(
        &db,
        &[
            ("HEARTBEAT_INTERVAL", "1"),
            ("CLIENT_TIMEOUT_S", "2"),
            ("WS_MAX_CONNECTIONS_PER_ADDRESS", "4"),
            // The flood must meet the write deadline, not the byte rate.
            ("WS_MAX_BYTES_PER_S", "0"),
        ],
    );
    // Each sends Pings (which owe it a Pong) as fast as it can and never reads, until its
    // writes stop going through; then it holds the connection open.
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|_| {
            let mut node = FakeNode::connect(&app.url("/"));
            std::thread::spawn(move || {
                use std::io::Write;
                use std::os::fd::AsRawFd;
                let stream = node.ws.get_mut();
                // A small receive window, so the Pongs back up quickly.
                let size: libc::c_int = 4096;
                // SAFETY: setsockopt reads `size` for the length given, on a socket we own.
                unsafe {
                    libc::setsockopt(
                        stream.as_raw_fd(),
                        libc::SOL_SOCKET,
                        libc::SO_RCVBUF,
                        (&size as *const libc::c_int).cast(),
                        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                    )
                };
                stream
                    .set_write_timeout(Some(Duration::from_secs(1)))
                    .unwrap();
                let mask = [1u8, 2, 3, 4];
                let mut ping = vec![0x89, 0x80 | 125];
                ping.extend_from_slice(&mask);
                ping.extend((0..125).map(|i| b'p' ^ mask[i % 4]));
                // Until the server cuts the connection (or the test gives up).
                let (mut pings, started) = (0u64, Instant::now());
                while started.elapsed() < Duration::from_secs(90) && stream.write_all(&ping).is_ok()
                {
                    pings += 1;
                }
                (node, pings, started.elapsed())
            })
        })
        .collect();
    // Every slot of the address is taken meanwhile.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(FakeNode::try_connect(&app.url("/"), &[]).err(), Some(503));
    // HTTP keeps answering while they flood.
    assert_eq!(app.get("/nodes").0, 200);
    // Closed once their Pongs stand still for CLIENT_TIMEOUT_S, after the socket buffers on both
    // sides filled (how long that takes is the machine's: this is not a timing test).
    wait_for(
        "the flooders to be closed as unwritable",
        Duration::from_secs(80),
        || app.closed("unwritable") == FLOODERS as u64,
    );
    let held: Vec<_> = flooders.into_iter().map(|f| f.join().unwrap()).collect();
    for (_, pings, lasted) in &held {
        assert!(*pings > 100, "it flooded");
        assert!(
            *lasted < Duration::from_secs(90),
            "the server cut the TCP connection, so its writes failed"
        );
    }
    assert_eq!(
        app.metrics
            .connections_open
            .with_label_values(&["live"])
            .get(),
        0
    );
    // The slots are back: a real node gets in and is stored.
    let mut node = FakeNode::connect(&app.url("/"));
    node.binary(r#"{"id":1,"payload":{"msg":"system.interval","peers":2},"ts":"t"}"#);
    wait_for("the new node's message", Duration::from_secs(10), || {
        app.stored() == 1
    });
    drop(held);
}

#[test]
fn everything_sent_before_a_fin_is_stored_however_far_behind_the_writer_was() {
    use diesel::{sql_query, Connection, RunQueryDsl};
    const CLIENTS: usize = 5;
    const MESSAGES: usize = 500;
    let db = TestDb::new();
    let app = TestApp::start(
        &db,
        &[
            // A tiny write queue: sessions are held back almost at once.
            ("WS_MAX_PAYLOAD", "1024"),
            ("WRITE_QUEUE_MAX_BYTES", "4096"),
            ("WS_MAX_BYTES_PER_S", "0"),
            ("DB_SAVE_LATENCY_MS", "20"),
        ],
    );
    // The writer cannot store anything while the messages table is locked.
    let url = db.url.clone();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let locker = std::thread::spawn(move || {
        let mut conn = diesel::PgConnection::establish(&url).unwrap();
        conn.transaction(|c| {
            sql_query("LOCK TABLE tetcore_logs IN ACCESS EXCLUSIVE MODE").execute(c)?;
            locked_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_secs(4));
            Ok::<_, diesel::result::Error>(())
        })
        .unwrap();
    });
    locked_rx.recv().unwrap();
    // Each client sends about 45 KB, which holds its session back; then, while it is held,
    // 30 KB more (less than actix-http reads ahead on its own) and FIN; then it waits for the
    // server to close.
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let url = app.url("/");
            std::thread::spawn(move || {
                let mut node = FakeNode::connect(&url);
                for i in 0..MESSAGES {
                    if i == 300 {
                        std::thread::sleep(Duration::from_millis(500));
                    }
                    node.binary(&format!(
                        r#"{{"id":1,"payload":{{"msg":"system.interval","node":{n},"i":{i},"pad":"{}"}},"ts":"t"}}"#,
                        "x".repeat(80)
                    ));
                }
                node.ws
                    .get_mut()
                    .shutdown(std::net::Shutdown::Write)
                    .unwrap();
                node.read_until_eof(Duration::from_secs(60));
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    locker.join().unwrap();
    let sent = (CLIENTS * MESSAGES) as u64;
    wait_for(
        "everything sent to be stored",
        Duration::from_secs(30),
        || app.stored() >= sent,
    );
    assert_eq!(app.stored(), sent);
    app.assert_ledger_balances();
    assert_eq!(app.closed("client"), CLIENTS as u64);
    assert_eq!(db.count("SELECT count(*) FROM tetcore_logs"), sent as i64);
}

#[test]
fn a_message_being_assembled_from_fragments_holds_write_budget() {
    let db = TestDb::new();
    let app = TestApp::start(
        &db,
        &[("WS_MAX_PAYLOAD", "65536"), ("DB_SAVE_LATENCY_MS", "20")],
    );
    let queued = || app.metrics.bytes_queued.get();
    let mut node = FakeNode::connect(&app.url("/"));
    let text = format!(
        r#"{{"msg":"system.interval","pad":"{}"}}"#,
        "x".repeat(30_000)
    );
    let (head, rest) = text.as_bytes().split_at(20_000);
    let (middle, tail) = rest.split_at(5_000);
    node.raw_frame(0x2, false, head);
    node.raw_frame(0x0, false, middle);
    wait_for(
        "the fragments to take budget",
        Duration::from_secs(10),
        || queued() == 25_000,
    );
    node.raw_frame(0x0, true, tail);
    wait_for("the whole message stored", Duration::from_secs(10), || {
        app.stored() == 1
    });
    assert_eq!(queued(), 0, "the budget is given back");
    // A message whose last fragment never comes: its budget comes back and it is counted.
    node.raw_frame(0x2, false, head);
    wait_for(
        "the fragment to take budget",
        Duration::from_secs(10),
        || queued() == 20_000,
    );
    drop(node);
    wait_for("the connection to end", Duration::from_secs(10), || {
        app.closed("client") == 1
    });
    assert_eq!(queued(), 0);
    assert_eq!(app.dropped("protocol_error"), 1);
    app.assert_ledger_balances();
}
