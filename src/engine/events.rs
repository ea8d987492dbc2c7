//! Events out of the engine, queued per JS environment.
//!
//! Each environment (main thread, each worker) owns one [`EventQueue`]. The
//! engine appends events and wakes the environment only when no wake is
//! already pending, so one wake delivers a whole batch. Message bytes go to a
//! shared arena, not one allocation per message.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::conn::Conn;
use crate::http::head::RequestHead;

/// What JS learns about a connection when it appears.
#[derive(Debug)]
pub struct ConnInfo {
    pub head: RequestHead,
    pub remote: SocketAddr,
    pub local: SocketAddr,
    /// Subprotocols offered by the client, in order.
    pub protocols: Vec<String>,
    /// The TLS session's facts; `None` on a plain connection.
    pub tls: Option<Arc<super::tls::TlsInfo>>,
}

/// What a `lowError` carries: the bytes read (plain text on a TLS port)
/// or a text (the SNI name, or what went wrong).
#[derive(Debug)]
pub enum LowData {
    Bytes(Vec<u8>),
    Text(String),
}

/// An event for JS. Connection events name the connection by id.
#[derive(Debug)]
pub enum Event {
    /// An upgrade request waits for `accept`/`reject` (server has an accept handler).
    Accept {
        server: u64,
        conn: Arc<Conn>,
    },
    /// A connection was accepted by the engine itself (no accept handler).
    Open {
        server: u64,
        conn: Arc<Conn>,
    },
    /// A message; its bytes are `arena[start..start + len]` of the batch.
    Message {
        conn: u64,
        text: bool,
        start: usize,
        len: usize,
    },
    Pong {
        conn: u64,
        start: usize,
        len: usize,
    },
    /// `bufferedAmount` fell back under the backpressure limit.
    Drain {
        conn: u64,
    },
    /// `upto` bytes (as queued) are with the socket: send callbacks up to
    /// there are due (`Conn::watch_sent`).
    Sent {
        conn: u64,
        upto: u64,
    },
    /// Something went wrong on an open connection; a `Close` follows.
    Error {
        conn: u64,
        code: &'static str,
        message: String,
    },
    /// The peer's close frame came (after the messages before it): the
    /// receiver answers it with [`Conn::answer_close`](super::conn::Conn::answer_close)
    /// once JS has seen those messages, so what their handlers send goes
    /// out before our close frame. `code` and `reason` are the peer's
    /// (`NO_STATUS` for an empty close).
    PeerClose {
        conn: Arc<Conn>,
        code: u16,
        reason: String,
    },
    /// The connection is closed; the last event for it.
    Close {
        conn: u64,
        code: u16,
        reason: String,
    },
    /// A connection failed before it was upgraded.
    ServerError {
        server: u64,
        remote: SocketAddr,
        local: SocketAddr,
        /// The connection's TLS facts (`None`: plain).
        tls: Option<Arc<super::tls::TlsInfo>>,
        code: &'static str,
        message: String,
    },
    /// A failure before HTTP (`lowError`), `code` as the contract numbers
    /// them. `decide` (not 0): plain text on a TLS port, which JS may carry
    /// on as plain HTTP with `Server::decide_low`.
    LowError {
        server: u64,
        code: u32,
        remote: SocketAddr,
        local: SocketAddr,
        data: LowData,
        decide: u64,
    },
    /// The backplane came up, went down, lost messages, or answered a
    /// `cluster` query (`backplane::what`); `text` is JSON.
    Backplane {
        server: u64,
        what: u32,
        id: u64,
        text: String,
    },
    /// The listener closed and every connection of the server has ended.
    ServerClose {
        server: u64,
    },
    /// A plain HTTP request with its whole body.
    Request {
        server: u64,
        exchange: Arc<super::exchange::Exchange>,
        head: RequestHead,
        body: Vec<u8>,
        remote: SocketAddr,
        local: SocketAddr,
        /// Plain HTTP on a TLS port, carried on by `disableSSL()`.
        redirect: bool,
        /// The connection's TLS facts (`None`: plain).
        tls: Option<Arc<super::tls::TlsInfo>>,
    },
    /// Something JS asked to hear about an HTTP response
    /// (`exchange::Notice`).
    Response {
        exchange: u64,
        notice: super::exchange::Notice,
    },
    /// Server `server` is at `maxConnections`: an idle keep-alive
    /// connection of the keep-alive executor should close to make room.
    ShedIdle {
        server: u64,
    },
    /// A keep-alive HTTP connection for this environment's keep-alive executor.
    KeepAlive {
        conn: super::idle::IdleConn,
    },
    /// A connection posted to this environment: hand it to the receiver
    /// registered as `token`, then deliver the events held meanwhile.
    Adopt {
        token: u64,
        destination: String,
        conn: Arc<Conn>,
        /// What the poster sent along (serialized by JS), if anything.
        data: Option<Vec<u8>>,
    },
}

