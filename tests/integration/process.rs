//! The real binary as an operator runs it: signals, exit codes, logs.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::{http_get, metric, wait_for, FakeNode, TestDb};

/// The service binary, its address, and its log lines as they come.
pub struct Process {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: mpsc::Receiver<String>,
    /// The lines logged up to "listening".
    pub early: Vec<String>,
}

impl Process {
    pub fn start(database_url: &str, settings: &[(&str, &str)]) -> Process {
        Process::start_with(database_url, settings, |_| {})
    }

    /// As `start`, letting `prepare` change the command first.
    pub fn start_with(
        database_url: &str,
        settings: &[(&str, &str)],
        prepare: impl FnOnce(&mut Command),
    ) -> Process {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tetcore-analytics"));
        command
            .env_clear()
            .env("DATABASE_URL", database_url)
            .env("LISTEN_ADDR", "127.0.0.1")
            .env("PORT", "0")
            .env("NUM_THREADS", "2")
            .env("RUST_LOG", "info")
            .current_dir(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in settings {
            command.env(k, v);
        }
        prepare(&mut command);
        let mut child = command.spawn().expect("the binary starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut early = Vec::new();
        let addr = loop {
            let line = log
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("the service logs where it listens");
            if let Some(rest) = line.split("listening: addr=").nth(1) {
                break rest.split(' ').next().unwrap().parse().unwrap();
            }
            early.push(line);
        };
        Process {
            child,
            addr,
            log,
            early,
        }
    }

    pub fn signal(&self, name: &str) {
        let signal = match name {
            "TERM" => libc::SIGTERM,
            "INT" => libc::SIGINT,
            "KILL" => libc::SIGKILL,
            other => panic!("no signal {other}"),
        };
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill only sends a signal to the child this harness started.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "signal {name}");
    }

    /// Waits for the exit; returns its code and every log line.
    pub fn wait(mut self, limit: Duration) -> (Option<i32>, Vec<String>) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the service did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(100));
        let mut lines = std::mem::take(&mut self.early);
        lines.extend(self.log.try_iter());
        (status.code(), lines)
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    pub fn metric(&self, name: &str) -> f64 {
        metric(&http_get(self.addr, "/metrics").1, name)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sigterm_writes_every_message_held_in_memory_and_exits_0() {
    let db = TestDb::new();
    let service = Process::start(
        &db.url,
        &[
            ("DB_BATCH_SIZE", "100000"),
            ("DB_SAVE_LATENCY_MS", "3600000"),
            ("SHUTDOWN_TIMEOUT_S", "20"),
        ],
    );
    // Nodes that stay connected, as real ones do while a server stops.
    let mut nodes: Vec<FakeNode> = (0..5)
        .map(|_| FakeNode::connect(&service.url("/")))
        .collect();
    for i in 0..5000 {
        nodes[i % 5].binary(&format!(
            r#"{{"id":1,"payload":{{"msg":"system.interval","i":{i}}},"ts":"t"}}"#
        ));
    }
    wait_for("5000 messages in memory", Duration::from_secs(20), || {
        service.metric("tetcore_messages_received_total") == 5000.0
    });
    assert_eq!(service.metric("tetcore_rows_stored_total"), 0.0);
    assert_eq!(db.count("SELECT count(*) FROM tetcore_logs"), 0);
    let stopping = Instant::now();
    service.signal("TERM");
    let (code, log) = service.wait(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{log:#?}");
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "open sockets do not hold the shutdown up"
    );
    assert!(
        log.iter().any(|l| l.contains("SIGTERM received")),
        "{log:#?}"
    );
    assert!(log
        .iter()
        .any(|l| l.contains("all received messages written")));
    assert_eq!(db.count("SELECT count(*) FROM tetcore_logs"), 5000);
    assert_eq!(
        db.count("SELECT count(*) FROM peer_connections WHERE ended_at IS NULL"),
        0,
        "sessions are marked ended"
    );
    assert_eq!(
        db.count(
            "SELECT count(*) FROM tetcore_instances WHERE ended_at IS NOT NULL AND ended_by = id"
        ),
        1,
        "the instance records its clean stop"
    );
    drop(nodes);
}

#[test]
fn help_and_version_answer_without_a_database_and_unknown_arguments_are_refused() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tetcore-analytics"))
            .args(args)
            .env_clear()
            .output()
            .unwrap()
    };
    let help = run(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8(help.stdout).unwrap();
    for setting in tetcore_analytics::config::SETTINGS {
        assert!(text.contains(setting.name), "--help lacks {}", setting.name);
    }
    assert!(text.contains("default: 8080"), "{text}");
    let version = run(&["--version"]);
    assert_eq!(version.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(version.stdout).unwrap().trim(),
        format!("tetcore-analytics {}", env!("CARGO_PKG_VERSION"))
    );
    let unknown = run(&["--port", "9"]);
    assert_eq!(unknown.status.code(), Some(2));
    let error = String::from_utf8(unknown.stderr).unwrap();
    assert!(error.contains("\"--port\""), "{error}");
}

#[test]
fn the_binary_run_from_the_root_directory_serves_the_dashboard() {
    let db = TestDb::new();
    let service = Process::start_with(&db.url, &[], |command| {
        command.current_dir("/");
    });
    let (status, body) = http_get(service.addr, "/dashboard/");
    assert_eq!(status, 200);
    assert!(body.contains("<main id=\"view\""), "{body}");
    let (status, _) = http_get(service.addr, "/dashboard/app.js");
    assert_eq!(status, 200);
}

#[test]
fn the_sessions_of_a_killed_instance_are_ended_by_another_within_the_configured_time() {
    let db = TestDb::new();
    let timing = [
        ("INSTANCE_HEARTBEAT_S", "1"),
        ("INSTANCE_DEAD_AFTER_S", "3"),
    ];
    let victim = Process::start(&db.url, &timing);
    let survivor = Process::start(&db.url, &timing);
    let mut on_victim: Vec<FakeNode> = (0..4)
        .map(|_| FakeNode::connect(&victim.url("/")))
        .collect();
    let mut on_survivor = FakeNode::connect(&survivor.url("/"));
    for (i, node) in on_victim.iter_mut().enumerate() {
        node.binary(&format!(
            r#"{{"id":1,"payload":{{"msg":"system.connected","name":"v{i}"}},"ts":"t"}}"#
        ));
    }
    on_survivor.binary(r#"{"id":1,"payload":{"msg":"system.connected","name":"s"},"ts":"t"}"#);
    wait_for("five live sessions", Duration::from_secs(20), || {
        db.count("SELECT count(*) FROM peer_connections WHERE ended_at IS NULL") == 5
    });
    let (victim_id, survivor_id) = (
        db.count("SELECT min(id) FROM tetcore_instances"),
        db.count("SELECT max(id) FROM tetcore_instances"),
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM peer_connections WHERE instance_id = {victim_id}"
        )),
        4
    );
    victim.signal("KILL");
    let killed = Instant::now();
    wait_for(
        "the killed instance's sessions to be ended",
        Duration::from_secs(15),
        || {
            db.count(&format!(
                "SELECT count(*) FROM peer_connections WHERE instance_id = {victim_id} AND ended_at IS NULL"
            )) == 0
        },
    );
    // Dead after 3 s, noticed within a heartbeat (1 s) of that.
    assert!(
        killed.elapsed() < Duration::from_secs(8),
        "{:?}",
        killed.elapsed()
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM tetcore_instances WHERE id = {victim_id} \
             AND ended_by = {survivor_id} AND ended_at = heartbeat_at"
        )),
        1,
        "ended once, by the survivor, at its last heartbeat"
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM peer_connections p JOIN tetcore_instances i ON i.id = p.instance_id \
             WHERE i.id = {victim_id} AND p.ended_at = greatest(i.heartbeat_at, p.created_at)"
        )),
        4
    );
    assert_eq!(
        db.count("SELECT count(*) FROM peer_connections WHERE ended_at IS NULL"),
        1,
        "the survivor's own session stays live"
    );
    assert_eq!(survivor.metric("tetcore_instances_ended_total"), 1.0);
    drop(on_victim);
    drop(on_survivor);
}

