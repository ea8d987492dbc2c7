//! One task per connection: the request head, the upgrade decision, then
//! the WebSocket loop until the connection ends.
//!
//! The loop is one hand-written poll function instead of a `select!`: each
//! wake it takes commands, flushes the write queue, and reads as much as the
//! socket has, so a busy connection costs one pass per readiness change.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use atomic_waker::AtomicWaker;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout, Instant, Sleep};

use super::config::under_backpressure;
use super::conn::{record, Conn, Phase};
use super::http::{serve_one, After, IdleTimer};
use super::inflating::{inflate_violation, InflateSlot, Inflation};
use super::server::{error_code, CloseWatch, Server};
use super::sink::{ConnInfo, Event, Share};
use super::sys::{peer_gone, raw_fd, recv_into};
use super::ServerConfig;
use crate::http::body::unmet_expectation;
use crate::http::head::{parse_request_head, Field, HeadError, RequestHead};
use crate::http::response::closing_response;
use crate::protocol::close::{self, ClosePayload};
use crate::protocol::decoder::{Decoder, DecoderConfig, Message, Violation};
use crate::protocol::deflate::{negotiate, Agreed, Deflater, Inflater, Inflating, Step};
use crate::protocol::frame::{write_frame, OpCode};
use crate::protocol::handshake::UpgradeHeaders;

/// Read size: one buffer per engine thread, shared by every connection, so
/// an idle connection holds no read buffer (DESIGN.md, performance plan).
const SCRATCH_SIZE: usize = 64 * 1024;
/// How long a closed connection keeps reading (and discarding) after our
/// FIN, so unread input does not turn the close into a reset that could
/// destroy our close frame in flight.
const LINGER: Duration = Duration::from_secs(2);
/// Write buffers larger than this are released once flushed, so a
/// connection that was busy does not keep its peak buffer while idle.
const IDLE_KEEP: usize = 4096;
/// Reads per wake before yielding to other connections.
const READ_BUDGET: usize = 16;
/// Bytes inflated per turn of a connection's task before the others get
/// theirs: a message that inflates to `maxPayload` (100 MiB, a bomb of
/// ~100 KiB) takes ~50 ms whole, which every other connection would wait.
const INFLATE_SLICE: usize = 1 << 20;
/// Why a connection over `backpressureLimit` is closed.
const OVERFLOW: (u16, &str) = (close::POLICY_VIOLATION, "backpressure limit");

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; SCRATCH_SIZE].into_boxed_slice());
}

