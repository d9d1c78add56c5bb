//! The public endpoint's rules, through real sockets and HTTP: client addresses behind trusted
//! proxies, the allow-list, the per-connection limits, the connection caps, the write token and
//! CORS.

use std::time::{Duration, Instant};

use crate::common::{raw_request, wait_for, FakeNode, TestApp, TestDb};

fn interval(id: u64) -> String {
    format!(r#"{{"id":{id},"payload":{{"msg":"system.interval","peers":1}},"ts":"t"}}"#)
}

fn refused(app: &TestApp, reason: &str) -> u64 {
    app.metrics.ws_refused.with_label_values(&[reason]).get()
}

/// The address the session row of the only connection got.
fn stored_ip(db: &TestDb, app: &TestApp) -> String {
    wait_for("the session row", Duration::from_secs(10), || {
        app.stored() == 1
    });
    let rows = db.json("SELECT ip_addr AS ip FROM peer_connections");
    assert_eq!(rows.len(), 1);
    rows[0]["ip"].as_str().unwrap().to_owned()
}

#[test]
fn a_spoofed_forwarding_header_from_an_untrusted_peer_is_ignored() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[("TRUSTED_PROXIES", "10.0.0.0/8")]);
    let mut node = FakeNode::try_connect(
        &app.url("/"),
        &[
            ("X-Forwarded-For", "203.0.113.5"),
            ("Forwarded", "for=198.51.100.1"),
        ],
    )
    .unwrap();
    node.binary(&interval(1));
    assert_eq!(stored_ip(&db, &app), "127.0.0.1");
}

#[test]
fn a_trusted_proxys_header_names_the_client_read_from_the_right() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[("TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8")]);
    // The client claimed 6.6.6.6; the edge proxy appended the real address, an inner proxy its own.
    let mut node = FakeNode::try_connect(
        &app.url("/"),
        &[("X-Forwarded-For", "6.6.6.6, 203.0.113.5, 10.1.2.3")],
    )
    .unwrap();
    node.binary(&interval(1));
    assert_eq!(stored_ip(&db, &app), "203.0.113.5");

    let db = TestDb::new();
    let app = TestApp::start(
        &db,
        &[
            ("TRUSTED_PROXIES", "127.0.0.1"),
            ("TRUSTED_PROXY_HEADER", "forwarded"),
        ],
    );
    let mut node = FakeNode::try_connect(
        &app.url("/"),
        &[
            ("X-Forwarded-For", "6.6.6.6"),
            ("Forwarded", r#"for="[2001:db8::7]:4711";proto=https"#),
        ],
    )
    .unwrap();
    node.binary(&interval(1));
    assert_eq!(stored_ip(&db, &app), "2001:db8::7");
}

#[test]
fn a_malformed_forwarding_header_falls_back_to_the_socket_address() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[("TRUSTED_PROXIES", "127.0.0.1")]);
    let mut node = FakeNode::try_connect(
        &app.url("/"),
        &[("X-Forwarded-For", "203.0.113.5, not-an-address")],
    )
    .unwrap();
    node.binary(&interval(1));
    assert_eq!(stored_ip(&db, &app), "127.0.0.1");
}

#[test]
fn addresses_outside_the_allow_list_get_403_before_the_upgrade() {
    let db = TestDb::new();
    let app = TestApp::start(
        &db,
        &[
            ("ALLOWED_NODE_IPS", "192.0.2.0/24"),
            ("TRUSTED_PROXIES", "127.0.0.1"),
        ],
    );
    for _ in 0..3 {
        assert_eq!(FakeNode::try_connect(&app.url("/"), &[]).err(), Some(403));
    }
    assert_eq!(
        FakeNode::try_connect(&app.url("/audit"), &[]).err(),
        Some(403)
    );
    assert_eq!(refused(&app, "not_allowed"), 4);
    // Through the trusted proxy, an allowed client gets in: the list applies to the client.
    let mut node =
        FakeNode::try_connect(&app.url("/"), &[("X-Forwarded-For", "192.0.2.9")]).unwrap();
    node.binary(&interval(1));
    assert_eq!(stored_ip(&db, &app), "192.0.2.9");
    // The API is not behind the allow-list.
    assert_eq!(app.get("/nodes").0, 200);
}

