//! The HTTP lane: keep-alive connections served on the JS thread.
//!
//! A plain HTTP connection starts on an engine task like any other. Once
//! it has had a keep-alive response and nothing is read ahead, it moves to
//! the JS thread of its server's environment, when that environment runs
//! a lane (the binding's `lane.rs` opts in with `EnvSink::enable_lane`).
//! The task learns that the response is out when the next request wakes
//! it, so the move happens then, and the lane serves that request.
//! There, the JS thread's own event loop watches the socket; requests are
//! read, parsed and answered on that thread, with no engine wake, no
//! thread switch and no cross-thread handoff per request: the cost that
//! remains is the system calls every server pays.
//!
//! Only the common case stays: a complete head with no body. Anything else
//! (a body, an upgrade, an incomplete or malformed head, a response that
//! closes the connection, a peer that fails) goes back to an engine task
//! (`connection::hand_back`, `connection::close`), which treats it exactly
//! as it treats any connection. This module does the socket work; the
//! binding only owns the event-loop handles and calls JS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;

use atomic_waker::AtomicWaker;

use super::exchange::Exchange;
use super::server::Server;
use super::sink::Event;
use super::transport::Transport;
use super::writer::Direct;
use crate::http::framing::RequestInfo;
use crate::http::head::parse_request_head;
use crate::http::route::{route, Route};

/// Read buffers larger than this are released once empty.
const KEEP_BUF: usize = 4096;

/// Whether a connection of `server` may move to its environment's lane.
pub(super) fn wanted(server: &Server) -> bool {
    cfg!(unix) && !server.is_closing() && server.sink().lane_enabled()
}

/// How long a handler may still answer once its client has sent a FIN
/// (see `http::LEFT_GRACE`), in the lane's milliseconds.
pub const LEFT_GRACE_MS: u64 = super::http::LEFT_GRACE.as_millis() as u64;

/// Moves an idle keep-alive connection (its engine task ends) to the lane.
/// `idle_since` (`clock::mono_ms`) is when its last response ended: the
/// idle timeout runs from there, not from the move, which may come much
/// later (when the task's timer fires). `Err`: the environment stopped
/// taking connections meanwhile, and an engine task takes it back.
pub(super) fn adopt(
    stream: Transport,
    remote: SocketAddr,
    local: SocketAddr,
    server: Arc<Server>,
    idle_since: u64,
) -> Result<(), Box<LaneConn>> {
    // Leaves the engine's epoll; the socket stays non-blocking.
    let Some(stream) = stream.into_std() else {
        return Ok(());
    };
    let sink = server.sink();
    server.task_started();
    let conn = LaneConn {
        stream: Some(stream),
        limit_ms: server.config.handshake_timeout.as_millis() as u64,
        server,
        remote,
        local,
        buf: Vec::new(),
        waker: Arc::new(AtomicWaker::new()),
        exchange: None,
        spare: None,
        idle_since,
    };
    match sink.push_to_lane(conn) {
        Some(conn) => Err(Box::new(conn)),
        None => Ok(()),
    }
}

/// What a lane connection needs next.
#[derive(Debug)]
pub enum Step {
    /// This request goes to JS.
    Request(Event),
    /// Nothing to do until the socket is readable.
    Wait,
    /// Back to an engine task, which serves what is read ahead
    /// (`connection::hand_back`).
    HandBack,
    /// Gone (the peer closed, or its socket failed): drop it.
    Drop,
}

/// Where a response stands ([`LaneConn::progress`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// JS has not ended it.
    Busy,
    /// Ended, but the socket is full: call again when it is writable.
    Blocked,
    /// Ended and written (or none in flight); the connection waits for
    /// its next request.
    Idle,
    /// Ended (or aborted); the connection closes (`connection::close`).
    Close,
}

