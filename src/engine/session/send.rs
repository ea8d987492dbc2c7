//! Bytes out: what JS queued, taken by the core, counted as it is
//! written (`drain`, send callbacks); on a compressing connection its
//! records become frames here first.

use super::core::Core;
use super::IDLE_KEEP;
use crate::engine::events::Event;
use crate::engine::unframed;
use crate::protocol::frame::{write_frame, OpCode};

impl Core {
    /// What is to be written now (empty: nothing).
    pub(super) fn output(&self) -> &[u8] {
        &self.writing[self.written..]
    }

    /// `n` bytes of [`output`](Self::output) were written.
    pub(super) fn wrote(&mut self, n: usize) {
        self.written += n;
        if self.conn.written(n) {
            self.conn.emit(Event::Drain { conn: self.conn.id });
        }
        // Frames made from records count as their records, once all are out.
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

    /// Whether what was taken from the queue is all written; if so, lets
    /// it go, so the next commands take what JS queued meanwhile.
    pub(super) fn written_all(&mut self) -> bool {
        if self.writing.is_empty() {
            return false;
        }
        self.writing.clear();
        self.written = 0;
        self.framed = None;
        if self.writing.capacity() > IDLE_KEEP {
            self.writing = Vec::new();
        }
        true
    }

    /// Whether everything the task took from the queue is written.
    pub(super) fn flushed(&self) -> bool {
        self.written == self.writing.len()
    }

    /// Turns the queue's records into frames, compressing messages at or
    /// above the threshold (RFC 7692 §6: RSV1 on the first frame).
    pub(super) fn frame_records(&mut self) {
        let records = std::mem::take(&mut self.writing);
        let mask = self.conn.frame_mask();
        let mut frames = Vec::with_capacity(records.len());
        // Not kept between batches: an idle connection holds no scratch.
        let mut deflated = Vec::new();
        let mut rest = &records[..];
        while let Some((kind, body, next)) = unframed::next(rest) {
            rest = next;
            let opcode = match kind {
                unframed::TEXT => OpCode::Text,
                unframed::BINARY => OpCode::Binary,
                _ => {
                    frames.extend_from_slice(body);
                    continue;
                }
            };
            match self.deflater.as_mut() {
                Some(d) if body.len() >= self.threshold => {
                    deflated.clear();
                    if d.deflate(body, &mut deflated) {
                        write_frame(&mut frames, opcode, true, &deflated, mask);
                    } else {
                        // Never expected; uncompressed is always allowed.
                        write_frame(&mut frames, opcode, false, body, mask);
                    }
                }
                _ => write_frame(&mut frames, opcode, false, body, mask),
            }
        }
        self.conn.rebuffer(records.len(), frames.len());
        self.framed = Some(records.len());
        self.writing = frames;
    }
}
