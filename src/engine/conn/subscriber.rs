//! A connection as the topic map sees it (`topics::Subscriber`): its own
//! list of topics, and how a published message joins its write queue.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{under_backpressure, unframed, Conn, Inner, Phase};
use crate::engine::topics::{DeflateKey, Offer, Subscriber};
use crate::protocol::frame::OpCode;

impl Conn {
    pub fn is_subscribed(&self, topic: &str) -> bool {
        self.lock().topics.iter().any(|t| &**t == topic)
    }

    /// The topics subscribed to, oldest first.
    pub fn subscriptions(&self) -> Vec<String> {
        self.lock().topics.iter().map(|t| t.to_string()).collect()
    }
}

impl Subscriber for Conn {
    fn id(&self) -> u64 {
        self.id
    }

    fn note_topic(&self, topic: &Arc<str>) -> Option<bool> {
        let mut g = self.lock();
        if matches!(g.phase, Phase::Closed | Phase::Rejected) || g.terminate || g.close_sent {
            return None;
        }
        if g.topics.iter().any(|t| t == topic) {
            return Some(false);
        }
        g.topics.push(topic.clone());
        Some(true)
    }

    fn forget_topic(&self, topic: &str) -> bool {
        let mut g = self.lock();
        let Some(i) = g.topics.iter().position(|t| &**t == topic) else {
            return false;
        };
        g.topics.remove(i);
        true
    }

    /// Compressing and masking connections frame each message themselves.
    fn takes_frames(&self) -> bool {
        !self.records && !self.masking
    }

    fn offer(&self, frame: &[u8], opcode: OpCode, payload: &[u8]) -> Offer {
        let mut g = self.lock();
        if let Some(refused) = self.refuses_offer(&g) {
            return refused;
        }
        if self.takes_frames() {
            self.enqueue_via(&mut g, false, |out| out.extend_from_slice(frame));
        } else {
            self.enqueue_frame_via(&mut g, false, opcode, payload);
        }
        Offer::Queued
    }

    fn shared_deflate(&self) -> Option<DeflateKey> {
        self.shared_deflate
    }

    fn offer_compressed(&self, frame: &[u8]) -> Offer {
        let mut g = self.lock();
        if let Some(refused) = self.refuses_offer(&g) {
            return refused;
        }
        // A ready frame in the record queue goes out as it is.
        self.enqueue_via(&mut g, false, |out| {
            let at = unframed::begin(out, unframed::RAW);
            out.extend_from_slice(frame);
            unframed::end(out, at);
        });
        Offer::Queued
    }
}

impl Conn {
    /// Why a published message is not queued, if it is not.
    fn refuses_offer(&self, g: &Inner) -> Option<Offer> {
        if !matches!(g.phase, Phase::Open) || g.close_sent || g.overflow {
            return Some(Offer::Closed);
        }
        if !under_backpressure(self.buffered.load(Ordering::Acquire), self.max_backpressure) {
            return Some(Offer::Full);
        }
        None
    }
}
