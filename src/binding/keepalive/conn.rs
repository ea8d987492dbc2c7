//! A keep-alive connection served on the JS thread: its socket read,
//! its request heads parsed and routed (`http::route`, as an engine task
//! does), its responses written. Only the common case stays: a complete
//! head with no body. Anything else (a body, an upgrade, an incomplete or
//! malformed head, a response that closes the connection, a peer that
//! fails) goes back to an engine task (`engine::connection::hand_back`,
//! `engine::connection::close`), which treats it as any connection.
//! `mod.rs` owns the event-loop handles and calls JS.

use std::sync::Arc;
use std::task::Poll;

use atomic_waker::AtomicWaker;

use crate::engine::events::Event;
use crate::engine::exchange::Exchange;
use crate::engine::idle::IdleConn;
use crate::engine::server::Server;
use crate::engine::sys;
use crate::engine::writer::Direct;
use crate::http::framing::RequestInfo;
use crate::http::head::parse_request_head;
use crate::http::route::{route, Route};

/// Read buffers larger than this are released once empty.
const KEEP_BUF: usize = 4096;

/// What a keep-alive executor connection needs next.
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

/// Where a response stands ([`KeepAliveConn::progress`]).
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
pub struct KeepAliveConn {
    /// The response in flight, if any. Declared before `idle`, so it is
    /// detached before the socket closes.
    exchange: InFlight,
    idle: IdleConn,
    /// Bytes read and not yet used (pipelined requests).
    buf: Vec<u8>,
    /// Wakes the keep-alive executor when a response ends later than its handler call
    /// (the keep-alive executor registers its waker here).
    pub waker: Arc<AtomicWaker>,
    /// The last one, ended, for `Exchange::renew`.
    spare: Option<Arc<Exchange>>,
    /// `handshakeTimeout`: how long it may stay idle.
    limit_ms: u64,
}

impl KeepAliveConn {
    pub fn new(idle: IdleConn) -> KeepAliveConn {
        KeepAliveConn {
            limit_ms: idle.server.config.handshake_timeout.as_millis() as u64,
            idle,
            buf: Vec::new(),
            waker: Arc::new(AtomicWaker::new()),
            exchange: InFlight(None),
            spare: None,
        }
    }

    pub fn server(&self) -> &Arc<Server> {
        &self.idle.server
    }

    pub fn fd(&self) -> i32 {
        #[cfg(unix)]
        {
            self.idle
                .stream()
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
        self.exchange.0.is_some()
    }

    /// Whether the client has gone (FIN or reset, nothing left to read):
    /// looked at when the socket is readable while a response is in
    /// flight. As Node's `http` does, a client that leaves with its
    /// request pending is given up, and JS hears it (`req`/`res` 'close').
    pub fn peer_gone(&self) -> bool {
        sys::peer_gone_fd(self.fd())
    }

    /// Since when it has waited for a request (`clock::mono_ms`).
    pub fn idle_since(&self) -> u64 {
        self.idle.idle_since
    }

    /// Idle for its whole timeout at `now` (`clock::mono_ms`).
    pub fn expired(&self, now: u64) -> bool {
        !self.busy() && now.saturating_sub(self.idle.idle_since) >= self.limit_ms
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
                let code = crate::engine::server::error_code(&e);
                let idle = &self.idle;
                idle.server
                    .emit_error(idle.remote, idle.local, None, code, e.to_string());
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
            if n == 0 || n < room || self.buf.len() > self.idle.server.config.max_header_size {
                return Ok(total);
            }
        }
    }

    /// A step for the head at the start of `buf`; `None`: incomplete.
    fn take_request(&mut self) -> Option<Step> {
        let server = &self.idle.server;
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
        // socket closes (`InFlight`, and `into_idle`).
        let fd = self.fd();
        let direct = || unsafe { Direct::new(fd) };
        let reused = self
            .spare
            .take()
            .and_then(|mut ex| Exchange::renew(&mut ex, info, Some(direct())).then_some(ex));
        // Parked (a keep-alive executor exchange starts so): until JS returns, an end that
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
        self.exchange.0 = Some(exchange.clone());
        Some(Step::Request(Event::Request {
            server: server.id,
            exchange,
            head,
            body: Vec::new(),
            remote: self.idle.remote,
            local: self.idle.local,
            redirect: false,
            tls: None,
        }))
    }

    /// Writes what the response has queued and says where it stands.
    /// `Busy` and `Blocked` leave the exchange set to wake the keep-alive executor. `now`
    /// (`clock::mono_ms`, read by the keep-alive executor around each JS call) starts the
    /// idle time.
    pub fn progress(&mut self, now: u64) -> Progress {
        let Some(ex) = self.exchange.0.as_ref() else {
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
                self.spare = self.exchange.0.take();
                match done {
                    Some(d) if d.keep_alive && !self.idle.server.is_closing() => {
                        self.idle.idle_since = d.ended_at.unwrap_or(now);
                        Progress::Idle
                    }
                    _ => Progress::Close,
                }
            }
        }
    }

    /// Gives the connection up to an engine task: the connection, and
    /// what was read ahead of its next request.
    pub fn into_idle(self) -> (IdleConn, Vec<u8>) {
        let KeepAliveConn {
            exchange,
            idle,
            buf,
            ..
        } = self;
        // No direct write may follow.
        drop(exchange);
        (idle, buf)
    }
}

/// A response in flight, detached from the connection when dropped: no
/// direct write may reach the socket once it closes.
#[derive(Debug)]
struct InFlight(Option<Arc<Exchange>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(ex) = self.0.take() {
            ex.detach();
        }
    }
}

#[cfg(unix)]
fn recv(fd: i32, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    sys::recv_bare(fd, buf)
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
        let n = unsafe { sys::send_now_raw(fd, data) };
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
