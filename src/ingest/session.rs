//! One actix-ws session per telemetry WebSocket: reads frames, parses them, and hands the
//! resulting events to the DB writer in order.
//!
//! Liveness comes from data: real clients never read, so they never answer pings; any frame
//! proves a node alive, and a socket is closed only after `CLIENT_TIMEOUT_S` without one. Writes
//! never wait: a ping is sent only when there is room; a Pong owed to a client that pinged and
//! could not be queued for `CLIENT_TIMEOUT_S` closes the socket as `unwritable`, cutting the TCP
//! connection (`socket`). Control frames count toward the byte rate. A client's end of input
//! (FIN) reaches the session only after everything it sent before (`socket::EofGate`). Each
//! message first takes its size from the write budget: when the database falls behind, the
//! budget runs out and the session stops reading its socket (TCP back-pressure) instead of
//! buffering or dropping. Frames that cannot be stored are counted by reason; only an oversize
//! or unreadable frame closes the socket.
//!
//! Before the upgrade, `access::gate` admits or refuses the client's address. After it, each
//! connection carries at most `WS_MAX_IDS_PER_CONNECTION` node ids (messages for more are
//! dropped and counted) and may send `WS_MAX_BYTES_PER_S` on average over `WS_RATE_WINDOW_S`;
//! beyond, what it sent is kept, the socket is closed with 1008 and its address blocked.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, Item, Message, MessageStream, ProtocolError, Session};
use chrono::{DateTime, Utc};
use futures_util::future::{select, Either};
use futures_util::FutureExt;
use tokio::sync::{watch, Semaphore, TryAcquireError};

use super::parse::parse_frame;
use super::socket::{EofGate, RawSocket};
use crate::access::client::ClientAddr;
use crate::access::gate::{Gate, GateLimits, Ticket};
use crate::actors::writer::{Event, SessionKey, StoreEvents, Writer, Writers};
use crate::metrics::{mode_label, CloseReason, DropReason, Metrics};

/// Bytes of write budget a message takes on top of its JSON: the row's other columns and
/// bookkeeping.
const ROW_OVERHEAD: usize = 128;

/// Bytes of a control frame besides its payload (a client's frame header, masked).
const CONTROL_HEADER: usize = 6;

/// How long the courtesy Close frame may wait for room in the socket.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// At most this many messages go to the writer in one actor message.
const SEND_BATCH: u64 = 64;

type Carried = Option<Option<Result<Message, ProtocolError>>>;

/// The limits and timings of telemetry sockets, from the configuration.
#[derive(Clone, Debug)]
pub struct IngestSettings {
    pub heartbeat: Duration,
    pub client_timeout: Duration,
    pub max_payload: usize,
    /// Node ids one connection may carry.
    pub max_ids: usize,
    /// Bytes per second one connection may send on average over `rate_window` (0: no limit).
    pub max_bytes_per_s: u64,
    pub rate_window: Duration,
    pub client: ClientAddr,
    pub gate: GateLimits,
}

/// What every session shares.
pub struct IngestState {
    pub writers: Writers,
    pub budget: Arc<Semaphore>,
    pub metrics: Metrics,
    pub settings: IngestSettings,
    pub gate: Arc<Gate>,
    /// Becomes true when the service stops: sessions stop reading and close.
    pub shutdown: watch::Receiver<bool>,
    next_session: AtomicU64,
    next_connection: AtomicU64,
}

impl IngestState {
    pub fn new(
        writers: Writers,
        budget: Arc<Semaphore>,
        metrics: Metrics,
        settings: IngestSettings,
        shutdown: watch::Receiver<bool>,
    ) -> IngestState {
        IngestState {
            writers,
            budget,
            gate: Arc::new(Gate::new(settings.gate.clone(), metrics.clone())),
            metrics,
            settings,
            shutdown,
            next_session: AtomicU64::new(1),
            next_connection: AtomicU64::new(0),
        }
    }
}

