//! The TCP socket under a telemetry WebSocket, for the one thing actix cannot do for us: cutting
//! off a client that stopped reading. When a session ends, actix-http still tries to flush what
//! was queued for the client before closing, and a client that never reads would keep the
//! connection (and its file descriptor) for as long as it likes. `on_connect` records the raw
//! socket with its two addresses; `cut` shuts it down, after checking that the descriptor still
//! belongs to that connection (descriptors are reused once closed).

use std::any::Any;
use std::mem::ManuallyDrop;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

use actix_web::dev::Extensions;

/// A connection's socket, as `HttpServer::on_connect` saw it.
#[derive(Clone, Copy, Debug)]
pub struct RawSocket {
    fd: RawFd,
    local: SocketAddr,
    peer: SocketAddr,
}

/// `HttpServer::on_connect`: remembers the socket in the connection's data.
pub fn remember(connection: &dyn Any, data: &mut Extensions) {
    let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    if let (Ok(local), Ok(peer)) = (tcp.local_addr(), tcp.peer_addr()) {
        data.insert(RawSocket {
            fd: tcp.as_raw_fd(),
            local,
            peer,
        });
    }
}

impl RawSocket {
    /// Shuts the connection down both ways, so actix-http sees it end and closes it. Does
    /// nothing if the descriptor is no longer this connection's socket.
    pub fn cut(&self) -> bool {
        // SAFETY: the stream is never dropped (ManuallyDrop), so the descriptor is not closed
        // here; the calls below only query or shut down the socket it names, and fail harmlessly
        // if it names something else.
        let stream = ManuallyDrop::new(unsafe { TcpStream::from_raw_fd(self.fd) });
        let same = stream.local_addr().ok() == Some(self.local)
            && stream.peer_addr().ok() == Some(self.peer);
        same && stream.shutdown(Shutdown::Both).is_ok()
    }
}
