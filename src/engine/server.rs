//! A server's shared state: its handlers, connections, limits and close;
//! what listens for it is `listener.rs`.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atomic_waker::AtomicWaker;
use tokio::task::JoinHandle;

use super::conn::{Conn, ConnTopics};
use super::events::{Event, EventQueue, LowData};
use super::tls::TlsInfo;
use super::ServerConfig;
use crate::protocol::close::GOING_AWAY;

static NEXT_SERVER: AtomicU64 = AtomicU64::new(1);

/// Idle engine-side connections woken per request for room.
const SHED_WAKES: usize = 64;
/// How long a connection over `maxConnections` waits for an idle one to
/// close before it is answered 503.
const ROOM_WAIT: Duration = Duration::from_millis(250);

/// The Node-style `code` for a socket error (`EADDRINUSE`, …).
pub fn error_code(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc_code) => match libc_code {
            98 | 48 => "EADDRINUSE",
            13 => "EACCES",
            99 | 49 => "EADDRNOTAVAIL",
            97 | 47 => "EAFNOSUPPORT",
            22 => "EINVAL",
            104 | 54 => "ECONNRESET",
            32 => "EPIPE",
            110 | 60 => "ETIMEDOUT",
            24 => "EMFILE",
            _ => "EIO",
        },
        None => match e.kind() {
            io::ErrorKind::AddrInUse => "EADDRINUSE",
            io::ErrorKind::PermissionDenied => "EACCES",
            io::ErrorKind::AddrNotAvailable => "EADDRNOTAVAIL",
            io::ErrorKind::NotFound => "ENOTFOUND",
            io::ErrorKind::TimedOut => "ETIMEDOUT",
            io::ErrorKind::InvalidInput => "EINVAL",
            _ => "EIO",
        },
    }
}

pub struct Server {
    pub id: u64,
    pub config: ServerConfig,
    local: SocketAddr,
    queue: Mutex<Arc<EventQueue>>,
    accept_handler: AtomicBool,
    request_handler: AtomicBool,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    closing: AtomicBool,
    close_emitted: AtomicBool,
    /// Tasks alive: the accept loop and every connection (WebSocket or
    /// HTTP, upgraded or not). The server's close event waits for all of
    /// them, so it comes after the listening socket is closed.
    tasks: AtomicUsize,
    /// Connections between HTTP requests (see `CloseWatch`), woken when
    /// the server closes; keyed by their waker's address.
    watchers: Mutex<HashMap<usize, Arc<AtomicWaker>>>,
    accept_task: Mutex<Option<JoinHandle<()>>>,
    /// Bytes of request bodies being received (`maxBodyBuffer`), and the
    /// bodies waiting for room.
    body_bytes: AtomicUsize,
    body_room: tokio::sync::Notify,
    /// Idle keep-alive connections asked to close to make room for new
    /// ones (`maxConnections`), and the new ones waiting for that room.
    shed: AtomicUsize,
    room: tokio::sync::Notify,
    /// Connections accepted and waiting in `make_room`: they do not count
    /// against each other's room.
    waiting_room: Mutex<usize>,
    /// Connections with plain text on a TLS port, waiting for the
    /// `lowError` handler's `disableSSL()` (`true`) or `rejectSSL()`.
    low: Mutex<HashMap<u64, tokio::sync::oneshot::Sender<bool>>>,
    /// Topics of this server's connections (`subscribe`/`publish`).
    pub topics: Arc<ConnTopics>,
    /// Called once when the server starts closing (the backplane stops).
    on_close: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
}

