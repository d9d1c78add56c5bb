//! `/export/...`: raw rows streamed as NDJSON or CSV, filtered, in constant memory.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use diesel::{sql_query, RunQueryDsl};

use crate::common::{TestApp, TestDb};
use crate::process::Process;

/// Messages of two sessions (peer A on chain X, peer B on chain Y), `n` in all, received over
/// the last ten minutes.
fn fill(db: &TestDb, n: u32) {
    let mut conn = db.conn();
    sql_query(
        "INSERT INTO peer_connections (id, ip_addr, created_at, peer_id, name, chain) VALUES \
         (1, '10.0.0.1', now() - interval '1 hour', '12D3KooWA', 'a, \"the first\"', 'X'), \
         (2, '10.0.0.2', now() - interval '1 hour', '12D3KooWB', 'b', 'Y')",
    )
    .execute(&mut conn)
    .unwrap();
    sql_query(format!(
        "INSERT INTO tetcore_logs (peer_connection_id, created_at, audit, logs) \
         SELECT 1 + i % 2, now() - interval '10 minutes' + i * interval '500 microseconds', false, \
                jsonb_build_object('msg', CASE WHEN i % 4 < 2 THEN 'block.import' ELSE 'system.interval' END, \
                                   'height', i, 'pad', 'some text, with a comma') \
         FROM generate_series(1, {n}) i"
    ))
    .execute(&mut conn)
    .unwrap();
}

/// Undoes HTTP/1.1's chunked transfer encoding as the bytes come.
#[derive(Default)]
struct Dechunk {
    size_line: Vec<u8>,
    /// Data bytes left in the current chunk, then the CRLF after it.
    data_left: usize,
    crlf_left: usize,
}

impl Dechunk {
    fn feed(&mut self, mut input: &[u8], out: &mut impl FnMut(&[u8])) {
        while !input.is_empty() {
            if self.data_left > 0 {
                let n = self.data_left.min(input.len());
                out(&input[..n]);
                self.data_left -= n;
                input = &input[n..];
            } else if self.crlf_left > 0 {
                let n = self.crlf_left.min(input.len());
                self.crlf_left -= n;
                input = &input[n..];
            } else {
                let Some(end) = input.iter().position(|b| *b == b'\n') else {
                    self.size_line.extend_from_slice(input);
                    return;
                };
                self.size_line.extend_from_slice(&input[..end]);
                input = &input[end + 1..];
                let line = String::from_utf8_lossy(&self.size_line).trim().to_owned();
                self.size_line.clear();
                self.data_left = usize::from_str_radix(&line, 16).unwrap_or(0);
                self.crlf_left = if self.data_left > 0 { 2 } else { 0 };
            }
        }
    }
}

/// GET; calls `chunk` with the body's bytes as they come (de-chunked).
fn stream(addr: SocketAddr, path: &str, mut chunk: impl FnMut(&[u8])) -> (u16, String) {
    let mut dechunk = Dechunk::default();
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let end = loop {
        let n = tcp.read(&mut buf).unwrap();
        if n == 0 {
            break None;
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break Some(end);
        }
    };
    if let Some(end) = end {
        let chunked = String::from_utf8_lossy(&head[..end])
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        let mut pass = |bytes: &[u8]| {
            if chunked {
                dechunk.feed(bytes, &mut chunk)
            } else {
                chunk(bytes)
            }
        };
        pass(&head.split_off(end + 4));
        loop {
            let n = tcp.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            pass(&buf[..n]);
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head)
}

pub fn body(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut out = Vec::new();
    let (status, head) = stream(addr, path, |c| out.extend_from_slice(c));
    (status, head, String::from_utf8(out).unwrap())
}

#[test]
fn exports_stream_ndjson_and_csv_filtered_by_peer_chain_and_kind() {
    let db = TestDb::new();
    fill(&db, 400);
    let app = TestApp::start(&db, &[]);
    let (status, head, all) = body(app.addr, "/export/messages");
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("application/x-ndjson"), "{head}");
    let lines: Vec<serde_json::Value> = all
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 400);
    assert_eq!(lines[0]["logs"]["height"], 1, "oldest first, logs as JSON");
    assert_eq!(lines[0]["peer_id"], "12D3KooWB");
    let count = |query: &str| {
        let (status, _, text) = body(app.addr, &format!("/export/messages?{query}"));
        assert_eq!(status, 200, "{query}");
        text.lines().count()
    };
    assert_eq!(count("peer_id=12D3KooWA"), 200);
    assert_eq!(count("chain=Y&msg=block.import"), 100);
    assert_eq!(
        count("start_time=2000-01-01T00:00:00Z&end_time=2000-01-02T00:00:00Z"),
        0
    );
    // CSV: a header, then one quoted-where-needed row per message.
    let (status, head, csv) = body(
        app.addr,
        "/export/messages?format=csv&peer_id=12D3KooWA&msg=block.import",
    );
    assert_eq!(status, 200);
    assert!(head.contains("text/csv"), "{head}");
    let mut rows = csv.lines();
    assert_eq!(
        rows.next(),
        Some("created_at,session,peer_id,name,chain,msg,logs")
    );
    let first = rows.next().unwrap();
    assert!(
        first.contains(r#","12D3KooWA","a, ""the first""",X,block.import,""#)
            || first.contains(r#",1,12D3KooWA,"a, ""the first""",X,block.import,"{"#),
        "{first}"
    );
    assert_eq!(rows.count(), 99);
    // The fleet.
    let (status, _, sessions) = body(app.addr, "/export/sessions?format=csv");
    assert_eq!(status, 200);
    assert_eq!(sessions.lines().count(), 3);
    let (status, _, sessions) = body(app.addr, "/export/sessions?chain=X");
    assert_eq!(status, 200);
    let only: serde_json::Value = serde_json::from_str(sessions.trim()).unwrap();
    assert_eq!(only["peer_id"], "12D3KooWA");
    // Wrong parameters are 400s naming them.
    for (query, param) in [
        ("format=xml", "format"),
        ("start_time=yesterday", "start_time"),
        ("peer_id=", "peer_id"),
    ] {
        let (status, _, text) = body(app.addr, &format!("/export/messages?{query}"));
        assert_eq!(status, 400, "{query}: {text}");
        assert!(text.contains(&format!("\"param\":\"{param}\"")), "{text}");
    }
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_million_rows_stream_in_constant_memory() {
    const ROWS: u32 = 1_000_000;
    let db = TestDb::new();
    fill(&db, ROWS);
    let service = Process::start(&db.url, &[]);
    let pid = service.child.id();
    // Warm up the paths once (allocator, statement), then take the baseline.
    let _ = body(service.addr, "/export/messages?peer_id=nobody");
    let before = rss_kib(pid);
    let (mut lines, mut bytes, mut peak) = (0u64, 0u64, before);
    let (status, head) = stream(service.addr, "/export/messages", |chunk| {
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        bytes += chunk.len() as u64;
        if lines % 50_000 < 100 {
            peak = peak.max(rss_kib(pid));
        }
    });
    peak = peak.max(rss_kib(pid));
    assert_eq!(status, 200, "{head}");
    assert_eq!(lines, u64::from(ROWS));
    // Hundreds of megabytes went through; the server grew by a few at most.
    assert!(bytes > 100 << 20, "{bytes} bytes");
    let grew = peak.saturating_sub(before);
    assert!(
        grew < 32 * 1024,
        "RSS grew by {grew} KiB (from {before} KiB) for {bytes} bytes"
    );
    eprintln!("exported {lines} rows, {bytes} bytes; RSS {before} KiB -> peak {peak} KiB");
}
