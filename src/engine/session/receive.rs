//! Bytes in: what the executor read is decoded (and inflated) into
//! messages for JS, a whole read's messages in one batch.

use std::task::Waker;

use tokio::time::{sleep, Instant};

use super::core::Core;
use super::{Closing, Next, INFLATE_SLICE, SCRATCH_SIZE};
use crate::engine::config::under_backpressure;
use crate::engine::events::{Event, Share};
use crate::engine::inflating::{
    give_scratch, inflate_violation, take_scratch, InflateSlot, Inflation,
};
use crate::protocol::close::{self, ClosePayload};
use crate::protocol::decoder::{Message, Violation};
use crate::protocol::deflate::{Inflating, Step};

impl Core {
    /// Decodes frames that came with the upgrade request, once.
    pub(super) fn start(&mut self) {
        if std::mem::take(&mut self.fresh) {
            self.process_pending();
        }
    }

    /// `Some(waiting)` while a message inflates over several turns
    /// (`waiting`: for a place, see `InflateSlot`); reading waits meanwhile.
    pub(super) fn inflating(&self) -> Option<bool> {
        self.inflation.as_ref().map(|inf| inf.waiting)
    }

    /// The peer ended its side. After its close frame it may still read:
    /// reading stops, and the answer goes as usual; otherwise the
    /// connection is gone.
    pub(super) fn peer_ended(&mut self) -> Next {
        if self.closing == Closing::PeerClosed {
            self.peer_eof = true;
            Next::Wait
        } else {
            Next::End(self.abnormal())
        }
    }

    /// Whether to read now. Not while more than `maxBackpressure` waits to
    /// be written to the peer: it is not reading, and what it sends (pings)
    /// would only queue more; TCP pushes back on it instead. Nor while this
    /// connection has had its share of a queue JS has not taken yet (see
    /// `Share`): the waker is parked there and woken when JS takes it.
    pub(super) fn may_read(&mut self, waker: &Waker) -> bool {
        if !under_backpressure(self.conn.buffered_amount(), self.max_backpressure) {
            return false;
        }
        if self.share.exhausted() {
            if self.conn.wait_for_take(self.share.gen, waker) {
                return false;
            }
            self.share = Share::default();
        }
        true
    }

    /// Takes bytes read from the peer.
    pub(super) fn receive(&mut self, data: &mut [u8]) {
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
        if self.inflater.is_some() && self.inflation.is_none() {
            self.inflated = take_scratch();
        }
        let used = self.decode(input);
        if self.inflation.is_none() {
            give_scratch(std::mem::take(&mut self.inflated), SCRATCH_SIZE);
        }
        used
    }

    /// `process`, with the inflate buffer in place.
    fn decode(&mut self, input: &mut [u8]) -> usize {
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

    /// Goes on with a message inflating over several turns (reading
    /// waits, and the executor yields to other connections between
    /// slices). Once it is whole, it is delivered, then what was read
    /// after it. `waker` is woken when a place frees, if it waits for one.
    pub(super) fn poll_inflation(&mut self, waker: &Waker) {
        let Some(mut inf) = self.inflation.take() else {
            return;
        };
        let Some(inflater) = self.inflater.as_mut() else {
            return;
        };
        if inf.slot.is_none() {
            inf.slot = InflateSlot::take(waker);
            inf.waiting = inf.slot.is_none();
            if inf.waiting {
                self.inflation = Some(inf);
                return;
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
            return;
        }
        if let Some(v) = inflate_violation(r, inf.text, inflated) {
            self.inflated = Vec::new();
            self.fail(v);
            return;
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
}
