//! `GET /export/messages` and `GET /export/sessions`: a window of raw messages (filtered by
//! peer, chain or kind) or of the fleet's sessions; `/export/propagation`, `/arrivals`,
//! `/finality`, `/versions` and `/hardware`: a window of a network analytics series. Streamed
//! as NDJSON or CSV in constant memory however many rows: each export has a connection of its own (`db::ingest::open`),
//! PostgreSQL's rows are read one at a time as the client takes them (tokio-postgres hands over
//! one message at a time, so a slow client slows the query instead of filling memory), and
//! `EXPORT_TIMEOUT_S` bounds the whole. At most `EXPORTS_AT_ONCE` run at once per instance;
//! beyond, 503.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::Semaphore;
use tokio_postgres::types::ToSql;

use super::error::ApiError;
use super::params::Params;
use crate::db::ingest::{open, Deadlines};

/// Exports one instance runs at once.
pub const EXPORTS_AT_ONCE: usize = 4;

/// Rows sent in one piece at most (those already received from PostgreSQL).
const ROWS_PER_CHUNK: usize = 256;

/// The window an export covers when `start_time` is not given.
const DEFAULT_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// What exports share: where the database is, how long an export may take, and the slots.
pub struct Exports {
    pub database_url: String,
    pub deadlines: Deadlines,
    pub slots: Arc<Semaphore>,
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Ndjson,
    Csv,
}

/// One column of an export: its name and the SQL giving its value (as JSON for NDJSON; its
/// text, `#>> '{}'`, for CSV).
type Column = (&'static str, &'static str);

const MESSAGE_COLUMNS: [Column; 7] = [
    ("created_at", "to_json(l.created_at)"),
    ("session", "to_json(l.peer_connection_id)"),
    ("peer_id", "to_json(p.peer_id)"),
    ("name", "to_json(p.name)"),
    ("chain", "to_json(p.chain)"),
    ("msg", "to_json(l.logs->>'msg')"),
    ("logs", "to_json(l.logs)"),
];

const MESSAGES_FROM: &str =
    "FROM tetcore_logs l JOIN peer_connections p ON p.id = l.peer_connection_id \
     WHERE l.created_at >= $1 AND l.created_at < $2 \
       AND ($3::text IS NULL OR p.peer_id = $3) AND ($4::text IS NULL OR p.chain = $4) \
       AND ($5::text IS NULL OR l.logs->>'msg' = $5) \
     ORDER BY l.created_at, l.id";

const SESSION_COLUMNS: [Column; 16] = [
    ("session", "to_json(p.id)"),
    ("peer_id", "to_json(p.peer_id)"),
    ("name", "to_json(p.name)"),
    ("chain", "to_json(p.chain)"),
    ("version", "to_json(p.version)"),
    ("implementation", "to_json(p.implementation)"),
    ("genesis_hash", "to_json(p.genesis_hash)"),
    ("authority", "to_json(p.authority)"),
    ("ip_addr", "to_json(p.ip_addr)"),
    ("audit", "to_json(p.audit)"),
    ("created_at", "to_json(p.created_at)"),
    ("ended_at", "to_json(p.ended_at)"),
    ("startup_time", "to_json(p.startup_time)"),
    ("target_os", "to_json(p.target_os)"),
    ("target_arch", "to_json(p.target_arch)"),
    ("sysinfo", "to_json(p.sysinfo)"),
];

const SESSIONS_FROM: &str = "FROM peer_connections p \
     WHERE p.created_at < $2 AND coalesce(p.ended_at, 'infinity') >= $1 \
       AND ($3::text IS NULL OR p.peer_id = $3) AND ($4::text IS NULL OR p.chain = $4) \
     ORDER BY p.created_at, p.id";

// The network analytics series (migrations 11 to 13), for notebooks: each filtered by chain.

