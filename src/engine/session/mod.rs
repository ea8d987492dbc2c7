//! A WebSocket session (RFC 6455 §5–§7) on the engine thread. Its state
//! is a sans-IO [`Core`] (`core.rs`: bytes in, bytes and events out);
//! this executor only moves bytes between it and the transport: one poll
//! function that takes JS's commands, then writes, minds the timers and
//! reads, in that order, until the connection ends.

mod core;
mod receive;
mod send;
mod timer;

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use self::core::Core;
use super::conn::Conn;
use super::transport::Transport;
use super::ServerConfig;
use crate::protocol::close;
use crate::protocol::deflate::Agreed;

/// Read size: one buffer per engine thread, shared by every connection, so
/// an idle connection holds no read buffer (DESIGN.md, performance plan).
const SCRATCH_SIZE: usize = 64 * 1024;
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

/// What a step of the loop leaves the session to do.
enum Next {
    /// Go on to the next step.
    Go,
    /// Back to the top of the loop (new commands or output may be there).
    Again,
    /// Wait to be woken.
    Wait,
    /// The connection ends with this close event's code and reason.
    End((u16, String)),
}

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; SCRATCH_SIZE].into_boxed_slice());
}

/// Retires the connection's writer when the session is dropped, before
/// its transport is: declared first, so dropped first.
struct Retire(Arc<Conn>);

impl Drop for Retire {
    fn drop(&mut self) {
        self.0.lock().writer.retire();
    }
}

/// The executor of a session on the engine's tokio task.
pub(super) struct Session {
    retire: Retire,
    stream: Transport,
    core: Core,
}

impl Session {
    pub(super) fn new(
        stream: Transport,
        conn: Arc<Conn>,
        leftover: Vec<u8>,
        cfg: &ServerConfig,
        agreed: Option<Agreed>,
    ) -> Self {
        Session {
            retire: Retire(conn.clone()),
            stream,
            core: Core::new(conn, leftover, cfg, agreed),
        }
    }

    /// The transport, to linger on after the close; everything else (and
    /// the direct path, retired) goes now.
    pub(super) fn into_transport(self) -> Transport {
        let Session { retire, stream, .. } = self;
        drop(retire);
        stream
    }

    /// Runs until the connection ends; returns the close event's code and reason.
    pub(super) fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<(u16, String)> {
        let core = &mut self.core;
        core.conn.waker.register(cx.waker());
        core.start();
        // A message inflating over several turns: its next slice (the
        // read step yields to other connections after it).
        core.poll_inflation(cx.waker());
        let mut reads = 0;
        loop {
            let stream = &self.stream;
            // SAFETY: `retire` retires the writer before the transport is
            // dropped.
            let direct = || unsafe { stream.direct() };
            let commands = match self.core.take_commands(direct) {
                Ok(c) => c,
                Err(end) => return Poll::Ready(end),
            };
            if let Some(on) = commands.nodelay {
                self.stream.set_nodelay(on);
            }
            let next = match self.poll_flush(cx) {
                Next::Go => match self.core.poll_timers(cx) {
                    Next::Go => self.poll_read(cx, commands.blocked, &mut reads),
                    next => next,
                },
                next => next,
            };
            match next {
                Next::Go | Next::Again => {}
                Next::Wait => return Poll::Pending,
                Next::End(outcome) => return Poll::Ready(outcome),
            }
        }
    }

    /// Writes what the core has to write. `Again` once all of it is out
    /// (more may have been queued meanwhile); `End` when the transport
    /// failed.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Next {
        loop {
            let out = self.core.output();
            if out.is_empty() {
                break;
            }
            match Pin::new(&mut self.stream).poll_write(cx, out) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Next::End(self.core.abnormal()),
                Poll::Ready(Ok(n)) => self.core.wrote(n),
                Poll::Pending => return Next::Go,
            }
        }
        // What a TLS session still holds goes out too (plain: nothing).
        match Pin::new(&mut self.stream).poll_flush(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(_)) => return Next::End(self.core.abnormal()),
            Poll::Pending => return Next::Go,
        }
        if self.core.written_all() {
            Next::Again
        } else {
            Next::Go
        }
    }

    /// Reads once into the core, unless it waits (`block()`, backpressure,
    /// a message inflating over several turns, the read budget spent).
    fn poll_read(&mut self, cx: &mut Context<'_>, blocked: bool, reads: &mut usize) -> Next {
        let core = &mut self.core;
        if let Some(waiting) = core.inflating() {
            // Inflating over several turns: on with it in the next (or
            // when a place frees, if it waits for one).
            if !waiting {
                yield_after_io(cx);
            }
            return Next::Wait;
        }
        if blocked || core.peer_eof || !core.may_read(cx.waker()) {
            return Next::Wait;
        }
        if *reads == READ_BUDGET {
            yield_after_io(cx);
            return Next::Wait;
        }
        *reads += 1;
        let read = SCRATCH.with(|s| {
            let mut scratch = s.borrow_mut();
            let mut rb = ReadBuf::new(&mut scratch[..]);
            match Pin::new(&mut self.stream).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    let n = rb.filled().len();
                    if n > 0 {
                        self.core.receive(&mut scratch[..n]);
                    }
                    Poll::Ready(Ok(n))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        });
        match read {
            Poll::Pending => Next::Wait,
            Poll::Ready(Ok(0)) => self.core.peer_ended(),
            Poll::Ready(Err(_)) => Next::End(self.core.abnormal()),
            Poll::Ready(Ok(_)) => Next::Again,
        }
    }
}

/// Has the task polled again once the runtime has looked at I/O. A plain
/// `wake_by_ref` would not do: the runtime runs what is queued up to 61
/// times before it polls for I/O, so two tasks taking turns would keep
/// every other connection's readiness waiting for that long.
fn yield_after_io(cx: &mut Context<'_>) {
    // `yield_now` defers its wake until after the next I/O poll; its first
    // poll only registers that.
    let _ = std::future::Future::poll(std::pin::pin!(tokio::task::yield_now()), cx);
}
