//! Plain HTTP/1.1 on a connection that did not (yet) ask for a WebSocket:
//! read the body, hand the request to JS, write the response it produces.
//! Pipelined requests are answered one at a time, so in order.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use atomic_waker::AtomicWaker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{sleep, timeout, Instant, Sleep};

use super::events::Event;
use super::exchange::Exchange;
use super::server::{CloseWatch, Server};
use super::tls::TlsInfo;
use super::transport::Transport;
use crate::clock;
use crate::http::body::{body_kind, expects_continue, BodyDecoder, BodyKind};
use crate::http::framing::{RequestInfo, CONTINUE_100};
use crate::http::head::RequestHead;
use crate::http::response::closing_response;

/// How long a handler may still answer once its client has sent a FIN
/// (it may only have half-closed after its last request): requests it sent
/// before get their answers, as in Node, where those handlers run before
/// the end of the stream is read; a handler slower than this is given up.
pub(super) const LEFT_GRACE: Duration = Duration::from_millis(250);

/// What the connection does after a request.
pub(super) enum After {
    /// The response allows another request on this connection.
    Next,
    /// Close it (already answered, or the peer went away).
    Close,
    /// Answer with this final error response (none when empty: the socket
    /// failed), then close, and report it with an error code and message.
    Refuse(Vec<u8>, &'static str, String),
}

/// The connection's idle timer: one `Sleep` for its life, never reset on
/// the per-request path. Each wait (for a request head, or for a busy
/// handler) records only when it began, on the coarse clock; the timer
/// may then fire early, and is moved to the real deadline when it does.
pub(super) struct IdleTimer {
    pub sleep: Pin<Box<Sleep>>,
    /// When the current wait began (`clock::mono_ms`); `None` while the
    /// sleep's own deadline is exact (the first request head).
    pub since: Option<u64>,
    pub limit: Duration,
}

const DAY_MS: u64 = 24 * 3600 * 1000;

impl IdleTimer {
    pub fn new(limit: Duration) -> Self {
        IdleTimer {
            sleep: Box::pin(sleep(limit)),
            since: None,
            limit,
        }
    }

    /// Starts a wait now.
    pub fn restart(&mut self) {
        self.since = Some(clock::mono_ms());
    }

    /// When the current wait ends (`clock::mono_ms`), if it began on the
    /// coarse clock.
    fn deadline(&self) -> Option<u64> {
        let since = self.since?;
        Some(since.saturating_add(self.limit.as_millis() as u64))
    }

    /// Whether the current wait has lasted `limit` already.
    pub fn is_over(&self) -> bool {
        self.deadline().is_some_and(|d| clock::mono_ms() >= d)
    }

    /// `Ready` once the current wait has lasted `limit`.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while self.sleep.as_mut().poll(cx).is_ready() {
            let Some(deadline) = self.deadline() else {
                return Poll::Ready(());
            };
            let now = clock::mono_ms();
            if now >= deadline {
                return Poll::Ready(());
            }
            // Fired early (set for an earlier wait): on to the real deadline,
            // a day at a time (an `Instant` cannot hold any `limit`).
            let left = Duration::from_millis((deadline - now).min(DAY_MS));
            self.sleep.as_mut().reset(Instant::now() + left);
        }
        Poll::Pending
    }
}

/// Detaches an exchange from its connection when its request is done
/// with (or given up): no direct write may follow.
struct Detach<'a>(&'a Exchange);

impl Drop for Detach<'_> {
    fn drop(&mut self) {
        self.0.detach();
    }
}

fn bad_body(e: crate::http::body::BodyError) -> After {
    let why = e.to_string();
    let response = closing_response(e.status(), None, &[], why.as_bytes());
    After::Refuse(response, "HPE_INVALID", why)
}

/// Reads the body of the request `head` (of framing `kind`), from `buf`
/// and then the socket; `buf` keeps what follows it.
async fn read_body(
    stream: &mut Transport,
    server: &Server,
    head: &RequestHead,
    kind: BodyKind,
    buf: &mut Vec<u8>,
) -> Result<Vec<u8>, After> {
    let cfg = &server.config;
    let mut decoder = BodyDecoder::new(kind, cfg.max_body_size);
    let mut body = Vec::new();
    let mut held = BodyHold { server, n: 0 };
    let mut continued = false;
    // `requestTimeout` bounds the whole body; `handshakeTimeout` each pause.
    let deadline = (!cfg.request_timeout.is_zero())
        .then(|| Instant::now().checked_add(cfg.request_timeout))
        .flatten();
    loop {
        let (used, done) = decoder.feed(buf, &mut body).map_err(bad_body)?;
        buf.drain(..used);
        if done {
            return Ok(body);
        }
        held.set(body.len() + buf.len());
        if !server.body_room_for(held.n) {
            // Others hold `maxBodyBuffer` already: read nothing (TCP pushes
            // back on the client) until some is released, within
            // `requestTimeout`.
            let room = server.body_room();
            tokio::pin!(room);
            room.as_mut().enable();
            if !server.body_room_for(held.n) {
                let waited = match deadline {
                    Some(d) => tokio::time::timeout_at(d, room).await.is_ok(),
                    None => {
                        room.await;
                        true
                    }
                };
                if !waited {
                    let response = closing_response(408, None, &[], b"request timeout");
                    return Err(After::Refuse(
                        response,
                        "ETIMEDOUT",
                        "request timeout".into(),
                    ));
                }
            }
            continue;
        }
        // RFC 9110 §10.1.1: invite the body only when it is not coming already.
        if !continued && expects_continue(head) && decoder.received() == 0 {
            continued = true;
            if stream.write_all(CONTINUE_100).await.is_err() || stream.flush().await.is_err() {
                return Err(After::Close);
            }
        }
        buf.reserve(16 * 1024);
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let whole = left.is_some_and(|left| left < cfg.handshake_timeout);
        let wait = if whole {
            left.unwrap_or_default()
        } else {
            cfg.handshake_timeout
        };
        match timeout(wait, stream.read_buf(buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            // The peer went away mid-body: nobody to answer or report to.
            Ok(Ok(_)) => return Err(After::Close),
            Ok(Err(e)) => {
                let code = super::server::error_code(&e);
                return Err(After::Refuse(Vec::new(), code, e.to_string()));
            }
            // No byte of the body for `handshakeTimeout`, or not all of it
            // within `requestTimeout`: 408 (RFC 9110 §15.5.9), as Node's
            // `requestTimeout` answers.
            Err(_) => {
                let why = if whole {
                    "request timeout"
                } else {
                    "request body timeout"
                };
                let response = closing_response(408, None, &[], why.as_bytes());
                return Err(After::Refuse(response, "ETIMEDOUT", why.into()));
            }
        }
    }
}

/// Request-body bytes a connection holds, counted in its server's
/// `maxBodyBuffer` until dropped.
struct BodyHold<'a> {
    server: &'a Server,
    n: usize,
}

