//! Database faults that leave PostgreSQL answering (or frozen) under a steady stream from 10
//! nodes: every fault keeps the batch whole, and the rows are counted exactly afterwards (no
//! loss, no duplicate, every socket kept). Only a row PostgreSQL refuses for its content is
//! dropped (`writer.rs`).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::{sql_query, RunQueryDsl};

use crate::common::{server_url, wait_for, FakeNode, TestApp, TestDb};
use crate::outage::OwnCluster;

const NODES: usize = 10;
const PER_SECOND: u64 = 20;

/// `NODES` nodes, each sending `PER_SECOND` numbered messages a second until stopped.
struct Stream {
    sending: Arc<AtomicBool>,
    sent: Arc<AtomicI64>,
    threads: Vec<JoinHandle<FakeNode>>,
}

impl Stream {
    fn start(app: &TestApp) -> Stream {
        let sending = Arc::new(AtomicBool::new(true));
        let sent = Arc::new(AtomicI64::new(0));
        let threads = (0..NODES)
            .map(|n| {
                let url = app.url("/");
                let (sending, sent) = (sending.clone(), sent.clone());
                std::thread::spawn(move || {
                    let mut node = FakeNode::connect(&url);
                    node.binary(&format!(
                        r#"{{"id":1,"payload":{{"msg":"system.connected","name":"node-{n}","network_id":"12D3KooW{n}"}},"ts":"t"}}"#
                    ));
                    sent.fetch_add(1, Ordering::Relaxed);
                    let period = Duration::from_micros(1_000_000 / PER_SECOND);
                    let mut next = Instant::now();
                    let mut i = 0;
                    while sending.load(Ordering::Relaxed) {
                        node.binary(&format!(
                            r#"{{"id":1,"payload":{{"msg":"system.interval","i":{i}}},"ts":"t"}}"#
                        ));
                        sent.fetch_add(1, Ordering::Relaxed);
                        i += 1;
                        next += period;
                        std::thread::sleep(next.saturating_duration_since(Instant::now()));
                    }
                    node
                })
            })
            .collect();
        Stream {
            sending,
            sent,
            threads,
        }
    }

    /// Stops sending; returns the nodes (sockets still open) and how many messages they sent.
    fn stop(self) -> (Vec<FakeNode>, u64) {
        self.sending.store(false, Ordering::Relaxed);
        let nodes = self
            .threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        (nodes, self.sent.load(Ordering::Relaxed) as u64)
    }
}

/// Runs the stream for 3 s, then `fault` (which returns once the fault is over), then 3 s more,
/// and checks that every message is stored exactly once and no socket was closed.
fn survives(app: &TestApp, db: &TestDb, fault: impl FnOnce()) {
    let stream = Stream::start(app);
    wait_for("the stream to flow", Duration::from_secs(10), || {
        app.stored() > 100
    });
    fault();
    std::thread::sleep(Duration::from_secs(3));
    let closed: u64 = ["client", "timeout", "oversize", "protocol", "rate_limited"]
        .iter()
        .map(|r| app.closed(r))
        .sum();
    assert_eq!(closed, 0, "no socket was closed during the fault");
    let (nodes, sent) = stream.stop();
    wait_for(
        "everything sent to be stored",
        Duration::from_secs(60),
        || app.stored() >= sent,
    );
    assert_eq!(app.stored(), sent);
    assert_eq!(app.dropped("db_rejected") + app.dropped("writer_gone"), 0);
    app.assert_ledger_balances();
    assert_eq!(db.count("SELECT count(*) FROM tetcore_logs"), sent as i64);
    assert_eq!(
        db.count(
            "SELECT count(*) FROM (SELECT DISTINCT peer_connection_id, logs->>'msg', logs->>'i' \
             FROM tetcore_logs) d"
        ),
        sent as i64,
        "no message is stored twice"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM peer_connections"),
        NODES as i64,
        "one session per node, never created twice"
    );
    drop(nodes);
}

fn retried(app: &TestApp, class: &str) -> u64 {
    app.metrics
        .db_errors
        .with_label_values(&[class, "retry"])
        .get()
}

fn admin_exec(url: &str, sql: &str) {
    use diesel::Connection;
    let mut conn = diesel::PgConnection::establish(url).unwrap();
    sql_query(sql)
        .execute(&mut conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Ends the writer's connections to `db` (as a failover or a restart would).
fn terminate_writer(db: &TestDb) -> usize {
    #[derive(diesel::QueryableByName)]
    struct Ended {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        #[allow(dead_code)]
        ended: bool,
    }
    let sql = format!(
        "SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity \
         WHERE datname = '{}' AND application_name = 'tetcore-analytics writer'",
        db.name
    );
    let rows: Vec<Ended> = sql_query(sql).load(&mut db.conn()).unwrap();
    rows.len()
}

fn fast_retries() -> Vec<(&'static str, &'static str)> {
    vec![
        ("DB_SAVE_LATENCY_MS", "50"),
        ("DB_WRITE_TIMEOUT_MS", "2000"),
        ("DB_CONNECT_TIMEOUT_S", "1"),
        ("SHUTDOWN_TIMEOUT_S", "30"),
    ]
}

#[test]
fn read_only_for_15_seconds_loses_and_duplicates_nothing() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &fast_retries());
    survives(&app, &db, || {
        // A failover to a standby: connections drop, new ones find the database read-only.
        let admin = format!("{}/postgres", server_url());
        admin_exec(
            &admin,
            &format!(
                "ALTER DATABASE {} SET default_transaction_read_only = on",
                db.name
            ),
        );
        terminate_writer(&db);
        std::thread::sleep(Duration::from_secs(15));
        admin_exec(
            &admin,
            &format!(
                "ALTER DATABASE {} RESET default_transaction_read_only",
                db.name
            ),
        );
    });
    assert!(retried(&app, "25") > 0, "read-only (class 25) was retried");
}

