//! loadgen: a fleet of fake nodes for benchmarks and soak tests.
//!
//! Opens N WebSocket connections (each carrying K node ids), opens every id with
//! `system.connected`, then sends the real message mix of `../shared/PROTOCOL.md` as masked
//! binary frames, paced per node or as fast as the socket takes. Like a real client it never
//! reads while sending, so pings go unanswered. At the end it waits for the server to close the
//! idle connection (`CLIENT_TIMEOUT_S` later), so every message it counts has been read. Each payload carries `lg_sent_us` (send
//! time, µs since the epoch) for receive-to-commit latency. Prints one JSON line of what it sent.
//!
//! ```text
//! loadgen --url ws://127.0.0.1:8080/ --connections 100 --ids 1 --rate 0 --seconds 30
//!         [--envelope modern|tracing|slog] [--threads 2] [--connect-per-second 2000]
//! ```

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::rt::net::TcpStream;
use actix_web::rt::time::{sleep, sleep_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const USAGE: &str = "usage: loadgen --url ws://HOST:PORT/PATH [--connections 100] [--ids 1] \
[--rate 0 (messages/s per node id; 0 = full speed)] [--seconds 30] \
[--envelope modern|tracing|slog] [--threads CPUs] [--connect-per-second 2000]";

#[derive(Clone, Copy, PartialEq)]
enum Envelope {
    Modern,
    Tracing,
    Slog,
}

#[derive(Clone)]
struct Args {
    host: String,
    path: String,
    connections: usize,
    ids: u64,
    /// Messages per second per node id; 0 = as fast as the socket takes.
    rate: f64,
    seconds: f64,
    envelope: Envelope,
    threads: usize,
    connect_per_second: f64,
}

#[derive(Default)]
struct Stats {
    sent: u64,
    bytes: u64,
    connected: u64,
    connect_failures: u64,
    write_failures: u64,
}

impl Stats {
    fn add(&mut self, other: &Stats) {
        self.sent += other.sent;
        self.bytes += other.bytes;
        self.connected += other.connected;
        self.connect_failures += other.connect_failures;
        self.write_failures += other.write_failures;
    }
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        host: "127.0.0.1:8080".into(),
        path: "/".into(),
        connections: 100,
        ids: 1,
        rate: 0.0,
        seconds: 30.0,
        envelope: Envelope::Modern,
        threads: num_cpus::get().max(1),
        connect_per_second: 2000.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.to_owned());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .ok_or_else(|| format!("{flag}: {v:?} is not a non-negative number"))
        };
        match flag.as_str() {
            "--url" => {
                let rest = value
                    .strip_prefix("ws://")
                    .ok_or("--url must start with ws://")?;
                let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
                args.host = host.to_owned();
                args.path = format!("/{path}");
            }
            "--connections" => args.connections = number(&value)? as usize,
            "--ids" => args.ids = (number(&value)? as u64).max(1),
            "--rate" => args.rate = number(&value)?,
            "--seconds" => args.seconds = number(&value)?,
            "--threads" => args.threads = (number(&value)? as usize).max(1),
            "--connect-per-second" => args.connect_per_second = number(&value)?.max(1.0),
            "--envelope" => {
                args.envelope = match value.as_str() {
                    "modern" => Envelope::Modern,
                    "tracing" => Envelope::Tracing,
                    "slog" => Envelope::Slog,
                    other => return Err(format!("--envelope: unknown era {other:?}")),
                }
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.envelope == Envelope::Slog {
        args.ids = 1; // the flat format has no ids
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let threads: Vec<_> = (0..args.threads)
        .map(|t| {
            let args = args.clone();
            std::thread::spawn(move || actix_web::rt::System::new().block_on(run_share(args, t)))
        })
        .collect();
    let mut total = Stats::default();
    for thread in threads {
        match thread.join() {
            Ok(stats) => total.add(&stats),
            Err(_) => eprintln!("loadgen: a thread failed"),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{{\"url\":\"ws://{}{}\",\"connections\":{},\"ids_per_connection\":{},\"rate_per_node\":{},\"seconds\":{:.3},\"connected\":{},\"sent\":{},\"bytes\":{},\"messages_per_second\":{:.0},\"connect_failures\":{},\"write_failures\":{}}}",
        args.host,
        args.path,
        args.connections,
        args.ids,
        args.rate,
        seconds,
        total.connected,
        total.sent,
        total.bytes,
        total.sent as f64 / seconds.max(1e-9),
        total.connect_failures,
        total.write_failures
    );
    ExitCode::SUCCESS
}

/// This thread's share of the connections, opened at the connect rate.
async fn run_share(args: Args, thread: usize) -> Stats {
    let mine: Vec<usize> = (thread..args.connections).step_by(args.threads).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(args.seconds);
    let gap = Duration::from_secs_f64(args.threads as f64 / args.connect_per_second);
    let mut tasks = Vec::with_capacity(mine.len());
    for n in mine {
        let args = args.clone();
        tasks.push(actix_web::rt::spawn(node(args, n, deadline)));
        sleep(gap).await;
    }
    let mut stats = Stats::default();
    for task in tasks {
        if let Ok(s) = task.await {
            stats.add(&s);
        }
    }
    stats
}

/// One connection: handshake, then messages until the deadline.
async fn node(args: Args, n: usize, deadline: tokio::time::Instant) -> Stats {
    let mut stats = Stats::default();
    let mut stream = match handshake(&args).await {
        Ok(s) => s,
        Err(e) => {
            if n < 3 {
                eprintln!("loadgen: connection {n}: {e}");
            }
            stats.connect_failures = 1;
            return stats;
        }
    };
    stats.connected = 1;
    let mut mask = (n as u32).wrapping_mul(2_654_435_761) | 1;
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut text = String::with_capacity(512);
    for id in 1..=args.ids {
        text.clear();
        connected(&mut text, &args, n, id);
        frame(&mut buf, text.as_bytes(), &mut mask);
        stats.sent += 1;
    }
    let per_node = if args.rate > 0.0 {
        Some(Duration::from_secs_f64(1.0 / (args.rate * args.ids as f64)))
    } else {
        None
    };
    let mut next = tokio::time::Instant::now();
    let mut seq: u64 = 0;
    loop {
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        match per_node {
            // Paced: one message per step, written as it is made, like a node.
            Some(step) => {
                text.clear();
                message(&mut text, &args, 1 + seq % args.ids, seq);
                frame(&mut buf, text.as_bytes(), &mut mask);
                seq += 1;
                stats.sent += 1;
                next += step;
                if next > tokio::time::Instant::now() {
                    if write(&mut stream, &mut buf, &mut stats).await.is_err() {
                        break;
                    }
                    sleep_until(next.min(deadline)).await;
                }
            }
            // Full speed: fill a buffer, then write it whole.
            None => {
                while buf.len() < 32 * 1024 {
                    text.clear();
                    message(&mut text, &args, 1 + seq % args.ids, seq);
                    frame(&mut buf, text.as_bytes(), &mut mask);
                    seq += 1;
                    stats.sent += 1;
                }
            }
        }
        if buf.len() >= 32 * 1024 && write(&mut stream, &mut buf, &mut stats).await.is_err() {
            break;
        }
    }
    let _ = write(&mut stream, &mut buf, &mut stats).await;
    finish(&mut stream).await;
    stats
}

/// Waits, reading and discarding (pings), until the server closes the connection: it does so
/// `CLIENT_TIMEOUT_S` after the last frame it read, so everything written has been read. (A
/// plain close with unread pings would reset the connection and destroy data in flight, as it
/// does for real nodes; a half-close could lose what the server had buffered but not read.)
async fn finish(stream: &mut TcpStream) {
    let mut sink = [0u8; 4096];
    let drain = async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = actix_web::rt::time::timeout(Duration::from_secs(300), drain).await;
}

async fn write(stream: &mut TcpStream, buf: &mut Vec<u8>, stats: &mut Stats) -> Result<(), ()> {
    if buf.is_empty() {
        return Ok(());
    }
    let result = stream.write_all(buf).await;
    match result {
        Ok(()) => {
            stats.bytes += buf.len() as u64;
            buf.clear();
            Ok(())
        }
        Err(_) => {
            stats.write_failures += 1;
            buf.clear();
            Err(())
        }
    }
}

async fn handshake(args: &Args) -> Result<TcpStream, String> {
    let mut stream = TcpStream::connect(&args.host)
        .await
        .map_err(|e| format!("connect {}: {e}", args.host))?;
    let _ = stream.set_nodelay(true);
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        args.path, args.host
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("handshake write: {e}"))?;
    let mut response = Vec::new();
    let mut byte = [0u8; 1];
    while !response.ends_with(b"\r\n\r\n") {
        let n = stream
            .read(&mut byte)
            .await
            .map_err(|e| format!("handshake read: {e}"))?;
        if n == 0 || response.len() > 8192 {
            return Err("handshake: connection closed".into());
        }
        response.push(byte[0]);
    }
    if !response.starts_with(b"HTTP/1.1 101") {
        let line = String::from_utf8_lossy(&response);
        return Err(format!(
            "handshake refused: {}",
            line.lines().next().unwrap_or("")
        ));
    }
    Ok(stream)
}

/// Appends a masked binary frame.
fn frame(out: &mut Vec<u8>, payload: &[u8], mask: &mut u32) {
    out.push(0x82);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xffff {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    *mask = mask.rotate_left(7) ^ 0x9e37_79b9;
    let key = mask.to_be_bytes();
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i & 3]));
}

fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

fn ts() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, false)
}