impl BodyHold<'_> {
    fn set(&mut self, n: usize) {
        if n > self.n {
            self.server.hold_body(n - self.n);
        } else {
            self.server.release_body(self.n - n);
        }
        self.n = n;
    }
}

impl Drop for BodyHold<'_> {
    fn drop(&mut self) {
        self.server.release_body(self.n);
    }
}

/// Serves one request whose head is `head`; `buf` holds the bytes read
/// after the head (body, pipelined requests) and keeps what is left.
///
/// While JS works on the request, the task parks on the socket (see
/// `Exchange::poll_progress`): it wakes for the client's next bytes, for
/// `timer` (the idle timeout, reset here to `handshakeTimeout` from now),
/// for `closing` (the server closes), or when JS wakes it.
#[allow(clippy::too_many_arguments)]
pub(super) async fn serve_one(
    stream: &mut Transport,
    server: &Arc<Server>,
    head: RequestHead,
    redirect: bool,
    tls: &Option<Arc<TlsInfo>>,
    buf: &mut Vec<u8>,
    remote: SocketAddr,
    local: SocketAddr,
    timer: &mut IdleTimer,
    waker: &Arc<AtomicWaker>,
    closing: &CloseWatch<'_>,
) -> After {
    let body = match body_kind(&head) {
        Ok(BodyKind::None) => Vec::new(),
        // Boxed: most requests have no body, and this future is big.
        Ok(kind) => match Box::pin(read_body(stream, server, &head, kind, buf)).await {
            Ok(body) => body,
            Err(after) => return after,
        },
        Err(e) => return bad_body(e),
    };

    let exchange = Exchange::new(
        RequestInfo::from_head(&head),
        server.clone(),
        // SAFETY: `_detach` retires the exchange's writer before this
        // function returns, so before `stream` can be dropped.
        unsafe { stream.direct() },
        waker.clone(),
        false,
    );
    let _detach = Detach(&exchange);
    server.queue().push(Event::Request {
        server: server.id,
        exchange: exchange.clone(),
        head,
        body,
        remote,
        local,
        redirect,
        tls: tls.clone(),
    });

    // Write what JS queues until the response has ended.
    let mut armed = false;
    let mut watch_close = true;
    // Once the server closes, the handler has `closeTimeout` to end its
    // response; then the connection is given up.
    let mut close_by: Option<Pin<Box<Sleep>>> = None;
    let mut left: Option<Pin<Box<Sleep>>> = None;
    let progress = poll_fn(|cx| {
        waker.register(cx.waker());
        // Parking needs a wake-up of its own: the client's next bytes.
        let mut park = buf.is_empty();
        if park {
            if let Poll::Ready(r) = stream.poll_read_ready(cx) {
                park = false;
                if r.is_err() {
                    exchange.detach();
                    return Poll::Ready(None);
                }
                // The client's FIN with its request pending: it has left
                // (as Node's `http` takes it), unless it only half-closed
                // after its last request. The handler has `LEFT_GRACE` to
                // answer; then JS hears it (`req`/`res` 'close') and the
                // connection closes rather than wait for a handler that
                // may never answer.
                if left.is_none() && stream.peer_gone() {
                    left = Some(Box::pin(sleep(LEFT_GRACE)));
                }
            }
        }
        if let Some(d) = left.as_mut() {
            if d.as_mut().poll(cx).is_ready() {
                exchange.detach();
                return Poll::Ready(None);
            }
        }
        if watch_close && closing.poll(cx).is_ready() {
            // The server closes: wait for JS's wake, then stop.
            watch_close = false;
            close_by = Some(Box::pin(sleep(server.config.close_timeout)));
        }
        if let Some(d) = close_by.as_mut() {
            park = false;
            if d.as_mut().poll(cx).is_ready() {
                exchange.detach();
                return Poll::Ready(None);
            }
        }
        if park && !armed {
            armed = true;
            timer.restart();
        }
        if park && timer.poll_expired(cx).is_ready() {
            // A handler still busy after the idle timeout: no timeout
            // while it works; JS wakes the task when it is done.
            park = false;
        }
        exchange.poll_progress(cx, stream, park)
    })
    .await;
    match progress {
        Some(done) if done.keep_alive && !server.is_closing() => {
            // Idle from the response's end (or from now, if that is when
            // the task learned of it).
            timer.since = Some(done.ended_at.unwrap_or_else(clock::mono_ms));
            After::Next
        }
        _ => After::Close,
    }
}