const BLOCK_COLUMNS: [Column; 11] = [
    ("genesis_hash", "to_json(b.genesis_hash)"),
    ("kind", "to_json(b.kind)"),
    ("height", "to_json(b.height)"),
    ("hash", "to_json(b.hash)"),
    ("first_at", "to_json(b.first_at)"),
    ("first_peer_id", "to_json(b.first_peer_id)"),
    ("nodes", "to_json(b.nodes)"),
    ("p50_ms", "to_json(b.p50_ms)"),
    ("p90_ms", "to_json(b.p90_ms)"),
    ("p99_ms", "to_json(b.p99_ms)"),
    ("max_ms", "to_json(b.max_ms)"),
];

const BLOCKS_FROM: &str = "FROM tetcore_blocks b \
     WHERE b.first_at >= $1 AND b.first_at < $2 \
       AND ($3::text IS NULL OR b.genesis_hash = $3) AND ($4::text IS NULL OR b.kind = $4) \
     ORDER BY b.first_at, b.genesis_hash, b.kind, b.height, b.hash";

const ARRIVAL_COLUMNS: [Column; 8] = [
    ("genesis_hash", "to_json(b.genesis_hash)"),
    ("kind", "to_json(b.kind)"),
    ("height", "to_json(b.height)"),
    ("hash", "to_json(b.hash)"),
    ("peer_id", "to_json(p.peer_id)"),
    ("received_at", "to_json(a.received_at)"),
    (
        "delay_ms",
        "to_json(tetcore_ms(a.received_at - b.first_at))",
    ),
    ("node_ts", "to_json(a.node_ts)"),
];

const ARRIVALS_FROM: &str = "FROM tetcore_arrivals a \
     JOIN tetcore_blocks b ON b.id = a.block_id \
     JOIN tetcore_peers p ON p.id = a.peer_ref \
     WHERE a.received_at >= $1 AND a.received_at < $2 \
       AND ($3::text IS NULL OR b.genesis_hash = $3) AND ($4::text IS NULL OR b.kind = $4) \
       AND ($5::text IS NULL OR p.peer_id = $5) \
     ORDER BY a.received_at, b.genesis_hash, p.peer_id";

const FINALITY_COLUMNS: [Column; 5] = [
    ("genesis_hash", "to_json(m.genesis_hash)"),
    ("minute", "to_json(m.minute)"),
    ("best_height", "to_json(m.best_height)"),
    ("finalized_height", "to_json(m.finalized_height)"),
    ("nodes", "to_json(m.nodes)"),
];

const FINALITY_FROM: &str = "FROM tetcore_chain_minutes m \
     WHERE m.minute >= $1 AND m.minute < $2 AND ($3::text IS NULL OR m.genesis_hash = $3) \
     ORDER BY m.minute, m.genesis_hash";

const VERSION_COLUMNS: [Column; 5] = [
    ("genesis_hash", "to_json(v.genesis_hash)"),
    ("hour", "to_json(v.hour)"),
    ("implementation", "to_json(v.implementation)"),
    ("version", "to_json(v.version)"),
    ("nodes", "to_json(v.nodes)"),
];

const VERSIONS_FROM: &str = "FROM tetcore_version_hours v \
     WHERE v.hour >= $1 AND v.hour < $2 AND ($3::text IS NULL OR v.genesis_hash = $3) \
     ORDER BY v.hour, v.genesis_hash, v.nodes DESC, v.implementation, v.version";

const HARDWARE_COLUMNS: [Column; 16] = [
    ("genesis_hash", "to_json(h.genesis_hash)"),
    ("peer_id", "to_json(h.peer_id)"),
    ("reported_at", "to_json(h.reported_at)"),
    ("authority", "to_json(h.authority)"),
    ("cpu", "to_json(h.cpu)"),
    ("memory", "to_json(h.memory)"),
    ("core_count", "to_json(h.core_count)"),
    ("linux_kernel", "to_json(h.linux_kernel)"),
    ("linux_distro", "to_json(h.linux_distro)"),
    ("is_virtual_machine", "to_json(h.is_virtual_machine)"),
    ("cpu_hashrate_score", "to_json(h.cpu_hashrate_score)"),
    (
        "parallel_cpu_hashrate_score",
        "to_json(h.parallel_cpu_hashrate_score)",
    ),
    ("parallel_cpu_cores", "to_json(h.parallel_cpu_cores)"),
    ("memory_memcpy_score", "to_json(h.memory_memcpy_score)"),
    (
        "disk_sequential_write_score",
        "to_json(h.disk_sequential_write_score)",
    ),
    (
        "disk_random_write_score",
        "to_json(h.disk_random_write_score)",
    ),
];