static NEXT_LOW: AtomicU64 = AtomicU64::new(1);

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("id", &self.id)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl Server {
    pub(super) fn new(
        config: ServerConfig,
        queue: Arc<EventQueue>,
        local: SocketAddr,
    ) -> Arc<Server> {
        Arc::new(Server {
            id: NEXT_SERVER.fetch_add(1, Ordering::Relaxed),
            config,
            local,
            queue: Mutex::new(queue),
            accept_handler: AtomicBool::new(false),
            request_handler: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            closing: AtomicBool::new(false),
            close_emitted: AtomicBool::new(false),
            // The accept loop's (an unbound server's stands for it until
            // it closes, so the count means the same).
            tasks: AtomicUsize::new(1),
            watchers: Mutex::new(HashMap::new()),
            accept_task: Mutex::new(None),
            body_bytes: AtomicUsize::new(0),
            body_room: tokio::sync::Notify::new(),
            shed: AtomicUsize::new(0),
            room: tokio::sync::Notify::new(),
            waiting_room: Mutex::new(0),
            low: Mutex::new(HashMap::new()),
            topics: ConnTopics::new(),
            on_close: Mutex::new(Vec::new()),
        })
    }

    /// Runs `hook` when the server starts closing (at once if it has).
    pub fn on_close(&self, hook: Box<dyn FnOnce() + Send>) {
        let mut hooks = self.on_close.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_closing() {
            drop(hooks);
            hook();
        } else {
            hooks.push(hook);
        }
    }

    /// The accept loop's task, aborted by `close`.
    pub(super) fn set_accept_task(&self, task: JoinHandle<()>) {
        *self.accept_task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn queue(&self) -> Arc<EventQueue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Which JS handlers exist: with no `accept` handler the engine answers
    /// the upgrade itself, saving a round trip through JS.
    pub fn set_handlers(&self, accept: bool, request: bool) {
        self.accept_handler.store(accept, Ordering::Release);
        self.request_handler.store(request, Ordering::Release);
    }

    pub fn has_accept_handler(&self) -> bool {
        self.accept_handler.load(Ordering::Acquire)
    }

    pub fn has_request_handler(&self) -> bool {
        self.request_handler.load(Ordering::Acquire)
    }

    pub fn connection_count(&self) -> usize {
        self.conns.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether a body of which this connection holds `mine` bytes may read
    /// on: while the others hold less than `maxBodyBuffer`. So the total
    /// stays under that plus one body, and no body waits for itself.
    pub(super) fn body_room_for(&self, mine: usize) -> bool {
        let max = self.config.max_body_buffer;
        max == 0 || self.body_bytes.load(Ordering::Acquire) - mine < max
    }

    /// Waits until the bodies held change (one ended or was dropped).
    pub(super) fn body_room(&self) -> tokio::sync::futures::Notified<'_> {
        self.body_room.notified()
    }

    pub(super) fn hold_body(&self, more: usize) {
        self.body_bytes.fetch_add(more, Ordering::AcqRel);
    }

    pub(super) fn release_body(&self, n: usize) {
        if n > 0 {
            self.body_bytes.fetch_sub(n, Ordering::AcqRel);
            self.body_room.notify_waiters();
        }
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Tracks a connection; false when the server is closing.
    pub(super) fn register(&self, conn: &Arc<Conn>) -> bool {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_closing() {
            return false;
        }
        conns.insert(conn.id, conn.clone());
        true
    }

    pub(super) fn unregister(&self, id: u64) {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// A connection task ended; the last one after `close` emits the close event.
    /// One more task the close event waits for (see `tasks`).
    pub(super) fn task_started(&self) {
        self.tasks.fetch_add(1, Ordering::AcqRel);
    }

    pub(super) fn task_done(&self) {
        let left = self.tasks.fetch_sub(1, Ordering::AcqRel) - 1;
        if left == 0 && self.is_closing() {
            self.emit_closed();
        }
        if left <= 1 {
            super::memory::trim_soon();
        }
        self.room.notify_waiters();
    }

    /// Connections open (WebSocket or HTTP, in the engine or on a JS
    /// thread): every one holds a task count, as does the accept loop.
    fn open_connections(&self) -> usize {
        self.tasks.load(Ordering::Acquire).saturating_sub(1)
    }

    /// Whether a connection just accepted is one too many for
    /// `maxConnections` (the ones waiting for room not counted); if not,
    /// it is in.
    pub(super) fn over_capacity(&self) -> bool {
        let max = self.config.max_connections;
        if max == 0 {
            return false;
        }
        let waiting = *self.waiting_room.lock().unwrap_or_else(|e| e.into_inner());
        self.open_connections().saturating_sub(waiting) > max
    }

    /// Asks an idle keep-alive connection (one that has had a response
    /// and waits for its next request) to close, and waits a moment for
    /// the room: true once there is. A client that reconnects costs less
    /// than a WebSocket client turned away while idle connections hold
    /// every slot.
    pub(super) async fn make_room(&self) -> bool {
        *self.waiting_room.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.shed.fetch_add(1, Ordering::AcqRel);
        // Idle connections on engine tasks look at `shed` when woken (a
        // few: a flood at the limit must not wake every one each time),
        // those on a JS thread's keep-alive executor when it hears of it.
        for w in snapshot(&self.watchers).into_iter().take(SHED_WAKES) {
            w.wake();
        }
        self.queue().push(Event::ShedIdle { server: self.id });
        let deadline = tokio::time::Instant::now() + ROOM_WAIT;
        loop {
            let freed = self.room.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let late = tokio::time::Instant::now() >= deadline;
            {
                // Admitted one at a time: each takes a slot freed for it.
                let mut waiting = self.waiting_room.lock().unwrap_or_else(|e| e.into_inner());
                let room = self.open_connections().saturating_sub(*waiting - 1)
                    <= self.config.max_connections;
                if room || late {
                    *waiting -= 1;
                    if !room {
                        // Nobody idle: take the request back, so a
                        // connection going idle later is not closed
                        // for nothing.
                        let _ = self.take_shed();
                    }
                    return room;
                }
            }
            let _ = tokio::time::timeout_at(deadline, freed).await;
        }
    }

    /// Takes one request to close an idle connection (see `make_room`).
    pub fn take_shed(&self) -> bool {
        self.shed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }

    fn emit_closed(&self) {
        if !self.close_emitted.swap(true, Ordering::AcqRel) {
            self.queue().push(Event::ServerClose { server: self.id });
        }
    }

    /// Stops listening and closes every connection with `code`; emits
    /// `ServerClose` once the last one has ended.
    pub fn close(&self, code: u16, reason: &str) {
        self.close_where(code, reason, |_| true);
    }

    /// The server's environment is going away (`queue`): stops listening
    /// and closes, with 1001, the connections whose events go there. Ones
    /// posted to other threads stay open there.
    pub fn close_for_gone_env(&self, queue: &Arc<EventQueue>) {
        self.close_where(GOING_AWAY, "", |c| Arc::ptr_eq(&c.queue(), queue));
    }

    fn close_where(&self, code: u16, reason: &str, mine: impl Fn(&Conn) -> bool) {
        if self.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        let hooks = std::mem::take(&mut *self.on_close.lock().unwrap_or_else(|e| e.into_inner()));
        for hook in hooks {
            hook();
        }
        let accepting = self
            .accept_task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match accepting {
            Some(task) => task.abort(),
            // Unbound: the count that stood for an accept loop ends here.
            None => self.task_done(),
        }
        let conns = snapshot(&self.conns);
        // HTTP connections waiting for their next request end now; ones
        // with a response in flight end after it (`http::serve_one`).
        // The fence pairs with `CloseWatch::poll`: either the watcher sees
        // `closing`, or its waker is in the map by now.
        fence(Ordering::SeqCst);
        let watchers = snapshot(&self.watchers);
        for w in watchers {
            w.wake();
        }
        for c in conns.into_iter().filter(|c| mine(c)) {
            // Pending upgrades are refused, open connections start the
            // closing handshake, closing ones are left to finish.
            if c.close(code, reason).is_err() {
                c.terminate();
            }
        }
    }

    /// Tells JS of a failure before HTTP (`lowError`). With `data` the
    /// bytes a plain-text client sent to a TLS port, returns what JS
    /// decides for it: carry on as plain HTTP (`true`), or drop it; no
    /// answer within `limit` drops it.
    pub(super) async fn low_error(
        &self,
        code: u32,
        remote: SocketAddr,
        local: SocketAddr,
        data: LowData,
        limit: std::time::Duration,
    ) -> bool {
        let LowData::Bytes(_) = &data else {
            self.queue().push(Event::LowError {
                server: self.id,
                code,
                remote,
                local,
                data,
                decide: 0,
            });
            return false;
        };
        let id = NEXT_LOW.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.low
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        self.queue().push(Event::LowError {
            server: self.id,
            code,
            remote,
            local,
            data,
            decide: id,
        });
        let decided = if limit.is_zero() {
            rx.await.ok()
        } else {
            tokio::time::timeout(limit, rx)
                .await
                .ok()
                .and_then(Result::ok)
        };
        self.low
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        decided == Some(true)
    }

    /// JS's answer for the `lowError` of `id` (see [`Server::low_error`]);
    /// false when nothing waits for it any more.
    pub fn decide_low(&self, id: u64, plain: bool) -> bool {
        let waiting = self
            .low
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        waiting.is_some_and(|tx| tx.send(plain).is_ok())
    }

    /// A connection failed before its upgrade (`error`); `tls`: its TLS
    /// session's facts, for `socketInfo`.
    pub(crate) fn emit_error(
        &self,
        remote: SocketAddr,
        local: SocketAddr,
        tls: Option<Arc<TlsInfo>>,
        code: &'static str,
        message: String,
    ) {
        self.queue().push(Event::ServerError {
            server: self.id,
            remote,
            local,
            tls,
            code,
            message,
        });
    }
}

/// The values of a map behind a lock, copied out so the lock is not held
/// while they are acted on.
fn snapshot<K, V: Clone>(map: &Mutex<HashMap<K, V>>) -> Vec<V> {
    map.lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .cloned()
        .collect()
}

/// A connection's view of its server closing, while it is plain HTTP.
///
/// Registered once per connection rather than per wait: polling costs two
/// atomic operations (the task's waker does not change), where a fresh
/// `Notify` waiter per request took a lock to register and another to go.
pub(super) struct CloseWatch<'a> {
    server: &'a Server,
    waker: Arc<AtomicWaker>,
}

impl<'a> CloseWatch<'a> {
    pub(super) fn new(server: &'a Server) -> Self {
        let waker = Arc::new(AtomicWaker::new());
        server
            .watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(Arc::as_ptr(&waker) as usize, waker.clone());
        CloseWatch { server, waker }
    }

    /// `Ready` once the server is closing.
    pub(super) fn poll(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.waker.register(cx.waker());
        // Pairs with the fence in `Server::close` (see there).
        fence(Ordering::SeqCst);
        if self.server.is_closing() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    }
}

impl CloseWatch<'_> {
    /// `Ready` once the server is closing, or (`idle`: the connection has
    /// had a response and waits for its next request) once it asks for
    /// room (`Server::make_room`) and this connection takes the request.
    pub(super) fn poll_idle(
        &self,
        cx: &mut std::task::Context<'_>,
        idle: bool,
    ) -> std::task::Poll<()> {
        let p = self.poll(cx);
        if p.is_pending() && idle && self.server.take_shed() {
            return std::task::Poll::Ready(());
        }
        p
    }
}

impl Drop for CloseWatch<'_> {
    fn drop(&mut self) {
        self.server
            .watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(Arc::as_ptr(&self.waker) as usize));
    }
}