/// A keep-alive connection served by the JS thread.
#[derive(Debug)]
pub struct LaneConn {
    /// `None` only once given away.
    stream: Option<std::net::TcpStream>,
    pub server: Arc<Server>,
    remote: SocketAddr,
    local: SocketAddr,
    /// Bytes read and not yet used (pipelined requests).
    buf: Vec<u8>,
    /// Wakes the lane when a response ends later than its handler call
    /// (the binding registers its waker here).
    pub waker: Arc<AtomicWaker>,
    /// The response in flight, if any.
    exchange: Option<Arc<Exchange>>,
    /// The last one, ended, for `Exchange::renew`.
    spare: Option<Arc<Exchange>>,
    /// When the connection became idle (`clock::mono_ms`).
    idle_since: u64,
    /// `handshakeTimeout`: how long it may stay idle.
    limit_ms: u64,
}

impl LaneConn {
    pub fn fd(&self) -> i32 {
        #[cfg(unix)]
        {
            self.stream
                .as_ref()
                .map_or(-1, std::os::fd::AsRawFd::as_raw_fd)
        }
        #[cfg(not(unix))]
        {
            -1
        }
    }

    /// Whether bytes of a next request are read already.
    pub fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Whether a response is in flight.
    pub fn busy(&self) -> bool {
        self.exchange.is_some()
    }

    /// Whether the client has gone (FIN or reset, nothing left to read):
    /// looked at when the socket is readable while a response is in
    /// flight. As Node's `http` does, a client that leaves with its
    /// request pending is given up, and JS hears it (`req`/`res` 'close').
    pub fn peer_gone(&self) -> bool {
        super::sys::peer_gone_fd(self.fd())
    }

    /// Since when it has waited for a request (`clock::mono_ms`).
    pub fn idle_since(&self) -> u64 {
        self.idle_since
    }

    /// Idle for its whole timeout at `now` (`clock::mono_ms`).
    pub fn expired(&self, now: u64) -> bool {
        !self.busy() && now.saturating_sub(self.idle_since) >= self.limit_ms
    }

    /// The idle timeout, for the binding's sweep interval.
    pub fn limit_ms(&self) -> u64 {
        self.limit_ms
    }

    /// The next request: from what is read ahead, then (when `readable`)
    /// from the socket. Call only when no response is in flight.
    pub fn next(&mut self, readable: bool) -> Step {
        debug_assert!(!self.busy());
        // An incomplete head waits for more (the idle sweep ends a client
        // that never completes it, as an engine task's timer would).
        if !self.buf.is_empty() {
            match self.take_request() {
                Some(step) => return step,
                None if !readable => return Step::Wait,
                None => {}
            }
        }
        if !readable {
            return Step::Wait;
        }
        match self.read() {
            Ok(0) if self.buf.is_empty() => Step::Drop,
            // The peer ended mid-head: the engine reports it.
            Ok(0) => Step::HandBack,
            Ok(_) => self.take_request().unwrap_or(Step::Wait),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Step::Wait,
            Err(e) => {
                let code = super::server::error_code(&e);
                self.server
                    .emit_error(self.remote, self.local, code, e.to_string());
                Step::Drop
            }
        }
    }

