//! Topics: one message to every connection subscribed to a name.
//!
//! A publish builds the frame once and appends the same bytes to each
//! subscriber's write queue on the caller's thread; the connections' tasks
//! write them. No JS runs per subscriber. A subscriber whose queue is over
//! `maxBackpressure` is skipped and counted as dropped (as uWebSockets and
//! Bun do): one slow reader never holds up the others, and a topic never
//! queues without bound.
//!
//! With permessage-deflate, a subscriber that agreed to no context
//! takeover gets a frame compressed once per publish (per window and
//! level), on the publishing thread; one with context takeover (the
//! default, what browsers ask for) compresses in its own context on the
//! engine thread, as no two such connections' bytes are alike.
//!
//! Lock order: the topic map, then a connection's own lock. A connection
//! leaving (`Conn::set_closed`) takes its list under its own lock, lets go,
//! then takes the map, so the two never wait on each other.
//!
//! Topics belong to a server: connections posted to another thread keep
//! theirs (the connection and its entries do not move). The map knows its
//! subscribers through [`Subscriber`] (the engine's `Conn`), so it can be
//! tested without sockets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::protocol::deflate::{Agreed, Deflater};
use crate::protocol::frame::{write_frame, OpCode};

/// How a subscriber compresses when its messages do not depend on each
/// other (`server_no_context_takeover`, RFC 7692 §7.1.1.1): every such
/// subscriber with the same key can take the same compressed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateKey {
    /// The negotiated `server_max_window_bits`.
    pub bits: u8,
    pub level: u32,
    /// Messages below this many bytes go uncompressed.
    pub threshold: usize,
}

/// What a subscriber did with a published message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    Queued,
    /// Over `maxBackpressure`: skipped.
    Full,
    /// Not open, or closing.
    Closed,
}

/// A connection as the topic map sees it.
pub trait Subscriber: Send + Sync {
    fn id(&self) -> u64;
    /// Adds `topic` to the subscriber's own list (the map is locked):
    /// `Some(false)` if there already, `None` if it is gone.
    fn note_topic(&self, topic: &Arc<str>) -> Option<bool>;
    /// Drops `topic` from its list (the map is locked); false if absent.
    fn forget_topic(&self, topic: &str) -> bool;
    /// Takes the shared unmasked frame (rather than the payload to frame
    /// or compress itself).
    fn takes_frames(&self) -> bool;
    /// Queues a published message: `frame` when `takes_frames`, else
    /// `payload` framed its own way.
    fn offer(&self, frame: &[u8], opcode: OpCode, payload: &[u8]) -> Offer;
    /// `Some` when it compresses each message on its own (no context
    /// takeover): it then takes a shared compressed frame.
    fn shared_deflate(&self) -> Option<DeflateKey> {
        None
    }
    /// Queues a frame compressed for its `shared_deflate` key, as it is.
    fn offer_compressed(&self, _frame: &[u8]) -> Offer {
        Offer::Closed
    }
}

/// One publish's message compressed alone (no context) with `key`, as a
/// whole frame with RSV1 set (§6); `None` if zlib failed (never expected),
/// and subscribers then compress it themselves.
fn compressed_frame(key: DeflateKey, opcode: OpCode, payload: &[u8]) -> Option<Vec<u8>> {
    let agreed = Agreed {
        server_no_context_takeover: true,
        client_no_context_takeover: false,
        server_max_window_bits: key.bits,
        client_max_window_bits: 15,
    };
    let mut body = Vec::new();
    if !Deflater::new(&agreed, key.level).deflate(payload, &mut body) {
        return None;
    }
    let mut frame = Vec::with_capacity(body.len() + 14);
    write_frame(&mut frame, opcode, true, &body, None);
    Some(frame)
}

/// What one local publish did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// Subscribers the frame was queued for.
    pub sent: u32,
    /// Subscribers skipped: over `maxBackpressure`.
    pub dropped: u32,
}