/// `GET /`: nodes whose data expires after `LOG_EXPIRY_H`.
pub async fn live(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<IngestState>,
) -> actix_web::Result<HttpResponse> {
    upgrade(req, body, state, false)
}

/// `GET /audit`: nodes whose data is kept for ever.
pub async fn audit(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<IngestState>,
) -> actix_web::Result<HttpResponse> {
    upgrade(req, body, state, true)
}

/// Admits or refuses the client (`access::gate`), then answers the upgrade at once (no
/// database involved) and runs the session on this worker.
fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<IngestState>,
    audit: bool,
) -> actix_web::Result<HttpResponse> {
    let peer = req
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let ip = state.settings.client.resolve(peer, req.headers());
    let ticket = match state.gate.admit(ip) {
        Ok(ticket) => ticket,
        Err(refusal) => {
            return Ok(HttpResponse::build(refusal.status())
                .json(serde_json::json!({ "error": refusal.message() })))
        }
    };
    let socket = req.conn_data::<RawSocket>().copied();
    let eof = req.conn_data::<Arc<EofGate>>().cloned();
    if let Some(gate) = &eof {
        gate.arm();
    }
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let max_payload = state.settings.max_payload;
    let stream = stream.max_frame_size(max_payload);
    let rate = RateMeter::new(state.settings.max_bytes_per_s, state.settings.rate_window);
    let writer = state
        .writers
        .of(state.next_connection.fetch_add(1, Ordering::Relaxed));
    let connection = Connection {
        writer,
        state: state.into_inner(),
        ip,
        ip_addr: ip.to_string().into(),
        _ticket: ticket,
        socket,
        eof,
        audit,
        nodes: HashMap::new(),
        over_ids: false,
        rate,
        pending: Vec::new(),
        pending_messages: 0,
        partial: None,
    };
    actix_web::rt::spawn(connection.run(session, stream));
    Ok(response)
}

/// One WebSocket connection and the node sessions (telemetry ids) it carries.
struct Connection {
    state: Arc<IngestState>,
    /// The writer of all this connection's sessions.
    writer: Addr<Writer>,
    ip: IpAddr,
    ip_addr: Arc<str>,
    /// Its place among the open connections, freed when it ends.
    _ticket: Ticket,
    /// The TCP socket, to cut off a client that does not read.
    socket: Option<RawSocket>,
    /// Holds the end of input back until everything before it is taken.
    eof: Option<Arc<EofGate>>,
    audit: bool,
    nodes: HashMap<u64, SessionKey>,
    /// Whether messages for an id beyond `WS_MAX_IDS_PER_CONNECTION` have arrived (logged once).
    over_ids: bool,
    rate: RateMeter,
    /// Events of frames read but not yet handed to the writer, and how many messages they hold.
    pending: Vec<Event>,
    pending_messages: u64,
    /// A message arriving in fragments, and the write budget its bytes hold so far.
    partial: Option<(Vec<u8>, u32)>,
}

