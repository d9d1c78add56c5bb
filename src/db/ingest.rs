//! The writer's connection to PostgreSQL and the statements a batch is made of.
//!
//! This one connection speaks tokio-postgres instead of diesel: the writer must know PostgreSQL's
//! own verdict on every failure (its SQLSTATE, which diesel's `PgConnection` hides for all but a
//! few codes) to tell a row at fault from a database at fault, and it must bound every wait.
//! Every step here runs under a client-side deadline (a frozen server answers nothing, so its own
//! `statement_timeout` cannot fire); the server-side `statement_timeout` of the session is set to
//! the same value, overriding one set on the role. TCP keepalives and a TCP user timeout notice a
//! host that vanished without a reset. Diesel keeps the migrations and the query API.

use std::time::Duration;

use actix_web::rt::task::JoinHandle;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::SinkExt;
use tokio_postgres::{Client, NoTls, Statement};

use crate::db::models::{LogRow, NewSession, NodeInfo, NodeStateRow};
use crate::db::queries::logs;

/// How long the writer waits for PostgreSQL.
#[derive(Clone, Copy, Debug)]
pub struct Deadlines {
    /// Making a connection (TCP, start-up, authentication, session settings).
    pub connect: Duration,
    /// Any one statement of a batch, the COPY included.
    pub statement: Duration,
}

/// One writer of one instance: its batches are numbered on their own.
#[derive(Clone, Copy, Debug)]
pub struct WriterId {
    /// This instance's row in `tetcore_instances`.
    pub instance: i64,
    /// From 0 to `DB_WRITERS` - 1.
    pub index: i32,
}

/// Why a step failed, as PostgreSQL (or the network) says.
#[derive(Debug)]
pub enum Fault {
    /// PostgreSQL refused the data itself (SQLSTATE class 22 or 23, or 54000): only isolating
    /// the rows at fault helps.
    Row { code: String, message: String },
    /// Anything else: the database, the connection or our deadline. Nothing of the batch is
    /// at fault; it waits and is written again.
    Batch {
        /// A bounded metric label: the SQLSTATE class, `connection` or `timeout`.
        class: &'static str,
        message: String,
    },
}

impl Fault {
    pub fn class(&self) -> &'static str {
        match self {
            Fault::Row { code, .. } => sqlstate_class(code),
            Fault::Batch { class, .. } => class,
        }
    }

    fn timeout(what: &str, after: Duration) -> Fault {
        Fault::Batch {
            class: "timeout",
            message: format!("{what}: no answer within {} ms", after.as_millis()),
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Row { code, message } => write!(f, "sqlstate={code} {message}"),
            Fault::Batch { class, message } => write!(f, "class={class} {message}"),
        }
    }
}

/// Sorts a tokio-postgres error: a row fault only when PostgreSQL blames the data.
pub fn classify(error: &tokio_postgres::Error) -> Fault {
    let message = error.to_string();
    match error.code() {
        Some(state) if is_row_fault(state.code()) => Fault::Row {
            code: state.code().to_owned(),
            message: error
                .as_db_error()
                .map(|e| e.message().to_owned())
                .unwrap_or(message),
        },
        Some(state) => Fault::Batch {
            class: sqlstate_class(state.code()),
            message: format!("sqlstate={} {message}", state.code()),
        },
        None => Fault::Batch {
            class: "connection",
            message,
        },
    }
}

/// Data exceptions (22), integrity violations (23) and a value over a size limit (54000)
/// belong to the row; every other SQLSTATE is the database's.
pub fn is_row_fault(code: &str) -> bool {
    code.starts_with("22") || code.starts_with("23") || code == "54000"
}

/// PostgreSQL's SQLSTATE classes (Appendix A of its manual): a fixed label set for metrics.
const CLASSES: [&str; 44] = [
    "00", "01", "02", "03", "08", "09", "0A", "0B", "0F", "0L", "0P", "0Z", "20", "21", "22", "23",
    "24", "25", "26", "27", "28", "2B", "2D", "2F", "34", "38", "39", "3B", "3D", "3F", "40", "42",
    "44", "53", "54", "55", "57", "58", "72", "F0", "HV", "P0", "XX", "other",
];

