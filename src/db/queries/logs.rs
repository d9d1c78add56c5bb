//! Messages as `COPY tetcore_logs ... FROM STDIN` takes them (text format): one round trip per
//! batch, whatever its size, and no bind-parameter limit. `db::ingest` sends them.

use std::io::Write;

use chrono::{Datelike, Timelike};

use crate::db::models::LogRow;

/// The rows in COPY text format: tab-separated columns, one line per row.
pub fn encode(rows: &[LogRow<'_>]) -> Vec<u8> {
    let size: usize = rows.iter().map(|r| r.logs.len() + 64).sum();
    let mut out = Vec::with_capacity(size);
    for row in rows {
        let t = row.created_at.naive_utc();
        // Written in place (no String per row); writing into a Vec cannot fail.
        let _ = write!(
            out,
            "{}\t{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00\t{}\t",
            row.peer_connection_id,
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            (t.nanosecond() / 1000).min(999_999),
            if row.audit { 't' } else { 'f' }
        );
        escape_into(&mut out, row.logs.as_bytes());
        out.push(b'\n');
    }
    out
}

/// COPY text format escapes: backslash and the three characters that would end a field or row.
fn escape_into(out: &mut Vec<u8>, text: &[u8]) {
    if !text
        .iter()
        .any(|b| matches!(b, b'\\' | b'\n' | b'\r' | b'\t'))
    {
        out.extend_from_slice(text);
        return;
    }
    for &b in text {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn encodes_one_escaped_line_per_row() {
        let at = Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 0).unwrap();
        let rows = [
            LogRow {
                peer_connection_id: 3,
                created_at: at,
                audit: true,
                logs: "{\"a\":\"x\\\"y\"}",
            },
            LogRow {
                peer_connection_id: 4,
                created_at: at,
                audit: false,
                logs: "{\n\t\"b\":1}",
            },
        ];
        let text = String::from_utf8(encode(&rows)).unwrap();
        assert_eq!(
            text,
            "3\t2026-11-27 08:00:00.000000+00\tt\t{\"a\":\"x\\\\\"y\"}\n\
             4\t2026-11-27 08:00:00.000000+00\tf\t{\\n\\t\"b\":1}\n"
        );
    }

    #[test]
    fn timestamps_keep_their_microseconds() {
        use chrono::Timelike;
        let at = Utc
            .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
            .unwrap()
            .with_nanosecond(123_456_789)
            .unwrap();
        let row = LogRow {
            peer_connection_id: 1,
            created_at: at,
            audit: false,
            logs: "{}",
        };
        let text = String::from_utf8(encode(&[row])).unwrap();
        assert_eq!(text, "1\t2026-01-02 03:04:05.123456+00\tf\t{}\n");
    }
}
