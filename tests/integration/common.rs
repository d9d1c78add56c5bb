//! Test harness: a database per test (cloned from a migrated template), the real service on a
//! port chosen by the OS in its own actix system, and fake nodes speaking real WebSocket.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use diesel::{sql_query, Connection, QueryableByName, RunQueryDsl};
use tetcore_analytics::config::Config;
use tetcore_analytics::metrics::Metrics;
use tetcore_analytics::{db, drain, start};
use tungstenite::{Message, WebSocket};

/// The server under which tests create their databases.
pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:54329".to_owned())
        .trim_end_matches('/')
        .to_owned()
}

fn admin() -> PgConnection {
    let url = format!("{}/postgres", server_url());
    PgConnection::establish(&url).unwrap_or_else(|e| {
        panic!("tests need PostgreSQL at {url} (run scripts/test, or set TEST_DATABASE_URL): {e}")
    })
}

/// A name for the template that changes whenever the migrations do.
fn template_name() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut files: Vec<_> = walk(&dir);
    files.sort();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for file in files {
        for byte in file
            .to_string_lossy()
            .bytes()
            .chain(std::fs::read(&file).unwrap())
        {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3);
        }
    }
    format!("tetcore_test_template_{hash:016x}")
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// A database of its own for one test, dropped with it.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub fn new() -> TestDb {
        let template = template_name();
        let mut admin = admin();
        // One process at a time checks or builds the template.
        sql_query("SELECT pg_advisory_lock(7464)")
            .execute(&mut admin)
            .unwrap();
        if !database_exists(&mut admin, &template) {
            // Built under another name and renamed when complete, so a run that dies half-way
            // never leaves a half-made template behind.
            let building = format!("{template}_building");
            sql_query(format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                .execute(&mut admin)
                .unwrap();
            sql_query(format!("CREATE DATABASE {building}"))
                .execute(&mut admin)
                .unwrap();
            let mut conn =
                PgConnection::establish(&format!("{}/{building}", server_url())).unwrap();
            db::prepare(&mut conn, 24).expect("migrations apply to an empty database");
            drop(conn);
            sql_query(format!("ALTER DATABASE {building} RENAME TO {template}"))
                .execute(&mut admin)
                .unwrap();
        }
        sql_query("SELECT pg_advisory_unlock(7464)")
            .execute(&mut admin)
            .unwrap();
        let name = format!(
            "tetcore_test_{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        sql_query(format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut admin)
            .unwrap();
        // CREATE DATABASE ... TEMPLATE fails while another session uses the template.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match sql_query(format!("CREATE DATABASE {name} TEMPLATE {template}"))
                .execute(&mut admin)
            {
                Ok(_) => break,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("cannot clone the template: {e}"),
            }
        }
        let url = format!("{}/{name}", server_url());
        let mut conn = PgConnection::establish(&url).unwrap();
        db::prepare(&mut conn, 24).expect("the clone is prepared");
        TestDb { name, url }
    }

    /// Not a database at all: a URL nothing answers, for tests of a missing database.
    pub fn unreachable() -> TestDb {
        TestDb::foreign("postgres://postgres@127.0.0.1:9/none".to_owned())
    }

    /// A database this harness did not create and will not drop.
    pub fn foreign(url: String) -> TestDb {
        TestDb {
            name: String::new(),
            url,
        }
    }

    pub fn conn(&self) -> PgConnection {
        let mut conn = PgConnection::establish(&self.url).unwrap();
        // The test's own checks are not cut short by a statement_timeout a test sets on the role.
        sql_query("SET statement_timeout = 0")
            .execute(&mut conn)
            .unwrap();
        conn
    }

    pub fn count(&self, sql: &str) -> i64 {
        count_on(&mut self.conn(), sql)
    }

    /// Rows of a query as JSON objects (`SELECT json_agg(...)` of it).
    pub fn json(&self, sql: &str) -> Vec<serde_json::Value> {
        #[derive(QueryableByName)]
        struct Rows {
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Jsonb>)]
            rows: Option<serde_json::Value>,
        }
        let row: Rows = sql_query(format!("SELECT json_agg(q)::jsonb AS rows FROM ({sql}) q"))
            .get_result(&mut self.conn())
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        match row.rows {
            Some(serde_json::Value::Array(rows)) => rows,
            _ => Vec::new(),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.name.is_empty() {
            return;
        }
        let _ = sql_query(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin());
    }
}

/// A query's one number, named `n`.
#[derive(QueryableByName)]
pub struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub n: i64,
}