impl Connection {
    async fn run(mut self, mut session: Session, mut stream: MessageStream) {
        let mode = mode_label(self.audit);
        let metrics = self.state.metrics.clone();
        metrics.connections_open.with_label_values(&[mode]).inc();
        log::debug!(
            "telemetry connection opened: ip={} mode={mode}",
            self.ip_addr
        );
        let heartbeat = self.state.settings.heartbeat;
        let mut last_seen = Instant::now();
        let mut next_tick = last_seen + heartbeat;
        // After a fatal frame, messages the codec had already decoded are still taken, but
        // nothing more is waited for.
        let mut fatal: Option<CloseReason> = None;
        let mut shutdown = self.state.shutdown.clone();
        // An item taken while draining the decoded frames that is not a data frame.
        let mut carried = None;
        // Since when a Pong we owe could not be written: the client does not read. Writes never
        // wait (a client that never reads would hold the session); a Pong owed for
        // `CLIENT_TIMEOUT_S` closes the socket as `unwritable`.
        let mut unanswered: Option<Instant> = None;
        let reason = loop {
            let wait = match fatal {
                Some(_) => Duration::ZERO,
                None => next_tick.saturating_duration_since(Instant::now()),
            };
            let next = match carried.take() {
                Some(item) => Next::Item(item),
                None => next(&mut stream, wait, &mut shutdown, self.eof.as_deref()).await,
            };
            let item = match next {
                Next::Shutdown => break CloseReason::Shutdown,
                Next::Item(item) => item,
                Next::Idle => {
                    if let Some(reason) = fatal {
                        break reason;
                    }
                    if last_seen.elapsed() >= self.state.settings.client_timeout {
                        break CloseReason::Timeout;
                    }
                    if let Some(since) = unanswered {
                        if since.elapsed() >= self.state.settings.client_timeout {
                            break CloseReason::Unwritable;
                        }
                    }
                    // A courtesy only (liveness comes from data): sent when there is room.
                    if let Some(Err(_)) = session.ping(b"").now_or_never() {
                        break CloseReason::Client;
                    }
                    next_tick = Instant::now() + heartbeat;
                    continue;
                }
            };
            match item {
                None => break fatal.unwrap_or(CloseReason::Client),
                Some(Ok(message)) => {
                    match message {
                        Message::Text(text) => {
                            carried = self.frames(text.as_bytes(), &mut stream).await
                        }
                        Message::Binary(bytes) => carried = self.frames(&bytes, &mut stream).await,
                        Message::Ping(bytes) => {
                            // Nodes never ping; browsers and tools may. Control frames count
                            // toward the byte rate like any other.
                            self.rate.add(bytes.len() + CONTROL_HEADER);
                            match session.pong(&bytes).now_or_never() {
                                Some(Ok(())) => unanswered = None,
                                Some(Err(_)) => break fatal.unwrap_or(CloseReason::Client),
                                None => {
                                    let since = *unanswered.get_or_insert_with(Instant::now);
                                    if since.elapsed() >= self.state.settings.client_timeout {
                                        break CloseReason::Unwritable;
                                    }
                                }
                            }
                        }
                        Message::Pong(bytes) => self.rate.add(bytes.len() + CONTROL_HEADER),
                        Message::Close(_) => break fatal.unwrap_or(CloseReason::Client),
                        Message::Continuation(item) => match self.fragment(item).await {
                            Ok(Some(whole)) => carried = self.frames(&whole, &mut stream).await,
                            Ok(None) => {}
                            Err(reason) => {
                                self.unreadable(dropped_as(reason));
                                if fatal.is_none() {
                                    fatal = Some(reason);
                                }
                            }
                        },
                        Message::Nop => {}
                    }
                    // After the frame is handled: time spent waiting for the write budget is
                    // ours, not the node's silence.
                    last_seen = Instant::now();
                    if fatal.is_none() && self.rate.over() {
                        // What it sent so far is kept; from now on the address is refused.
                        self.state.gate.block(self.ip);
                        fatal = Some(CloseReason::RateLimited);
                    }
                }
                Some(Err(error)) => match (classify(&error), fatal) {
                    (FrameError::NotUtf8, _) => {
                        last_seen = Instant::now();
                        self.unreadable(DropReason::BadJson);
                    }
                    // The client went away: what it sent before is still buffered, and the
                    // stream ends by itself once that is read.
                    (FrameError::Gone, _) => {}
                    (_, Some(reason)) => break reason,
                    (FrameError::Oversize, None) => {
                        self.unreadable(DropReason::Oversize);
                        fatal = Some(CloseReason::Oversize);
                    }
                    (FrameError::Protocol, None) => {
                        self.unreadable(DropReason::Protocol);
                        log::debug!("unreadable frame: ip={} error={error}", self.ip_addr);
                        fatal = Some(CloseReason::Protocol);
                    }
                },
            }
        };
        let close = match reason {
            CloseReason::Oversize => Some(CloseCode::Size),
            CloseReason::Protocol => Some(CloseCode::Protocol),
            CloseReason::Timeout | CloseReason::Shutdown => Some(CloseCode::Away),
            CloseReason::RateLimited => Some(CloseCode::Policy),
            CloseReason::Unwritable => None,
            CloseReason::Client => None,
        };
        // Ending this task drops the stream and the TCP connection with it: clients ignore
        // Close frames, so the frame is a courtesy, and not waited for long.
        if reason == CloseReason::Unwritable {
            // Nothing more can be written, so actix could never finish the connection itself.
            if let Some(socket) = self.socket {
                socket.cut();
            }
        } else {
            let _ = actix_web::rt::time::timeout(CLOSE_WAIT, session.close(close.map(Into::into)))
                .await;
        }
        drop(stream);
        if self.partial.is_some() {
            // A message whose last fragment never came.
            self.discard_partial();
            self.unreadable(DropReason::Protocol);
        }
        if let Some(gate) = &self.eof {
            gate.disarm();
        }
        metrics
            .connections_closed
            .with_label_values(&[reason.label()])
            .inc();
        metrics.connections_open.with_label_values(&[mode]).dec();
        log::debug!(
            "telemetry connection closed: ip={} reason={}",
            self.ip_addr,
            reason.label()
        );
        self.end_sessions().await;
    }

