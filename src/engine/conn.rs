//! A connection as the JS thread sees it: a write queue and commands,
//! shared with the connection's task on the engine thread.
//!
//! `send()` appends a whole frame to the queue under a short lock and wakes
//! the task only when the queue was empty, so a burst of sends costs one
//! wake and, on the task's side, one write.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use atomic_waker::AtomicWaker;

mod subscriber;

use super::config::under_backpressure;
use super::events::{Batch, ConnInfo, Event, EventQueue};
use super::topics::{DeflateKey, Topics};

/// The topic map of a server's connections.
pub type ConnTopics = Topics<Conn>;
use super::unframed;
use super::writer::Writer;
use super::ServerConfig;
use crate::http::response::closing_response;
use crate::protocol::close::{close_payload, is_valid_wire_code, NO_STATUS};
use crate::protocol::frame::{write_frame, OpCode};

use crate::protocol::handshake::response_101;

/// Why a command from JS was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnError {
    /// The connection is not open (closing, closed, or not yet accepted).
    #[error("WebSocket is not open")]
    NotOpen,
    /// `accept`/`reject` on a connection that was already decided.
    #[error("the connection was already accepted or rejected")]
    AlreadyDecided,
    /// `accept(protocol)` with a protocol the client did not offer.
    #[error("the client did not offer that subprotocol")]
    ProtocolNotOffered,
    /// A close code that may not be sent (RFC 6455 §7.4).
    #[error("invalid close code")]
    BadCloseCode,
    /// `accept`/`reject` on a connection whose client has gone.
    #[error("the client has gone")]
    Gone,
}

impl ConnError {
    /// The stable `code` JS errors carry.
    pub fn code(self) -> &'static str {
        match self {
            ConnError::NotOpen => "WS_ERR_NOT_OPEN",
            ConnError::AlreadyDecided => "WS_ERR_ALREADY_DECIDED",
            ConnError::ProtocolNotOffered => "WS_ERR_PROTOCOL_NOT_OFFERED",
            ConnError::BadCloseCode => "WS_ERR_INVALID_CLOSE_CODE",
            ConnError::Gone => "WS_ERR_GONE",
        }
    }
}

#[derive(Debug)]
pub(super) enum Phase {
    /// Upgrade request received, waiting for accept or reject.
    Pending {
        key: Vec<u8>,
    },
    Open,
    /// A refusal response is queued; the task flushes it and closes.
    Rejected,
    Closed,
}

