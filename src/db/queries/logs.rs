//! Messages as `COPY tetcore_logs ... FROM STDIN (FORMAT binary)` takes them: one round trip
//! per batch, whatever its size, and no bind-parameter limit. Binary, not text: the ids and
//! times go as fixed-width integers instead of being formatted here and parsed again there, and
//! the JSON goes as it is, where text format escapes it here and scans every byte of it there
//! for tabs and backslashes. `db::ingest` sends it.

use crate::db::models::LogRow;

/// Signature, flags and header extension length of PostgreSQL's binary COPY format.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 00:00:00 UTC).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// The jsonb binary format's version byte, before the JSON text.
const JSONB_VERSION: u8 = 1;

/// The rows in binary COPY format: per row, its 4 columns (peer_connection_id, created_at,
/// audit, logs), each as its length and bytes.
pub fn encode(rows: &[LogRow<'_>]) -> Vec<u8> {
    let size: usize = rows.iter().map(|r| r.logs.len() + 40).sum();
    let mut out = Vec::with_capacity(HEADER.len() + size + 2);
    out.extend_from_slice(HEADER);
    for row in rows {
        out.extend_from_slice(&4i16.to_be_bytes());
        field(&mut out, &row.peer_connection_id.to_be_bytes());
        let micros = row.created_at.timestamp_micros() - PG_EPOCH_MICROS;
        field(&mut out, &micros.to_be_bytes());
        field(&mut out, &[u8::from(row.audit)]);
        // A message is far below 2 GiB (WS_MAX_PAYLOAD); were one not, PostgreSQL would
        // refuse the malformed row (class 22) and it alone would be dropped.
        let len = i32::try_from(row.logs.len() + 1).unwrap_or(i32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.push(JSONB_VERSION);
        out.extend_from_slice(row.logs.as_bytes());
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
}

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    // Each field here is 1 or 8 bytes.
    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Timelike, Utc};

    #[test]
    fn encodes_a_header_each_row_and_the_trailer() {
        let at = Utc
            .with_ymd_and_hms(2000, 1, 1, 0, 0, 1)
            .unwrap()
            .with_nanosecond(2_345_678)
            .unwrap();
        let rows = [LogRow {
            peer_connection_id: 3,
            created_at: at,
            audit: true,
            logs: "{\"a\":\"x\\ty\"}",
        }];
        let bytes = encode(&rows);
        let mut expected = b"PGCOPY\n\xff\r\n\0".to_vec();
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]); // flags, extension length
        expected.extend_from_slice(&[0, 4]); // columns
        expected.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 3]);
        // 1.002345 s after PostgreSQL's epoch, in microseconds (the rest is cut, not rounded).
        expected.extend_from_slice(&[0, 0, 0, 8]);
        expected.extend_from_slice(&1_002_345i64.to_be_bytes());
        expected.extend_from_slice(&[0, 0, 0, 1, 1]);
        expected.extend_from_slice(&[0, 0, 0, 13, 1]);
        expected.extend_from_slice(b"{\"a\":\"x\\ty\"}");
        expected.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn times_before_postgres_epoch_are_negative() {
        let at = Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap();
        let row = LogRow {
            peer_connection_id: 1,
            created_at: at,
            audit: false,
            logs: "{}",
        };
        let bytes = encode(&[row]);
        // Header (19 bytes), column count (2), the id's length and bytes (4 + 8), the time's
        // length (4).
        let at = 19 + 2 + 12 + 4;
        let micros = &bytes[at..at + 8];
        assert_eq!(micros, (-1_000_000i64).to_be_bytes());
    }
}