const HARDWARE_FROM: &str = "FROM tetcore_hardware h \
     WHERE h.reported_at >= $1 AND h.reported_at < $2 \
       AND ($3::text IS NULL OR h.genesis_hash = $3) AND ($4::text IS NULL OR h.peer_id = $4) \
     ORDER BY h.reported_at, h.genesis_hash, h.peer_id";

/// One export: its columns, its query (`$1` and `$2` the window), and the optional text
/// parameters bound as `$3`, `$4`, … in this order.
struct Export {
    columns: &'static [Column],
    from: &'static str,
    filters: &'static [&'static str],
}

const MESSAGES: Export = Export {
    columns: &MESSAGE_COLUMNS,
    from: MESSAGES_FROM,
    filters: &["peer_id", "chain", "msg"],
};
const SESSIONS: Export = Export {
    columns: &SESSION_COLUMNS,
    from: SESSIONS_FROM,
    filters: &["peer_id", "chain"],
};
const PROPAGATION: Export = Export {
    columns: &BLOCK_COLUMNS,
    from: BLOCKS_FROM,
    filters: &["genesis_hash", "kind"],
};
const ARRIVALS: Export = Export {
    columns: &ARRIVAL_COLUMNS,
    from: ARRIVALS_FROM,
    filters: &["genesis_hash", "kind", "peer_id"],
};
const FINALITY: Export = Export {
    columns: &FINALITY_COLUMNS,
    from: FINALITY_FROM,
    filters: &["genesis_hash"],
};
const VERSIONS: Export = Export {
    columns: &VERSION_COLUMNS,
    from: VERSIONS_FROM,
    filters: &["genesis_hash"],
};
const HARDWARE: Export = Export {
    columns: &HARDWARE_COLUMNS,
    from: HARDWARE_FROM,
    filters: &["genesis_hash", "peer_id"],
};

/// `GET /export/messages?start_time=&end_time=&peer_id=&chain=&msg=&format=`
pub async fn messages(
    req: HttpRequest,
    exports: web::Data<Exports>,
) -> Result<HttpResponse, ApiError> {
    export(&req, &exports, &MESSAGES).await
}

/// `GET /export/sessions?start_time=&end_time=&peer_id=&chain=&format=`: the sessions open at
/// some time in the window.
pub async fn sessions(
    req: HttpRequest,
    exports: web::Data<Exports>,
) -> Result<HttpResponse, ApiError> {
    export(&req, &exports, &SESSIONS).await
}

/// `GET /export/propagation?start_time=&end_time=&genesis_hash=&kind=&format=`: blocks first
/// reported in the window.
pub async fn propagation(
    req: HttpRequest,
    exports: web::Data<Exports>,
) -> Result<HttpResponse, ApiError> {
    export(&req, &exports, &PROPAGATION).await
}

/// `GET /export/arrivals?start_time=&end_time=&genesis_hash=&kind=&peer_id=&format=`: each
/// node's report of each block, with its delay.
pub async fn arrivals(
    req: HttpRequest,
    exports: web::Data<Exports>,
) -> Result<HttpResponse, ApiError> {
    export(&req, &exports, &ARRIVALS).await
}

/// `GET /export/finality?start_time=&end_time=&genesis_hash=&format=`: chain heights per minute.
pub async fn finality(
    req: HttpRequest,
    exports: web::Data<Exports>,
) -> Result<HttpResponse, ApiError> {
    export(&req, &exports, &FINALITY).await
}

/// `GET /export/versions?start_time=&end_time=&genesis_hash=&format=`: nodes per version per hour.
pub async fn versions(
    req: HttpRequest,
    exports: web::Data<Exports>,
) -> Result<HttpResponse, ApiError> {
    export(&req, &exports, &VERSIONS).await
}

