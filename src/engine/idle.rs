//! An idle keep-alive HTTP connection handed from its engine task to the
//! JS thread of its server's environment (`Event::KeepAlive`), which then
//! serves its requests itself (the binding's `keep-alive executor`), and back again
//! (`connection::hand_back`) for anything but a plain request.

use std::net::SocketAddr;
use std::sync::Arc;

use super::server::Server;

/// How long a handler may still answer once its client has sent a FIN
/// (see `http::LEFT_GRACE`), in the keep-alive executor's milliseconds.
pub const LEFT_GRACE_MS: u64 = super::http::LEFT_GRACE.as_millis() as u64;

/// A connection between requests, off the engine's epoll (the socket stays
/// non-blocking). It counts as one of its server's tasks while it lives,
/// so the server's close waits for it.
#[derive(Debug)]
pub struct IdleConn {
    /// `None` only once given back to an engine task.
    stream: Option<std::net::TcpStream>,
    pub server: Arc<Server>,
    pub remote: SocketAddr,
    pub local: SocketAddr,
    /// When its last response ended (`clock::mono_ms`): the idle timeout
    /// runs from there.
    pub idle_since: u64,
}

impl IdleConn {
    pub(super) fn new(
        stream: std::net::TcpStream,
        server: Arc<Server>,
        remote: SocketAddr,
        local: SocketAddr,
        idle_since: u64,
    ) -> IdleConn {
        server.task_started();
        IdleConn {
            stream: Some(stream),
            server,
            remote,
            local,
            idle_since,
        }
    }

    pub fn stream(&self) -> Option<&std::net::TcpStream> {
        self.stream.as_ref()
    }

    pub(super) fn take_stream(&mut self) -> Option<std::net::TcpStream> {
        self.stream.take()
    }
}

impl Drop for IdleConn {
    fn drop(&mut self) {
        drop(self.stream.take());
        self.server.task_done();
    }
}
