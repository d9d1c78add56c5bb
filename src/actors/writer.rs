//! The DB writer: takes node-session events from the sockets and writes them to PostgreSQL in
//! batches of up to `DB_BATCH_SIZE` messages, or when the oldest waiting event is
//! `DB_SAVE_LATENCY_MS` old, whichever comes first, one batch at a time, on a blocking thread.
//!
//! A batch is one transaction on the writer's own connection: new sessions, `system.connected`
//! updates, the messages (`COPY`) and ended sessions. If PostgreSQL refuses some rows, the
//! batch is written again with savepoints and split until those rows are isolated; they are
//! dropped and counted (`db_rejected`), the rest is stored. If PostgreSQL cannot be reached,
//! the batch goes back to the head of the queue and is retried with capped, jittered backoff. Memory is bounded by the write budget the sockets take from before sending
//! (`WRITE_QUEUE_MAX_BYTES`); it is given back only when the rows are stored or dropped.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::Connection;
use tokio::sync::Semaphore;

use crate::db;
use crate::db::models::{LogRow, NewSession, NodeInfo};
use crate::db::queries::{logs, sessions};
use crate::metrics::{DbErrorKind, DropReason, Metrics};

/// Identifies a node session (connection, telemetry id) within this process.
pub type SessionKey = u64;

/// Messages from the sockets wait here; each socket holds at most one in flight.
const MAILBOX_CAPACITY: usize = 256;
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// What happens to a node session, in the order the socket saw it.
#[derive(Debug)]
pub enum Event {
    /// The first message for a telemetry id on a connection.
    Opened {
        session: SessionKey,
        ip_addr: Arc<str>,
        audit: bool,
        telemetry_id: u64,
        at: DateTime<Utc>,
    },
    /// `system.connected` arrived (the message itself comes as a `Log` too).
    Connected {
        session: SessionKey,
        at: DateTime<Utc>,
        info: Box<NodeInfo>,
    },
    /// One message. `cost` is the write budget its socket took, given back once it is stored
    /// or dropped.
    Log {
        session: SessionKey,
        audit: bool,
        at: DateTime<Utc>,
        logs: String,
        cost: u32,
    },
    /// The connection closed.
    Closed {
        session: SessionKey,
        at: DateTime<Utc>,
    },
}

impl Event {
    fn at(&self) -> DateTime<Utc> {
        match self {
            Event::Opened { at, .. }
            | Event::Connected { at, .. }
            | Event::Log { at, .. }
            | Event::Closed { at, .. } => *at,
        }
    }
}

/// Events of one socket, to be written in order.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StoreEvents(pub Vec<Event>);

/// Shutdown, once the server has stopped: write everything now, without waiting for a full
/// batch, then mark the sessions still open as ended. Answers how many events still wait (0:
/// all written); sent repeatedly until it answers 0.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Drain;

pub struct WriterSettings {
    pub batch_size: usize,
    pub save_latency: Duration,
}

pub struct Writer {
    settings: WriterSettings,
    budget: Arc<Semaphore>,
    metrics: Metrics,
    queue: VecDeque<Event>,
    queued_rows: usize,
    /// The connection and session ids; `None` while lent to the write in progress.
    store: Option<Store>,
    writing: bool,
    draining: bool,
    timer: Option<SpawnHandle>,
    retry_delay: Duration,
}

impl Writer {
    pub fn new(
        database_url: String,
        settings: WriterSettings,
        budget: Arc<Semaphore>,
        metrics: Metrics,
    ) -> Writer {
        Writer {
            settings,
            budget,
            metrics,
            queue: VecDeque::new(),
            queued_rows: 0,
            store: Some(Store {
                database_url,
                conn: None,
                ids: HashMap::new(),
            }),
            writing: false,
            draining: false,
            timer: None,
            retry_delay: RETRY_FIRST,
        }
    }

    /// Starts a write if a batch is due, or sets a timer for when the oldest event will be.
    fn consider_writing(&mut self, ctx: &mut Context<Self>) {
        if self.writing {
            return;
        }
        let Some(oldest) = self.queue.front().map(Event::at) else {
            return;
        };
        let age = (Utc::now() - oldest).to_std().unwrap_or_default();
        let due = self.draining
            || self.queued_rows >= self.settings.batch_size
            || age >= self.settings.save_latency;
        if due {
            self.write_batch(ctx);
        } else if self.timer.is_none() {
            let wait = self.settings.save_latency - age;
            self.timer = Some(ctx.run_later(wait, |writer, ctx| {
                writer.timer = None;
                writer.consider_writing(ctx);
            }));
        }
    }

