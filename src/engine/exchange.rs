//! One HTTP request/response as the JS thread sees it: the response half,
//! filled by `res.write/end` and written to the socket.
//!
//! Every write to the socket happens under the exchange's lock, from either
//! thread: the connection task flushes what is queued, and the JS thread,
//! when a response ends, sends it at once with one non-blocking `send(2)`
//! (no engine wake for the common small response). Whatever does not fit
//! stays queued for the task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use super::transport::Transport;
use atomic_waker::AtomicWaker;
use tokio::io::AsyncWrite;

use super::config::under_backpressure;
use super::writer::{Direct, Writer};
use crate::http::framing::{
    write_chunk_header, write_last_chunk, write_response_head, RequestInfo,
};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// Where a response is built before its direct send (see `respond`):
    /// one per thread, so a response costs no allocation for its bytes.
    static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// An exchange whose queue has this much room (a renewed one) builds its
/// direct response there rather than in the thread's scratch buffer.
const OWN_ROOM: usize = 256;

/// Output larger than this is released once written, so a keep-alive
/// connection does not hold its largest response's buffer.
const IDLE_KEEP: usize = 16 * 1024;

/// Why a response call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    #[error("the response head was already sent")]
    HeadSent,
    #[error("the response head was not sent yet")]
    NoHead,
    #[error("the response has already ended")]
    Ended,
    #[error("the connection is gone")]
    Closed,
}

/// What JS hears about a response besides its calls' results: only for
/// the few responses that asked (see [`Exchange::watch`] and `respond`'s
/// `Ok(true)`), so the common response costs no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The queue fell back under `maxBackpressure` after a part that
    /// took it over.
    Drain,
    /// The connection went away before the response ended.
    Close,
}

/// A response head as the handler set it.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    pub status: u16,
    pub reason: Option<&'a str>,
    pub headers: &'a [(&'a str, &'a str)],
}

#[derive(Debug)]
struct Inner {
    out: Vec<u8>,
    head_sent: bool,
    chunked: bool,
    send_body: bool,
    /// Body bytes still allowed by the Content-Length sent.
    remaining: Option<u64>,
    keep_alive: bool,
    ended: bool,
    aborted: bool,
    /// The connection can no longer carry this response (a write failed,
    /// or the connection was given up): later parts are dropped.
    closed: bool,
    /// JS was told the queue is over `maxBackpressure` and waits for a
    /// [`Notice::Drain`].
    over: bool,
    /// JS wants a [`Notice::Close`] if the connection goes first (it
    /// gets one also while `over`).
    watched: bool,
    /// Who may write the socket: the direct path only while `Open`;
    /// retired once the task is done with this exchange (it may close the
    /// socket then).
    writer: Writer,
    /// The task waits for the client's next bytes (or its timer), not for
    /// a wake from here: a response that ends fully written and keeps the
    /// connection open needs no engine wake at all.
    parked: bool,
    /// When a response ended without waking the parked task: the start of
    /// the connection's idle time (`clock::mono_ms`).
    ended_at: Option<u64>,
}

impl Inner {
    fn fresh(direct: Option<Direct>, out: Vec<u8>, parked: bool) -> Self {
        let mut writer = Writer::Engine;
        writer.bind(direct);
        Inner {
            out,
            head_sent: false,
            chunked: false,
            send_body: false,
            remaining: None,
            keep_alive: false,
            ended: false,
            aborted: false,
            closed: false,
            over: false,
            watched: false,
            writer,
            parked,
            ended_at: None,
        }
    }
}