impl Event {
    /// The connection an event belongs to, if any.
    pub fn conn_id(&self) -> Option<u64> {
        match self {
            Event::Message { conn, .. }
            | Event::Pong { conn, .. }
            | Event::Drain { conn }
            | Event::Sent { conn, .. }
            | Event::Error { conn, .. }
            | Event::Close { conn, .. } => Some(*conn),
            Event::Accept { conn, .. }
            | Event::Open { conn, .. }
            | Event::Adopt { conn, .. }
            | Event::PeerClose { conn, .. } => Some(conn.id),
            Event::ServerError { .. }
            | Event::LowError { .. }
            | Event::Backplane { .. }
            | Event::ServerClose { .. }
            | Event::Request { .. }
            | Event::Response { .. }
            | Event::ShedIdle { .. }
            | Event::KeepAlive { .. } => None,
        }
    }
}

/// Message bytes queued for one environment past which its connections
/// stop reading until JS takes the queue (see [`Share`]). 8 MiB: JS holds
/// at most the batch it delivers plus one queue, so a handler slower than
/// its clients costs a bounded amount of memory, and TCP pushes back on
/// them, as it does for a Node server that reads only when it has time.
pub const QUEUE_BYTES: usize = 8 << 20;
/// Events queued for one environment past which its connections stop
/// reading: small messages cost JS time out of proportion to their bytes.
pub const QUEUE_EVENTS: usize = 16 * 1024;
/// What one connection may add to a queue before it waits for JS to take
/// it: 1 MiB or 256 messages. One connection's flood then cannot fill a
/// queue for the others: each queue holds at most this much of it, so the
/// others' messages wait behind a bounded share (at 50 µs a message, about
/// 13 ms of handler time). 256 is four times what a client with 64
/// messages in flight needs.
pub const SHARE_BYTES: usize = 1 << 20;
pub const SHARE_EVENTS: usize = 256;

/// Events and their message bytes, swapped out whole by the consumer.
#[derive(Debug, Default)]
pub struct Batch {
    pub events: VecDeque<Event>,
    pub arena: Vec<u8>,
    /// Which of its environment's queues this is: 1 for the first, one
    /// more at every [`EventQueue::take`]. 0 for batches that are no queue
    /// (events held for a move, the consumer's spare).
    pub gen: u64,
    /// Readers waiting for this queue to be taken (see [`Share`]).
    waiters: Vec<std::task::Waker>,
}

/// What a connection has added to its environment's current queue: past
/// [`SHARE_BYTES`] or [`SHARE_EVENTS`], or once the queue itself is over
/// [`QUEUE_BYTES`] or [`QUEUE_EVENTS`], it stops reading until JS takes
/// the queue ([`Conn::wait_for_take`](super::conn::Conn::wait_for_take)).
/// Counted by the connection's task alone.
#[derive(Debug, Default, Clone, Copy)]
pub struct Share {
    pub gen: u64,
    pub bytes: usize,
    pub events: usize,
    /// The queue was over its own bounds after this connection's last push.
    pub full: bool,
}