    fn write_batch(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        let Some(mut store) = self.store.take() else {
            return;
        };
        let mut batch = Vec::new();
        let mut rows = 0;
        while let Some(event) = self.queue.front() {
            if matches!(event, Event::Log { .. }) {
                if rows == self.settings.batch_size {
                    break;
                }
                rows += 1;
            }
            batch.extend(self.queue.pop_front());
        }
        self.queued_rows -= rows;
        self.writing = true;
        let started = Instant::now();
        let url = store.database_url.clone();
        let cost = budget_of(&batch);
        let job = actix_web::rt::task::spawn_blocking(move || {
            let result = store.write(&batch);
            (batch, store, result)
        });
        ctx.spawn(
            job.into_actor(self)
                .map(move |joined, writer, ctx| match joined {
                    Ok((batch, store, result)) => {
                        writer.store = Some(store);
                        writer.finish(batch, result, started, ctx);
                    }
                    Err(e) => {
                        // The blocking task panicked: a bug, not data. Its batch is gone, and
                        // counted as such.
                        log::error!(
                            "batch writer task failed, messages lost: count={rows} error={e}"
                        );
                        writer.metrics.dropped(DropReason::WriterGone, rows as u64);
                        writer.release(cost);
                        writer.store = Some(Store {
                            database_url: url,
                            conn: None,
                            ids: HashMap::new(),
                        });
                        writer.writing = false;
                    }
                }),
        );
    }

    fn finish(
        &mut self,
        batch: Vec<Event>,
        result: Result<Written, String>,
        started: Instant,
        ctx: &mut Context<Self>,
    ) {
        self.writing = false;
        match result {
            Ok(written) => {
                self.retry_delay = RETRY_FIRST;
                let m = &self.metrics;
                m.batch_rows.observe(written.stored as f64);
                m.batch_write_seconds
                    .observe(started.elapsed().as_secs_f64());
                m.stored(written.stored);
                if written.refused_attempts > 0 {
                    m.db_errors
                        .with_label_values(&[DbErrorKind::Refused.label()])
                        .inc_by(written.refused_attempts);
                }
                if written.rejected > 0 {
                    m.dropped(DropReason::DbRejected, written.rejected);
                }
                self.release(budget_of(&batch));
                self.consider_writing(ctx);
            }
            Err(e) => {
                self.metrics
                    .db_errors
                    .with_label_values(&[DbErrorKind::Unavailable.label()])
                    .inc();
                let delay = jittered(self.retry_delay);
                log::warn!(
                    "database unavailable, batch kept for retry: error={e} rows_waiting={} retry_in_ms={}",
                    self.queued_rows + batch.iter().filter(|e| matches!(e, Event::Log { .. })).count(),
                    delay.as_millis()
                );
                for event in batch.into_iter().rev() {
                    if matches!(event, Event::Log { .. }) {
                        self.queued_rows += 1;
                    }
                    self.queue.push_front(event);
                }
                self.retry_delay = (self.retry_delay * 2).min(RETRY_MAX);
                self.writing = true; // nothing else starts a write until the retry
                ctx.run_later(delay, |writer, ctx| {
                    writer.metrics.db_retries.inc();
                    writer.writing = false;
                    writer.write_batch(ctx);
                });
            }
        }
    }

    fn release(&self, cost: u64) {
        self.metrics.bytes_queued.sub(cost as i64);
        self.budget.add_permits(cost as usize);
    }
}

impl Actor for Writer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

impl Handler<StoreEvents> for Writer {
    type Result = ();

    fn handle(&mut self, msg: StoreEvents, ctx: &mut Context<Self>) {
        for event in msg.0 {
            if matches!(event, Event::Log { .. }) {
                self.queued_rows += 1;
            }
            self.queue.push_back(event);
        }
        self.consider_writing(ctx);
    }
}

