//! `GET /export/messages` and `GET /export/sessions`: a window of raw messages (filtered by
//! peer, chain or kind) or of the fleet's sessions, streamed as NDJSON or CSV in constant
//! memory however many rows: each export has a connection of its own (`db::ingest::open`),
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

/// `GET /export/messages?start_time=&end_time=&peer_id=&chain=&msg=&format=`
pub async fn messages(
    req: HttpRequest,
    exports: web::Data<Exports>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string())?;
    let msg = params.text("msg")?.map(str::to_owned);
    export(
        &params,
        &exports,
        &MESSAGE_COLUMNS,
        MESSAGES_FROM,
        Some(msg),
    )
    .await
}

/// `GET /export/sessions?start_time=&end_time=&peer_id=&chain=&format=`: the sessions open at
/// some time in the window.
pub async fn sessions(
    req: HttpRequest,
    exports: web::Data<Exports>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string())?;
    export(&params, &exports, &SESSION_COLUMNS, SESSIONS_FROM, None).await
}

/// Runs the query and streams its rows. `msg` is the fifth parameter of the messages query.
async fn export(
    params: &Params,
    exports: &Exports,
    columns: &'static [Column],
    from: &'static str,
    msg: Option<Option<String>>,
) -> Result<HttpResponse, ApiError> {
    let format = match params.text("format")? {
        None | Some("ndjson") => Format::Ndjson,
        Some("csv") => Format::Csv,
        Some(_) => return Err(ApiError::bad("format", "must be ndjson or csv")),
    };
    let (start, end) = params.window(DEFAULT_WINDOW)?;
    let peer_id = params.text("peer_id")?.map(str::to_owned);
    let chain = params.text("chain")?.map(str::to_owned);
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
    let mut args: Vec<Box<dyn ToSql + Sync + Send>> = vec![
        Box::new(start),
        Box::new(end),
        Box::new(peer_id),
        Box::new(chain),
    ];
    if let Some(msg) = msg {
        args.push(Box::new(msg));
    }
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