/// Told when a topic gets its first local subscriber (`true`) or loses its
/// last (`false`): the backplane subscribes across processes only then.
/// Called under the topic map's lock: it must only hand the news on.
pub type Interest = Box<dyn Fn(&Arc<str>, bool) + Send + Sync>;

/// Carries a publish to the other processes (the backplane).
pub type Relay = Box<dyn Fn(&str, OpCode, &[u8]) + Send + Sync>;

struct Subscribers<S> {
    list: Vec<Arc<S>>,
    /// Where each connection id sits in `list` (swap-remove keeps
    /// unsubscribing O(1) when thousands share a topic).
    at: HashMap<u64, usize>,
}

impl<S: Subscriber> Subscribers<S> {
    fn new() -> Self {
        Subscribers {
            list: Vec::new(),
            at: HashMap::new(),
        }
    }

    fn remove(&mut self, id: u64) -> bool {
        let Some(i) = self.at.remove(&id) else {
            return false;
        };
        self.list.swap_remove(i);
        if let Some(moved) = self.list.get(i) {
            self.at.insert(moved.id(), i);
        }
        true
    }
}

type Map<S> = HashMap<Arc<str>, Subscribers<S>>;

pub struct Topics<S> {
    map: Mutex<Map<S>>,
    interest: OnceLock<Interest>,
    relay: OnceLock<Relay>,
}

impl<S> std::fmt::Debug for Topics<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topics").finish_non_exhaustive()
    }
}

