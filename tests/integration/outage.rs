//! PostgreSQL going away under 20 nodes sending as fast as their sockets take: nothing is lost,
//! memory stays bounded, nodes feel back-pressure, and new nodes can still connect.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::{sql_query, Connection, PgConnection, RunQueryDsl};

use crate::common::{wait_for, FakeNode, TestApp, TestDb};

/// A PostgreSQL cluster of the test's own (scripts/local-pg in a temporary directory), so it
/// can be stopped and started without touching anyone else's.
pub struct OwnCluster {
    pub dir: PathBuf,
    pub port: u16,
}

impl OwnCluster {
    pub fn start() -> OwnCluster {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("tetcore-pg-{}-{port}", std::process::id()));
        let cluster = OwnCluster { dir, port };
        cluster.run("start");
        cluster
    }

    /// The postmaster (first line of `postmaster.pid`) and every process it started.
    pub fn processes(&self) -> Vec<i32> {
        let pidfile = std::fs::read_to_string(self.dir.join("data/postmaster.pid")).unwrap();
        let postmaster: i32 = pidfile.lines().next().unwrap().trim().parse().unwrap();
        let mut pids = vec![postmaster];
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            if ppid == Some(postmaster) {
                pids.push(pid);
            }
        }
        pids
    }

    pub fn run(&self, action: &str) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/local-pg");
        let out = Command::new(script)
            .arg(action)
            .env("LOCAL_PG_DIR", &self.dir)
            .env("LOCAL_PG_PORT", self.port.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "local-pg {action}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn database(&self) -> TestDb {
        let server = format!("postgres://postgres@127.0.0.1:{}", self.port);
        let mut admin = PgConnection::establish(&format!("{server}/postgres")).unwrap();
        sql_query("CREATE DATABASE tetcore")
            .execute(&mut admin)
            .unwrap();
        let url = format!("{server}/tetcore");
        let mut conn = PgConnection::establish(&url).unwrap();
        tetcore_analytics::db::prepare(&mut conn, 24).unwrap();
        TestDb::foreign(url)
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        self.run("stop");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_20_second_outage_loses_nothing_and_the_queue_stays_bounded() {
    const NODES: usize = 20;
    const QUEUE_LIMIT: i64 = 1 << 20;
    let cluster = OwnCluster::start();
    let db = cluster.database();
    let limit = QUEUE_LIMIT.to_string();
    let app = TestApp::start(
        &db,
        &[
            ("WRITE_QUEUE_MAX_BYTES", limit.as_str()),
            ("DB_SAVE_LATENCY_MS", "50"),
            ("SHUTDOWN_TIMEOUT_S", "30"),
            // 20 nodes sending as fast as they can: the per-socket byte rate would stop them.
            ("WS_MAX_BYTES_PER_S", "0"),
        ],
    );
    let sending = Arc::new(AtomicBool::new(true));
    let sent = Arc::new(AtomicI64::new(0));
    let nodes: Vec<_> = (0..NODES)
        .map(|n| {
            let url = app.url("/");
            let (sending, sent) = (sending.clone(), sent.clone());
            std::thread::spawn(move || {
                let mut node = FakeNode::connect(&url);
                node.ws
                    .get_mut()
                    .set_write_timeout(Some(Duration::from_secs(60)))
                    .unwrap();
                node.binary(&format!(
                    r#"{{"id":1,"payload":{{"msg":"system.connected","name":"node-{n}","network_id":"12D3KooW{n}"}},"ts":"t"}}"#
                ));
                sent.fetch_add(1, Ordering::Relaxed);
                let mut i = 0;
                while sending.load(Ordering::Relaxed) {
                    let pad = "x".repeat(200);
                    node.binary(&format!(
                        r#"{{"id":1,"payload":{{"msg":"system.interval","i":{i},"pad":"{pad}"}},"ts":"t"}}"#
                    ));
                    sent.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
                node
            })
        })
        .collect();

    let watch = |until: Instant, max_queued: &mut i64| {
        while Instant::now() < until {
            *max_queued = (*max_queued).max(app.metrics.bytes_queued.get());
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let mut max_queued = 0;
    watch(Instant::now() + Duration::from_secs(2), &mut max_queued);
    let before_outage = app.stored();
    assert!(before_outage > 0, "the stream flows before the outage");

    cluster.run("stop");
    let outage = Instant::now();
    watch(outage + Duration::from_secs(8), &mut max_queued);
    // The queue is full and the sessions have stopped reading: received stands still.
    let received = app.metrics.messages_received.get();
    watch(Instant::now() + Duration::from_secs(2), &mut max_queued);
    assert_eq!(
        app.metrics.messages_received.get(),
        received,
        "sessions stop reading when the write queue is full"
    );
    // A new node can still connect.
    let mut late = FakeNode::connect(&app.url("/audit"));
    late.binary(r#"{"msg":"system.interval","late":1}"#);
    sent.fetch_add(1, Ordering::Relaxed);
    watch(outage + Duration::from_secs(20), &mut max_queued);
    cluster.run("start");
    late.binary(r#"{"msg":"system.interval","late":2}"#);
    sent.fetch_add(1, Ordering::Relaxed);
    watch(Instant::now() + Duration::from_secs(3), &mut max_queued);
    sending.store(false, Ordering::Relaxed);
    let nodes: Vec<FakeNode> = nodes.into_iter().map(|t| t.join().unwrap()).collect();
    let total = sent.load(Ordering::Relaxed) as u64;

    wait_for(
        "everything sent to be stored",
        Duration::from_secs(60),
        || app.stored() == total,
    );
    assert!(max_queued <= QUEUE_LIMIT, "{max_queued} bytes waited");
    assert!(max_queued > QUEUE_LIMIT / 2, "the outage filled the queue");
    assert!(app.metrics.db_retries.get() > 0);
    assert!(
        app.metrics
            .db_errors
            .with_label_values(&["connection", "retry"])
            .get()
            > 0
    );
    assert_eq!(app.dropped("db_rejected") + app.dropped("writer_gone"), 0);
    app.assert_ledger_balances();
    assert_eq!(db.count("SELECT count(*) FROM tetcore_logs"), total as i64);
    assert_eq!(
        db.count("SELECT count(*) FROM peer_connections"),
        NODES as i64 + 1
    );
    // In order per node: row ids follow the order each node sent in.
    assert_eq!(
        db.count(
            "SELECT count(*) FROM (SELECT (logs->>'i')::int - lag((logs->>'i')::int) \
             OVER (PARTITION BY peer_connection_id ORDER BY id) AS step \
             FROM tetcore_logs WHERE logs ? 'i') s WHERE step <> 1"
        ),
        0
    );
    drop(nodes);
    drop(late);
}