    /// Reads until the socket is empty, it ends, or `buf` holds more than
    /// a head may. `Ok(0)`: the peer ended with nothing read.
    fn read(&mut self) -> std::io::Result<usize> {
        let fd = self.fd();
        let mut total = 0;
        loop {
            if self.buf.capacity() - self.buf.len() < 512 {
                self.buf.reserve(self.buf.capacity().max(1024));
            }
            let room = self.buf.capacity() - self.buf.len();
            let n = match recv(fd, &mut self.buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && total > 0 => {
                    return Ok(total)
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            total += n;
            // A short read emptied the socket (what came with an EOF is
            // served; the EOF shows again on the next read). Past the head
            // limit, the engine answers 431.
            if n == 0 || n < room || self.buf.len() > self.server.config.max_header_size {
                return Ok(total);
            }
        }
    }

    /// A step for the head at the start of `buf`; `None`: incomplete.
    fn take_request(&mut self) -> Option<Step> {
        let server = &self.server;
        if server.is_closing() {
            return Some(Step::Drop);
        }
        let (head, used) = match parse_request_head(&self.buf, server.config.max_header_size) {
            Ok(Some(h)) => h,
            Ok(None) => return None,
            // Refused by the engine, with its status and error event.
            Err(_) => return Some(Step::HandBack),
        };
        // Only a plain request stays; a body, an `Expect`, an upgrade or a
        // refusal is the engine's.
        if route(&head, server.has_request_handler()) != Route::Plain {
            return Some(Step::HandBack);
        }
        self.buf.drain(..used);
        if self.buf.is_empty() && self.buf.capacity() > KEEP_BUF {
            // An idle connection does not keep a large head's buffer.
            self.buf = Vec::new();
        }
        let info = RequestInfo::from_head(&head);
        // SAFETY: the exchange is detached (its writer retired) before the
        // socket closes: in `give` and on drop.
        let fd = self.fd();
        let direct = || unsafe { Direct::new(fd) };
        let reused = self
            .spare
            .take()
            .and_then(|mut ex| Exchange::renew(&mut ex, info, Some(direct())).then_some(ex));
        // Parked (a lane exchange starts so): until JS returns, an end that
        // is fully written needs no wake.
        let exchange = reused.unwrap_or_else(|| {
            Exchange::new(
                info,
                server.clone(),
                Some(direct()),
                self.waker.clone(),
                true,
            )
        });
        self.exchange = Some(exchange.clone());
        Some(Step::Request(Event::Request {
            server: server.id,
            exchange,
            head,
            body: Vec::new(),
            remote: self.remote,
            local: self.local,
        }))
    }

    /// Writes what the response has queued and says where it stands.
    /// `Busy` and `Blocked` leave the exchange set to wake the lane. `now`
    /// (`clock::mono_ms`, read by the lane around each JS call) starts the
    /// idle time.
    pub fn progress(&mut self, now: u64) -> Progress {
        let Some(ex) = self.exchange.as_ref() else {
            return Progress::Idle;
        };
        let fd = self.fd();
        let mut blocked = false;
        let r = ex.poll_progress_with(
            |data| match send(fd, data) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    blocked = true;
                    Poll::Pending
                }
                r => Poll::Ready(r),
            },
            false,
        );
        match r {
            Poll::Pending if blocked => Progress::Blocked,
            Poll::Pending => Progress::Busy,
            Poll::Ready(done) => {
                self.spare = self.exchange.take();
                match done {
                    Some(d) if d.keep_alive && !self.server.is_closing() => {
                        self.idle_since = d.ended_at.unwrap_or(now);
                        Progress::Idle
                    }
                    _ => Progress::Close,
                }
            }
        }
    }

    /// What was read ahead of the next request, for the engine task
    /// that takes the connection back.
    pub(super) fn take_read_ahead(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Gives the connection to a new engine task running `then`.
    pub(super) fn give<F, Fut>(mut self, then: F)
    where
        F: FnOnce(Transport, SocketAddr, SocketAddr, Arc<Server>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        if let Some(ex) = self.exchange.take() {
            ex.detach();
        }
        let (Some(stream), Ok(rt)) = (self.stream.take(), super::runtime::handle()) else {
            return;
        };
        // The new task counts for the server's close (this one's count
        // ends when `self` drops below).
        let server = self.server.clone();
        server.task_started();
        let (remote, local) = (self.remote, self.local);
        rt.spawn(async move {
            if let Ok(stream) = tokio::net::TcpStream::from_std(stream) {
                then(Transport::Plain(stream), remote, local, server.clone()).await;
            }
            server.task_done();
        });
    }
}

impl Drop for LaneConn {
    fn drop(&mut self) {
        if let Some(ex) = self.exchange.take() {
            // No direct write may reach the socket once it closes.
            ex.detach();
        }
        drop(self.stream.take());
        self.server.task_done();
    }
}

#[cfg(unix)]
fn recv(fd: i32, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    super::sys::recv_bare(fd, buf)
}

#[cfg(not(unix))]
fn recv(_: i32, _: &mut Vec<u8>) -> std::io::Result<usize> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// One non-blocking send; `WouldBlock` when the socket is full.
fn send(fd: i32, data: &[u8]) -> std::io::Result<usize> {
    #[cfg(unix)]
    {
        // SAFETY: `fd` is the connection's open socket for the call.
        let n = unsafe { super::sys::send_now_raw(fd, data) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(n as usize)
    }
    #[cfg(not(unix))]
    {
        let _ = (fd, data);
        Err(std::io::ErrorKind::Unsupported.into())
    }
}