#[test]
fn a_non_ascii_forwarding_header_cannot_borrow_an_allowed_address_from_forwarded() {
    let db = TestDb::new();
    let app = TestApp::start(
        &db,
        &[
            ("ALLOWED_NODE_IPS", "192.0.2.0/24"),
            ("TRUSTED_PROXIES", "127.0.0.1"),
        ],
    );
    // Behind nginx (which sets X-Forwarded-For), a client sends a header nginx passes on as it
    // is, naming an allowed address, and spoils the X-Forwarded-For it extends.
    // (Written by hand: WebSocket clients refuse to send such a header.) The status line is
    // all that is read.
    let upgrade = |extra: &str| -> String {
        use std::io::{BufRead, BufReader, Write};
        let mut stream = std::net::TcpStream::connect(app.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let request = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut status = String::new();
        BufReader::new(stream).read_line(&mut status).unwrap();
        status
    };
    let spoof = "X-Forwarded-For: 203.0.113.5\u{e9}\r\nForwarded: for=192.0.2.9";
    assert!(upgrade(spoof).starts_with("HTTP/1.1 403"));
    assert_eq!(refused(&app, "not_allowed"), 1);
    // The same request with a well-formed header from the proxy is let in.
    assert!(upgrade("X-Forwarded-For: 192.0.2.9").starts_with("HTTP/1.1 101"));
}

#[test]
fn the_21st_node_id_on_a_socket_is_dropped_and_counted() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[]);
    let mut node = FakeNode::connect(&app.url("/"));
    for id in 1..=21 {
        node.binary(&interval(id));
    }
    // Known ids keep working after the limit bit.
    node.binary(&interval(20));
    wait_for("all handled", Duration::from_secs(10), || {
        app.stored() + app.dropped("too_many_ids") == 22
    });
    app.settle();
    assert_eq!(app.stored(), 21);
    assert_eq!(app.dropped("too_many_ids"), 1);
    assert_eq!(db.count("SELECT count(*) FROM peer_connections"), 20);
    assert_eq!(
        db.count("SELECT count(*) FROM peer_connections WHERE telemetry_id = 21"),
        0
    );
    app.assert_ledger_balances();
}

#[test]
fn a_socket_over_the_byte_rate_is_closed_its_address_blocked_then_let_back_in() {
    let db = TestDb::new();
    let app = TestApp::start(
        &db,
        &[
            ("WS_MAX_BYTES_PER_S", "10000"),
            ("WS_RATE_WINDOW_S", "1"),
            ("WS_BLOCK_S", "2"),
        ],
    );
    let started = Instant::now();
    let mut fast = FakeNode::connect(&app.url("/"));
    let padding = "x".repeat(1000);
    let big =
        format!(r#"{{"id":1,"payload":{{"msg":"system.interval","pad":"{padding}"}},"ts":"t"}}"#);
    // 30 kB at once: three times what the window allows. Writes after the server closed the
    // socket may fail; that is the point.
    for _ in 0..30 {
        let _ = fast
            .ws
            .send(tungstenite::Message::binary(big.as_bytes().to_vec()));
    }
    let raw = fast.read_until_eof(Duration::from_secs(10));
    assert_eq!(crate::common::close_code(&raw), Some(1008));
    assert_eq!(app.closed("rate_limited"), 1);
    app.settle();
    // What arrived before the close was kept: about the window's worth, and all of it stored.
    let received = app.metrics.messages_received.get();
    assert!(received >= 9, "{received}");
    assert_eq!(app.stored(), received);
    app.assert_ledger_balances();
    assert_eq!(FakeNode::try_connect(&app.url("/"), &[]).err(), Some(403));
    assert_eq!(refused(&app, "blocked"), 1);
    wait_for("the block to end", Duration::from_secs(10), || {
        FakeNode::try_connect(&app.url("/"), &[]).is_ok()
    });
    assert!(started.elapsed() >= Duration::from_secs(2));
}

#[test]
fn connection_caps_answer_503_and_free_places_as_sockets_close() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[("WS_MAX_CONNECTIONS_PER_ADDRESS", "2")]);
    let a = FakeNode::connect(&app.url("/"));
    let _b = FakeNode::connect(&app.url("/audit"));
    assert_eq!(FakeNode::try_connect(&app.url("/"), &[]).err(), Some(503));
    assert_eq!(refused(&app, "address_full"), 1);
    drop(a);
    wait_for("a place to be freed", Duration::from_secs(10), || {
        FakeNode::try_connect(&app.url("/"), &[]).is_ok()
    });

    let db = TestDb::new();
    let app = TestApp::start(
        &db,
        &[
            ("WS_MAX_CONNECTIONS", "2"),
            ("WS_MAX_CONNECTIONS_PER_ADDRESS", "0"),
        ],
    );
    let _a = FakeNode::connect(&app.url("/"));
    let _b = FakeNode::connect(&app.url("/"));
    assert_eq!(FakeNode::try_connect(&app.url("/"), &[]).err(), Some(503));
    assert_eq!(refused(&app, "server_full"), 1);
    // The API stays reachable when the sockets are full.
    assert_eq!(app.get("/healthz").0, 200);
}