/// Serves a connection: `buf` holds bytes already read from it, `first`
/// says whether it has had a request yet (a fresh connection, or one that
/// comes back from the JS thread's lane, `lane.rs`).
pub(super) async fn run(
    mut stream: TcpStream,
    remote: SocketAddr,
    local: SocketAddr,
    server: Arc<Server>,
    mut buf: Vec<u8>,
    mut first: bool,
) {
    let cfg = &server.config;
    // The request-head and keep-alive idle timeout: one timer for the
    // connection's life (see `IdleTimer`).
    let mut timer = IdleTimer::new(cfg.handshake_timeout);
    // Wakes the task for its HTTP responses (see `Exchange::waker`).
    let waker = Arc::new(AtomicWaker::new());
    // Dropped before an upgrade: a WebSocket closes by its own handshake.
    let closing = CloseWatch::new(&server);
    loop {
        let head = {
            if server.is_closing() {
                return; // closed while the last response went out
            }
            let max = cfg.max_header_size;
            // A pipelined request may be here already.
            let ready = if buf.is_empty() {
                None
            } else {
                parse_request_head(&buf, max)
                    .map_err(HeadFailure::Bad)
                    .transpose()
            };
            // Bytes of the next request have come: no longer idle.
            let begun = std::sync::atomic::AtomicBool::new(!buf.is_empty());
            let head = match ready {
                Some(h) => Some(h),
                None => tokio::select! {
                    // In this order, and without select!'s random start.
                    biased;
                    h = poll_fn(|cx| {
                        let h = poll_head(&stream, cx, &mut buf, max);
                        begun.store(!buf.is_empty(), std::sync::atomic::Ordering::Relaxed);
                        h
                    }) => Some(h),
                    _ = poll_fn(|cx| timer.poll_expired(cx)) => None,
                    // Server closing, or asking an idle keep-alive
                    // connection to make room: drop it, no request going.
                    _ = poll_fn(|cx| closing.poll_idle(cx, !first && !begun.load(std::sync::atomic::Ordering::Relaxed))) => return,
                },
            };
            let (head, used) = match head {
                Some(Ok(h)) => h,
                Some(Err(HeadFailure::Closed)) => return,
                Some(Err(HeadFailure::Io(e))) => {
                    server.emit_error(remote, local, error_code(&e), e.to_string());
                    return;
                }
                Some(Err(HeadFailure::Bad(e))) => {
                    let response =
                        closing_response(e.status(), None, &[], e.to_string().as_bytes());
                    Box::pin(refuse(stream, &response)).await;
                    server.emit_error(remote, local, "HPE_INVALID", e.to_string());
                    return;
                }
                // An idle keep-alive connection timing out is no error.
                None if !first => return,
                None => {
                    server.emit_error(remote, local, "ETIMEDOUT", "handshake timeout".into());
                    return;
                }
            };
            first = false;
            buf.drain(..used);
            if asks_websocket(&head, &server) {
                head
            } else if !server.has_request_handler() {
                let response = closing_response(
                    426,
                    None,
                    &[("Upgrade", "websocket")],
                    b"this server speaks WebSocket",
                );
                Box::pin(refuse(stream, &response)).await;
                return;
            } else if unmet_expectation(&head) {
                // Before the handler and any body; the connection closes, so
                // a body the client sends anyway is never read as a request.
                let response = closing_response(417, None, &[], b"unsupported expectation");
                Box::pin(refuse(stream, &response)).await;
                return;
            } else {
                // Inline, not boxed: a box per request costs more than the
                // few hundred bytes it would keep out of the task.
                match serve_one(
                    &mut stream,
                    &server,
                    head,
                    &mut buf,
                    remote,
                    local,
                    &mut timer,
                    &waker,
                    &closing,
                )
                .await
                {
                    // Idle between requests with nothing read ahead: the
                    // JS thread may serve the connection from here on. (Not
                    // when the task learned of the response's end only from
                    // its timer: the head wait below serves a request that
                    // came just then, or ends the connection on time.)
                    // Idle now, and the server asks for room (`make_room`).
                    After::Next if buf.is_empty() && server.take_shed() => return,
                    After::Next
                        if buf.is_empty() && !timer.is_over() && super::lane::wanted(&server) =>
                    {
                        drop(closing);
                        let since = timer.since.unwrap_or_else(crate::clock::mono_ms);
                        super::lane::adopt(stream, remote, local, server, since);
                        return;
                    }
                    After::Next => continue,
                    After::Close => return Box::pin(refuse(stream, b"")).await,
                    After::Refuse(response, code, why) => {
                        server.emit_error(remote, local, code, why);
                        return Box::pin(refuse(stream, &response)).await;
                    }
                }
            }
        };
        // An upgrade: the WebSocket takes the connection from here.
        drop(timer);
        drop(closing);
        return Box::pin(websocket(stream, head, buf, remote, local, server)).await;
    }
}

/// The upgrade request `head` asked for a WebSocket; `leftover` is what
/// came after it.
async fn websocket(
    stream: TcpStream,
    head: RequestHead,
    leftover: Vec<u8>,
    remote: SocketAddr,
    local: SocketAddr,
    server: Arc<Server>,
) {
    let cfg = &server.config;
    if let Some(path) = cfg.path.as_deref() {
        let target = head.target();
        if target.split('?').next() != Some(path) {
            let response = closing_response(400, None, &[], b"no WebSocket at this path");
            Box::pin(refuse(stream, &response)).await;
            server.emit_error(
                remote,
                local,
                "WS_ERR_PATH",
                format!("upgrade to {target} refused (path is {path})"),
            );
            return;
        }
    }
    let up = UpgradeHeaders::scan(head.header_pairs());
    let key = match up.validate(head.method(), head.minor) {
        Ok(k) => k.to_vec(),
        Err(e) => {
            let extra: &[(&str, &str)] = if e.status() == 426 {
                &[("Sec-WebSocket-Version", "13")]
            } else {
                &[]
            };
            let response = closing_response(e.status(), None, extra, e.to_string().as_bytes());
            Box::pin(refuse(stream, &response)).await;
            server.emit_error(remote, local, "WS_ERR_HANDSHAKE", e.to_string());
            return;
        }
    };
    let protocols = up.protocols.clone();
    // RFC 7692 §5: take the first acceptable offer; none is no failure.
    let agreed = match &cfg.deflate {
        Some(dc) if !up.extensions.is_empty() => negotiate(&up.extensions, dc),
        _ => None,
    };
    drop(up);
    let compress = agreed.is_some() && cfg.deflate.as_ref().is_some_and(|d| d.compress);
    let (extensions, agreed) = match agreed {
        Some((header, a)) => (header, Some(a)),
        None => (String::new(), None),
    };

    let info = Arc::new(ConnInfo {
        head,
        remote,
        local,
        protocols,
    });
    let conn = Conn::new(
        server.id,
        cfg,
        server.sink(),
        key,
        info,
        extensions,
        compress,
    );
    if !server.register(&conn) {
        let response = closing_response(503, None, &[], b"server closing or full");
        Box::pin(refuse(stream, &response)).await;
        return;
    }
    if server.has_accept_handler() {
        conn.emit(Event::Accept {
            server: server.id,
            conn: conn.clone(),
        });
        let decision = Box::pin(wait_decision(&conn, &stream, cfg.handshake_timeout)).await;
        if matches!(decision, Decision::Late)
            && conn
                .reject(503, Some("the server did not decide in time"))
                .is_ok()
        {
            server.emit_error(
                remote,
                local,
                "ETIMEDOUT",
                "upgrade not accepted or rejected within handshakeTimeout".into(),
            );
        }
    } else {
        let _ = conn.accept(None);
        conn.emit(Event::Open {
            server: server.id,
            conn: conn.clone(),
        });
    }

    let open = matches!(conn.lock().phase, Phase::Open);
    if open {
        let mut ws = WsLoop::new(stream, conn.clone(), leftover, cfg, agreed);
        let (code, reason) = poll_fn(|cx| ws.poll_run(cx)).await;
        conn.set_closed();
        conn.emit(Event::Close {
            conn: conn.id,
            code,
            reason,
        });
        // Only the socket lingers: buffers and (de)compressors go now.
        let WsLoop { stream, .. } = ws;
        Box::pin(linger(stream)).await;
    } else {
        // Rejected (or terminated) before opening: send what is queued.
        let out = std::mem::take(&mut conn.lock().out);
        Box::pin(refuse(stream, &out)).await;
        conn.set_closed();
        // JS has a (pending) object for it: tell it the connection is gone.
        conn.emit(Event::Close {
            conn: conn.id,
            code: close::ABNORMAL,
            reason: String::new(),
        });
    }
    server.unregister(conn.id);
}