#[test]
fn an_access_exclusive_lock_held_15_seconds_loses_nothing() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &fast_retries());
    survives(&app, &db, || {
        use diesel::Connection;
        let mut conn = db.conn();
        conn.transaction(|c| {
            sql_query("LOCK TABLE tetcore_logs IN ACCESS EXCLUSIVE MODE").execute(c)?;
            std::thread::sleep(Duration::from_secs(15));
            Ok::<_, diesel::result::Error>(())
        })
        .unwrap();
    });
    assert!(
        retried(&app, "55") + retried(&app, "57") + retried(&app, "timeout") > 0,
        "the lock wait was cut off and retried"
    );
}

#[test]
fn a_statement_timeout_on_the_role_shorter_than_a_batch_does_not_stop_ingest() {
    let db = TestDb::new();
    // 1 ms: no batch commits within it. Set for this database only, so other tests are spared.
    admin_exec(
        &format!("{}/postgres", server_url()),
        &format!(
            "ALTER ROLE CURRENT_USER IN DATABASE {} SET statement_timeout = '1ms'",
            db.name
        ),
    );
    let app = TestApp::start(&db, &fast_retries());
    survives(&app, &db, || std::thread::sleep(Duration::from_secs(5)));
}

#[test]
fn the_writers_backend_terminated_again_and_again_loses_and_duplicates_nothing() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &fast_retries());
    let mut terminated = 0;
    survives(&app, &db, || {
        let until = Instant::now() + Duration::from_secs(8);
        while Instant::now() < until {
            terminated += terminate_writer(&db);
            std::thread::sleep(Duration::from_millis(137));
        }
    });
    assert!(
        terminated > 10,
        "the writer was terminated {terminated} times"
    );
    assert!(retried(&app, "57") + retried(&app, "connection") > 0);
}

#[test]
fn a_lost_commit_answer_is_resolved_without_loss_or_duplicate() {
    let db = TestDb::new();
    let proxy = CommitCutter::start();
    // Without TLS, so the proxy can read the protocol.
    let url = db.url.replace(
        server_url().trim_start_matches("postgres://postgres@"),
        &format!("127.0.0.1:{}", proxy.port),
    ) + "?sslmode=disable";
    assert_ne!(url, db.url, "the writer goes through the proxy");
    let mut settings = fast_retries();
    let url_setting = url.clone();
    settings.push(("DATABASE_URL", url_setting.leak()));
    let app = TestApp::start(&db, &settings);
    survives(&app, &db, || {
        // Cut connections at COMMIT: half after PostgreSQL got it (stored, answer lost), half
        // before (not stored).
        proxy.cuts.store(6, Ordering::Relaxed);
        wait_for("six commits to be cut", Duration::from_secs(60), || {
            proxy.cuts.load(Ordering::Relaxed) == 0
        });
    });
    assert!(retried(&app, "connection") >= 6);
}

/// A TCP proxy to PostgreSQL that, while `cuts` > 0, cuts the writer's connection at a `COMMIT`
/// (simple query): on odd counts after forwarding it, on even counts before.
struct CommitCutter {
    port: u16,
    cuts: Arc<AtomicUsize>,
}

impl CommitCutter {
    fn start() -> CommitCutter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cuts = Arc::new(AtomicUsize::new(0));
        let upstream = server_url()
            .trim_start_matches("postgres://")
            .rsplit('@')
            .next()
            .unwrap()
            .to_owned();
        let c = cuts.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let c = c.clone();
                std::thread::spawn(move || forward_frontend(client, server, c));
            }
        });
        CommitCutter { port, cuts }
    }
}

