//! The protocol state of a WebSocket session, sans-IO: bytes in
//! (`receive.rs`), bytes out (`output`, `wrote` in `send.rs`), events to
//! JS through the connection's queue, and the closing handshake's and
//! keep-alive's timers (`timer.rs`). The executor in `mod.rs` drives it.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{sleep, Instant, Sleep};

use super::super::conn::{Conn, Phase};
use super::super::events::{Event, Share};
use super::super::inflating::Inflation;
use super::super::writer::{Direct, Writer};
use super::super::ServerConfig;
use super::{Closing, OVERFLOW};
use crate::protocol::close;
use crate::protocol::decoder::{Decoder, DecoderConfig};
use crate::protocol::deflate::{Agreed, Deflater, Inflater};

/// What JS asked for that the executor carries out.
pub(super) struct Commands {
    /// Reading is paused (`block()`).
    pub blocked: bool,
    /// `setNoDelay`, if called since.
    pub nodelay: Option<bool>,
}

/// The protocol state of one WebSocket connection: what it has read and
/// not decoded, what it is writing, where its closing handshake stands,
/// its compression and its timers. No socket: the executor (`Session`)
/// reads into [`Core::receive`] and writes [`Core::output`].
pub(super) struct Core {
    pub(super) conn: Arc<Conn>,
    pub(super) decoder: Decoder,
    /// Unconsumed input: a partial frame.
    pub(super) pending: Vec<u8>,
    pub(super) writing: Vec<u8>,
    pub(super) written: usize,
    /// `writing` holds frames made from this many bytes of records (a
    /// compressing connection), not the records themselves.
    pub(super) framed: Option<usize>,
    pub(super) closing: Closing,
    pub(super) deadline: Option<Pin<Box<Sleep>>>,
    pub(super) close_timeout: Duration,
    /// What the close event will report.
    pub(super) outcome: Option<(u16, String)>,
    /// `pending` holds bytes that came with the upgrade request, not yet decoded.
    pub(super) fresh: bool,
    pub(super) max_payload: usize,
    /// permessage-deflate, when agreed: incoming and (unless
    /// `perMessageDeflateAllow`) outgoing.
    /// (Boxed: most connections have neither, and would carry ~340 bytes.)
    pub(super) inflater: Option<Box<Inflater>>,
    pub(super) deflater: Option<Box<Deflater>>,
    pub(super) threshold: usize,
    /// A message inflating over several turns.
    /// (Boxed: rare, and every idle connection would carry its size.)
    pub(super) inflation: Option<Box<Inflation>>,
    /// The inflate output: the thread's buffer while a read is decoded, or
    /// a message's own while it inflates over several turns; else empty.
    pub(super) inflated: Vec<u8>,
    /// `pingInterval`: a ping after that much silence, and the end when the
    /// next interval passes with nothing received. Off when zero.
    pub(super) ping_interval: Duration,
    pub(super) ping_timer: Option<Pin<Box<Sleep>>>,
    pub(super) last_read: Instant,
    pub(super) awaiting_pong: bool,
    /// The peer's FIN came after its close frame: nothing more to read.
    pub(super) peer_eof: bool,
    /// What this connection added to its environment's event queue, to
    /// stop reading while JS is behind (`may_read`).
    pub(super) share: Share,
    pub(super) max_backpressure: usize,
}

impl Core {
    pub(super) fn new(
        conn: Arc<Conn>,
        leftover: Vec<u8>,
        cfg: &ServerConfig,
        agreed: Option<Agreed>,
    ) -> Self {
        let max_payload = cfg.max_payload;
        let deflate = cfg.deflate.as_ref();
        let deflater = match (&agreed, deflate) {
            (Some(a), Some(d)) if d.compress => Some(Box::new(Deflater::new(a, d.level))),
            _ => None,
        };
        Core {
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
            inflater: agreed.as_ref().map(|a| Box::new(Inflater::new(a))),
            deflater,
            threshold: deflate.map_or(0, |d| d.threshold),
            inflation: None,
            inflated: Vec::new(),
            ping_interval: cfg.ping_interval,
            ping_timer: (!cfg.ping_interval.is_zero()).then(|| Box::pin(sleep(cfg.ping_interval))),
            last_read: Instant::now(),
            awaiting_pong: false,
            peer_eof: false,
            share: Share::default(),
            max_backpressure: cfg.max_backpressure,
        }
    }

    /// Takes JS's commands and new output, under the connection's lock.
    /// `Ok(blocked)`: whether reading is paused (`block()`); `Err`: the
    /// connection was terminated.
    pub(super) fn take_commands(
        &mut self,
        direct: impl FnOnce() -> Option<Direct>,
    ) -> Result<Commands, (u16, String)> {
        let mut overflowed = false;
        let commands = {
            let mut g = self.conn.lock();
            if g.terminate {
                drop(g);
                return Err(self.abnormal());
            }
            let nodelay = g.nodelay.take();
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
                g.writer.bind(direct());
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
            Commands {
                blocked: g.blocked,
                nodelay,
            }
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
        Ok(commands)
    }

    pub(super) fn abnormal(&mut self) -> (u16, String) {
        self.outcome
            .take()
            .unwrap_or((close::ABNORMAL, String::new()))
    }
}