    /// One fragment of a message sent in several. Its bytes are kept, taking their size from
    /// the write budget like queued messages (so messages being assembled count toward
    /// `WRITE_QUEUE_MAX_BYTES`), until the last fragment completes the message: it is returned
    /// and the budget given back (the message takes its own once parsed). A fragment out of
    /// order is a protocol error; a message above `WS_MAX_PAYLOAD` is oversize.
    async fn fragment(&mut self, item: Item) -> Result<Option<Vec<u8>>, CloseReason> {
        let (first, bytes, last) = match item {
            Item::FirstText(b) | Item::FirstBinary(b) => (true, b, false),
            Item::Continue(b) => (false, b, false),
            Item::Last(b) => (false, b, true),
        };
        if first == self.partial.is_some() {
            self.discard_partial();
            return Err(CloseReason::Protocol);
        }
        let held = self.partial.as_ref().map_or(0, |(data, _)| data.len());
        if held + bytes.len() > self.state.settings.max_payload {
            self.discard_partial();
            return Err(CloseReason::Oversize);
        }
        // The configuration keeps WS_MAX_PAYLOAD below 4 GiB.
        let cost = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        if !self.take_budget(cost).await {
            self.discard_partial();
            return Err(CloseReason::Shutdown);
        }
        let (data, held_cost) = self.partial.get_or_insert_with(|| (Vec::new(), 0));
        data.extend_from_slice(&bytes);
        *held_cost += cost;
        if !last {
            return Ok(None);
        }
        Ok(self.partial.take().map(|(data, cost)| {
            self.give_back(cost);
            data
        }))
    }

    /// Drops a message whose fragments will not be completed, giving its budget back.
    fn discard_partial(&mut self) {
        if let Some((_, cost)) = self.partial.take() {
            self.give_back(cost);
        }
    }

    fn give_back(&self, cost: u32) {
        self.state.metrics.bytes_queued.sub(i64::from(cost));
        self.state.budget.add_permits(cost as usize);
    }

    /// A frame that never became a message.
    fn unreadable(&self, reason: DropReason) {
        let m = &self.state.metrics;
        m.messages_received.inc();
        m.messages_queued.inc();
        m.dropped(reason, 1);
    }

    /// A data frame, and the data frames the codec has already decoded behind it (they arrived
    /// in the same read, so they share its receive time): their events go to the writer in one
    /// message. Returns the first item that is not a data frame, for the caller to handle.
    async fn frames(&mut self, first: &[u8], stream: &mut MessageStream) -> Carried {
        let at = Utc::now();
        self.frame(first, at).await;
        let mut carried = None;
        while self.pending_messages < SEND_BATCH {
            match stream.recv().now_or_never() {
                Some(Some(Ok(Message::Text(text)))) => self.frame(text.as_bytes(), at).await,
                Some(Some(Ok(Message::Binary(bytes)))) => self.frame(&bytes, at).await,
                Some(other) => {
                    carried = Some(other);
                    break;
                }
                None => break,
            }
        }
        self.flush().await;
        carried
    }