impl Share {
    /// Adds what `push` did to `batch` (its arena and events before were
    /// `arena0` and `events0`).
    pub fn count(&mut self, batch: &Batch, arena0: usize, events0: usize) {
        if batch.gen == 0 {
            return; // held for a move: brief, and no queue to wait for
        }
        if batch.gen != self.gen {
            *self = Share {
                gen: batch.gen,
                ..Share::default()
            };
        }
        self.bytes += batch.arena.len() - arena0;
        self.events += batch.events.len() - events0;
        self.full = batch.arena.len() > QUEUE_BYTES || batch.events.len() > QUEUE_EVENTS;
    }

    /// Whether the connection must wait for JS before reading more.
    pub fn exhausted(&self) -> bool {
        self.gen != 0 && (self.full || self.bytes > SHARE_BYTES || self.events > SHARE_EVENTS)
    }
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Parks `waker` until this queue is taken, if it is still generation
    /// `gen` (false: taken already, read on).
    pub fn wait_for_take(&mut self, gen: u64, waker: &std::task::Waker) -> bool {
        if self.gen != gen || gen == 0 {
            return false;
        }
        if !self.waiters.iter().any(|w| w.will_wake(waker)) {
            self.waiters.push(waker.clone());
        }
        true
    }

    /// Appends `ev`, copying its bytes from `arena` (the batch it came from).
    pub fn push_from(&mut self, ev: Event, arena: &[u8]) {
        let ev = match ev {
            Event::Message {
                conn,
                text,
                start,
                len,
            } => {
                let (start, len) = self.push_bytes(&arena[start..start + len]);
                Event::Message {
                    conn,
                    text,
                    start,
                    len,
                }
            }
            Event::Pong { conn, start, len } => {
                let (start, len) = self.push_bytes(&arena[start..start + len]);
                Event::Pong { conn, start, len }
            }
            other => other,
        };
        self.events.push_back(ev);
    }

    /// Moves every event of connection `id` (in order) to the end of `to`.
    pub fn extract_conn(&mut self, id: u64, to: &mut Batch) {
        if !self.events.iter().any(|e| e.conn_id() == Some(id)) {
            return;
        }
        let events = std::mem::take(&mut self.events);
        for ev in events {
            if ev.conn_id() == Some(id) {
                to.push_from(ev, &self.arena);
            } else {
                self.events.push_back(ev);
            }
        }
    }

    /// Appends all of `other` to the end of this batch.
    pub fn append(&mut self, mut other: Batch) {
        for ev in other.events.drain(..) {
            self.push_from(ev, &other.arena);
        }
    }

    pub fn push_bytes(&mut self, data: &[u8]) -> (usize, usize) {
        let start = self.arena.len();
        self.arena.extend_from_slice(data);
        (start, data.len())
    }

    /// Adds a message event with its bytes.
    pub fn push_message(&mut self, conn: u64, text: bool, data: &[u8]) {
        let (start, len) = self.push_bytes(data);
        self.events.push_back(Event::Message {
            conn,
            text,
            start,
            len,
        });
    }

    /// Wakes the readers waiting for this queue to be taken.
    pub fn release_waiters(&mut self) {
        for w in self.waiters.drain(..) {
            w.wake();
        }
    }

    pub fn clear(&mut self) {
        self.events.clear();
        self.gen = 0;
        self.release_waiters();
        // Keep the arena's capacity for the next batch unless it grew large
        // for one big message.
        if self.arena.capacity() > 1 << 20 {
            self.arena = Vec::new();
        } else {
            self.arena.clear();
        }
    }
}

thread_local! {
    /// Queues to wake at the end of this engine round (engine thread only).
    static DEFERRED: std::cell::RefCell<Option<Vec<Arc<EventQueue>>>> = const { std::cell::RefCell::new(None) };
}

