//! The DB writers: each takes the node-session events of its share of the sockets and writes
//! them to PostgreSQL in batches of up to `DB_BATCH_SIZE` messages, or when the oldest waiting
//! event is `DB_SAVE_LATENCY_MS` old, whichever comes first, one batch at a time, on its own
//! connection (`db::ingest`). `DB_WRITERS` of them run side by side, so that many batches are
//! in flight while each socket's events (all of its sessions) stay in order in one writer.
//!
//! A batch is one transaction: new sessions, `system.connected` updates, the messages (`COPY`),
//! the state they tell of their sessions (`tetcore_node_state`), ended sessions, the batch's
//! number in `tetcore_writer_batches`, and a mark in `tetcore_late_batches` if its oldest
//! message is more than 2 s old. What happens on a failure is PostgreSQL's call, by SQLSTATE:
//! only a row's own fault (classes 22 and 23, 54000) has the batch written again with
//! savepoints, split until the refused rows stand alone; they are dropped and counted
//! (`db_rejected`). Every other failure (connection, read-only, disk
//! full, timeouts, locks, privileges, ...) keeps the whole batch at the head of the queue, to be
//! retried with capped, jittered backoff. If the answer to COMMIT was lost, the retry first
//! asks whether the batch's number was recorded, so a batch is stored exactly once. Memory is
//! bounded by the write budget the sockets take before sending (`WRITE_QUEUE_MAX_BYTES`); it is
//! given back only when the rows are stored or dropped.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;

use crate::db::ingest::{Deadlines, Fault, WriterDb, WriterId};
use crate::db::models::{LogRow, NewSession, NodeInfo, NodeStateRow, StateUpdate};
use crate::metrics::{DropReason, Metrics};

/// Identifies a node session (connection, telemetry id) within this process.
pub type SessionKey = u64;

/// Messages from the sockets wait here; each socket holds at most one in flight.
const MAILBOX_CAPACITY: usize = 256;
/// A batch committed this long after its oldest message was received is marked late
/// (`tetcore_late_batches`): readers following `created_at` allow 5 s for commits in flight.
const LATE_AFTER: chrono::TimeDelta = chrono::TimeDelta::seconds(2);
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
        /// What it tells of its node's state (`tetcore_node_state`).
        state: Option<StateUpdate>,
        cost: u32,
    },
    /// The connection closed.
    Closed {
        session: SessionKey,
        at: DateTime<Utc>,
    },
    /// The service stops: every session of this instance still open ends, and the instance.
    Stopped { at: DateTime<Utc> },
}

impl Event {
    fn at(&self) -> DateTime<Utc> {
        match self {
            Event::Opened { at, .. }
            | Event::Connected { at, .. }
            | Event::Log { at, .. }
            | Event::Closed { at, .. }
            | Event::Stopped { at } => *at,
        }
    }
}

/// Events of one socket, to be written in order.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StoreEvents(pub Vec<Event>);

/// Shutdown, once the server has stopped: write everything now, without waiting for a full
/// batch; with `stop` (sent to one writer once every writer has drained), then mark this
/// instance and the sessions still open as ended. Answers how many events still wait (0: all
/// written); sent repeatedly until it answers 0.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Drain {
    pub stop: bool,
}

#[derive(Clone)]
pub struct WriterSettings {
    pub batch_size: usize,
    pub save_latency: Duration,
    pub deadlines: Deadlines,
    /// Which writer of which instance this is.
    pub id: WriterId,
}

