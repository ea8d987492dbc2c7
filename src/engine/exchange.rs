//! One HTTP request/response as the JS thread sees it: the response half,
//! written by `res.writeHead/write/end` and flushed by the connection task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use atomic_waker::AtomicWaker;

use crate::http::framing::{response_head, write_chunk, write_last_chunk, RequestInfo};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Why a response call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    #[error("the response head was already sent")]
    HeadSent,
    #[error("the response head was not sent yet")]
    NoHead,
    #[error("the response has already ended")]
    Ended,
}

#[derive(Debug, Default)]
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
}

pub struct Exchange {
    pub id: u64,
    req: RequestInfo,
    /// A response started while the server closes says `Connection: close`.
    server: Arc<super::server::Server>,
    inner: Mutex<Inner>,
    pub(super) waker: AtomicWaker,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What the task learns when it takes the queued response bytes.
pub(super) struct Progress {
    pub ended: bool,
    pub keep_alive: bool,
    pub aborted: bool,
}

impl Exchange {
    pub(super) fn new(req: RequestInfo, server: Arc<super::server::Server>) -> Arc<Exchange> {
        Arc::new(Exchange {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            req,
            server,
            inner: Mutex::new(Inner::default()),
            waker: AtomicWaker::new(),
        })
    }

    /// Wakes the connection task, once per burst (see `flush`).
    fn wake(&self) {
        if let Some(w) = self.waker.take() {
            super::flush::schedule(w);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_head_request(&self) -> bool {
        self.req.head_method
    }

    /// Queues the status line and headers. `body_len`: the whole body's
    /// length when known (sets Content-Length unless the user did), else the
    /// body is chunked (HTTP/1.1) or ends with the connection (HTTP/1.0).
    pub fn write_head(
        &self,
        status: u16,
        reason: Option<&str>,
        headers: &[(String, String)],
        body_len: Option<u64>,
    ) -> Result<(), ExchangeError> {
        let mut g = self.lock();
        if g.head_sent {
            return Err(ExchangeError::HeadSent);
        }
        let mut req = self.req;
        if self.server.is_closing() {
            req.keep_alive = false;
        }
        let head = response_head(&req, status, reason, headers, body_len);
        g.head_sent = true;
        g.chunked = head.chunked;
        g.send_body = head.send_body;
        g.keep_alive = head.keep_alive;
        g.remaining = head.content_length;
        g.out.extend_from_slice(&head.bytes);
        drop(g);
        self.wake();
        Ok(())
    }

    fn body(g: &mut Inner, data: &[u8]) {
        if !g.send_body || data.is_empty() {
            return; // HEAD, 204, 304: the body is not sent
        }
        if g.chunked {
            write_chunk(&mut g.out, data);
        } else if let Some(left) = g.remaining.as_mut() {
            // Never more than the Content-Length promised.
            let n = (*left).min(data.len() as u64) as usize;
            g.out.extend_from_slice(&data[..n]);
            *left -= n as u64;
        } else {
            g.out.extend_from_slice(data);
        }
    }

    /// Queues part of the body.
    pub fn write(&self, data: &[u8]) -> Result<(), ExchangeError> {
        self.body_part(data, false)
    }

    /// Queues the last part of the body and ends the response.
    pub fn end(&self, data: &[u8]) -> Result<(), ExchangeError> {
        self.body_part(data, true)
    }

    fn body_part(&self, data: &[u8], last: bool) -> Result<(), ExchangeError> {
        let mut g = self.lock();
        if g.ended {
            return Err(ExchangeError::Ended);
        }
        if !g.head_sent {
            return Err(ExchangeError::NoHead);
        }
        Self::body(&mut g, data);
        if last {
            if g.chunked {
                write_last_chunk(&mut g.out);
            }
            if g.send_body && g.remaining.is_some_and(|r| r > 0) {
                // Shorter than its Content-Length: only closing can tell the client.
                g.keep_alive = false;
            }
            g.ended = true;
        }
        drop(g);
        self.wake();
        Ok(())
    }

    /// Drops the connection (a handler failed after the head went out).
    pub fn abort(&self) {
        self.lock().aborted = true;
        self.wake();
    }

    /// Moves the queued bytes to `into`.
    pub(super) fn take(&self, into: &mut Vec<u8>) -> Progress {
        let mut g = self.lock();
        into.append(&mut g.out);
        Progress {
            ended: g.ended,
            keep_alive: g.keep_alive,
            aborted: g.aborted,
        }
    }
}