/// Wraps a payload body (the fields after `"msg":"…"`) in the chosen era's envelope.
fn envelope(out: &mut String, args: &Args, id: u64, msg: &str, fields: &str) {
    let sent = now_us();
    let _ = match args.envelope {
        Envelope::Modern => write!(
            out,
            r#"{{"id":{id},"payload":{{{fields},"lg_sent_us":{sent},"msg":"{msg}"}},"ts":"{}"}}"#,
            ts()
        ),
        Envelope::Tracing => write!(
            out,
            r#"{{"id":{id},"ts":"{}","payload":{{"msg":"{msg}",{fields},"lg_sent_us":{sent}}}}}"#,
            ts()
        ),
        Envelope::Slog => writeln!(
            out,
            "{{\"msg\":\"{msg}\",\"level\":\"INFO\",\"ts\":\"{}\",{fields},\"lg_sent_us\":{sent}}}",
            ts()
        ),
    };
}

fn connected(out: &mut String, args: &Args, n: usize, id: u64) {
    let mut fields = format!(
        r#""authority":{},"chain":"Loadgen","config":"","genesis_hash":"0x00000000feed0000000000000000000000000000000000000000000000000000","implementation":"loadgen","name":"loadgen-{n}-{id}","network_id":"12D3KooWLoadgen{n:07}x{id:03}","startup_time":"{}","version":"0.0.0-loadgen""#,
        n.is_multiple_of(4),
        now_us() / 1000
    );
    // Modern clients describe their machine.
    if args.envelope == Envelope::Modern {
        fields.push_str(r#","sysinfo":{"core_count":8,"cpu":"loadgen CPU","is_virtual_machine":true,"linux_distro":"Debian GNU/Linux 12 (bookworm)","linux_kernel":"6.1.0","memory":34359738368}"#);
    }
    envelope(out, args, id, "system.connected", &fields);
}

const HASH: &str = "0x0000000000000001000000000000000000000000000000000000000000000001";

/// The `seq`-th message of a node: the verbosity-0 mix plus a GRANDPA vote.
fn message(out: &mut String, args: &Args, id: u64, seq: u64) {
    let height = seq / 6 + 1;
    let (msg, fields) = match seq % 6 {
        0 => (
            "system.interval",
            format!(
                r#""best":"{HASH}","finalized_hash":"{HASH}","finalized_height":{},"height":{height},"txcount":3,"used_state_cache_size":1048576"#,
                height.saturating_sub(2)
            ),
        ),
        1 => (
            "system.interval",
            r#""bandwidth_download":20480,"bandwidth_upload":10240,"peers":25"#.to_owned(),
        ),
        2 => (
            "block.import",
            format!(r#""best":"{HASH}","height":{height},"origin":"NetworkInitialSync""#),
        ),
        3 => (
            "notify.finalized",
            format!(r#""best":"{HASH}","height":"{}""#, height.saturating_sub(2)),
        ),
        4 => ("txpool.import", r#""future":0,"ready":7"#.to_owned()),
        _ => (
            "afg.received_prevote",
            format!(
                r#""target_hash":"{HASH}","target_number":"{height}","voter":"5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY""#
            ),
        ),
    };
    envelope(out, args, id, msg, &fields);
}