/// The class of a SQLSTATE as one of `CLASSES` (`other` for a code PostgreSQL does not list).
pub fn sqlstate_class(code: &str) -> &'static str {
    let class = code.get(..2).unwrap_or("");
    CLASSES
        .iter()
        .find(|c| **c == class)
        .copied()
        .unwrap_or("other")
}

/// A connection of our own (the writer's, an export's): connected within `deadlines.connect`,
/// with TCP keepalives and a TCP user timeout, and `deadlines.statement` as the session's
/// `statement_timeout` (overriding a role's) and, doubled, its
/// `idle_in_transaction_session_timeout`. The task driving the socket is returned, to be
/// aborted when the connection is given up.
pub async fn open(
    url: &str,
    deadlines: Deadlines,
    application: &str,
) -> Result<(Client, JoinHandle<()>), Fault> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| Fault::Batch {
        class: "connection",
        message: format!("DATABASE_URL: {e}"),
    })?;
    config
        .application_name(application)
        .connect_timeout(deadlines.connect)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3)
        .tcp_user_timeout(deadlines.statement.min(TCP_USER_TIMEOUT));
    let (client, connection) =
        bounded("connecting", deadlines.connect, config.connect(NoTls)).await?;
    let name = application.to_owned();
    let task = actix_web::rt::spawn(async move {
        if let Err(e) = connection.await {
            log::debug!("connection ended: application={name} error={e}");
        }
    });
    let ms = deadlines.statement.as_millis();
    let settings = format!(
        "SET statement_timeout = {ms}; SET idle_in_transaction_session_timeout = {}",
        ms * 2
    );
    if let Err(e) = bounded(
        "session settings",
        deadlines.connect,
        client.batch_execute(&settings),
    )
    .await
    {
        task.abort();
        return Err(e);
    }
    Ok((client, task))
}

/// Unacknowledged data older than this gives the connection up (a host gone without a reset).
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// The writer's open connection, its prepared statements, and the task driving its socket
/// (aborted when the connection is dropped, so an abandoned connection closes at once).
pub struct WriterDb {
    client: Client,
    task: JoinHandle<()>,
    deadline: Duration,
    statements: Statements,
}

struct Statements {
    allocate: Statement,
    insert_sessions: Statement,
    update_info: Statement,
    end_sessions: Statement,
    copy: Statement,
    upsert_states: Statement,
    mark_batch: Statement,
    last_batch: Statement,
    end_instance: Statement,
    mark_late: Statement,
}

