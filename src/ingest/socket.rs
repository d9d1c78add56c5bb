//! The TCP socket under every connection, for what actix-http cannot do for telemetry.
//!
//! - **Nothing before a FIN is lost.** When a client half-closes while its session is held back
//!   (the write queue is full), actix-http reads the end of input while up to 128 KiB it read
//!   before is still waiting for the session, and drops those bytes. `GatedStream` holds the
//!   end of input back on telemetry connections until the session has taken everything the
//!   connection had delivered (`EofGate::release_if_held`, called when the session has nothing
//!   left to read); only then does actix-http see it, after feeding the session the rest.
//! - **Cutting off a client that stopped reading.** When a session ends, actix-http still
//!   tries to flush what was queued for the client before closing, so a client that never
//!   reads would keep the connection as long as it liked. `RawSocket::cut` shuts it down.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection's stream as actix-http reads and writes it.
pub struct GatedStream {
    io: TcpStream,
    gate: Arc<EofGate>,
    socket: Option<RawSocket>,
}

impl GatedStream {
    pub fn new(io: TcpStream) -> GatedStream {
        let socket = match (io.local_addr(), io.peer_addr()) {
            (Ok(local), Ok(peer)) => Some(RawSocket {
                fd: io.as_raw_fd(),
                local,
                peer,
            }),
            _ => None,
        };
        GatedStream {
            io,
            gate: Arc::default(),
            socket,
        }
    }

    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.socket.map(|s| s.peer)
    }
}

/// Holds back the end of input of a connection while armed, until released.
#[derive(Default, Debug)]
pub struct EofGate {
    armed: AtomicBool,
    held: AtomicBool,
    released: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl EofGate {
    /// From now on the end of input waits for `release_if_held` (a telemetry session started).
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// The session ended: the end of input is no longer held back, now or later.
    pub fn disarm(&self) {
        self.armed.store(false, Ordering::SeqCst);
        self.held.store(true, Ordering::SeqCst);
        self.release_if_held();
    }

    /// Lets a held-back end of input through: call only when everything the connection
    /// delivered before it has been taken. Returns whether one was held.
    pub fn release_if_held(&self) -> bool {
        if !self.held.load(Ordering::SeqCst) {
            return false;
        }
        self.released.store(true, Ordering::SeqCst);
        if let Some(waker) = self.waker.lock().ok().and_then(|mut w| w.take()) {
            waker.wake();
        }
        true
    }

    /// Called at the end of input: whether to hold it back now.
    fn hold(&self, cx: &Context<'_>) -> bool {
        if !self.armed.load(Ordering::SeqCst) || self.released.load(Ordering::SeqCst) {
            return false;
        }
        if let Ok(mut waker) = self.waker.lock() {
            *waker = Some(cx.waker().clone());
        }
        self.held.store(true, Ordering::SeqCst);
        true
    }
}

impl AsyncRead for GatedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let has_room = buf.remaining() > 0;
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if has_room && buf.filled().len() == before => {
                if self.gate.hold(cx) {
                    Poll::Pending
                } else {
                    Poll::Ready(Ok(()))
                }
            }
            other => other,
        }
    }
}

impl AsyncWrite for GatedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A connection's socket: its descriptor and the two addresses that identify it.
#[derive(Clone, Copy, Debug)]
pub struct RawSocket {
    fd: std::os::fd::RawFd,
    local: SocketAddr,
    peer: SocketAddr,
}

/// actix-http's `on_connect_ext`: puts the gate and the socket in the connection's data.
pub fn remember(io: &GatedStream, data: &mut Extensions) {
    data.insert(io.gate.clone());
    if let Some(socket) = io.socket {
        data.insert(socket);
    }
}

impl RawSocket {
    /// Shuts the connection down both ways, so actix-http sees it end and closes it. Does
    /// nothing if the descriptor is no longer this connection's socket (descriptors are reused
    /// once closed).
    pub fn cut(&self) -> bool {
        use std::mem::ManuallyDrop;
        use std::os::fd::FromRawFd;
        // SAFETY: the stream is never dropped (ManuallyDrop), so the descriptor is not closed
        // here; the calls below only query or shut down the socket it names, and fail
        // harmlessly if it names something else.
        let stream = ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(self.fd) });
        let same = stream.local_addr().ok() == Some(self.local)
            && stream.peer_addr().ok() == Some(self.peer);
        same && stream.shutdown(Shutdown::Both).is_ok()
    }
}