    /// One data frame: parse it and queue its events, once the write budget allows.
    async fn frame(&mut self, bytes: &[u8], at: DateTime<Utc>) {
        let m = &self.state.metrics;
        m.messages_received.inc();
        m.bytes_received.inc_by(bytes.len() as u64);
        m.messages_queued.inc();
        self.rate.add(bytes.len());
        let parsed = match parse_frame(bytes) {
            Ok(parsed) => parsed,
            Err(reason) => {
                log::trace!(
                    "frame dropped: ip={} reason={}",
                    self.ip_addr,
                    reason.label()
                );
                m.dropped(reason, 1);
                return;
            }
        };
        if let Some(oddity) = parsed.oddity {
            m.messages_odd.with_label_values(&[oddity.label()]).inc();
        }
        let session = match self.nodes.get(&parsed.telemetry_id) {
            Some(session) => *session,
            None if self.nodes.len() >= self.state.settings.max_ids => {
                if !std::mem::replace(&mut self.over_ids, true) {
                    log::info!(
                        "telemetry connection carries more than {} node ids; messages for more are dropped: ip={}",
                        self.state.settings.max_ids,
                        self.ip_addr
                    );
                }
                m.dropped(DropReason::TooManyIds, 1);
                return;
            }
            None => {
                let session = self.state.next_session.fetch_add(1, Ordering::Relaxed);
                self.nodes.insert(parsed.telemetry_id, session);
                m.node_sessions_open
                    .with_label_values(&[mode_label(self.audit)])
                    .inc();
                self.pending.push(Event::Opened {
                    session,
                    ip_addr: self.ip_addr.clone(),
                    audit: self.audit,
                    telemetry_id: parsed.telemetry_id,
                    at,
                });
                session
            }
        };
        if let Some(info) = parsed.connected {
            self.pending.push(Event::Connected {
                session,
                at,
                info: Box::new(info),
            });
        }
        // The configuration keeps the budget above twice WS_MAX_PAYLOAD, so this always fits.
        let cost = u32::try_from(parsed.logs.len() + ROW_OVERHEAD).unwrap_or(u32::MAX);
        if !self.take_budget(cost).await {
            self.state.metrics.dropped(DropReason::WriterGone, 1);
            return;
        }
        self.pending.push(Event::Log {
            session,
            audit: self.audit,
            at,
            logs: parsed.logs,
            state: parsed.state,
            cost,
        });
        self.pending_messages += 1;
    }

    /// Takes `cost` from the write budget; when it is used up, first hands over what is
    /// pending (which holds budget of its own) and then waits. False if the writer is gone.
    async fn take_budget(&mut self, cost: u32) -> bool {
        let budget = self.state.budget.clone();
        let taken = match budget.try_acquire_many(cost) {
            Ok(permit) => Some(permit),
            Err(TryAcquireError::Closed) => None,
            Err(TryAcquireError::NoPermits) => {
                self.flush().await;
                budget.acquire_many(cost).await.ok()
            }
        };
        let Some(permit) = taken else {
            return false;
        };
        // Held until `give_back` or the writer's release: counted as queued meanwhile.
        permit.forget();
        self.state.metrics.bytes_queued.add(i64::from(cost));
        true
    }