static NOTIFIER: atomic_waker::AtomicWaker = atomic_waker::AtomicWaker::new();

/// Marks the current thread as the engine thread (wakes get deferred).
pub(super) fn enable_deferred_wakes() {
    DEFERRED.with(|d| *d.borrow_mut() = Some(Vec::new()));
}

/// Queues `queue` for the notifier task if this is the engine thread.
fn defer(queue: &Arc<EventQueue>) -> bool {
    DEFERRED.with(|d| match d.borrow_mut().as_mut() {
        Some(list) => {
            if list.is_empty() {
                // A local wake: the notifier runs after the tasks already queued.
                NOTIFIER.wake();
            }
            list.push(queue.clone());
            true
        }
        None => false,
    })
}

/// The engine's runtime, for work that must not run on the caller's stack
/// (`discard`); set by [`start`].
static ENGINE: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();

/// Starts the notifier on the engine's runtime (`runtime::handle`).
pub(super) fn start(engine: &tokio::runtime::Handle) {
    let _ = ENGINE.set(engine.clone());
    engine.spawn(notifier());
}

/// The notifier task: wakes the JS environments that got events this round.
async fn notifier() {
    let mut due = Vec::new();
    std::future::poll_fn(|cx| {
        NOTIFIER.register(cx.waker());
        DEFERRED.with(|d| {
            if let Some(list) = d.borrow_mut().as_mut() {
                std::mem::swap(list, &mut due);
            }
        });
        for queue in due.drain(..) {
            queue.wake_now();
        }
        std::task::Poll::<()>::Pending
    })
    .await
}

/// The queue of one JS environment and the means to wake it.
pub struct EventQueue {
    batch: Mutex<Batch>,
    scheduled: AtomicBool,
    waker: Box<dyn Fn() + Send + Sync>,
    /// The environment serves keep-alive HTTP connections itself
    /// (`keepalive/`).
    keepalive: AtomicBool,
    /// The environment is gone ([`EventQueue::shut`]): what comes is discarded.
    dead: AtomicBool,
}

impl std::fmt::Debug for EventQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventQueue").finish_non_exhaustive()
    }
}

impl EventQueue {
    /// `waker` asks the environment to call [`EventQueue::take`] soon; it must
    /// not block and must do nothing once the environment is gone.
    pub fn new(waker: Box<dyn Fn() + Send + Sync>) -> Arc<Self> {
        Arc::new(EventQueue {
            batch: Mutex::new(Batch {
                gen: 1,
                ..Batch::default()
            }),
            scheduled: AtomicBool::new(false),
            waker,
            keepalive: AtomicBool::new(false),
            dead: AtomicBool::new(false),
        })
    }

    /// `on`: the environment takes keep-alive HTTP connections
    /// (`Event::KeepAlive`); off again when it goes away. Under the queue's
    /// lock, so no connection is queued after the last drain.
    pub fn enable_keepalive(&self, on: bool) {
        let _queue = self.lock();
        self.keepalive.store(on, Ordering::Release);
    }

    /// Queues a connection for the keep-alive executor; gives it back when the
    /// environment no longer takes them.
    pub fn push_keepalive(
        self: &Arc<Self>,
        conn: super::idle::IdleConn,
    ) -> Option<super::idle::IdleConn> {
        {
            let mut queue = self.lock();
            if !self.keepalive.load(Ordering::Acquire) {
                return Some(conn);
            }
            queue.events.push_back(Event::KeepAlive { conn });
        }
        self.wake();
        None
    }

    pub fn keepalive_enabled(&self) -> bool {
        self.keepalive.load(Ordering::Acquire)
    }

    /// Locks the queue to add several events; wake with [`EventQueue::wake`] after.
    pub fn lock(&self) -> MutexGuard<'_, Batch> {
        self.batch.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn push(self: &Arc<Self>, ev: Event) {
        self.lock().events.push_back(ev);
        self.wake();
    }