#[test]
fn a_setting_that_does_not_parse_stops_the_start_naming_it() {
    let output = Command::new(env!("CARGO_BIN_EXE_tetcore-analytics"))
        .env_clear()
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:9/x")
        .env("DB_BATCH_SIZE", "many")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid DB_BATCH_SIZE"), "{stderr}");
    assert!(!stderr.contains("panicked"));
}

#[test]
fn start_up_waits_for_an_unreachable_database_without_exiting() {
    let service = Process::start_expecting_no_listen("postgres://postgres@127.0.0.1:9/none");
    let (code, log) = service;
    assert_eq!(code, None, "still running");
    assert!(
        log.iter()
            .any(|l| l.contains("database not ready, retrying")),
        "{log:#?}"
    );
}

impl Process {
    /// Starts the binary against a database that never answers and watches it for 3 s.
    fn start_expecting_no_listen(database_url: &str) -> (Option<i32>, Vec<String>) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tetcore-analytics"))
            .env_clear()
            .env("DATABASE_URL", database_url)
            .env("PORT", "0")
            .env("RUST_LOG", "info")
            .current_dir(std::env::temp_dir())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs(3));
        let code = child.try_wait().unwrap().and_then(|s| s.code());
        let _ = child.kill();
        let _ = child.wait();
        let mut text = String::new();
        use std::io::Read;
        let _ = child.stderr.take().unwrap().read_to_string(&mut text);
        (code, text.lines().map(str::to_owned).collect())
    }
}