impl Handler<Drain> for Writer {
    type Result = usize;

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) -> usize {
        self.draining = true;
        let idle = self.queue.is_empty() && !self.writing;
        if let (true, Some(Store { ids, .. })) = (idle, &self.store) {
            // The server has stopped: sessions that did not get to close end now.
            let at = Utc::now();
            self.queue
                .extend(ids.keys().map(|&session| Event::Closed { session, at }));
        }
        self.consider_writing(ctx);
        self.queue.len() + usize::from(self.writing)
    }
}

/// What one batch came to.
struct Written {
    stored: u64,
    /// Rows PostgreSQL refused even alone.
    rejected: u64,
    /// Failed COPY attempts while isolating those rows.
    refused_attempts: u64,
}

/// The writer's own connection to PostgreSQL (made on first use, dropped after any failure so
/// the next attempt starts afresh) and the database ids of this process's sessions that are
/// written and not yet ended.
struct Store {
    database_url: String,
    conn: Option<PgConnection>,
    ids: HashMap<SessionKey, i64>,
}

/// How a batch is written. `Fast`: no savepoints, three round trips for a batch of messages;
/// if PostgreSQL refuses anything, the transaction is rolled back and the batch written again
/// `Careful`ly: every statement in a savepoint, refused rows isolated by splitting.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Fast,
    Careful,
}

impl Store {
    /// Writes one batch in one transaction. `Err` means the database could not be reached (or
    /// failed in a way splitting cannot help); nothing of the batch is then kept and `ids` is
    /// as it was.
    fn write(&mut self, batch: &[Event]) -> Result<Written, String> {
        if self.conn.is_none() {
            let conn = PgConnection::establish(&self.database_url).map_err(|e| e.to_string())?;
            self.conn = Some(conn);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err("no connection".into());
        };
        let mut new_ids = HashMap::new();
        let ids = &self.ids;
        // A batch of messages alone is one COPY, atomic by itself: no BEGIN and COMMIT needed.
        let only_messages = batch.iter().all(|e| matches!(e, Event::Log { .. }));
        let mut attempt = |conn: &mut PgConnection, mode| {
            new_ids.clear();
            if only_messages && mode == Mode::Fast {
                write_in_transaction(conn, batch, ids, &mut new_ids, mode)
            } else {
                conn.transaction(|c| write_in_transaction(c, batch, ids, &mut new_ids, mode))
            }
        };
        let result = match attempt(conn, Mode::Fast) {
            Err(_) if db::answers(conn) => attempt(conn, Mode::Careful),
            other => other,
        };
        let written = match result {
            Ok(written) => written,
            Err(e) => {
                self.conn = None;
                return Err(e.to_string());
            }
        };
        self.ids.extend(new_ids);
        for event in batch {
            if let Event::Closed { session, .. } = event {
                self.ids.remove(session);
            }
        }
        Ok(written)
    }
}