/// Whether a request goes the WebSocket way (RFC 6455 §4.2.1), where a
/// malformed upgrade gets 400. With a request handler, only a real upgrade
/// does: `Upgrade: websocket` named in `Connection` (RFC 9110 §7.6.1), on
/// HTTP/1.1 (§7.8: an HTTP/1.0 `Upgrade` MUST be ignored); other requests
/// reach the handler, as in Node. Without one, any `Upgrade: websocket`
/// does, so its 400 says what is wrong rather than a 426. The header check
/// first spares the scan for plain requests.
pub(super) fn asks_websocket(head: &RequestHead, server: &Server) -> bool {
    if !head.has_field(Field::Upgrade) {
        return false;
    }
    let u = UpgradeHeaders::scan(head.header_pairs());
    u.upgrade_websocket
        && (!server.has_request_handler() || (u.connection_upgrade && head.minor == 1))
}

enum HeadFailure {
    /// EOF before any byte: a probe or a client that changed its mind.
    Closed,
    Io(std::io::Error),
    Bad(HeadError),
}

/// Reads until `buf` (which holds no complete head) holds a request head.
fn poll_head(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    buf: &mut Vec<u8>,
    max: usize,
) -> Poll<Result<(RequestHead, usize), HeadFailure>> {
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity().max(1024));
        }
        match recv_into(stream, buf) {
            Ok(0) => {
                return Poll::Ready(Err(if buf.is_empty() {
                    HeadFailure::Closed
                } else {
                    HeadFailure::Io(std::io::ErrorKind::UnexpectedEof.into())
                }))
            }
            Ok(_) => {
                if let Some(done) = parse_request_head(buf, max).map_err(HeadFailure::Bad)? {
                    return Poll::Ready(Ok(done));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Err(e) = std::task::ready!(stream.poll_read_ready(cx)) {
                    return Poll::Ready(Err(HeadFailure::Io(e)));
                }
            }
            Err(e) => return Poll::Ready(Err(HeadFailure::Io(e))),
        }
    }
}

/// Writes a final response, ends our side, and lingers briefly so the
/// client reads it before the socket goes away.
pub(super) async fn refuse(mut stream: TcpStream, response: &[u8]) {
    if !response.is_empty() {
        let _ = timeout(Duration::from_secs(5), stream.write_all(response)).await;
    }
    linger(stream).await;
}

/// How the wait for JS's accept/reject ended.
enum Decision {
    /// Accepted, rejected or terminated by JS.
    Made,
    /// The client left (FIN or reset): the connection is terminated.
    Gone,
    /// Not decided within the limit.
    Late,
}