impl Drop for WriterDb {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs `step` under `deadline`, sorting its failure.
async fn bounded<T>(
    what: &str,
    deadline: Duration,
    step: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, Fault> {
    match actix_web::rt::time::timeout(deadline, step).await {
        Ok(result) => result.map_err(|e| classify(&e)),
        Err(_) => Err(Fault::timeout(what, deadline)),
    }
}

impl WriterDb {
    /// Connects, sets the session's own deadlines and prepares the batch statements.
    pub async fn connect(url: &str, deadlines: Deadlines) -> Result<WriterDb, Fault> {
        let (client, task) = open(url, deadlines, "tetcore-analytics writer").await?;
        let ms = deadlines.statement.as_millis();
        bounded(
            "session settings",
            deadlines.connect,
            client.batch_execute(&format!("SET lock_timeout = {ms}")),
        )
        .await?;
        let prepare = |sql: &'static str| {
            let client = &client;
            async move { bounded("preparing", deadlines.connect, client.prepare(sql)).await }
        };
        let statements = Statements {
            allocate: prepare(
                "SELECT nextval('peer_connections_id_seq') FROM generate_series(1, $1::int)",
            )
            .await?,
            insert_sessions: prepare(INSERT_SESSIONS).await?,
            update_info: prepare(UPDATE_INFO).await?,
            end_sessions: prepare(
                "UPDATE peer_connections p SET ended_at = e.at \
                 FROM unnest($1::bigint[], $2::timestamptz[]) AS e(id, at) \
                 WHERE p.id = e.id AND p.ended_at IS NULL",
            )
            .await?,
            copy: prepare(
                "COPY tetcore_logs (peer_connection_id, created_at, audit, logs) FROM STDIN (FORMAT binary)",
            )
            .await?,
            upsert_states: prepare(UPSERT_STATES).await?,
            mark_batch: prepare(
                "INSERT INTO tetcore_writer_batches (instance_id, writer, last_batch) \
                 VALUES ($1, $2, $3) \
                 ON CONFLICT (instance_id, writer) DO UPDATE SET last_batch = excluded.last_batch",
            )
            .await?,
            last_batch: prepare(
                "SELECT last_batch FROM tetcore_writer_batches WHERE instance_id = $1 AND writer = $2",
            )
            .await?,
            end_instance: prepare(END_INSTANCE).await?,
            mark_late: prepare(
                "INSERT INTO tetcore_late_batches (oldest, instance_id) VALUES ($1, $2)",
            )
            .await?,
        };
        Ok(WriterDb {
            client,
            task,
            deadline: deadlines.statement,
            statements,
        })
    }

    /// Runs a prepared statement that returns no rows, within the deadline.
    async fn run(
        &self,
        what: &str,
        statement: &Statement,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<(), Fault> {
        bounded(what, self.deadline, self.client.execute(statement, params))
            .await
            .map(drop)
    }

    pub async fn execute(&self, sql: &'static str) -> Result<(), Fault> {
        bounded(sql, self.deadline, self.client.batch_execute(sql)).await
    }

    /// Takes `n` session ids from their sequence (unique across instances).
    pub async fn allocate_ids(&self, n: usize) -> Result<Vec<i64>, Fault> {
        let n = i32::try_from(n).unwrap_or(i32::MAX);
        let rows = bounded(
            "allocating session ids",
            self.deadline,
            self.client.query(&self.statements.allocate, &[&n]),
        )
        .await?;
        Ok(rows.iter().filter_map(|r| r.try_get(0).ok()).collect())
    }

    /// Creates the sessions in one statement.
    pub async fn insert_sessions(
        &self,
        instance: i64,
        sessions: &[NewSession<'_>],
    ) -> Result<(), Fault> {
        if sessions.is_empty() {
            return Ok(());
        }
        let info = |f: fn(&NodeInfo) -> Option<&str>| -> Vec<Option<&str>> {
            sessions
                .iter()
                .map(|s| s.connected.and_then(|(_, i)| f(i)))
                .collect()
        };
        let ids: Vec<i64> = sessions.iter().map(|s| s.id).collect();
        let ips: Vec<&str> = sessions.iter().map(|s| s.ip_addr).collect();
        let audits: Vec<bool> = sessions.iter().map(|s| s.audit).collect();
        let tids: Vec<String> = sessions
            .iter()
            .map(|s| s.telemetry_id.to_string())
            .collect();
        let created: Vec<DateTime<Utc>> = sessions.iter().map(|s| s.created_at).collect();
        let connected: Vec<Option<DateTime<Utc>>> = sessions
            .iter()
            .map(|s| s.connected.map(|(at, _)| at))
            .collect();
        let authority: Vec<Option<bool>> = sessions
            .iter()
            .map(|s| s.connected.and_then(|(_, i)| i.authority))
            .collect();
        let startup: Vec<Option<i64>> = sessions
            .iter()
            .map(|s| s.connected.and_then(|(_, i)| i.startup_time))
            .collect();
        let peer_id = info(|i| i.peer_id.as_deref());
        let name = info(|i| i.name.as_deref());
        let chain = info(|i| i.chain.as_deref());
        let version = info(|i| i.version.as_deref());
        let implementation = info(|i| i.implementation.as_deref());
        let genesis = info(|i| i.genesis_hash.as_deref());
        let os = info(|i| i.target_os.as_deref());
        let arch = info(|i| i.target_arch.as_deref());
        let env = info(|i| i.target_env.as_deref());
        let sysinfo = info(|i| i.sysinfo.as_deref());
        self.run(
            "creating sessions",
            &self.statements.insert_sessions,
            &[
                &ids,
                &ips,
                &audits,
                &tids,
                &created,
                &connected,
                &peer_id,
                &name,
                &chain,
                &version,
                &authority,
                &startup,
                &implementation,
                &genesis,
                &os,
                &arch,
                &env,
                &sysinfo,
                &instance,
            ],
        )
        .await
    }

    /// A session written before re-sent `system.connected`: the row follows.
    pub async fn update_info(
        &self,
        id: i64,
        at: DateTime<Utc>,
        info: &NodeInfo,
    ) -> Result<(), Fault> {
        self.run(
            "updating a session",
            &self.statements.update_info,
            &[
                &id,
                &at,
                &info.peer_id,
                &info.name,
                &info.chain,
                &info.version,
                &info.authority,
                &info.startup_time,
                &info.implementation,
                &info.genesis_hash,
                &info.target_os,
                &info.target_arch,
                &info.target_env,
                &info.sysinfo,
            ],
        )
        .await
    }

    /// Marks sessions ended at the given times (only those not ended yet).
    pub async fn end_sessions(&self, ended: &[(i64, DateTime<Utc>)]) -> Result<(), Fault> {
        if ended.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = ended.iter().map(|e| e.0).collect();
        let at: Vec<DateTime<Utc>> = ended.iter().map(|e| e.1).collect();
        self.run(
            "ending sessions",
            &self.statements.end_sessions,
            &[&ids, &at],
        )
        .await
    }

    /// Appends the messages in one COPY; all or none are stored. Returns how many.
    pub async fn copy(&self, rows: &[LogRow<'_>]) -> Result<u64, Fault> {
        if rows.is_empty() {
            return Ok(0);
        }
        let data = Bytes::from(logs::encode(rows));
        bounded("copying messages", self.deadline, async {
            let sink = self.client.copy_in(&self.statements.copy).await?;
            let mut sink = std::pin::pin!(sink);
            sink.send(data).await?;
            sink.as_mut().finish().await
        })
        .await
    }

    /// Brings the sessions' rows in `tetcore_node_state` up to the batch's messages.
    pub async fn upsert_states(&self, rows: &[NodeStateRow]) -> Result<(), Fault> {
        if rows.is_empty() {
            return Ok(());
        }
        let column = |f: fn(&NodeStateRow) -> Option<i64>| -> Vec<Option<i64>> {
            rows.iter().map(f).collect()
        };
        let ids: Vec<i64> = rows.iter().map(|r| r.peer_connection_id).collect();
        let at: Vec<DateTime<Utc>> = rows.iter().map(|r| r.last_message_at).collect();
        self.run(
            "updating node states",
            &self.statements.upsert_states,
            &[
                &ids,
                &at,
                &column(|r| r.best_height),
                &column(|r| r.finalized_height),
                &column(|r| r.peers),
                &column(|r| r.txcount),
            ],
        )
        .await
    }

    /// Records, inside the batch's transaction, that batch `number` of `writer` is stored.
    pub async fn mark_batch(&self, writer: WriterId, number: u64) -> Result<(), Fault> {
        let number = i64::try_from(number).unwrap_or(i64::MAX);
        self.run(
            "recording the batch",
            &self.statements.mark_batch,
            &[&writer.instance, &writer.index, &number],
        )
        .await
    }

    /// Marks, inside the batch's transaction, that it holds messages received as long ago as
    /// `oldest` (readers following `created_at` look back for them).
    pub async fn mark_late(&self, instance: i64, oldest: DateTime<Utc>) -> Result<(), Fault> {
        self.run(
            "marking a late batch",
            &self.statements.mark_late,
            &[&oldest, &instance],
        )
        .await
    }

    /// Whether batch `number` of `writer` was committed (its COMMIT answer may have been lost).
    pub async fn committed(&self, writer: WriterId, number: u64) -> Result<bool, Fault> {
        let row = bounded(
            "checking the last batch",
            self.deadline,
            self.client.query_opt(
                &self.statements.last_batch,
                &[&writer.instance, &writer.index],
            ),
        )
        .await?;
        let last: i64 = row.and_then(|r| r.try_get(0).ok()).unwrap_or(0);
        Ok(u64::try_from(last).is_ok_and(|last| last >= number))
    }

    /// A clean stop: the instance and every session it still holds are ended at `at`.
    pub async fn end_instance(&self, instance: i64, at: DateTime<Utc>) -> Result<(), Fault> {
        self.run(
            "ending the instance",
            &self.statements.end_instance,
            &[&instance, &at],
        )
        .await
    }
}

const INSERT_SESSIONS: &str = "\
    INSERT INTO peer_connections (id, ip_addr, audit, telemetry_id, created_at, connected_at, \
        peer_id, name, chain, version, authority, startup_time, implementation, genesis_hash, \
        target_os, target_arch, target_env, sysinfo, instance_id) \
    SELECT id, ip, audit, tid::numeric, created, connected, peer_id, name, chain, version, \
        authority, startup_time, implementation, genesis_hash, target_os, target_arch, \
        target_env, sysinfo::jsonb, $19::bigint \
    FROM unnest($1::bigint[], $2::text[], $3::bool[], $4::text[], $5::timestamptz[], \
        $6::timestamptz[], $7::text[], $8::text[], $9::text[], $10::text[], $11::bool[], \
        $12::bigint[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], \
        $18::text[]) \
        AS s(id, ip, audit, tid, created, connected, peer_id, name, chain, version, authority, \
             startup_time, implementation, genesis_hash, target_os, target_arch, target_env, sysinfo)";

const UPSERT_STATES: &str = "\
    INSERT INTO tetcore_node_state AS s (peer_connection_id, last_message_at, best_height, \
        finalized_height, peers, txcount, updated_at) \
    SELECT id, at, best, finalized, peers, txcount, clock_timestamp() \
    FROM unnest($1::bigint[], $2::timestamptz[], $3::bigint[], $4::bigint[], $5::bigint[], \
        $6::bigint[]) AS u(id, at, best, finalized, peers, txcount) \
    ON CONFLICT (peer_connection_id) DO UPDATE SET \
        last_message_at = greatest(s.last_message_at, excluded.last_message_at), \
        best_height = coalesce(excluded.best_height, s.best_height), \
        finalized_height = coalesce(excluded.finalized_height, s.finalized_height), \
        peers = coalesce(excluded.peers, s.peers), \
        txcount = coalesce(excluded.txcount, s.txcount), \
        updated_at = excluded.updated_at";

const UPDATE_INFO: &str = "\
    UPDATE peer_connections SET connected_at = $2, peer_id = $3, name = $4, chain = $5, \
        version = $6, authority = $7, startup_time = $8, implementation = $9, \
        genesis_hash = $10, target_os = $11, target_arch = $12, target_env = $13, \
        sysinfo = $14::text::jsonb \
    WHERE id = $1::bigint";

const END_INSTANCE: &str = "\
    WITH me AS ( \
        UPDATE tetcore_instances SET ended_at = $2, ended_by = id \
        WHERE id = $1 AND ended_at IS NULL RETURNING id) \
    UPDATE peer_connections p SET ended_at = greatest($2, p.created_at) \
    WHERE p.instance_id = $1 AND p.ended_at IS NULL";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_rows_own_faults_are_row_faults() {
        for code in ["22P02", "22P05", "22021", "23505", "23514", "54000"] {
            assert!(is_row_fault(code), "{code}");
        }
        // read-only, disk full, out of memory, too many connections, lock not available,
        // query canceled (statement timeout), admin shutdown, insufficient privilege,
        // serialization failure, deadlock, internal error, a program limit other than size.
        for code in [
            "25006", "53100", "53200", "53300", "55P03", "57014", "57P01", "42501", "40001",
            "40P01", "XX000", "54001", "08006",
        ] {
            assert!(!is_row_fault(code), "{code}");
        }
    }

    #[test]
    fn classes_are_a_fixed_set() {
        assert_eq!(sqlstate_class("25006"), "25");
        assert_eq!(sqlstate_class("57P01"), "57");
        assert_eq!(sqlstate_class("XX000"), "XX");
        assert_eq!(sqlstate_class("ZZ999"), "other");
        assert_eq!(sqlstate_class(""), "other");
    }
}