fn write_in_transaction(
    conn: &mut PgConnection,
    batch: &[Event],
    ids: &HashMap<SessionKey, i64>,
    new_ids: &mut HashMap<SessionKey, i64>,
    mode: Mode,
) -> diesel::QueryResult<Written> {
    // 1. Sessions opened in this batch, with the latest system.connected they sent in it.
    let mut latest: HashMap<SessionKey, (DateTime<Utc>, &NodeInfo)> = HashMap::new();
    for event in batch {
        if let Event::Connected { session, at, info } = event {
            if !ids.contains_key(session) {
                latest.insert(*session, (*at, info));
            }
        }
    }
    let opened: Vec<&Event> = batch
        .iter()
        .filter(|e| matches!(e, Event::Opened { session, .. } if !ids.contains_key(session)))
        .collect();
    let fresh = match opened.len() {
        0 => Vec::new(),
        n => sessions::allocate_ids(conn, n)?,
    };
    let mut rows = Vec::with_capacity(opened.len());
    for (event, id) in opened.into_iter().zip(fresh) {
        if let Event::Opened {
            session,
            ip_addr,
            audit,
            telemetry_id,
            at,
        } = event
        {
            new_ids.insert(*session, id);
            rows.push(NewSession {
                id,
                ip_addr,
                audit: *audit,
                telemetry_id: *telemetry_id,
                created_at: *at,
                connected: latest.get(session).copied(),
            });
        }
    }
    match mode {
        Mode::Fast => {
            sessions::insert(conn, &rows)?;
        }
        Mode::Careful => insert_sessions(conn, &rows)?,
    }

    // 2. Sessions written before that re-sent system.connected.
    for event in batch {
        if let Event::Connected { session, at, info } = event {
            if let Some(id) = ids.get(session) {
                if mode == Mode::Fast {
                    sessions::update_info(conn, *id, *at, info)?;
                    continue;
                }
                let updated = conn.transaction(|c| sessions::update_info(c, *id, *at, info));
                if let Err(e) = updated {
                    if !db::answers(conn) {
                        return Err(e);
                    }
                    log::warn!("system.connected update refused: session={id} error={e}");
                }
            }
        }
    }

    // 3. The messages.
    let mut orphans = 0;
    let log_rows: Vec<LogRow> = batch
        .iter()
        .filter_map(|e| match e {
            Event::Log {
                session,
                audit,
                at,
                logs,
                ..
            } => match ids.get(session).or_else(|| new_ids.get(session)) {
                Some(id) => Some(LogRow {
                    peer_connection_id: *id,
                    created_at: *at,
                    audit: *audit,
                    logs,
                }),
                None => {
                    orphans += 1;
                    None
                }
            },
            _ => None,
        })
        .collect();
    if orphans > 0 {
        log::error!("messages without a session row were dropped: count={orphans}");
    }
    let mut written = Written {
        stored: 0,
        rejected: orphans,
        refused_attempts: 0,
    };
    match mode {
        Mode::Fast => written.stored = logs::copy(conn, &log_rows)? as u64,
        Mode::Careful => copy_isolating(conn, &log_rows, &mut written)?,
    }

    // 4. Ended sessions.
    let ended: Vec<(i64, DateTime<Utc>)> = batch
        .iter()
        .filter_map(|e| match e {
            Event::Closed { session, at } => ids
                .get(session)
                .or_else(|| new_ids.get(session))
                .map(|id| (*id, *at)),
            _ => None,
        })
        .collect();
    sessions::end(conn, &ended)?;
    Ok(written)
}

/// Creates sessions in bulk; if PostgreSQL refuses the statement, one by one, and a session it
/// refuses even alone is created without its `system.connected` fields (its messages still
/// need the row).
fn insert_sessions(conn: &mut PgConnection, rows: &[NewSession<'_>]) -> diesel::QueryResult<()> {
    let Err(e) = conn.transaction(|c| sessions::insert(c, rows)) else {
        return Ok(());
    };
    if !db::answers(conn) {
        return Err(e);
    }
    for row in rows {
        let one = std::slice::from_ref(row);
        if let Err(e) = conn.transaction(|c| sessions::insert(c, one)) {
            if !db::answers(conn) {
                return Err(e);
            }
            log::warn!(
                "session row refused, stored without its details: id={} error={e}",
                row.id
            );
            let bare = NewSession {
                connected: None,
                ..*row
            };
            conn.transaction(|c| sessions::insert(c, &[bare]))?;
        }
    }
    Ok(())
}

/// Copies the rows; where PostgreSQL refuses, halves until the refused rows stand alone.
fn copy_isolating(
    conn: &mut PgConnection,
    rows: &[LogRow<'_>],
    written: &mut Written,
) -> diesel::QueryResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    match conn.transaction(|c| logs::copy(c, rows)) {
        Ok(n) => {
            written.stored += n as u64;
            Ok(())
        }
        Err(e) => {
            if !db::answers(conn) {
                return Err(e);
            }
            written.refused_attempts += 1;
            if let [row] = rows {
                log::warn!(
                    "message refused by PostgreSQL, dropped: session={} error={e}",
                    row.peer_connection_id
                );
                written.rejected += 1;
                return Ok(());
            }
            let (left, right) = rows.split_at(rows.len() / 2);
            copy_isolating(conn, left, written)?;
            copy_isolating(conn, right, written)
        }
    }
}

/// The write budget the messages of `batch` hold.
fn budget_of(batch: &[Event]) -> u64 {
    batch
        .iter()
        .map(|e| match e {
            Event::Log { cost, .. } => u64::from(*cost),
            _ => 0,
        })
        .sum()
}

/// `base` ± 25 %, so that instances that lost the database together do not retry in step.
fn jittered(base: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let spread = f64::from(nanos % 1000) / 1000.0 * 0.5 + 0.75;
    base.mul_f64(spread)
}