#[derive(Debug)]
pub(super) struct Inner {
    pub out: Vec<u8>,
    pub phase: Phase,
    /// Our close frame is queued: nothing may follow it (§5.5.1).
    pub close_sent: bool,
    pub terminate: bool,
    pub blocked: bool,
    pub nodelay: Option<bool>,
    pub protocol: String,
    /// Who may write the socket now: the direct path (`try_direct`)
    /// writes only while the task holds nothing (see `writer`).
    pub writer: Writer,
    /// More than `backpressureLimit` bytes were queued: sends are refused,
    /// and the task closes the connection (1008).
    pub overflow: bool,
    /// Topics subscribed to (few per connection: a list beats a set).
    pub topics: Vec<Arc<str>>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Where a connection's events go.
enum Route {
    /// Straight into an environment's queue.
    Direct(Arc<EventQueue>),
    /// Moving to `target` (posted to another thread): events wait in `held`
    /// until the receiver's callback has returned, then go out in order.
    Held {
        target: Arc<EventQueue>,
        held: Batch,
    },
}

pub struct Conn {
    pub id: u64,
    pub server: u64,
    /// The upgrade request, for JS objects made for this connection (also
    /// on the thread it is posted to).
    pub info: Arc<ConnInfo>,
    /// The `Sec-WebSocket-Extensions` answer ("" when none was agreed).
    pub extensions: String,
    /// Outgoing messages are compressed: the queue holds records.
    records: bool,
    masking: bool,
    max_backpressure: usize,
    backpressure_limit: usize,
    inner: Mutex<Inner>,
    buffered: AtomicUsize,
    /// For send callbacks: bytes ever queued and ever handed to the socket,
    /// both counted as `send` queued them (before compression), and the
    /// count of handed bytes at which JS wants an `Event::Sent`
    /// (`u64::MAX`: none).
    queued_total: AtomicU64,
    sent_total: AtomicU64,
    notify_sent: AtomicU64,
    want_drain: AtomicBool,
    pub(super) waker: AtomicWaker,
    route: Mutex<Route>,
    /// The server's topics, which this connection may subscribe to.
    pub topics: Arc<ConnTopics>,
    /// Compresses each message alone (no context takeover): takes a
    /// publish's shared compressed frame.
    shared_deflate: Option<DeflateKey>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

thread_local! {
    static RNG: Cell<u64> = const { Cell::new(0) };
}

/// A mask key for server frames when `masking` is on. Unpredictability only
/// matters for clients (§10.3); a xorshift is plenty here.
fn mask_key() -> [u8; 4] {
    RNG.with(|r| {
        let mut x = r.get();
        if x == 0 {
            x = (r as *const _ as u64) ^ 0x9e37_79b9_7f4a_7c15;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        r.set(x);
        (x as u32).to_ne_bytes()
    })
}

impl Conn {
    // Each argument is a fact of the upgrade that the connection keeps.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        server: u64,
        config: &ServerConfig,
        queue: Arc<EventQueue>,
        key: Vec<u8>,
        info: Arc<ConnInfo>,
        extensions: String,
        records: bool,
        topics: Arc<ConnTopics>,
        shared_deflate: Option<DeflateKey>,
    ) -> Arc<Conn> {
        Arc::new(Conn {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            server,
            info,
            extensions,
            records,
            masking: config.masking,
            max_backpressure: config.max_backpressure,
            backpressure_limit: config.backpressure_limit,
            inner: Mutex::new(Inner {
                out: Vec::new(),
                phase: Phase::Pending { key },
                close_sent: false,
                terminate: false,
                blocked: false,
                nodelay: None,
                protocol: String::new(),
                writer: Writer::Engine,
                overflow: false,
                topics: Vec::new(),
            }),
            buffered: AtomicUsize::new(0),
            queued_total: AtomicU64::new(0),
            sent_total: AtomicU64::new(0),
            notify_sent: AtomicU64::new(u64::MAX),
            want_drain: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            route: Mutex::new(Route::Direct(queue)),
            topics,
            shared_deflate: shared_deflate.filter(|_| records && !config.masking),
        })
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn route(&self) -> MutexGuard<'_, Route> {
        self.route.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The environment this connection's events go to (or are moving to).
    pub fn queue(&self) -> Arc<EventQueue> {
        match &*self.route() {
            Route::Direct(s) | Route::Held { target: s, .. } => s.clone(),
        }
    }

    /// Adds events for this connection: `f` appends to the batch they go
    /// to. The route lock is held throughout, so a move to another thread
    /// falls wholly before or after these events, never between them.
    pub fn emit_with<R>(&self, f: impl FnOnce(&mut Batch) -> R) -> R {
        let mut route = self.route();
        match &mut *route {
            Route::Direct(queue) => {
                let queue = queue.clone();
                let (r, added) = {
                    let mut b = queue.lock();
                    let before = b.events.len();
                    let r = f(&mut b);
                    (r, b.events.len() > before)
                };
                drop(route);
                if added {
                    queue.wake();
                }
                r
            }
            Route::Held { held, .. } => f(held),
        }
    }

    pub fn emit(&self, ev: Event) {
        self.emit_with(|b| b.events.push_back(ev));
    }

    /// Starts moving this connection's events to `target`: from now on
    /// they are held (see `handoff::post`).
    pub(super) fn begin_move(&self, target: Arc<EventQueue>) {
        let mut route = self.route();
        *route = match std::mem::replace(&mut *route, Route::Direct(target.clone())) {
            Route::Direct(_) => Route::Held {
                target,
                held: Batch::default(),
            },
            // Posted on again before the last move finished: what is held
            // goes on to the new receiver.
            Route::Held { held, .. } => Route::Held { target, held },
        };
    }

    /// Parks `waker` until JS takes the queue of generation `gen` this
    /// connection's events went to; false when it has been taken already
    /// (or the connection is moving), so reading goes on.
    pub(super) fn wait_for_take(&self, gen: u64, waker: &std::task::Waker) -> bool {
        match &*self.route() {
            Route::Direct(queue) => queue.lock().wait_for_take(gen, waker),
            Route::Held { .. } => false,
        }
    }

    /// Bytes left the queue without being written (dropped at close).
    pub(super) fn unbuffer(&self, n: usize) {
        self.buffered.fetch_sub(n, Ordering::AcqRel);
    }

    /// Puts `earlier` in front of the held events.
    pub(super) fn prepend_held(&self, mut earlier: Batch) {
        if earlier.is_empty() {
            return;
        }
        let mut route = self.route();
        if let Route::Held { held, .. } = &mut *route {
            earlier.append(std::mem::take(held));
            *held = earlier;
        }
    }

    /// On the receiving environment (`queue`), after the receiver's callback:
    /// the held events to deliver, or `None` once there are none left, at
    /// which point events flow straight to `queue`. Also `None` if the
    /// connection was posted on elsewhere meanwhile.
    pub fn take_held(&self, queue: &Arc<EventQueue>) -> Option<Batch> {
        let mut route = self.route();
        let Route::Held { target, held } = &mut *route else {
            return None;
        };
        if !Arc::ptr_eq(target, queue) {
            return None;
        }
        if held.is_empty() {
            *route = Route::Direct(queue.clone());
            return None;
        }
        Some(std::mem::take(held))
    }

    /// Whether the connection is waiting for accept/reject.
    pub fn is_pending(&self) -> bool {
        matches!(self.lock().phase, Phase::Pending { .. })
    }

    /// Bytes queued and not yet handed to the socket.
    pub fn buffered_amount(&self) -> usize {
        self.buffered.load(Ordering::Acquire)
    }

    /// The subprotocol chosen at accept, or "".
    pub fn protocol(&self) -> String {
        self.lock().protocol.clone()
    }

    /// Appends bytes to the queue and wakes the task if it was idle.
    fn enqueue(&self, g: &mut MutexGuard<'_, Inner>, fill: impl FnOnce(&mut Vec<u8>)) {
        self.enqueue_via(g, true, fill)
    }

    /// As `enqueue`; `direct`: the caller's thread may write the socket
    /// itself (see `try_direct`). A publish says no: one thread writing
    /// thousands of sockets in a row would stall its JS.
    fn enqueue_via(
        &self,
        g: &mut MutexGuard<'_, Inner>,
        direct: bool,
        fill: impl FnOnce(&mut Vec<u8>),
    ) {
        let was_empty = g.out.is_empty();
        let before = g.out.len();
        fill(&mut g.out);
        let added = g.out.len() - before;
        self.queued_total.fetch_add(added as u64, Ordering::SeqCst);
        let queued = self.buffered.fetch_add(added, Ordering::AcqRel) + added;
        if self.backpressure_limit > 0
            && queued > self.backpressure_limit
            && !g.overflow
            && !g.close_sent
            && matches!(g.phase, Phase::Open)
        {
            // The task drops what is queued and closes (see `WsLoop`).
            g.overflow = true;
            self.waker.wake();
            return;
        }
        if was_empty && !(direct && self.try_direct(g)) {
            // Through the flusher: one engine wake-up for a burst of sends.
            if let Some(w) = self.waker.take() {
                super::wakeups::schedule(w);
            }
        }
    }

    pub(super) fn frame_mask(&self) -> Option<[u8; 4]> {
        self.masking.then(mask_key)
    }

    pub(super) fn uses_records(&self) -> bool {
        self.records
    }

    /// The latency path: when this send is the last thing JS does in a
    /// batch (see `wakeups::direct_allowed`), the queue was empty and the task
    /// is not writing, write the bytes to the socket right here with one
    /// non-blocking `send(2)`, instead of waking the engine thread for it.
    /// Whatever does not fit stays queued for the task. Pipelined sends keep
    /// coalescing because only the batch's last event qualifies.
    fn try_direct(&self, g: &mut MutexGuard<'_, Inner>) -> bool {
        // A pending `drain` is left to the task: emitting it here, under
        // this lock, would invert the engine's route-then-inner lock order.
        if self.records
            || !super::wakeups::direct_allowed()
            || self.want_drain.load(Ordering::Acquire)
        {
            return false;
        }
        let Some(direct) = g.writer.direct() else {
            return false;
        };
        let n = direct.send(&g.out);
        if n == 0 {
            return false;
        }
        g.out.drain(..n);
        self.buffered.fetch_sub(n, Ordering::AcqRel);
        // No `Event::Sent` from here (lock order, as for `drain`): a
        // direct write happens only with nothing queued before it, so the
        // only callback it can complete is the caller's own, which looks
        // for itself (`watch_sent`).
        let _ = self.handed(n);
        g.out.is_empty()
    }

    /// Queues bytes to write as they are.
    fn enqueue_raw(&self, g: &mut MutexGuard<'_, Inner>, bytes: &[u8]) {
        let records = self.records;
        self.enqueue(g, |out| {
            if records {
                let at = unframed::begin(out, unframed::RAW);
                out.extend_from_slice(bytes);
                unframed::end(out, at);
            } else {
                out.extend_from_slice(bytes);
            }
        });
    }

    /// Queues a frame; data frames of a compressing connection are queued as
    /// messages for the engine to compress.
    fn enqueue_frame(&self, g: &mut MutexGuard<'_, Inner>, opcode: OpCode, payload: &[u8]) {
        self.enqueue_frame_via(g, true, opcode, payload)
    }

    fn enqueue_frame_via(
        &self,
        g: &mut MutexGuard<'_, Inner>,
        direct: bool,
        opcode: OpCode,
        payload: &[u8],
    ) {
        let mask = self.frame_mask();
        let records = self.records;
        self.enqueue_via(g, direct, |out| {
            if !records {
                return write_frame(out, opcode, false, payload, mask);
            }
            let kind = match opcode {
                OpCode::Text => unframed::TEXT,
                OpCode::Binary => unframed::BINARY,
                _ => unframed::RAW,
            };
            let at = unframed::begin(out, kind);
            if kind == unframed::RAW {
                write_frame(out, opcode, false, payload, mask);
            } else {
                out.extend_from_slice(payload);
            }
            unframed::end(out, at);
        });
    }

    /// The queue's records became `new` bytes of frames (compression).
    pub(super) fn rebuffer(&self, old: usize, new: usize) {
        if new >= old {
            self.buffered.fetch_add(new - old, Ordering::AcqRel);
        } else {
            self.buffered.fetch_sub(old - new, Ordering::AcqRel);
        }
    }

    /// Whether accept/reject may act: the upgrade waits for a decision and
    /// its client is still there (it may leave while JS decides).
    fn decidable(g: &Inner) -> Result<(), ConnError> {
        match g.phase {
            _ if g.terminate => Err(ConnError::Gone),
            Phase::Pending { .. } => Ok(()),
            Phase::Closed => Err(ConnError::Gone),
            Phase::Open | Phase::Rejected => Err(ConnError::AlreadyDecided),
        }
    }

    /// Accepts a pending upgrade, answering 101 with `protocol` if given.
    pub fn accept(&self, protocol: Option<&str>) -> Result<(), ConnError> {
        let mut g = self.lock();
        Self::decidable(&g)?;
        let Phase::Pending { key } = &g.phase else {
            return Err(ConnError::AlreadyDecided);
        };
        let protocol = protocol.filter(|p| !p.is_empty());
        if let Some(p) = protocol {
            if !self.info.protocols.iter().any(|o| o == p) {
                return Err(ConnError::ProtocolNotOffered);
            }
        }
        let extensions = (!self.extensions.is_empty()).then_some(self.extensions.as_str());
        let response = response_101(key, protocol, extensions);
        g.protocol = protocol.unwrap_or("").to_string();
        g.phase = Phase::Open;
        self.enqueue_raw(&mut g, &response);
        Ok(())
    }

    /// Refuses a pending upgrade with a complete HTTP response.
    pub fn reject(&self, status: u16, reason: Option<&str>) -> Result<(), ConnError> {
        let mut g = self.lock();
        Self::decidable(&g)?;
        let status = if (400..=599).contains(&status) {
            status
        } else {
            403
        };
        let response = closing_response(status, reason, &[], reason.unwrap_or("").as_bytes());
        g.phase = Phase::Rejected;
        // A refusal is read by the task as plain bytes, never as records.
        self.enqueue(&mut g, |out| out.extend_from_slice(&response));
        Ok(())
    }

    /// Queues a data frame. `Ok(false)`: queued, but over `maxBackpressure`.
    pub fn send(&self, opcode: OpCode, payload: &[u8]) -> Result<bool, ConnError> {
        let mut g = self.lock();
        if !matches!(g.phase, Phase::Open) || g.close_sent || g.overflow {
            return Err(ConnError::NotOpen);
        }
        self.enqueue_frame(&mut g, opcode, payload);
        drop(g);
        Ok(self.under_limit())
    }

    /// Queues a data frame of `len` payload bytes that `fill` writes in
    /// place (at most `len + 1` bytes: N-API string copies end with a NUL,
    /// which is then dropped). Saves a copy for strings coming from JS.
    ///
    /// # Safety
    /// `fill` must initialize the first `len` bytes it is given and write
    /// nothing past `len + 1`.
    pub unsafe fn send_with(
        &self,
        opcode: OpCode,
        len: usize,
        fill: impl FnOnce(*mut u8),
    ) -> Result<bool, ConnError> {
        let mut g = self.lock();
        if !matches!(g.phase, Phase::Open) || g.close_sent || g.overflow {
            return Err(ConnError::NotOpen);
        }
        let mask = self.frame_mask();
        let records = self.records;
        self.enqueue(&mut g, |out| {
            let at = records.then(|| {
                unframed::begin(
                    out,
                    if opcode == OpCode::Text {
                        unframed::TEXT
                    } else {
                        unframed::BINARY
                    },
                )
            });
            if !records {
                let mut head = [0u8; crate::protocol::frame::MAX_HEADER_LEN];
                let n = crate::protocol::frame::encode_header(
                    &mut head, true, false, opcode, len, mask,
                );
                out.extend_from_slice(&head[..n]);
            }
            out.reserve(len + 1);
            let start = out.len();
            fill(out.as_mut_ptr().wrapping_add(start));
            // SAFETY: `fill` initialized `len` bytes at `start`, within the
            // capacity reserved above.
            unsafe { out.set_len(start + len) };
            if let (Some(m), false) = (mask, records) {
                crate::protocol::mask::apply_mask(&mut out[start..], m);
            }
            if let Some(at) = at {
                unframed::end(out, at);
            }
        });
        drop(g);
        Ok(self.under_limit())
    }

    fn under_limit(&self) -> bool {
        let queued = self.buffered.load(Ordering::Acquire);
        if under_backpressure(queued, self.max_backpressure) {
            true
        } else {
            self.want_drain.store(true, Ordering::Release);
            false
        }
    }

    pub fn ping(&self, payload: &[u8]) -> Result<(), ConnError> {
        let mut g = self.lock();
        if !matches!(g.phase, Phase::Open) || g.close_sent {
            return Err(ConnError::NotOpen);
        }
        let payload = &payload[..payload.len().min(125)];
        self.enqueue_frame(&mut g, OpCode::Ping, payload);
        Ok(())
    }

    /// Starts the closing handshake. Closing twice is not an error; closing a
    /// pending connection refuses it.
    pub fn close(&self, code: u16, reason: &str) -> Result<(), ConnError> {
        if !is_valid_wire_code(code) {
            return Err(ConnError::BadCloseCode);
        }
        let mut g = self.lock();
        match g.phase {
            Phase::Pending { .. } => {
                drop(g);
                let _ = self.reject(403, None);
                Ok(())
            }
            Phase::Open if !g.close_sent => {
                self.queue_close(&mut g, Some((code, reason)));
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Queues our close frame (`None`: empty payload, answering an empty one).
    pub(super) fn queue_close(&self, g: &mut MutexGuard<'_, Inner>, close: Option<(u16, &str)>) {
        if g.close_sent {
            return;
        }
        g.close_sent = true;
        let payload = close.map(|(c, r)| close_payload(c, r)).unwrap_or_default();
        self.enqueue_frame(g, OpCode::Close, &payload);
    }

    /// Answers the peer's close frame (see `Event::PeerClose`), after
    /// everything queued so far: its code and reason echoed (§5.5.1), an
    /// empty close for an empty one; nothing if our close frame is already
    /// out.
    pub fn answer_close(&self, code: u16, reason: &str) {
        let echo = (code != NO_STATUS).then_some((code, reason));
        let mut g = self.lock();
        self.queue_close(&mut g, echo);
        drop(g);
        self.waker.wake();
    }

    /// Answers a ping (§5.5.2), unless our close frame is already out.
    pub(super) fn queue_pong(&self, payload: &[u8]) {
        let mut g = self.lock();
        if g.close_sent {
            return;
        }
        self.enqueue_frame(&mut g, OpCode::Pong, payload);
    }

    /// Drops the connection without a closing handshake.
    pub fn terminate(&self) {
        self.lock().terminate = true;
        self.waker.wake();
    }

    /// Stops (`true`) or restarts reading from the socket.
    pub fn set_blocked(&self, blocked: bool) {
        self.lock().blocked = blocked;
        self.waker.wake();
    }

    pub fn set_nodelay(&self, on: bool) {
        self.lock().nodelay = Some(on);
        self.waker.wake();
    }

    /// `units` more bytes of the queue (as `send` queued them) are with
    /// the socket. Returns the new total when an `Event::Sent` is due.
    pub(super) fn handed(&self, units: usize) -> Option<u64> {
        let sent = self.sent_total.fetch_add(units as u64, Ordering::SeqCst) + units as u64;
        let at = self.notify_sent.load(Ordering::SeqCst);
        (at <= sent
            && self
                .notify_sent
                .compare_exchange(at, u64::MAX, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok())
        .then_some(sent)
    }

    /// JS waits for what is queued so far to reach the socket (a send
    /// callback): returns the queue total it waits for, and the total
    /// handed already (when that is not less, no `Event::Sent` need come).
    pub fn watch_sent(&self) -> (u64, u64) {
        let target = self.queued_total.load(Ordering::SeqCst);
        self.notify_sent.fetch_min(target, Ordering::SeqCst);
        (target, self.sent_total.load(Ordering::SeqCst))
    }

    /// As `watch_sent`, for a total JS already waits for (the next one
    /// after an `Event::Sent`); returns the total handed.
    pub fn watch_sent_at(&self, target: u64) -> u64 {
        self.notify_sent.fetch_min(target, Ordering::SeqCst);
        self.sent_total.load(Ordering::SeqCst)
    }

    /// Bytes handed to the socket so far (as `send` queued them).
    pub fn sent_total(&self) -> u64 {
        self.sent_total.load(Ordering::SeqCst)
    }

    /// Bytes left the queue for the socket. Returns true when a `drain`
    /// event is due.
    pub(super) fn written(&self, n: usize) -> bool {
        let left = self.buffered.fetch_sub(n, Ordering::AcqRel) - n;
        under_backpressure(left, self.max_backpressure)
            && self.want_drain.swap(false, Ordering::AcqRel)
    }

    pub(super) fn set_closed(&self) {
        let mut g = self.lock();
        g.phase = Phase::Closed;
        g.writer.retire();
        g.out = Vec::new();
        let topics = std::mem::take(&mut g.topics);
        drop(g);
        // After the lock: the map comes first in the lock order (`topics`).
        self.topics.leave_all(self.id, topics);
    }
}