pub struct Exchange {
    pub id: u64,
    req: RequestInfo,
    /// A response started while the server closes says `Connection: close`.
    server: Arc<super::server::Server>,
    inner: Mutex<Inner>,
    /// The connection task's waker, shared by all its exchanges: the task
    /// registers it once, not anew (a waker clone) per request. A late
    /// wake from an earlier exchange only costs the task a spurious poll.
    pub(super) waker: Arc<AtomicWaker>,
    /// Wake on the calling thread, not through the engine's flusher: the
    /// connection is served by the JS thread's keep-alive executor (`keepalive/`). Such an
    /// exchange starts parked: the keep-alive executor looks at the response right after
    /// the handler's call, so an end that is fully written needs no wake.
    wake_here: bool,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Exchange {
    pub(crate) fn new(
        req: RequestInfo,
        server: Arc<super::server::Server>,
        direct: Option<Direct>,
        waker: Arc<AtomicWaker>,
        wake_here: bool,
    ) -> Arc<Exchange> {
        Arc::new(Exchange {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            req,
            server,
            inner: Mutex::new(Inner::fresh(direct, Vec::new(), wake_here)),
            waker,
            wake_here,
        })
    }

    /// Makes a finished exchange the next request's (same connection), when
    /// nothing else holds it: a request then costs no allocation for it.
    /// Returns whether it could.
    #[cfg_attr(any(test, not(feature = "node")), allow(dead_code))]
    pub(crate) fn renew(
        this: &mut Arc<Exchange>,
        req: RequestInfo,
        direct: Option<Direct>,
    ) -> bool {
        let Some(ex) = Arc::get_mut(this) else {
            return false;
        };
        ex.id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        ex.req = req;
        let inner = ex.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        let mut out = std::mem::take(&mut inner.out);
        out.clear();
        *inner = Inner::fresh(direct, out, ex.wake_here);
        true
    }

    /// Wakes the connection task, once per burst (see `wakeups`).
    fn wake(&self) {
        if let Some(w) = self.waker.take() {
            if self.wake_here {
                w.wake();
            } else {
                super::wakeups::schedule(w);
            }
        }
    }

    /// The socket is about to close: no more direct writes, and a
    /// response that has not ended never will on this connection.
    pub(crate) fn detach(&self) {
        let mut g = self.lock();
        g.writer.retire();
        let notice = Self::close_locked(&mut g);
        drop(g);
        self.tell(notice);
    }

    /// Marks the response as one the connection cannot carry; the notice
    /// JS asked for, if any (sent once the lock is released).
    fn close_locked(g: &mut Inner) -> Option<Notice> {
        if g.ended || g.closed {
            return None;
        }
        g.closed = true;
        g.out = Vec::new();
        // A handler waiting for a drain must hear that none will come.
        (g.watched || g.over).then_some(Notice::Close)
    }

    fn tell(&self, notice: Option<Notice>) {
        if let Some(notice) = notice {
            self.server.queue().push(super::events::Event::Response {
                exchange: self.id,
                notice,
            });
        }
    }

    /// JS listens for the connection going first: `false` when it has
    /// gone already (or the response has ended), so no notice will come.
    pub fn watch(&self) -> bool {
        let mut g = self.lock();
        if g.closed || g.ended {
            return false;
        }
        g.watched = true;
        true
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues part of the response: the head (once, first), then `body_len`
    /// body bytes that `fill` appends to the vector it is given. `last`
    /// ends the response. With the head and `last` together the body's
    /// length is known and becomes the Content-Length (unless the user set
    /// one); a head sent before the last part means a chunked body on
    /// HTTP/1.1, or one that ends with the connection on HTTP/1.0.
    ///
    /// `Ok(true)`: the part is queued and the queue is over the server's
    /// `maxBackpressure`; a [`Notice::Drain`] follows when it falls back.
    pub fn respond(
        &self,
        head: Option<Head<'_>>,
        body_len: usize,
        fill: impl FnOnce(&mut Vec<u8>),
        last: bool,
    ) -> Result<bool, ExchangeError> {
        let mut g = self.lock();
        if g.ended {
            return Err(ExchangeError::Ended);
        }
        if g.closed {
            return Err(ExchangeError::Closed);
        }
        if head.is_none() && !g.head_sent {
            return Err(ExchangeError::NoHead);
        }
        if head.is_some() && g.head_sent {
            return Err(ExchangeError::HeadSent);
        }
        // The end, nothing queued and a socket to write to (the usual
        // case): build in this thread's scratch buffer and send from there,
        // so only what the socket does not take is copied to the queue. A
        // renewed exchange (the keep-alive executor's) has room of its own, which does.
        let in_scratch =
            last && g.out.is_empty() && g.writer.direct().is_some() && g.out.capacity() < OWN_ROOM;
        let mut scratch = if in_scratch {
            SCRATCH.take()
        } else {
            Vec::new()
        };
        let g = &mut *g;
        let out = if in_scratch { &mut scratch } else { &mut g.out };
        if let Some(h) = head {
            let mut req = self.req;
            if self.server.is_closing() {
                req.keep_alive = false;
            }
            let len = last.then_some(body_len as u64);
            out.reserve(256 + h.headers.len() * 32 + body_len);
            let f = write_response_head(out, &req, h.status, h.reason, h.headers, len);
            g.head_sent = true;
            g.chunked = f.chunked;
            g.send_body = f.send_body;
            g.keep_alive = f.keep_alive;
            g.remaining = f.content_length;
        }
        Self::body(
            out,
            g.send_body,
            g.chunked,
            &mut g.remaining,
            body_len,
            fill,
        );
        if last {
            if g.chunked {
                write_last_chunk(out);
            }
            if g.send_body && g.remaining.is_some_and(|r| r > 0) {
                // Shorter than its Content-Length: only closing can tell the client.
                g.keep_alive = false;
            }
            g.ended = true;
        }
        if in_scratch {
            let sent = g.writer.direct().map_or(0, |d| d.send(&scratch));
            g.out.extend_from_slice(&scratch[sent..]);
            scratch.clear();
            if scratch.capacity() <= IDLE_KEEP {
                SCRATCH.set(scratch);
            }
        } else if last {
            let sent = g.writer.direct().map_or(0, |d| d.send(&g.out));
            g.out.drain(..sent);
        }
        if last && g.parked && g.out.is_empty() && g.keep_alive {
            // All out, and the connection stays: the task learns of the
            // end when the next request (or its timer) wakes it, and its
            // idle time starts now. The keep-alive executor looks right after the
            // handler's call and takes the time itself.
            if !self.wake_here {
                g.ended_at = Some(crate::clock::mono_ms());
            }
            return Ok(false);
        }
        // Counted before the task writes any of it: what JS has handed
        // over and the client has not taken yet.
        let over = !last && !under_backpressure(g.out.len(), self.server.config.max_backpressure);
        if over {
            g.over = true;
        }
        self.wake();
        Ok(over)
    }

    fn body(
        out: &mut Vec<u8>,
        send_body: bool,
        chunked: bool,
        remaining: &mut Option<u64>,
        len: usize,
        fill: impl FnOnce(&mut Vec<u8>),
    ) {
        if !send_body || len == 0 {
            return; // HEAD, 204, 304: the body is not sent
        }
        if chunked {
            write_chunk_header(out, len);
            fill(out);
            out.extend_from_slice(b"\r\n");
        } else if let Some(left) = remaining.as_mut() {
            // Never more than the Content-Length promised.
            let n = (*left).min(len as u64) as usize;
            let start = out.len();
            fill(out);
            out.truncate(start + n);
            *left -= n as u64;
        } else {
            fill(out);
        }
    }

    /// Drops the connection (a handler failed after the head went out).
    pub fn abort(&self) {
        self.lock().aborted = true;
        self.wake();
    }

    /// The task's side: writes what is queued. `Ready(Some(done))` once
    /// the response has ended and is out, `Ready(None)` when the
    /// connection must close (aborted, write failed). `park`: the task
    /// will be woken by the client's next bytes and by a timer, so a
    /// response that ends complete need not wake it (see `respond`).
    pub(super) fn poll_progress(
        &self,
        cx: &mut Context<'_>,
        stream: &mut Transport,
        park: bool,
    ) -> Poll<Option<Done>> {
        let progress = self.poll_progress_with(
            |data| std::pin::Pin::new(&mut *stream).poll_write(cx, data),
            park,
        );
        // What a TLS session still holds goes out too (plain: nothing);
        // the task flushes again before it waits for the next request.
        let _ = std::pin::Pin::new(&mut *stream).poll_flush(cx);
        progress
    }

    /// `poll_progress` with any writer (`Pending`: the socket is full, and
    /// the writer arranged to be called again when it is not).
    pub(crate) fn poll_progress_with(
        &self,
        mut write: impl FnMut(&[u8]) -> Poll<std::io::Result<usize>>,
        park: bool,
    ) -> Poll<Option<Done>> {
        let mut g = self.lock();
        g.parked = false;
        if g.aborted {
            g.writer.retire();
            // JS asked for it: no notice.
            let _ = Self::close_locked(&mut g);
            return Poll::Ready(None);
        }
        let mut written = 0;
        while written < g.out.len() {
            match write(&g.out[written..]) {
                Poll::Ready(Ok(n)) if n > 0 => written += n,
                Poll::Ready(_) => {
                    g.writer.retire();
                    let notice = Self::close_locked(&mut g);
                    drop(g);
                    self.tell(notice);
                    return Poll::Ready(None);
                }
                Poll::Pending => {
                    g.out.drain(..written);
                    let notice = self.drained(&mut g);
                    drop(g);
                    self.tell(notice);
                    return Poll::Pending;
                }
            }
        }
        if g.out.capacity() > IDLE_KEEP {
            g.out = Vec::new();
        } else {
            g.out.clear();
        }
        let notice = self.drained(&mut g);
        if g.ended {
            g.writer.retire();
            return Poll::Ready(Some(Done {
                keep_alive: g.keep_alive,
                ended_at: g.ended_at,
            }));
        }
        g.parked = park;
        drop(g);
        self.tell(notice);
        Poll::Pending
    }

    /// The drain notice, when the queue is back under the limit after JS
    /// was told it was over (none once the response has ended: nothing
    /// more will be written to it).
    fn drained(&self, g: &mut Inner) -> Option<Notice> {
        if g.over
            && !g.ended
            && under_backpressure(g.out.len(), self.server.config.max_backpressure)
        {
            g.over = false;
            return Some(Notice::Drain);
        }
        None
    }
}

/// A response that has ended and is written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Done {
    /// Read the next request on this connection.
    pub keep_alive: bool,
    /// When it ended (`clock::mono_ms`), if that was not the time the task
    /// learned of it.
    pub ended_at: Option<u64>,
}