/// `GET /export/hardware?start_time=&end_time=&genesis_hash=&peer_id=&format=`: hardware reports.
pub async fn hardware(
    req: HttpRequest,
    exports: web::Data<Exports>,
) -> Result<HttpResponse, ApiError> {
    export(&req, &exports, &HARDWARE).await
}

/// Runs the query and streams its rows.
async fn export(
    req: &HttpRequest,
    exports: &Exports,
    what: &Export,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string())?;
    let Export {
        columns,
        from,
        filters,
    } = *what;
    let format = match params.text("format")? {
        None | Some("ndjson") => Format::Ndjson,
        Some("csv") => Format::Csv,
        Some(_) => return Err(ApiError::bad("format", "must be ndjson or csv")),
    };
    let (start, end) = params.window(DEFAULT_WINDOW)?;
    let mut args: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(start), Box::new(end)];
    for name in filters {
        args.push(Box::new(params.text(name)?.map(str::to_owned)));
    }
    let slot = exports.slots.clone().try_acquire_owned().map_err(|_| {
        ApiError::Unavailable(format!(
            "{EXPORTS_AT_ONCE} exports are running already; try again when one is done"
        ))
    })?;
    let (client, task) = open(
        &exports.database_url,
        exports.deadlines,
        "tetcore-analytics export",
    )
    .await
    .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let sql = match format {
        Format::Ndjson => {
            let pairs: Vec<String> = columns
                .iter()
                .map(|(name, value)| format!("'{name}', {value}"))
                .collect();
            format!(
                "SELECT json_build_object({})::text {from}",
                pairs.join(", ")
            )
        }
        Format::Csv => {
            let values: Vec<String> = columns
                .iter()
                .map(|(_, value)| format!("{value} #>> '{{}}'"))
                .collect();
            format!("SELECT {} {from}", values.join(", "))
        }
    };
    let rows = client
        .query_raw(&sql, args.iter().map(|a| a.as_ref() as &(dyn ToSql + Sync)))
        .await
        .map_err(|e| ApiError::from_db_fault(crate::db::ingest::classify(&e)))?;
    let head = match format {
        Format::Ndjson => None,
        Format::Csv => Some(Ok::<_, actix_web::Error>(Bytes::from(
            columns
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(",")
                + "\n",
        ))),
    };
    // The connection, its task and the slot live as long as the stream.
    let keep = (client, AbortOnDrop(task), slot);
    // Rows already arrived go out together (at most `ROWS_PER_CHUNK`), so a chunk is not a row.
    let body = rows.ready_chunks(ROWS_PER_CHUNK).map(move |batch| {
        let _ = &keep;
        let mut out = String::new();
        for row in batch {
            let row = row.map_err(|e| {
                log::warn!("export cut off: error={e}");
                actix_web::error::ErrorInternalServerError("export cut off")
            })?;
            match format {
                Format::Ndjson => out.push_str(row.try_get::<_, &str>(0).unwrap_or("{}")),
                Format::Csv => {
                    for i in 0..row.len() {
                        if i > 0 {
                            out.push(',');
                        }
                        if let Ok(Some(text)) = row.try_get::<_, Option<&str>>(i) {
                            csv_field(&mut out, text);
                        }
                    }
                }
            }
            out.push('\n');
        }
        Ok(Bytes::from(out))
    });
    let content_type = match format {
        Format::Ndjson => "application/x-ndjson",
        Format::Csv => "text/csv; charset=utf-8",
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .streaming(futures_util::stream::iter(head).chain(body)))
}

/// A CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break.
fn csv_field(out: &mut String, text: &str) {
    if text.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

/// Ends the connection's task when the export ends, however it ends.
struct AbortOnDrop(actix_web::rt::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_they_must_be() {
        let mut out = String::new();
        for field in ["plain", "a,b", r#"{"msg":"x"}"#, "two\nlines"] {
            csv_field(&mut out, field);
            out.push('|');
        }
        assert_eq!(
            out,
            "plain|\"a,b\"|\"{\"\"msg\"\":\"\"x\"\"}\"|\"two\nlines\"|"
        );
    }
}