impl<S: Subscriber> Topics<S> {
    pub fn new() -> Arc<Topics<S>> {
        Arc::new(Topics {
            map: Mutex::new(HashMap::new()),
            interest: OnceLock::new(),
            relay: OnceLock::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Map<S>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets who hears of first and last subscribers (once, at start).
    pub fn set_interest(&self, interest: Interest) {
        let _ = self.interest.set(interest);
    }

    /// Sets where publishes go beyond this process (once, at start).
    pub fn set_relay(&self, relay: Relay) {
        let _ = self.relay.set(relay);
    }

    /// `publish` here, then to the other processes unless `local`.
    pub fn publish_out(
        &self,
        topic: &str,
        opcode: OpCode,
        payload: &[u8],
        except: Option<u64>,
        local: bool,
    ) -> Published {
        let done = self.publish(topic, opcode, payload, except);
        if !local {
            if let Some(relay) = self.relay.get() {
                relay(topic, opcode, payload);
            }
        }
        done
    }

    fn tell(&self, topic: &Arc<str>, first: bool) {
        if let Some(f) = self.interest.get() {
            f(topic, first);
        }
    }

    /// Adds `conn` under `topic`; `Some(false)` if it was there already,
    /// `None` if the connection is gone (closed or refused).
    pub fn subscribe(&self, conn: &Arc<S>, topic: &str) -> Option<bool> {
        let mut map = self.lock();
        let key: Arc<str> = match map.get_key_value(topic) {
            Some((k, _)) => k.clone(),
            None => Arc::from(topic),
        };
        let added = conn.note_topic(&key)?;
        if !added {
            return Some(false);
        }
        let subs = map.entry(key.clone()).or_insert_with(Subscribers::new);
        let first = subs.list.is_empty();
        subs.at.insert(conn.id(), subs.list.len());
        subs.list.push(conn.clone());
        // Told under the map lock, so first and last reach the backplane
        // in the order they happened.
        if first {
            self.tell(&key, true);
        }
        Some(true)
    }

    /// Removes `conn` from `topic`; false if it was not subscribed.
    pub fn unsubscribe(&self, conn: &S, topic: &str) -> bool {
        let mut map = self.lock();
        if !conn.forget_topic(topic) {
            return false;
        }
        self.remove_locked(&mut map, conn.id(), topic)
    }

    fn remove_locked(&self, map: &mut MutexGuard<'_, Map<S>>, id: u64, topic: &str) -> bool {
        let Some(subs) = map.get_mut(topic) else {
            return false;
        };
        let removed = subs.remove(id);
        if subs.list.is_empty() {
            if let Some((key, _)) = map.remove_entry(topic) {
                self.tell(&key, false);
            }
        }
        removed
    }

    /// A closed connection leaves every topic in `topics`.
    pub fn leave_all(&self, id: u64, topics: Vec<Arc<str>>) {
        if topics.is_empty() {
            return;
        }
        let mut map = self.lock();
        for t in &topics {
            self.remove_locked(&mut map, id, t);
        }
    }

    /// Local subscribers of `topic`.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.lock().get(topic).map_or(0, |s| s.list.len())
    }

    /// Topics with a local subscriber, and how many each has.
    pub fn counts(&self) -> Vec<(Arc<str>, usize)> {
        self.lock()
            .iter()
            .map(|(k, s)| (k.clone(), s.list.len()))
            .collect()
    }

    /// Queues one data message for every open subscriber of `topic` but
    /// `except`. The unmasked frame is built once, on first need, and so is
    /// the compressed one per `DeflateKey`; a connection compressing with
    /// context takeover gets the message as a record, as `send` gives it,
    /// and compresses it in its own context (RFC 7692 §7.2.1).
    pub fn publish(
        &self,
        topic: &str,
        opcode: OpCode,
        payload: &[u8],
        except: Option<u64>,
    ) -> Published {
        let map = self.lock();
        let Some(subs) = map.get(topic) else {
            return Published::default();
        };
        let mut frame: Vec<u8> = Vec::new();
        // Compressed frames made for this publish, one per key.
        let mut compressed: Vec<(DeflateKey, Option<Vec<u8>>)> = Vec::new();
        let mut done = Published::default();
        for conn in &subs.list {
            if Some(conn.id()) == except {
                continue;
            }
            let shared = conn
                .shared_deflate()
                .filter(|k| payload.len() >= k.threshold)
                .and_then(|key| {
                    let i = match compressed.iter().position(|(k, _)| *k == key) {
                        Some(i) => i,
                        None => {
                            compressed.push((key, compressed_frame(key, opcode, payload)));
                            compressed.len() - 1
                        }
                    };
                    compressed[i].1.as_deref()
                });
            let offered = match shared {
                Some(f) => conn.offer_compressed(f),
                None => {
                    if frame.is_empty() && conn.takes_frames() {
                        frame.reserve_exact(payload.len() + 14);
                        write_frame(&mut frame, opcode, false, payload, None);
                    }
                    conn.offer(&frame, opcode, payload)
                }
            };
            match offered {
                Offer::Queued => done.sent += 1,
                Offer::Full => done.dropped += 1,
                Offer::Closed => {}
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;

    /// A subscriber that records what it was offered.
    struct Fake {
        id: u64,
        topics: Mutex<Vec<Arc<str>>>,
        frames: bool,
        full: AtomicBool,
        gone: AtomicBool,
        got: Mutex<Vec<Vec<u8>>>,
        offers: AtomicUsize,
        deflate: Option<DeflateKey>,
    }

    fn fake(id: u64, frames: bool) -> Arc<Fake> {
        Arc::new(Fake {
            id,
            topics: Mutex::new(Vec::new()),
            frames,
            full: AtomicBool::new(false),
            gone: AtomicBool::new(false),
            got: Mutex::new(Vec::new()),
            offers: AtomicUsize::new(0),
            deflate: None,
        })
    }

    impl Subscriber for Fake {
        fn id(&self) -> u64 {
            self.id
        }
        fn note_topic(&self, topic: &Arc<str>) -> Option<bool> {
            if self.gone.load(Ordering::Relaxed) {
                return None;
            }
            let mut t = self.topics.lock().unwrap();
            if t.contains(topic) {
                return Some(false);
            }
            t.push(topic.clone());
            Some(true)
        }
        fn forget_topic(&self, topic: &str) -> bool {
            let mut t = self.topics.lock().unwrap();
            let before = t.len();
            t.retain(|x| &**x != topic);
            t.len() < before
        }
        fn takes_frames(&self) -> bool {
            self.frames
        }
        fn shared_deflate(&self) -> Option<DeflateKey> {
            self.deflate
        }
        fn offer_compressed(&self, frame: &[u8]) -> Offer {
            self.got.lock().unwrap().push(frame.to_vec());
            Offer::Queued
        }
        fn offer(&self, frame: &[u8], _opcode: OpCode, payload: &[u8]) -> Offer {
            self.offers.fetch_add(1, Ordering::Relaxed);
            if self.full.load(Ordering::Relaxed) {
                return Offer::Full;
            }
            let bytes = if self.frames { frame } else { payload };
            self.got.lock().unwrap().push(bytes.to_vec());
            Offer::Queued
        }
    }

    #[test]
    fn a_publish_builds_one_frame_for_every_subscriber_but_the_sender() {
        let topics = Topics::<Fake>::new();
        let subs: Vec<_> = (1..=4).map(|i| fake(i, i != 4)).collect();
        for s in &subs {
            assert_eq!(topics.subscribe(s, "room"), Some(true));
        }
        assert_eq!(topics.subscribe(&subs[0], "room"), Some(false));
        assert_eq!(topics.subscriber_count("room"), 4);
        let done = topics.publish("room", OpCode::Text, b"hi", Some(2));
        assert_eq!(
            done,
            Published {
                sent: 3,
                dropped: 0
            }
        );
        assert_eq!(
            *subs[0].got.lock().unwrap(),
            vec![vec![0x81, 2, b'h', b'i']]
        );
        assert!(subs[1].got.lock().unwrap().is_empty(), "the sender");
        assert_eq!(
            *subs[3].got.lock().unwrap(),
            vec![b"hi".to_vec()],
            "frames itself"
        );
        assert_eq!(
            topics.publish("nobody", OpCode::Text, b"x", None),
            Published::default()
        );
    }

    #[test]
    fn full_subscribers_are_counted_and_skipped_not_waited_for() {
        let topics = Topics::<Fake>::new();
        let (a, b) = (fake(1, true), fake(2, true));
        topics.subscribe(&a, "t");
        topics.subscribe(&b, "t");
        a.full.store(true, Ordering::Relaxed);
        let done = topics.publish("t", OpCode::Binary, &[1, 2, 3], None);
        assert_eq!(
            done,
            Published {
                sent: 1,
                dropped: 1
            }
        );
        assert_eq!(b.got.lock().unwrap().len(), 1);
    }

    #[test]
    fn interest_hears_the_first_subscriber_and_the_last_leaving_in_order() {
        let topics = Topics::<Fake>::new();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let h = heard.clone();
        topics.set_interest(Box::new(move |t, on| {
            h.lock().unwrap().push((t.to_string(), on))
        }));
        let subs: Vec<_> = (1..=3).map(|i| fake(i, true)).collect();
        for s in &subs {
            topics.subscribe(s, "a");
        }
        topics.subscribe(&subs[0], "b");
        assert!(topics.unsubscribe(&subs[1], "a"));
        assert!(!topics.unsubscribe(&subs[1], "a"));
        topics.leave_all(1, std::mem::take(&mut *subs[0].topics.lock().unwrap()));
        assert_eq!(topics.subscriber_count("a"), 1);
        assert_eq!(topics.subscriber_count("b"), 0);
        assert!(topics.unsubscribe(&subs[2], "a"));
        assert_eq!(
            *heard.lock().unwrap(),
            [("a", true), ("b", true), ("b", false), ("a", false)]
                .map(|(t, on)| (t.to_string(), on))
        );
        assert!(topics.counts().is_empty());
    }

    #[test]
    fn a_gone_subscriber_is_refused_and_removal_keeps_the_index_right() {
        let topics = Topics::<Fake>::new();
        let gone = fake(9, true);
        gone.gone.store(true, Ordering::Relaxed);
        assert_eq!(topics.subscribe(&gone, "t"), None);
        assert_eq!(topics.subscriber_count("t"), 0);
        // Swap-removal from the middle, then every other one still reached once.
        let subs: Vec<_> = (1..=50).map(|i| fake(i, true)).collect();
        for s in &subs {
            topics.subscribe(s, "t");
        }
        for s in subs.iter().filter(|s| s.id % 3 == 0) {
            assert!(topics.unsubscribe(s, "t"));
        }
        topics.publish("t", OpCode::Text, b"x", None);
        for s in &subs {
            let want = usize::from(s.id % 3 != 0);
            assert_eq!(
                s.offers.load(Ordering::Relaxed),
                want,
                "subscriber {}",
                s.id
            );
        }
    }

    #[test]
    fn the_relay_hears_publishes_unless_local() {
        let topics = Topics::<Fake>::new();
        let relayed = Arc::new(Mutex::new(Vec::new()));
        let r = relayed.clone();
        topics.set_relay(Box::new(move |t, _op, p| {
            r.lock().unwrap().push((t.to_string(), p.to_vec()))
        }));
        topics.publish_out("t", OpCode::Text, b"out", None, false);
        topics.publish_out("t", OpCode::Text, b"here", None, true);
        assert_eq!(
            *relayed.lock().unwrap(),
            vec![("t".to_string(), b"out".to_vec())]
        );
    }

    #[test]
    fn subscribers_without_context_takeover_share_one_compressed_frame() {
        let topics = Topics::<Fake>::new();
        let key = DeflateKey {
            bits: 15,
            level: 7,
            threshold: 10,
        };
        let with = |id, k: Option<DeflateKey>| {
            let mut f = Arc::try_unwrap(fake(id, false)).ok().unwrap();
            f.deflate = k;
            Arc::new(f)
        };
        let subs = [
            with(1, Some(key)),
            with(2, Some(key)),
            with(3, Some(DeflateKey { bits: 9, ..key })),
            with(4, None),
        ];
        for s in &subs {
            topics.subscribe(s, "t");
        }
        // A 1,000-byte block twice: a 32 KiB window refers back to it, a
        // 512-byte one (bits 9) cannot, so the two frames differ.
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let block: Vec<u8> = (0..1000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b'a' + (x % 26) as u8
            })
            .collect();
        let payload = [block.as_slice(), block.as_slice()].concat();
        topics.publish("t", OpCode::Text, &payload, None);
        let got = |i: usize| subs[i].got.lock().unwrap()[0].clone();
        assert_eq!(got(0), got(1), "one frame for one key");
        assert_ne!(got(0), got(2), "another window, another frame");
        assert_eq!(got(3), payload, "no deflate: the payload to frame itself");
        for frame in [got(0), got(2)] {
            assert_eq!(frame[0], 0x80 | 0x40 | 0x01, "FIN, RSV1, text");
            let len = usize::from(frame[1] & 0x7f);
            let body = if len == 126 { &frame[4..] } else { &frame[2..] };
            let mut input = body.to_vec();
            input.extend_from_slice(&[0, 0, 0xff, 0xff]);
            let mut out = Vec::with_capacity(payload.len() + 64);
            let mut d = flate2::Decompress::new(false);
            d.decompress_vec(&input, &mut out, flate2::FlushDecompress::Sync)
                .unwrap();
            assert_eq!(out, payload);
        }
        // Below the threshold: each frames the payload itself, uncompressed.
        topics.publish("t", OpCode::Text, b"short", None);
        assert_eq!(subs[0].offers.load(Ordering::Relaxed), 1);
        assert_eq!(subs[0].got.lock().unwrap()[1], b"short");
    }
}