    /// The environment goes away: takes what is queued into `out` (empty)
    /// for its last clean-up. Events queued from now on are discarded as
    /// they come ([`discard`]): a connection still ending, or one posted
    /// here just now, would otherwise fill a queue nobody reads.
    pub fn shut(&self, out: &mut Batch) {
        let mut queue = self.lock();
        self.dead.store(true, Ordering::Release);
        std::mem::swap(&mut *queue, out);
        drop(queue);
        out.release_waiters();
    }

    /// Wakes the environment unless a wake is already pending. On the
    /// engine thread the wake is deferred to the end of the runtime's round
    /// (see [`defer`]), so JS gets every event of the round in one batch
    /// instead of being switched to after the first connection's.
    pub fn wake(self: &Arc<Self>) {
        // Every push wakes, so this sees what was queued after `shut` (its
        // lock orders the flag before any later push).
        if self.dead.load(Ordering::Acquire) {
            let mut queued = std::mem::take(&mut *self.lock());
            queued.release_waiters();
            if !queued.is_empty() {
                discard(queued, self.clone());
            }
            return;
        }
        if !self.scheduled.swap(true, Ordering::AcqRel) && !defer(self) {
            (self.waker)();
        }
    }

    /// Whether the engine queued events since the last [`EventQueue::take`]
    /// (a wake is on its way, or deferred to the end of the engine's round).
    pub fn is_scheduled(&self) -> bool {
        self.scheduled.load(Ordering::Acquire)
    }

    fn wake_now(&self) {
        (self.waker)();
    }

    /// Swaps the queue with `spare` (which must be empty). The flag is
    /// cleared first so an event pushed during the swap wakes again. The
    /// readers that waited for this queue to be taken read on.
    pub fn take(&self, spare: &mut Batch) {
        self.scheduled.store(false, Ordering::Release);
        {
            let mut queue = self.lock();
            spare.gen = queue.gen + 1;
            std::mem::swap(&mut *queue, spare);
        }
        spare.release_waiters();
    }
}

/// Ends what events queued for a gone environment (`queue`) stand for:
/// connections close with 1001 (their held events dropped), responses are
/// aborted, the rest is dropped. On the engine thread, not the caller's
/// stack, which may hold a connection's lock.
fn discard(batch: Batch, queue: Arc<EventQueue>) {
    let owns = |ev: &Event| {
        matches!(
            ev,
            Event::Adopt { .. } | Event::Accept { .. } | Event::Open { .. } | Event::Request { .. }
        )
    };
    if !batch.events.iter().any(owns) {
        return; // messages and notices: dropped here
    }
    // The engine runs: these events came from it.
    let Some(rt) = ENGINE.get() else {
        return;
    };
    rt.spawn(async move {
        for ev in batch.events {
            if let Some(conn) = end_for_gone(ev) {
                close_for_gone(&conn, &queue);
            }
        }
    });
}

/// An event queued for an environment that is gone: its response (if it
/// carries one) is aborted, and the connection it hands over (if any) is
/// returned, to be closed with [`close_for_gone`].
pub fn end_for_gone(ev: Event) -> Option<Arc<Conn>> {
    match ev {
        Event::Adopt { conn, .. } | Event::Accept { conn, .. } | Event::Open { conn, .. } => {
            Some(conn)
        }
        Event::Request { exchange, .. } => {
            exchange.abort();
            None
        }
        _ => None,
    }
}

/// Closes `conn`, whose environment (`queue`) is gone, with 1001. Events
/// held for a move there are dropped, and later ones go to the dead queue,
/// which discards them.
pub fn close_for_gone(conn: &Conn, queue: &Arc<EventQueue>) {
    while conn.take_held(queue).is_some() {}
    // Reading again, whatever `block()` said: the peer's answer to the
    // close frame must be read.
    conn.set_blocked(false);
    if conn.close(crate::protocol::close::GOING_AWAY, "").is_err() {
        conn.terminate();
    }
}