    /// Hands the pending events to the writer.
    async fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.pending);
        let messages = std::mem::take(&mut self.pending_messages);
        self.send(events, messages).await;
    }

    /// Hands events to the writer, waiting while its mailbox is full.
    async fn send(&self, events: Vec<Event>, messages: u64) {
        let writer = &self.writer;
        let sent = match writer.try_send(StoreEvents(events)) {
            Ok(()) => true,
            Err(actix::dev::SendError::Full(msg)) => writer.send(msg).await.is_ok(),
            Err(actix::dev::SendError::Closed(_)) => false,
        };
        if !sent && messages > 0 {
            self.state.metrics.dropped(DropReason::WriterGone, messages);
        }
    }

    async fn end_sessions(&mut self) {
        self.flush().await;
        if self.nodes.is_empty() {
            return;
        }
        let at = Utc::now();
        let events: Vec<Event> = self
            .nodes
            .drain()
            .map(|(_, session)| Event::Closed { session, at })
            .collect();
        self.state
            .metrics
            .node_sessions_open
            .with_label_values(&[mode_label(self.audit)])
            .sub(events.len() as i64);
        self.send(events, 0).await;
    }
}

/// A connection's byte rate as a leaky bucket: it holds `window` seconds' worth of the limit,
/// drains at the limit, and overflows when the average over the window is above it.
struct RateMeter {
    per_s: f64,
    capacity: f64,
    level: f64,
    at: Instant,
}

impl RateMeter {
    fn new(max_bytes_per_s: u64, window: Duration) -> RateMeter {
        let per_s = max_bytes_per_s as f64;
        RateMeter {
            per_s,
            capacity: per_s * window.as_secs_f64(),
            level: 0.0,
            at: Instant::now(),
        }
    }

    fn add(&mut self, bytes: usize) {
        let now = Instant::now();
        let drained = now.duration_since(self.at).as_secs_f64() * self.per_s;
        self.level = (self.level - drained).max(0.0) + bytes as f64;
        self.at = now;
    }

    /// Whether the connection has gone over its limit (never, with no limit).
    fn over(&self) -> bool {
        self.per_s > 0.0 && self.level > self.capacity
    }
}

enum Next {
    Item(Option<Result<Message, ProtocolError>>),
    /// Nothing arrived within the wait.
    Idle,
    Shutdown,
}

/// The next frame, or `Idle` after `wait`, or `Shutdown` as soon as the service stops. When
/// nothing is left to take, a held-back end of input is let through (`socket`).
async fn next(
    stream: &mut MessageStream,
    wait: Duration,
    shutdown: &mut watch::Receiver<bool>,
    eof: Option<&EofGate>,
) -> Next {
    if *shutdown.borrow() {
        return Next::Shutdown;
    }
    match stream.recv().now_or_never() {
        Some(item) => return Next::Item(item),
        None => {
            if let Some(gate) = eof {
                gate.release_if_held();
            }
        }
    }
    let recv = std::pin::pin!(actix_web::rt::time::timeout(wait, stream.recv()));
    let stop = std::pin::pin!(shutdown.changed());
    match select(recv, stop).await {
        Either::Left((Ok(item), _)) => Next::Item(item),
        Either::Left((Err(_), _)) => Next::Idle,
        Either::Right(_) => Next::Shutdown,
    }
}

/// How a message that ended a connection is counted.
fn dropped_as(reason: CloseReason) -> DropReason {
    match reason {
        CloseReason::Oversize => DropReason::Oversize,
        CloseReason::Shutdown => DropReason::WriterGone,
        _ => DropReason::Protocol,
    }
}

enum FrameError {
    /// Above `WS_MAX_PAYLOAD` (one frame, or continuations together).
    Oversize,
    /// A text frame that is not UTF-8: counted like broken JSON, the socket stays.
    NotUtf8,
    /// Anything else the codec cannot read: the stream cannot be trusted any more.
    Protocol,
    /// The connection failed underneath.
    Gone,
}

fn classify(error: &ProtocolError) -> FrameError {
    match error {
        ProtocolError::Overflow => FrameError::Oversize,
        ProtocolError::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            FrameError::NotUtf8
        }
        ProtocolError::Io(_) => FrameError::Gone,
        _ => FrameError::Protocol,
    }
}