/// Client → server: whole protocol messages, watching for `Q COMMIT`; server → client on a
/// thread of its own, stopped (`muted`) at a cut.
fn forward_frontend(client: TcpStream, mut to: TcpStream, cuts: Arc<AtomicUsize>) {
    let (Ok(mut from), Ok(mut server_r), Ok(mut client_w)) =
        (client.try_clone(), to.try_clone(), client.try_clone())
    else {
        return;
    };
    let muted = Arc::new(AtomicBool::new(false));
    let m = muted.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        loop {
            let n = match server_r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if m.load(Ordering::SeqCst) || client_w.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = client_w.shutdown(Shutdown::Both);
    });
    let read_exact = |s: &mut TcpStream, n: usize| -> Option<Vec<u8>> {
        let mut v = vec![0u8; n];
        s.read_exact(&mut v).ok().map(|_| v)
    };
    // Start-up: untyped, length first (an SSLRequest first is answered by the server). Only
    // the writer's connections are cut.
    let mut startup = true;
    let mut writer = false;
    loop {
        let message = if startup {
            let Some(len) = read_exact(&mut from, 4) else {
                break;
            };
            let n = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            let Some(body) = read_exact(&mut from, n.saturating_sub(4)) else {
                break;
            };
            // SSLRequest / GSSENCRequest: the real start-up message follows.
            startup = n == 8;
            writer |= body
                .windows(b"tetcore-analytics writer".len())
                .any(|w| w == b"tetcore-analytics writer");
            [len, body].concat()
        } else {
            let Some(head) = read_exact(&mut from, 5) else {
                break;
            };
            let n = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
            let Some(body) = read_exact(&mut from, n.saturating_sub(4)) else {
                break;
            };
            let commit = writer && head[0] == b'Q' && body == b"COMMIT\0";
            let message = [head, body].concat();
            if commit {
                let left = cuts.load(Ordering::SeqCst);
                if left > 0 {
                    cuts.store(left - 1, Ordering::SeqCst);
                    muted.store(true, Ordering::SeqCst);
                    if left % 2 == 1 {
                        // PostgreSQL gets the COMMIT; the answer never reaches the writer.
                        let _ = to.write_all(&message);
                    }
                    let _ = client.shutdown(Shutdown::Both);
                    std::thread::sleep(Duration::from_millis(300));
                    let _ = to.shutdown(Shutdown::Both);
                    return;
                }
            }
            message
        };
        if to.write_all(&message).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = client.shutdown(Shutdown::Both);
}

#[test]
fn postgres_frozen_for_15_seconds_loses_and_duplicates_nothing() {
    let cluster = OwnCluster::start();
    let db = cluster.database();
    let app = TestApp::start(&db, &fast_retries());
    survives(&app, &db, || {
        let pids = cluster.processes();
        assert!(!pids.is_empty());
        signal(&pids, libc::SIGSTOP);
        std::thread::sleep(Duration::from_secs(15));
        signal(&pids, libc::SIGCONT);
    });
    assert!(
        retried(&app, "timeout") > 0,
        "the frozen server cost deadlines"
    );
}

fn signal(pids: &[i32], sig: i32) {
    for pid in pids {
        // SAFETY: kill only sends a signal to a process of the test's own cluster.
        unsafe { libc::kill(*pid, sig) };
    }
}

#[test]
fn the_tablespace_of_the_messages_full_then_freed_loses_and_duplicates_nothing() {
    use std::process::Command;
    // SAFETY: geteuid only reads the process's credentials.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: mounting a small file system for the tablespace needs root");
        return;
    }
    let cluster = OwnCluster::start();
    let db = cluster.database();
    // A 32 MiB file system for the partition the stream writes into, owned by the server.
    let space = cluster.dir.join("small-space");
    std::fs::create_dir_all(&space).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=32m,mode=0700", "tmpfs"])
        .arg(&space)
        .status()
        .unwrap();
    assert!(
        mounted.success(),
        "mount a tmpfs (root without CAP_SYS_ADMIN?)"
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(space.clone());
    let chowned = Command::new("chown")
        .args(["postgres:", space.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(chowned.success());
    let url = db.url.clone();
    admin_exec(
        &url,
        &format!("CREATE TABLESPACE small LOCATION '{}'", space.display()),
    );
    // The partitions the next minutes are written into (two when a day's boundary is near).
    let parts: Vec<String> = db
        .json(
            "SELECT name FROM tetcore_log_partitions() \
             WHERE hi > now() AND lo < now() + interval '5 minutes'",
        )
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(!parts.is_empty(), "a partition for now exists");
    for part in &parts {
        admin_exec(&url, &format!("ALTER TABLE {part} SET TABLESPACE small"));
    }
    let app = TestApp::start(&db, &fast_retries());
    let filler = space.join("filler");
    survives(&app, &db, || {
        // Fill what is left of the file system (as postgres: root may write past the limit).
        let filled = Command::new("runuser")
            .args(["-u", "postgres", "--", "dd", "if=/dev/zero", "bs=64k"])
            .arg(format!("of={}", filler.display()))
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&filled.stderr).contains("No space left"),
            "the file system is full"
        );
        std::thread::sleep(Duration::from_secs(15));
        std::fs::remove_file(&filler).unwrap();
    });
    assert!(retried(&app, "53") > 0, "disk full (class 53) was retried");
    drop(app);
    for part in &parts {
        admin_exec(
            &url,
            &format!("ALTER TABLE {part} SET TABLESPACE pg_default"),
        );
    }
    admin_exec(&url, "DROP TABLESPACE small");
}