/// Waits until JS accepted, rejected or terminated the connection, the
/// client went away (the connection is then terminated), or `limit`
/// passed (zero: no limit). The client may have sent frames after its
/// request already: they stay in the socket for the WebSocket loop, and
/// only the socket's readiness is looked at, so a FIN or reset behind
/// them is still noticed.
async fn wait_decision(conn: &Conn, stream: &TcpStream, limit: Duration) -> Decision {
    let decided = poll_fn(|cx| {
        conn.waker.register(cx.waker());
        let g = conn.lock();
        if !matches!(g.phase, Phase::Pending { .. }) || g.terminate {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    });
    let gone = async {
        // A FIN that came with the request head was consumed with its
        // readiness: look once.
        if peer_gone(stream) {
            return;
        }
        loop {
            match stream.ready(tokio::io::Interest::READABLE).await {
                Ok(r) if !r.is_read_closed() && !r.is_error() => {
                    if peer_gone(stream) {
                        return;
                    }
                    // Bytes (early frames): forget this readiness so the
                    // next change wakes us, and leave the bytes.
                    let _ = stream.try_io(tokio::io::Interest::READABLE, || {
                        Err::<(), _>(std::io::ErrorKind::WouldBlock.into())
                    });
                }
                _ => return,
            }
        }
    };
    let late = async {
        if limit.is_zero() {
            std::future::pending::<()>().await;
        }
        sleep(limit).await
    };
    tokio::select! {
        biased;
        _ = decided => Decision::Made,
        _ = gone => {
            conn.terminate();
            Decision::Gone
        }
        _ = late => Decision::Late,
    }
}

/// Has the task polled again once the runtime has looked at I/O. A plain
/// `wake_by_ref` would not do: the runtime runs what is queued up to 61
/// times before it polls for I/O, so two tasks taking turns would keep
/// every other connection's readiness waiting for that long.
fn yield_after_io(cx: &mut Context<'_>) {
    // `yield_now` defers its wake until after the next I/O poll; its first
    // poll only registers that.
    let _ = std::pin::pin!(tokio::task::yield_now()).poll(cx);
}

/// Where the closing of a connection stands.
#[derive(Debug, PartialEq, Eq)]
enum Closing {
    /// Open; no close frame either way.
    No,
    /// Our close frame is queued; waiting for the peer's (until the deadline).
    Sent,
    /// The peer's close frame came first. JS hears of the messages before
    /// it, then of the close (`Event::PeerClose`), and the binding queues
    /// our answer after whatever those messages' handlers sent: RFC 6455
    /// §5.5.1 lets an endpoint finish its messages before answering. So a
    /// reply to a client's last message does not depend on whether its
    /// close frame came in the same read. Input is discarded meanwhile; if
    /// JS has not answered by the deadline (busy, or gone), we answer.
    PeerClosed,
    /// The handshake is complete (or failed): flush what is queued, then end.
    Flush,
}

impl Closing {
    /// After the peer's close frame, or a failure, input is discarded.
    fn discards_input(&self) -> bool {
        matches!(self, Closing::Flush | Closing::PeerClosed)
    }
}

struct WsLoop {
    stream: TcpStream,
    conn: Arc<Conn>,
    decoder: Decoder,
    /// Unconsumed input: a partial frame.
    pending: Vec<u8>,
    writing: Vec<u8>,
    written: usize,
    /// `writing` holds frames made from this many bytes of records (a
    /// compressing connection), not the records themselves.
    framed: Option<usize>,
    closing: Closing,
    deadline: Option<Pin<Box<Sleep>>>,
    close_timeout: Duration,
    /// What the close event will report.
    outcome: Option<(u16, String)>,
    /// `pending` holds bytes that came with the upgrade request, not yet decoded.
    fresh: bool,
    max_payload: usize,
    /// permessage-deflate, when agreed: incoming and (unless
    /// `perMessageDeflateAllow`) outgoing.
    inflater: Option<Inflater>,
    deflater: Option<Deflater>,
    threshold: usize,
    /// A message inflating over several turns.
    /// (Boxed: rare, and every idle connection would carry its size.)
    inflation: Option<Box<Inflation>>,
    /// Reused output buffers for inflating and deflating.
    inflated: Vec<u8>,
    deflated: Vec<u8>,
    /// `pingInterval`: a ping after that much silence, and the end when the
    /// next interval passes with nothing received. Off when zero.
    ping_interval: Duration,
    ping_timer: Option<Pin<Box<Sleep>>>,
    last_read: Instant,
    awaiting_pong: bool,
    /// The peer's FIN came after its close frame: nothing more to read.
    peer_eof: bool,
    /// What this connection added to its environment's event queue, to
    /// stop reading while JS is behind (`may_read`).
    share: Share,
    max_backpressure: usize,
}

impl WsLoop {
    fn new(
        stream: TcpStream,
        conn: Arc<Conn>,
        leftover: Vec<u8>,
        cfg: &ServerConfig,
        agreed: Option<Agreed>,
    ) -> Self {
        let max_payload = cfg.max_payload;
        let close_timeout = cfg.close_timeout;
        let deflate = cfg.deflate.as_ref();
        let deflater = match (&agreed, deflate) {
            (Some(a), Some(d)) if d.compress => Some(Deflater::new(a, d.level)),
            _ => None,
        };
        WsLoop {
            stream,
            conn,
            decoder: Decoder::new(DecoderConfig {
                max_payload,
                require_mask: true,
                allow_rsv1: agreed.is_some(),
            }),
            // The handshake's read buffer has spare capacity: an idle
            // connection keeps none (the scratch buffer serves reads).
            pending: if leftover.is_empty() {
                Vec::new()
            } else {
                leftover
            },
            writing: Vec::new(),
            written: 0,
            framed: None,
            closing: Closing::No,
            deadline: None,
            close_timeout,
            outcome: None,
            fresh: true,
            max_payload,
            inflater: agreed.as_ref().map(Inflater::new),
            deflater,
            threshold: deflate.map_or(0, |d| d.threshold),
            inflation: None,
            inflated: Vec::new(),
            deflated: Vec::new(),
            ping_interval: cfg.ping_interval,
            ping_timer: (!cfg.ping_interval.is_zero()).then(|| Box::pin(sleep(cfg.ping_interval))),
            last_read: Instant::now(),
            awaiting_pong: false,
            peer_eof: false,
            share: Share::default(),
            max_backpressure: cfg.max_backpressure,
        }
    }

    /// The keep-alive timer fired or not; returns true when the peer has
    /// sent nothing for an interval after our ping and must be dropped.
    /// Anything read counts as life (`on_bytes` clears `awaiting_pong`),
    /// so a pong that comes right after its ping counts however the timer
    /// rounds; a peer busy sending gets no pings at all.
    fn poll_ping(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(timer) = self.ping_timer.as_mut() else {
            return false;
        };
        if timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        let now = Instant::now();
        // Re-armed lazily: reads only stamp `last_read`.
        let quiet_until = self.last_read + self.ping_interval;
        if now < quiet_until {
            timer.as_mut().reset(quiet_until);
            let _ = timer.as_mut().poll(cx);
            return false;
        }
        if self.awaiting_pong {
            return true;
        }
        self.awaiting_pong = true;
        let _ = self.conn.ping(&[]);
        timer.as_mut().reset(now + self.ping_interval);
        let _ = timer.as_mut().poll(cx);
        false
    }

    /// Runs until the connection ends; returns the close event's code and reason.
    fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<(u16, String)> {
        self.conn.waker.register(cx.waker());
        if std::mem::take(&mut self.fresh) {
            // Frames that came with the upgrade request.
            self.process_pending();
        }
        self.poll_inflation(cx);
        let mut reads = 0;
        loop {
            let mut overflowed = false;
            // Commands and new output.
            let blocked = {
                let mut g = self.conn.lock();
                if g.terminate {
                    return Poll::Ready(
                        self.outcome
                            .take()
                            .unwrap_or((close::ABNORMAL, String::new())),
                    );
                }
                if let Some(on) = g.nodelay.take() {
                    let _ = self.stream.set_nodelay(on);
                }
                if g.overflow && !g.close_sent {
                    // Over `backpressureLimit`: what is not yet being
                    // written is dropped, and the close frame follows
                    // whatever frame is half out.
                    let dropped = std::mem::take(&mut g.out);
                    self.conn.unbuffer(dropped.len());
                    self.conn.queue_close(&mut g, Some(OVERFLOW));
                    self.outcome = Some((OVERFLOW.0, OVERFLOW.1.into()));
                    self.closing = Closing::Flush;
                    self.deadline = None;
                    overflowed = true;
                }
                if g.close_sent && self.closing == Closing::No {
                    self.closing = Closing::Sent;
                    self.deadline = Some(Box::pin(sleep(self.close_timeout)));
                }
                if g.close_sent && self.closing == Closing::PeerClosed {
                    // Answered: the handshake is complete once it is out
                    // (within its own closeTimeout, below).
                    self.closing = Closing::Flush;
                    self.deadline = None;
                }
                if self.writing.is_empty() {
                    if !g.out.is_empty() {
                        std::mem::swap(&mut self.writing, &mut g.out);
                        self.written = 0;
                    }
                    // Cleared only here, under the lock, once all is written.
                    g.task_writing = !self.writing.is_empty();
                }
                if g.fd < 0 && !matches!(g.phase, Phase::Closed) {
                    g.fd = raw_fd(&self.stream);
                }
                g.blocked
            };
            if overflowed {
                self.conn.emit(Event::Error {
                    conn: self.conn.id,
                    code: "WS_ERR_BACKPRESSURE",
                    message: format!("more than backpressureLimit bytes queued for a peer that does not read; closing with {}", OVERFLOW.0),
                });
            }
            if self.framed.is_none() && !self.writing.is_empty() && self.conn.uses_records() {
                self.frame_records();
            }

            // Flush.
            while self.written < self.writing.len() {
                match Pin::new(&mut self.stream).poll_write(cx, &self.writing[self.written..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(self.abnormal()),
                    Poll::Ready(Ok(n)) => {
                        self.written += n;
                        if self.conn.written(n) {
                            self.conn.emit(Event::Drain { conn: self.conn.id });
                        }
                        // Frames made from records count as their records,
                        // once all are out.
                        let units = match self.framed {
                            Some(units) if self.written == self.writing.len() => units,
                            Some(_) => 0,
                            None => n,
                        };
                        if let Some(upto) = self.conn.handed(units) {
                            self.conn.emit(Event::Sent {
                                conn: self.conn.id,
                                upto,
                            });
                        }
                    }
                    Poll::Ready(Err(_)) => return Poll::Ready(self.abnormal()),
                    Poll::Pending => break,
                }
            }
            let flushed = self.written == self.writing.len();
            if flushed && !self.writing.is_empty() {
                self.writing.clear();
                self.written = 0;
                self.framed = None;
                if self.writing.capacity() > IDLE_KEEP {
                    self.writing = Vec::new();
                }
                // More may have been queued meanwhile.
                continue;
            }

            if self.closing == Closing::Flush {
                if flushed {
                    return Poll::Ready(
                        self.outcome
                            .take()
                            .unwrap_or((close::ABNORMAL, String::new())),
                    );
                }
                // A peer that stops reading must not hold the connection
                // (and the server's close) forever: closeTimeout bounds
                // the flush too, and the close then reports 1006.
                let close_timeout = self.close_timeout;
                let d = self
                    .deadline
                    .get_or_insert_with(|| Box::pin(sleep(close_timeout)));
                if d.as_mut().poll(cx).is_ready() {
                    return Poll::Ready((close::ABNORMAL, String::new()));
                }
                return Poll::Pending;
            }
            if let Some(d) = self.deadline.as_mut() {
                if d.as_mut().poll(cx).is_ready() {
                    if self.closing == Closing::PeerClosed {
                        // JS did not answer in time: answer now.
                        self.deadline = None;
                        let (code, reason) = self
                            .outcome
                            .as_ref()
                            .map_or((close::NO_STATUS, ""), |(c, r)| (*c, r.as_str()));
                        self.conn.answer_close(code, reason);
                        self.closing = Closing::Flush;
                        continue;
                    }
                    return Poll::Ready(self.abnormal());
                }
            }
            if self.closing == Closing::No && self.poll_ping(cx) {
                // Silent for two intervals: close (1001) without waiting.
                let mut g = self.conn.lock();
                self.conn
                    .queue_close(&mut g, Some((close::GOING_AWAY, "ping timeout")));
                drop(g);
                self.outcome = Some((close::ABNORMAL, "ping timeout".into()));
                self.closing = Closing::Flush;
                continue;
            }

            // Read.
            if let Some(inf) = &self.inflation {
                // Inflating over several turns: on with it in the next
                // (or when a place frees, if it waits for one).
                if !inf.waiting {
                    yield_after_io(cx);
                }
                return Poll::Pending;
            }
            if blocked || self.peer_eof || !self.may_read(cx) {
                return Poll::Pending;
            }
            if reads == READ_BUDGET {
                yield_after_io(cx);
                return Poll::Pending;
            }
            reads += 1;
            let read = SCRATCH.with(|s| {
                let mut scratch = s.borrow_mut();
                let mut rb = ReadBuf::new(&mut scratch[..]);
                match Pin::new(&mut self.stream).poll_read(cx, &mut rb) {
                    Poll::Ready(Ok(())) => {
                        let n = rb.filled().len();
                        if n > 0 {
                            self.on_bytes(&mut scratch[..n]);
                        }
                        Poll::Ready(Ok(n))
                    }
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    Poll::Pending => Poll::Pending,
                }
            });
            match read {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) if self.closing == Closing::PeerClosed => {
                    // The peer half-closed after its close frame: it may
                    // still read. Stop reading, and answer as usual.
                    self.peer_eof = true;
                    return Poll::Pending;
                }
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(self.abnormal()),
                Poll::Ready(Ok(_)) => {}
            }
        }
    }

    /// Whether to read now. Not while more than `maxBackpressure` waits to
    /// be written to the peer: it is not reading, and what it sends (pings)
    /// would only queue more; TCP pushes back on it instead. Nor while this
    /// connection has had its share of a queue JS has not taken yet (see
    /// `Share`): the waker is parked there and woken when JS takes it.
    fn may_read(&mut self, cx: &mut Context<'_>) -> bool {
        if !under_backpressure(self.conn.buffered_amount(), self.max_backpressure) {
            return false;
        }
        if self.share.exhausted() {
            if self.conn.wait_for_take(self.share.gen, cx.waker()) {
                return false;
            }
            self.share = Share::default();
        }
        true
    }

    fn abnormal(&mut self) -> (u16, String) {
        self.outcome
            .take()
            .unwrap_or((close::ABNORMAL, String::new()))
    }

    fn on_bytes(&mut self, data: &mut [u8]) {
        if self.ping_timer.is_some() {
            self.last_read = Instant::now();
            self.awaiting_pong = false;
        }
        if self.closing.discards_input() {
            return;
        }
        if self.pending.is_empty() {
            let used = self.process(data);
            if !self.closing.discards_input() {
                self.pending.extend_from_slice(&data[used..]);
            }
        } else {
            let mut input = std::mem::take(&mut self.pending);
            input.extend_from_slice(data);
            let used = self.process(&mut input);
            input.drain(..used);
            if !self.closing.discards_input() {
                self.pending = input;
            }
            // A held partial frame that grew big is released once consumed.
            if self.pending.is_empty() && self.pending.capacity() > SCRATCH_SIZE {
                self.pending = Vec::new();
            }
        }
    }

    /// Decodes `input`; returns the bytes consumed.
    fn process(&mut self, input: &mut [u8]) -> usize {
        let conn = &self.conn;
        let id = conn.id;
        let decoder = &mut self.decoder;
        let inflater = &mut self.inflater;
        let inflated = &mut self.inflated;
        let inflation = &mut self.inflation;
        let max_payload = self.max_payload;
        let mut failure: Option<Violation> = None;
        let mut peer_close: Option<(u16, String)> = None;
        // Our close frame is out: the peer's completes the handshake.
        let answered = self.closing == Closing::Sent;
        let share = &mut self.share;
        // All messages of this read go out under one lock and one wake.
        let result = conn.emit_with(|batch| {
            let (arena0, events0) = (batch.arena.len(), batch.events.len());
            let r = decoder.decode(input, |m| {
                match m {
                    Message::Text(t) => batch.push_message(id, true, t),
                    Message::Binary(d) => batch.push_message(id, false, d),
                    Message::Compressed { text, payload } => {
                        // Only produced once permessage-deflate was agreed.
                        let Some(inf) = inflater.as_mut() else {
                            return false;
                        };
                        inflated.clear();
                        let mut job = Inflating::new(payload.len(), inflated);
                        let r = inf.step(&mut job, payload, max_payload, inflated, INFLATE_SLICE);
                        if let Ok(Step::More(used)) = r {
                            // Large: the rest in later turns (`poll_inflation`),
                            // and what follows it after that.
                            *inflation = Some(Box::new(Inflation {
                                job,
                                text,
                                rest: payload[used..].to_vec(),
                                slot: None,
                                waiting: false,
                            }));
                            return false;
                        }
                        if let Some(v) = inflate_violation(r, text, inflated) {
                            // A bomb may have grown it to `maxPayload`:
                            // not kept while the connection closes.
                            *inflated = Vec::new();
                            failure = Some(v);
                            return false;
                        }
                        batch.push_message(id, text, inflated);
                        if inflated.capacity() > SCRATCH_SIZE {
                            *inflated = Vec::new();
                        }
                    }
                    Message::Ping(p) => conn.queue_pong(p),
                    Message::Pong(p) => {
                        let (start, len) = batch.push_bytes(p);
                        batch.events.push_back(Event::Pong {
                            conn: id,
                            start,
                            len,
                        });
                    }
                    Message::Close(p) => {
                        let (code, reason) = match p {
                            ClosePayload::Empty => (close::NO_STATUS, String::new()),
                            ClosePayload::Code(c, r) => (c, r.to_string()),
                        };
                        if !answered {
                            // In this read's batch, after its messages: JS
                            // handles them and the close in one go.
                            batch.events.push_back(Event::PeerClose {
                                conn: conn.clone(),
                                code,
                                reason: reason.clone(),
                            });
                        }
                        peer_close = Some((code, reason));
                        return false;
                    }
                }
                true
            });
            share.count(batch, arena0, events0);
            r
        });
        let result = match (result, failure) {
            (Ok(_), Some(v)) => Err(v),
            (r, _) => r,
        };
        match result {
            Ok(used) => {
                if let Some(outcome) = peer_close {
                    self.outcome = Some(outcome);
                    if answered {
                        self.closing = Closing::Flush;
                    } else {
                        self.closing = Closing::PeerClosed;
                        self.deadline = Some(Box::pin(sleep(self.close_timeout)));
                    }
                }
                used
            }
            Err(v) => {
                self.fail(v);
                input.len()
            }
        }
    }

    /// Fails the connection (RFC 6455 §7.1.7): the `error` event, our close
    /// frame with the violation's code, then the end once it is out.
    fn fail(&mut self, v: Violation) {
        self.conn.emit(Event::Error {
            conn: self.conn.id,
            code: match v.code {
                _ if v.reason == "invalid compressed data" => "WS_ERR_INVALID_COMPRESSION",
                close::INVALID_PAYLOAD => "WS_ERR_INVALID_UTF8",
                close::MESSAGE_TOO_BIG => "WS_ERR_MESSAGE_TOO_BIG",
                _ => "WS_ERR_PROTOCOL",
            },
            message: v.reason.to_string(),
        });
        let mut g = self.conn.lock();
        self.conn.queue_close(&mut g, Some((v.code, v.reason)));
        drop(g);
        self.outcome = Some((v.code, v.reason.to_string()));
        self.closing = Closing::Flush;
    }

    /// Goes on with a message inflating over several turns. True while it
    /// still is: reading waits, and the task comes back in its next turn,
    /// after the other connections' work. Once it is whole, it is
    /// delivered, then what was read after it.
    fn poll_inflation(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(mut inf) = self.inflation.take() else {
            return false;
        };
        let Some(inflater) = self.inflater.as_mut() else {
            return false;
        };
        if inf.slot.is_none() {
            inf.slot = InflateSlot::take(cx.waker());
            inf.waiting = inf.slot.is_none();
            if inf.waiting {
                self.inflation = Some(inf);
                return true;
            }
        }
        let inflated = &mut self.inflated;
        let r = inflater.step(
            &mut inf.job,
            &inf.rest,
            self.max_payload,
            inflated,
            INFLATE_SLICE,
        );
        if let Ok(Step::More(used)) = r {
            inf.rest.drain(..used);
            self.inflation = Some(inf);
            yield_after_io(cx);
            return true;
        }
        if let Some(v) = inflate_violation(r, inf.text, inflated) {
            self.inflated = Vec::new();
            self.fail(v);
            return false;
        }
        let share = &mut self.share;
        let id = self.conn.id;
        self.conn.emit_with(|batch| {
            let (arena0, events0) = (batch.arena.len(), batch.events.len());
            batch.push_message(id, inf.text, inflated);
            share.count(batch, arena0, events0);
        });
        self.inflated = Vec::new();
        self.process_pending();
        self.inflation.is_some()
    }

    /// Decodes what is held in `pending` (frames read with the upgrade
    /// request, or after a message that inflated over several turns).
    fn process_pending(&mut self) {
        if self.pending.is_empty() || self.closing.discards_input() {
            return;
        }
        let mut input = std::mem::take(&mut self.pending);
        let used = self.process(&mut input);
        input.drain(..used);
        if !self.closing.discards_input() {
            self.pending = input;
        }
    }

    /// Turns the queue's records into frames, compressing messages at or
    /// above the threshold (RFC 7692 §6: RSV1 on the first frame).
    fn frame_records(&mut self) {
        let records = std::mem::take(&mut self.writing);
        let mask = self.conn.frame_mask();
        let mut frames = Vec::with_capacity(records.len());
        let mut rest = &records[..];
        while let Some((kind, body, next)) = record::next(rest) {
            rest = next;
            let opcode = match kind {
                record::TEXT => OpCode::Text,
                record::BINARY => OpCode::Binary,
                _ => {
                    frames.extend_from_slice(body);
                    continue;
                }
            };
            match self.deflater.as_mut() {
                Some(d) if body.len() >= self.threshold => {
                    self.deflated.clear();
                    d.deflate(body, &mut self.deflated);
                    write_frame(&mut frames, opcode, true, &self.deflated, mask);
                }
                _ => write_frame(&mut frames, opcode, false, body, mask),
            }
        }
        if self.deflated.capacity() > SCRATCH_SIZE {
            self.deflated = Vec::new();
        }
        self.conn.rebuffer(records.len(), frames.len());
        self.framed = Some(records.len());
        self.writing = frames;
    }
}

/// After the close: our FIN, then read and discard until the peer's FIN
/// or the linger time, so the peer sees an orderly end.
async fn linger(mut stream: TcpStream) {
    let _ = timeout(Duration::from_secs(1), stream.shutdown()).await;
    let end = Instant::now() + LINGER;
    let mut sink = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout_at(end, stream.read(&mut sink)).await {
        if n == 0 {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every connection's task holds its future for its whole life: keep it
    /// small (sub-futures are boxed; inline they made it 7 KiB).
    #[test]
    fn connection_future_stays_small() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let a = l.local_addr().unwrap();
            let s = tokio::net::TcpStream::connect(a).await.unwrap();
            let sink = super::super::sink::EnvSink::new(Box::new(|| {}));
            let server =
                super::super::server::Server::bind("127.0.0.1", 0, Default::default(), sink)
                    .unwrap();
            let f = super::run(s, a, a, server.clone(), Vec::new(), true);
            let size = std::mem::size_of_val(&f);
            assert!(size <= 1024, "connection future is {size} bytes");
            drop(f);
            // And the task around it, from the accept.
            let s = tokio::net::TcpStream::connect(a).await.unwrap();
            let f = super::super::server::connection(server.clone(), s, a, a, Vec::new());
            let size = std::mem::size_of_val(&f);
            assert!(size <= 1280, "connection task is {size} bytes");
            drop(f);
            server.close(1001, "");
        });
    }
}