/// The load generator is a client none of the service's code shares: every message it says it
/// sent must be stored, for every envelope, with one session per node id.
#[test]
fn the_load_generator_delivers_what_it_reports_in_every_envelope() {
    let db = TestDb::new();
    let app = crate::common::TestApp::start(
        &db,
        &[
            ("DB_SAVE_LATENCY_MS", "20"),
            ("HEARTBEAT_INTERVAL", "1"),
            ("CLIENT_TIMEOUT_S", "1"),
        ],
    );
    let mut total = 0;
    for (envelope, ids) in [("modern", 2), ("tracing", 2), ("slog", 1)] {
        let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .args(["--url", &app.url("/"), "--connections", "4", "--ids", "2"])
            .args(["--rate", "50", "--seconds", "1", "--threads", "2"])
            .args(["--envelope", envelope])
            .output()
            .unwrap();
        assert!(output.status.success());
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(report["connected"], 4, "{report}");
        assert_eq!(report["write_failures"], 0);
        let sent = report["sent"].as_u64().unwrap();
        assert!(
            sent >= 4 * ids * 40,
            "{envelope}: {sent} sent at 50/s per node"
        );
        total += sent;
        wait_for("all stored", Duration::from_secs(20), || {
            app.stored() == total
        });
    }
    assert_eq!(app.odd("unknown_msg") + app.odd("no_msg"), 0);
    assert_eq!(
        db.count("SELECT count(*) FROM peer_connections"),
        4 * 2 + 4 * 2 + 4
    );
    assert_eq!(
        db.count("SELECT count(*) FROM tetcore_logs WHERE logs ? 'lg_sent_us'"),
        total as i64
    );
}

/// Starts the binary with the open-file limits (soft, hard) set before it runs.
fn start_with_file_limit(db: &TestDb, soft: u64, hard: u64, settings: &[(&str, &str)]) -> Process {
    use std::os::unix::process::CommandExt;
    Process::start_with(&db.url, settings, move |command| {
        // SAFETY: only setrlimit runs between fork and exec; it allocates nothing.
        unsafe {
            command.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: soft as libc::rlim_t,
                    rlim_max: hard as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    })
}

/// The soft and hard "Max open files" of a running process.
fn open_file_limits(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

#[test]
fn the_open_file_limit_is_raised_to_the_hard_limit_and_a_cap_above_it_is_warned_about() {
    let db = TestDb::new();
    // A shell's usual soft limit under a roomy hard one: raised.
    let process = start_with_file_limit(&db, 256, 4096, &[("WS_MAX_CONNECTIONS", "1000")]);
    assert_eq!(open_file_limits(process.child.id()), (4096, 4096));
    process.signal("KILL");
    let (_, log) = process.wait(Duration::from_secs(20));
    assert!(
        log.iter().any(|l| l.contains("open-file limit: 4096")),
        "{log:#?}"
    );
    // A hard limit below the cap: the operator is told, naming the setting.
    let process = start_with_file_limit(&db, 256, 512, &[]);
    assert_eq!(open_file_limits(process.child.id()), (512, 512));
    process.signal("KILL");
    let (_, log) = process.wait(Duration::from_secs(20));
    assert!(
        log.iter()
            .any(|l| l.contains("WARN") && l.contains("WS_MAX_CONNECTIONS (20000)")),
        "{log:#?}"
    );
}