const HOST: &str = r#"{"description":"d","os":"linux","cpu_qty":4,"cpu_clock":3000,"ram_mb":8192,"disk_info":"ssd"}"#;

fn post(app: &TestApp, path: &str, auth: Option<&str>, body: &str) -> crate::common::Response {
    let auth = auth
        .map(|a| format!("\r\nAuthorization: {a}"))
        .unwrap_or_default();
    raw_request(
        app.addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}{auth}",
            body.len()
        ),
        body.as_bytes(),
    )
}

fn get(app: &TestApp, path: &str, extra: &str) -> crate::common::Response {
    raw_request(
        app.addr,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close{extra}"),
        b"",
    )
}

#[test]
fn writes_need_the_token_reads_do_not() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[("API_TOKEN", "t0ken-of-the-test")]);
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Basic dDB rZW4="),
        Some("Bearer "),
    ] {
        let r = post(&app, "/host_systems", auth, HOST);
        assert_eq!(r.status, 401, "{auth:?}: {}", r.body);
        assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
        assert!(r.body.contains("Authorization"), "{}", r.body);
    }
    assert_eq!(post(&app, "/benchmarks", None, "{}").status, 401);
    assert_eq!(get(&app, "/stats/db", "").status, 401);
    assert_eq!(db.count("SELECT count(*) FROM host_systems"), 0);

    let r = post(
        &app,
        "/host_systems",
        Some("Bearer t0ken-of-the-test"),
        HOST,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = get(
        &app,
        "/stats/db",
        "\r\nAuthorization: bearer t0ken-of-the-test",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    for path in ["/host_systems", "/benchmarks", "/nodes", "/reputation"] {
        assert_eq!(get(&app, path, "").status, 200, "{path}");
    }
}

#[test]
fn without_a_token_writes_are_open() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[]);
    assert_eq!(post(&app, "/host_systems", None, HOST).status, 201);
    assert_eq!(get(&app, "/stats/db", "").status, 200);
}

#[test]
fn cors_answers_only_allowed_origins() {
    let db = TestDb::new();
    let app = TestApp::start(
        &db,
        &[(
            "CORS_ALLOWED_ORIGINS",
            "https://dash.example, http://localhost:3000",
        )],
    );
    let r = get(&app, "/nodes", "\r\nOrigin: https://dash.example");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://dash.example")
    );
    let r = get(&app, "/nodes", "\r\nOrigin: https://evil.example");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
    let preflight = |origin: &str| {
        raw_request(
            app.addr,
            &format!(
                "OPTIONS /host_systems HTTP/1.1\r\nHost: x\r\nConnection: close\r\nOrigin: {origin}\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization, content-type"
            ),
            b"",
        )
    };
    let r = preflight("http://localhost:3000");
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    assert!(r
        .header("access-control-allow-headers")
        .unwrap()
        .contains("Authorization"));
    let r = preflight("https://evil.example");
    assert_eq!(r.status, 403);
    assert_eq!(r.header("access-control-allow-origin"), None);

    // None configured: no CORS headers at all.
    let db = TestDb::new();
    let app = TestApp::start(&db, &[]);
    let r = get(&app, "/nodes", "\r\nOrigin: https://dash.example");
    assert_eq!(r.header("access-control-allow-origin"), None);
}