pub struct Writer {
    settings: WriterSettings,
    budget: Arc<Semaphore>,
    metrics: Metrics,
    queue: VecDeque<Event>,
    queued_rows: usize,
    /// The connection and session ids; `None` while lent to the write in progress.
    store: Option<Store>,
    /// A batch that failed, kept whole (with its number) for the retry.
    retry: Option<Batch>,
    batches: u64,
    writing: bool,
    draining: bool,
    stopped: bool,
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
            store: Some(Store {
                database_url,
                deadlines: settings.deadlines,
                id: settings.id,
                db: None,
                ids: HashMap::new(),
            }),
            settings,
            budget,
            metrics,
            queue: VecDeque::new(),
            queued_rows: 0,
            retry: None,
            batches: 0,
            writing: false,
            draining: false,
            stopped: false,
            timer: None,
            retry_delay: RETRY_FIRST,
        }
    }

    /// Starts a write if a batch is due, or sets a timer for when the oldest event will be.
    fn consider_writing(&mut self, ctx: &mut Context<Self>) {
        if self.writing {
            return;
        }
        if self.retry.is_some() {
            self.write_batch(ctx);
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

    /// The batch to write next: the one that failed, or a new one from the head of the queue.
    fn next_batch(&mut self) -> Batch {
        if let Some(batch) = self.retry.take() {
            return batch;
        }
        let mut events = Vec::new();
        let mut rows = 0;
        while let Some(event) = self.queue.front() {
            if matches!(event, Event::Log { .. }) {
                if rows == self.settings.batch_size {
                    break;
                }
                rows += 1;
            }
            events.extend(self.queue.pop_front());
        }
        self.queued_rows -= rows;
        self.batches += 1;
        Batch {
            events,
            number: self.batches,
            committing: None,
        }
    }

    fn write_batch(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        let Some(mut store) = self.store.take() else {
            return;
        };
        let mut batch = self.next_batch();
        self.writing = true;
        let started = Instant::now();
        let job = async move {
            let result = store.write(&mut batch).await;
            (batch, store, result)
        };
        ctx.spawn(
            job.into_actor(self)
                .map(move |(batch, store, result), writer, ctx| {
                    writer.store = Some(store);
                    writer.finish(batch, result, started, ctx);
                }),
        );
    }

    fn finish(
        &mut self,
        batch: Batch,
        result: Result<Written, Fault>,
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
                for (class, n) in &written.refused {
                    m.db_errors
                        .with_label_values(&[class, "isolate"])
                        .inc_by(*n);
                }
                if written.rejected > 0 {
                    m.dropped(DropReason::DbRejected, written.rejected);
                }
                self.release(budget_of(&batch.events));
                self.consider_writing(ctx);
            }
            Err(fault) => {
                self.metrics
                    .db_errors
                    .with_label_values(&[fault.class(), "retry"])
                    .inc();
                let delay = jittered(self.retry_delay);
                let rows = batch
                    .events
                    .iter()
                    .filter(|e| matches!(e, Event::Log { .. }))
                    .count();
                log::warn!(
                    "batch not written, kept whole for retry: {fault} batch={} rows={rows} rows_waiting={} retry_in_ms={}",
                    batch.number,
                    self.queued_rows + rows,
                    delay.as_millis()
                );
                self.retry = Some(batch);
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

/// The writers of this instance. Each socket is given one for its life, in turn, so every
/// session's events reach PostgreSQL in the order they were received.
#[derive(Clone)]
pub struct Writers(Arc<[Addr<Writer>]>);

impl Writers {
    /// Starts `count` writers (at least one), numbered from 0.
    pub fn start(
        count: usize,
        database_url: &str,
        settings: WriterSettings,
        budget: &Arc<Semaphore>,
        metrics: &Metrics,
    ) -> Writers {
        let writers = (0..count.max(1))
            .map(|index| {
                let id = WriterId {
                    index: i32::try_from(index).unwrap_or(i32::MAX),
                    ..settings.id
                };
                let settings = WriterSettings {
                    id,
                    ..settings.clone()
                };
                Writer::new(
                    database_url.to_owned(),
                    settings,
                    budget.clone(),
                    metrics.clone(),
                )
                .start()
            })
            .collect();
        Writers(writers)
    }

    /// The writer of the `n`th socket.
    pub fn of(&self, n: u64) -> Addr<Writer> {
        let index = usize::try_from(n % self.0.len() as u64).unwrap_or(0);
        self.0[index].clone()
    }

    /// After the server has stopped: every writer writes what it holds; then the first marks
    /// this instance and its sessions still open as ended. False if `deadline` passed first.
    pub async fn drain(&self, deadline: Duration) -> bool {
        let until = Instant::now() + deadline;
        for stop in [false, true] {
            let writers = if stop { &self.0[..1] } else { &self.0[..] };
            for writer in writers {
                loop {
                    match writer.send(Drain { stop }).await {
                        Ok(0) => break,
                        Ok(_) if Instant::now() < until => {
                            actix_web::rt::time::sleep(Duration::from_millis(20)).await
                        }
                        _ => return false,
                    }
                }
            }
        }
        true
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

    fn handle(&mut self, msg: Drain, ctx: &mut Context<Self>) -> usize {
        self.draining = true;
        let idle = self.queue.is_empty() && !self.writing && self.retry.is_none();
        if msg.stop && idle && !self.stopped {
            // The server has stopped: sessions that did not get to close end now, and so does
            // this instance.
            self.stopped = true;
            self.queue.push_back(Event::Stopped { at: Utc::now() });
        }
        self.consider_writing(ctx);
        self.queue.len() + usize::from(self.writing) + usize::from(self.retry.is_some())
    }
}

/// What one batch came to.
#[derive(Debug, Default)]
struct Written {
    stored: u64,
    /// Rows PostgreSQL refused even alone.
    rejected: u64,
    /// Statements PostgreSQL refused for their rows while isolating them, by SQLSTATE class.
    refused: HashMap<&'static str, u64>,
}

impl Written {
    fn refused(&mut self, fault: &Fault) {
        *self.refused.entry(fault.class()).or_default() += 1;
    }
}

/// A batch on its way to PostgreSQL, kept whole across retries.
struct Batch {
    events: Vec<Event>,
    /// This writer's number for it, fixed at the first attempt: the transaction that stores
    /// the batch also records it in `tetcore_writer_batches`.
    number: u64,
    /// Set just before COMMIT is sent: what the batch came to and the session ids it created.
    /// If the answer to COMMIT is lost, the next attempt asks `last_batch` whether it
    /// committed, and takes this as the result if it did.
    committing: Option<(Written, HashMap<SessionKey, i64>)>,
}

/// The writer's connection (made on first use, dropped after any failure so the next attempt
/// starts afresh) and the database ids of this process's sessions that are written and not
/// yet ended.
struct Store {
    database_url: String,
    deadlines: Deadlines,
    id: WriterId,
    db: Option<WriterDb>,
    ids: HashMap<SessionKey, i64>,
}

/// How a batch is written. `Fast`: one transaction, no savepoints. If PostgreSQL refuses a row
/// for its content, the transaction is rolled back and the batch written again `Careful`ly:
/// every statement in a savepoint, refused rows isolated by splitting.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Fast,
    Careful,
}

impl Store {
    /// Writes one batch in one transaction, exactly once. `Err`: the database (or the way to
    /// it) failed; nothing of the batch is kept and `ids` is as it was.
    async fn write(&mut self, batch: &mut Batch) -> Result<Written, Fault> {
        let result = self.attempt(batch).await;
        if result.is_err() {
            // Whatever state the session is in, the next attempt starts on a new one.
            self.db = None;
        }
        result
    }

    async fn attempt(&mut self, batch: &mut Batch) -> Result<Written, Fault> {
        if self.db.is_none() {
            self.db = Some(WriterDb::connect(&self.database_url, self.deadlines).await?);
        }
        let Some(db) = self.db.as_ref() else {
            return Err(Fault::Batch {
                class: "connection",
                message: "no connection".into(),
            });
        };
        // Kept until the answer is known: if asking fails, the next attempt asks again.
        if batch.committing.is_some() {
            let committed = db.committed(self.id, batch.number).await?;
            if let Some((written, new_ids)) = batch.committing.take().filter(|_| committed) {
                log::info!(
                    "batch found committed after its COMMIT answer was lost: batch={} rows={}",
                    batch.number,
                    written.stored
                );
                self.apply(&batch.events, new_ids);
                return Ok(written);
            }
        }
        let fast = self.transaction(db, batch, Mode::Fast).await;
        let (written, new_ids) = match fast {
            Err(Fault::Row { code, message }) => {
                log::info!(
                    "PostgreSQL refused rows of a batch, isolating them: sqlstate={code} error={message}"
                );
                db.execute("ROLLBACK").await?;
                self.transaction(db, batch, Mode::Careful).await?
            }
            other => other?,
        };
        self.apply(&batch.events, new_ids);
        Ok(written)
    }

    /// The batch's transaction, up to and including COMMIT.
    async fn transaction(
        &self,
        db: &WriterDb,
        batch: &mut Batch,
        mode: Mode,
    ) -> Result<(Written, HashMap<SessionKey, i64>), Fault> {
        db.execute("BEGIN").await?;
        let mut new_ids = HashMap::new();
        let written = write_events(
            db,
            self.id.instance,
            &batch.events,
            &self.ids,
            &mut new_ids,
            mode,
        )
        .await?;
        db.mark_batch(self.id, batch.number).await?;
        let oldest = batch
            .events
            .iter()
            .filter(|e| matches!(e, Event::Log { .. }))
            .map(Event::at)
            .min();
        if let Some(oldest) = oldest.filter(|t| Utc::now() - *t > LATE_AFTER) {
            db.mark_late(self.id.instance, oldest).await?;
        }
        batch.committing = Some((written, new_ids));
        db.execute("COMMIT").await?;
        batch.committing.take().ok_or_else(|| Fault::Batch {
            class: "other",
            message: "the batch's record vanished during COMMIT".into(),
        })
    }

    /// The batch is stored: its new sessions are known, its ended ones forgotten.
    fn apply(&mut self, events: &[Event], new_ids: HashMap<SessionKey, i64>) {
        self.ids.extend(new_ids);
        for event in events {
            match event {
                Event::Closed { session, .. } => {
                    self.ids.remove(session);
                }
                Event::Stopped { .. } => self.ids.clear(),
                _ => {}
            }
        }
    }
}

/// The statements of one batch, inside its transaction.
async fn write_events(
    db: &WriterDb,
    instance: i64,
    batch: &[Event],
    ids: &HashMap<SessionKey, i64>,
    new_ids: &mut HashMap<SessionKey, i64>,
    mode: Mode,
) -> Result<Written, Fault> {
    let mut written = Written::default();

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
        n => db.allocate_ids(n).await?,
    };
    let mut rows = Vec::with_capacity(opened.len());
    let mut keys = Vec::with_capacity(opened.len());
    for (event, id) in opened.into_iter().zip(fresh) {
        if let Event::Opened {
            session,
            ip_addr,
            audit,
            telemetry_id,
            at,
        } = event
        {
            keys.push(*session);
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
        Mode::Fast => db.insert_sessions(instance, &rows).await?,
        Mode::Careful => insert_sessions_isolating(db, instance, &mut rows, &mut written).await?,
    }
    for (key, row) in keys.into_iter().zip(&rows) {
        // A session PostgreSQL refused even bare has id 0: its messages cannot be stored.
        if row.id != 0 {
            new_ids.insert(key, row.id);
        }
    }

    // 2. Sessions written before that re-sent system.connected.
    for event in batch {
        if let Event::Connected { session, at, info } = event {
            if let Some(id) = ids.get(session) {
                if mode == Mode::Fast {
                    db.update_info(*id, *at, info).await?;
                    continue;
                }
                let refused = in_savepoint(db, db.update_info(*id, *at, info)).await?;
                if let Some(e) = refused {
                    written.refused(&e);
                    log::warn!("system.connected update refused, kept as it was: session={id} {e}");
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
        log::warn!("messages of a session PostgreSQL refused were dropped: count={orphans}");
        written.rejected += orphans;
    }
    match mode {
        Mode::Fast => written.stored = db.copy(&log_rows).await?,
        Mode::Careful => copy_isolating(db, &log_rows, &mut written).await?,
    }

    // 4. What the messages tell of their sessions' state, newest last.
    let states = node_states(batch, |session| {
        ids.get(session).or_else(|| new_ids.get(session)).copied()
    });
    match mode {
        Mode::Fast => db.upsert_states(&states).await?,
        Mode::Careful => {
            if let Some(e) = in_savepoint(db, db.upsert_states(&states)).await? {
                written.refused(&e);
                log::warn!("node states refused, left as they were: {e}");
            }
        }
    }

    // 5. Ended sessions, and this instance when it stops.
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
    db.end_sessions(&ended).await?;
    for event in batch {
        if let Event::Stopped { at } = event {
            db.end_instance(instance, *at).await?;
        }
    }
    Ok(written)
}

/// Each session's state after the batch's messages: the newest value of each field (the events
/// are in the order their socket received them), and the time of its newest message.
fn node_states(batch: &[Event], id_of: impl Fn(&SessionKey) -> Option<i64>) -> Vec<NodeStateRow> {
    let mut rows: Vec<NodeStateRow> = Vec::new();
    let mut index: HashMap<i64, usize> = HashMap::new();
    for event in batch {
        let Event::Log {
            session, at, state, ..
        } = event
        else {
            continue;
        };
        let Some(id) = id_of(session) else {
            continue;
        };
        let i = *index.entry(id).or_insert_with(|| {
            rows.push(NodeStateRow::new(id, *at));
            rows.len() - 1
        });
        let row = &mut rows[i];
        row.last_message_at = row.last_message_at.max(*at);
        match state {
            Some(StateUpdate::Best(h)) => row.best_height = Some(*h),
            Some(StateUpdate::Finalized(h)) => row.finalized_height = Some(*h),
            Some(StateUpdate::Interval { peers, txcount }) => {
                row.peers = peers.or(row.peers);
                row.txcount = txcount.or(row.txcount);
            }
            None => {}
        }
    }
    rows
}

/// Runs one statement in a savepoint. `Ok(Some(fault))`: PostgreSQL refused its rows and the
/// statement was undone; `Err`: anything else, for the batch to wait.
async fn in_savepoint(
    db: &WriterDb,
    step: impl std::future::Future<Output = Result<(), Fault>>,
) -> Result<Option<Fault>, Fault> {
    db.execute("SAVEPOINT row_check").await?;
    match step.await {
        Ok(()) => {
            db.execute("RELEASE SAVEPOINT row_check").await?;
            Ok(None)
        }
        Err(fault @ Fault::Row { .. }) => {
            db.execute("ROLLBACK TO SAVEPOINT row_check").await?;
            Ok(Some(fault))
        }
        Err(fault) => Err(fault),
    }
}

/// Creates sessions in bulk; if PostgreSQL refuses their content, one by one, and a session it
/// refuses is created without its `system.connected` fields (its messages still need the row).
/// One refused even bare gets id 0.
async fn insert_sessions_isolating(
    db: &WriterDb,
    instance: i64,
    rows: &mut [NewSession<'_>],
    written: &mut Written,
) -> Result<(), Fault> {
    let Some(e) = in_savepoint(db, db.insert_sessions(instance, rows)).await? else {
        return Ok(());
    };
    written.refused(&e);
    for row in rows.iter_mut() {
        let one = std::slice::from_ref(row);
        let Some(e) = in_savepoint(db, db.insert_sessions(instance, one)).await? else {
            continue;
        };
        written.refused(&e);
        log::warn!(
            "session row refused, stored without its details: id={} {e}",
            row.id
        );
        let bare = [NewSession {
            connected: None,
            ..*row
        }];
        if let Some(e) = in_savepoint(db, db.insert_sessions(instance, &bare)).await? {
            written.refused(&e);
            log::warn!(
                "session row refused even bare, its messages dropped: id={} {e}",
                row.id
            );
            row.id = 0;
        }
    }
    Ok(())
}

/// Copies the rows; where PostgreSQL refuses their content, halves until the refused rows
/// stand alone, and drops those.
async fn copy_isolating(
    db: &WriterDb,
    rows: &[LogRow<'_>],
    written: &mut Written,
) -> Result<(), Fault> {
    let mut parts = vec![rows];
    while let Some(part) = parts.pop() {
        if part.is_empty() {
            continue;
        }
        let mut copied = 0;
        let copy = async {
            copied = db.copy(part).await?;
            Ok(())
        };
        let Some(e) = in_savepoint(db, copy).await? else {
            written.stored += copied;
            continue;
        };
        written.refused(&e);
        if let [row] = part {
            log::warn!(
                "message refused by PostgreSQL, dropped: session={} {e}",
                row.peer_connection_id
            );
            written.rejected += 1;
            continue;
        }
        let (left, right) = part.split_at(part.len() / 2);
        // Right first on the stack, so the left half is written first: order kept.
        parts.push(right);
        parts.push(left);
    }
    Ok(())
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