/// The number a query answers (one row, one column), on a connection the caller holds: what
/// the connection itself sees, its session state included.
pub fn count_on(conn: &mut PgConnection, sql: &str) -> i64 {
    let row: Count = sql_query(format!("SELECT ({sql})::bigint AS n"))
        .get_result(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    row.n
}

fn database_exists(conn: &mut PgConnection, name: &str) -> bool {
    #[derive(QueryableByName)]
    struct Exists {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        exists: bool,
    }
    sql_query(format!(
        "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{name}') AS exists"
    ))
    .get_result::<Exists>(conn)
    .unwrap()
    .exists
}

/// Registers a new instance in the database, as the binary does at start.
pub fn register(url: &str) -> i64 {
    let mut conn = PgConnection::establish(url).expect("database for registering");
    db::register_instance(&mut conn).expect("instance registered")
}

/// `register`, or 0 for a database that cannot be reached (tests of an absent database).
fn try_register(url: &str) -> i64 {
    PgConnection::establish(url)
        .ok()
        .and_then(|mut conn| db::register_instance(&mut conn).ok())
        .unwrap_or(0)
}

/// The real service, running in a thread of its own.
pub struct TestApp {
    pub addr: SocketAddr,
    pub metrics: Metrics,
    stopper: tetcore_analytics::Stopper,
    thread: Option<JoinHandle<bool>>,
}

impl TestApp {
    /// Starts the service on `db` with the given settings on top of the test defaults.
    pub fn start(db: &TestDb, settings: &[(&str, &str)]) -> TestApp {
        let _ = env_logger::builder().is_test(true).try_init();
        let mut env: HashMap<String, String> = [
            ("DATABASE_URL", db.url.as_str()),
            ("LISTEN_ADDR", "127.0.0.1"),
            ("PORT", "0"),
            ("NUM_THREADS", "2"),
            ("DB_POOL_SIZE", "4"),
            ("SHUTDOWN_TIMEOUT_S", "5"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in settings {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        let config = Config::from_lookup(|k| env.get(k).cloned()).expect("test config is valid");
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix::System::new().block_on(async move {
                let pool = db::pool(&config);
                let instance = try_register(&config.database_url);
                let service = start(&config, pool, instance).expect("service starts");
                tx.send((
                    service.addrs[0],
                    service.metrics.clone(),
                    service.stopper.clone(),
                ))
                .unwrap();
                let _ = service.server.await;
                drain(&service.writers, config.shutdown_timeout).await
            })
        });
        let (addr, metrics, stopper) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("service started");
        TestApp {
            addr,
            metrics,
            stopper,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Stops like SIGTERM would; returns whether everything received was written in time.
    pub fn stop(mut self) -> bool {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> bool {
        let Some(thread) = self.thread.take() else {
            return true;
        };
        let stopper = self.stopper.clone();
        std::thread::spawn(move || actix::System::new().block_on(stopper.stop()));
        thread.join().unwrap_or(false)
    }

    /// Waits until nothing received is left unwritten.
    pub fn settle(&self) {
        wait_for("the write queue to empty", Duration::from_secs(20), || {
            self.metrics.messages_queued.get() == 0
        });
    }

    pub fn stored(&self) -> u64 {
        self.metrics.rows_stored.get()
    }

    pub fn dropped(&self, reason: &str) -> u64 {
        self.metrics
            .messages_dropped
            .with_label_values(&[reason])
            .get()
    }

    pub fn odd(&self, reason: &str) -> u64 {
        self.metrics.messages_odd.with_label_values(&[reason]).get()
    }

    pub fn closed(&self, reason: &str) -> u64 {
        self.metrics
            .connections_closed
            .with_label_values(&[reason])
            .get()
    }

    /// received = stored + dropped + queued, the ledger every message is in.
    pub fn assert_ledger_balances(&self) {
        let m = &self.metrics;
        let dropped: u64 = tetcore_analytics::metrics::DropReason::ALL
            .iter()
            .map(|r| self.dropped(r.label()))
            .sum();
        let queued = u64::try_from(m.messages_queued.get()).expect("queued is never negative");
        assert_eq!(
            m.messages_received.get(),
            m.rows_stored.get() + dropped + queued,
            "received = stored + dropped + queued"
        );
    }

    /// GET over plain HTTP/1.1; returns (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.addr, path)
    }

    /// POST a JSON body; returns (status, body).
    pub fn post(&self, path: &str, body: &[u8]) -> (u16, String) {
        http(self.addr, "POST", path, Some(body))
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

/// An HTTP response as a test reads it.
pub struct Response {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Writes `head` (request line and headers, without the blank line) and `body` as they are, for
/// requests no well-behaved client would send; reads the whole response.
pub fn raw_request(addr: SocketAddr, head: &str, body: &[u8]) -> Response {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The server may answer and close before reading it all; that is not our failure.
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(b"\r\n\r\n");
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    if let Err(e) = stream.read_to_end(&mut raw) {
        // A reset (the server closed with our request unread) may swallow its answer; a timeout
        // is a hang.
        assert!(
            !raw.is_empty() || e.kind() == std::io::ErrorKind::ConnectionReset,
            "no response within 10 s to {:?} (error {e})",
            &head[..head.len().min(200)]
        );
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// GET over plain HTTP/1.1; returns (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http(addr, "GET", path, None)
}

/// One HTTP/1.1 request (with a JSON body if given); returns (status, body).
pub fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&[u8]>) -> (u16, String) {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close");
    if let Some(body) = body {
        head.push_str(&format!(
            "\r\nContent-Type: application/json\r\nContent-Length: {}",
            body.len()
        ));
    }
    let response = raw_request(addr, &head, body.unwrap_or_default());
    (response.status, response.body)
}

/// The value of an unlabelled sample in Prometheus text.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in the metrics"))
}

/// Polls `condition` until it holds; panics naming `what` after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A node: a WebSocket client that, like the real ones, never reads unless told to.
pub struct FakeNode {
    pub ws: WebSocket<TcpStream>,
}

impl FakeNode {
    pub fn connect(url: &str) -> FakeNode {
        FakeNode::try_connect(url, &[])
            .unwrap_or_else(|status| panic!("the server refused the socket: {status}"))
    }

    /// Opens a socket with extra request headers; `Err(status)` when the server refuses it.
    pub fn try_connect(url: &str, headers: &[(&str, &str)]) -> Result<FakeNode, u16> {
        use tungstenite::client::IntoClientRequest;
        let mut request = url.into_client_request().unwrap();
        for (k, v) in headers {
            request.headers_mut().append(
                tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let addr = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        match tungstenite::client(request, stream) {
            Ok((ws, _)) => Ok(FakeNode { ws }),
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
                Err(response.status().as_u16())
            }
            Err(e) => panic!("handshake failed: {e}"),
        }
    }

    pub fn binary(&mut self, payload: &str) {
        self.ws
            .send(Message::binary(payload.as_bytes().to_vec()))
            .unwrap();
    }

    pub fn text(&mut self, payload: &str) {
        self.ws.send(Message::text(payload)).unwrap();
    }

    /// Writes a raw, masked frame (for what tungstenite will not send, like non-UTF-8 text).
    pub fn raw_frame(&mut self, opcode: u8, fin: bool, payload: &[u8]) {
        let mut frame = vec![(if fin { 0x80 } else { 0 }) | opcode];
        let len = payload.len();
        if len < 126 {
            frame.push(0x80 | len as u8);
        } else if len <= 0xffff {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
        let mask = [0x12, 0x34, 0x56, 0x78];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.ws.get_mut().write_all(&frame).unwrap();
    }

    /// Reads raw bytes (bypassing tungstenite, so no pong is ever sent) until the server closes
    /// the TCP connection; returns what arrived. Panics if it stays open past `limit`.
    pub fn read_until_eof(&mut self, limit: Duration) -> Vec<u8> {
        let stream = self.ws.get_mut();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            assert!(Instant::now() < deadline, "the server kept the socket open");
            match stream.read(&mut buf) {
                Ok(0) => return seen,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return seen,
            }
        }
    }
}

/// The close code in the first Close frame among raw server frames (which are unmasked).
pub fn close_code(raw: &[u8]) -> Option<u16> {
    let mut rest = raw;
    while rest.len() >= 2 {
        let opcode = rest[0] & 0x0f;
        let (len, header) = match rest[1] & 0x7f {
            126 => (u16::from_be_bytes([rest[2], rest[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(rest[2..10].try_into().ok()?) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        let payload = rest.get(header..header + len)?;
        if opcode == 0x8 {
            return (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
        }
        rest = &rest[header + len..];
    }
    None
}

/// One recorded connection of `../shared/telemetry/real-frames.jsonl`.
pub struct Recording {
    pub scenario: String,
    pub conn: u64,
    /// (opcode name, exact payload text)
    pub frames: Vec<(String, String)>,
}

pub fn recordings() -> Vec<Recording> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/telemetry/real-frames.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out: Vec<Recording> = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["event"] != "frame" {
            continue;
        }
        let scenario = v["scenario"].as_str().unwrap().to_owned();
        let conn = v["conn"].as_u64().unwrap();
        let frame = (
            v["opcode_name"].as_str().unwrap().to_owned(),
            v["payload"].as_str().unwrap().to_owned(),
        );
        match out
            .iter_mut()
            .find(|r| r.scenario == scenario && r.conn == conn)
        {
            Some(r) => r.frames.push(frame),
            None => out.push(Recording {
                scenario,
                conn,
                frames: vec![frame],
            }),
        }
    }
    out
}
