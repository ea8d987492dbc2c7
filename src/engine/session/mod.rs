//! A WebSocket session (RFC 6455 §5–§7) on the engine thread: one poll
//! function that takes JS's commands, then writes (`write.rs`), minds its
//! timers (`timer.rs`) and reads (`read.rs`), in that order, until the
//! connection ends.

mod read;
mod timer;
mod write;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{sleep, Instant, Sleep};

use super::conn::{Conn, Phase};
use super::inflating::Inflation;
use super::sink::{Event, Share};
use super::transport::Transport;
use super::writer::Writer;
use super::ServerConfig;
use crate::protocol::close;
use crate::protocol::decoder::{Decoder, DecoderConfig};
use crate::protocol::deflate::{Agreed, Deflater, Inflater};

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

/// Retires the connection's [`Writer`] when the session is dropped, before
/// its transport is: declared first, so dropped first.
struct Retire(Arc<Conn>);

impl Drop for Retire {
    fn drop(&mut self) {
        self.0.lock().writer.retire();
    }
}

pub(super) struct Session {
    retire: Retire,
    stream: Transport,
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

impl Session {
    pub(super) fn new(
        stream: Transport,
        conn: Arc<Conn>,
        leftover: Vec<u8>,
        cfg: &ServerConfig,
        agreed: Option<Agreed>,
    ) -> Self {
        let max_payload = cfg.max_payload;
        let deflate = cfg.deflate.as_ref();
        let deflater = match (&agreed, deflate) {
            (Some(a), Some(d)) if d.compress => Some(Deflater::new(a, d.level)),
            _ => None,
        };
        Session {
            retire: Retire(conn.clone()),
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
            close_timeout: cfg.close_timeout,
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

    /// The transport, to linger on after the close; everything else (and
    /// the direct path, retired) goes now.
    pub(super) fn into_transport(self) -> Transport {
        let Session { retire, stream, .. } = self;
        drop(retire);
        stream
    }

    /// Runs until the connection ends; returns the close event's code and reason.
    pub(super) fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<(u16, String)> {
        self.conn.waker.register(cx.waker());
        if std::mem::take(&mut self.fresh) {
            // Frames that came with the upgrade request.
            self.process_pending();
        }
        self.poll_inflation(cx);
        let mut reads = 0;
        loop {
            let blocked = match self.take_commands() {
                Ok(blocked) => blocked,
                Err(end) => return Poll::Ready(end),
            };
            let next = match self.poll_flush(cx) {
                Next::Go => match self.poll_timers(cx) {
                    Next::Go => self.poll_read(cx, blocked, &mut reads),
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

    /// Takes JS's commands and new output, under the connection's lock.
    /// `Ok(blocked)`: whether reading is paused (`block()`); `Err`: the
    /// connection was terminated.
    fn take_commands(&mut self) -> Result<bool, (u16, String)> {
        let mut overflowed = false;
        let blocked = {
            let mut g = self.conn.lock();
            if g.terminate {
                drop(g);
                return Err(self.abnormal());
            }
            if let Some(on) = g.nodelay.take() {
                self.stream.set_nodelay(on);
            }
            if g.overflow && !g.close_sent {
                // Over `backpressureLimit`: what is not yet being written
                // is dropped, and the close frame follows whatever frame
                // is half out.
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
                // (within its own closeTimeout).
                self.closing = Closing::Flush;
                self.deadline = None;
            }
            if matches!(g.writer, Writer::Engine) && !matches!(g.phase, Phase::Closed) {
                // SAFETY: `retire` retires the writer before the session's
                // transport is dropped.
                g.writer.bind(unsafe { self.stream.direct() });
            }
            if self.writing.is_empty() {
                if !g.out.is_empty() {
                    std::mem::swap(&mut self.writing, &mut g.out);
                    self.written = 0;
                }
                // Changed only here, under the lock: the direct path waits
                // while the task holds bytes, so the order holds.
                g.writer.task_holds(!self.writing.is_empty());
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
        Ok(blocked)
    }

    fn abnormal(&mut self) -> (u16, String) {
        self.outcome
            .take()
            .unwrap_or((close::ABNORMAL, String::new()))
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
