//! Listeners: a synchronous bind (so the JS constructor can throw at once),
//! then an accept loop on the engine thread.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atomic_waker::AtomicWaker;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::task::JoinHandle;

use super::conn::Conn;
use super::sink::{EnvSink, Event};
use super::{runtime, task, ServerConfig};
use crate::http::response::closing_response;
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

/// The accept loop's listener; dropping it (the loop is aborted by
/// `close`) closes the socket, then counts the loop's task as done.
struct Listening {
    listener: Option<tokio::net::TcpListener>,
    server: Arc<Server>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        drop(self.listener.take());
        self.server.task_done();
    }
}

pub struct Server {
    pub id: u64,
    pub config: ServerConfig,
    local: SocketAddr,
    sink: Mutex<Arc<EnvSink>>,
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
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("id", &self.id)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

/// Resolves `address` (an IP, a host name, or empty for the default
/// dual-stack `::`) and binds, falling back to `0.0.0.0` where the machine
/// has no IPv6.
fn bind_socket(address: &str, port: u16, backlog: u32) -> io::Result<std::net::TcpListener> {
    let any6 = address.is_empty() || address == "::" || address == "::0" || address == "[::]";
    if any6 {
        let addr = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
        return match listen(addr, backlog) {
            Err(e) if matches!(error_code(&e), "EAFNOSUPPORT" | "EADDRNOTAVAIL" | "EINVAL") => {
                listen(
                    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
                    backlog,
                )
            }
            r => r,
        };
    }
    let host = address.trim_start_matches('[').trim_end_matches(']');
    let addr = match host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port),
        // A name that does not resolve is Node's ENOTFOUND.
        Err(_) => (host, port)
            .to_socket_addrs()
            .map_err(|e| io::Error::new(io::ErrorKind::NotFound, e.to_string()))?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "address not found"))?,
    };
    listen(addr, backlog)
}

fn listen(addr: SocketAddr, backlog: u32) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As Node does: a restarted server can bind while old sockets sit in TIME_WAIT.
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        socket.set_only_v6(false)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

impl Server {
    /// Binds now (errors surface to the caller) and starts accepting.
    pub fn bind(
        address: &str,
        port: u16,
        config: ServerConfig,
        sink: Arc<EnvSink>,
    ) -> io::Result<Arc<Server>> {
        let std_listener = bind_socket(address, port, config.backlog)?;
        let local = std_listener.local_addr()?;
        let runtime = runtime::handle()?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener)?
        };
        let server = Server::new(config, sink, local);
        let guard = Listening {
            listener: Some(listener),
            server: server.clone(),
        };
        let handle = runtime.spawn(async move {
            let guard = guard;
            if let Some(listener) = guard.listener.as_ref() {
                guard.server.clone().accept_loop(listener).await;
            }
        });
        *server.accept_task.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        Ok(server)
    }

    /// A server that listens on nothing (`noServer`): its connections come
    /// from another server through [`Server::adopt`].
    pub fn unbound(config: ServerConfig, sink: Arc<EnvSink>) -> io::Result<Arc<Server>> {
        runtime::handle()?;
        let unspecified = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0);
        Ok(Server::new(config, sink, unspecified))
    }

    fn new(config: ServerConfig, sink: Arc<EnvSink>, local: SocketAddr) -> Arc<Server> {
        Arc::new(Server {
            id: NEXT_SERVER.fetch_add(1, Ordering::Relaxed),
            config,
            local,
            sink: Mutex::new(sink),
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
        })
    }

    async fn accept_loop(self: Arc<Self>, listener: &tokio::net::TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, remote)) => self.serve(stream, remote, Vec::with_capacity(1024)),
                // Out of file descriptors and the like: back off, keep listening.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// Serves a new connection, of which `buf` holds what was read already.
    fn serve(self: &Arc<Self>, stream: tokio::net::TcpStream, remote: SocketAddr, buf: Vec<u8>) {
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(self.local);
        self.task_started();
        tokio::spawn(connection(self.clone(), stream, remote, local, buf));
    }

    /// Takes over a connection another server accepted (Node's `http`, for
    /// `handleUpgrade`): `socket` is its own descriptor for it, and
    /// `read` the bytes that server read already (the request head, and
    /// any after it). From here it is served as one this server accepted.
    #[cfg(unix)]
    pub fn adopt(self: &Arc<Self>, socket: std::os::fd::OwnedFd, read: Vec<u8>) -> io::Result<()> {
        if self.is_closing() {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "server closed"));
        }
        let std = std::net::TcpStream::from(socket);
        std.set_nonblocking(true)?;
        let remote = std.peer_addr()?;
        let runtime = runtime::handle()?;
        let _guard = runtime.enter();
        let stream = tokio::net::TcpStream::from_std(std)?;
        self.serve(stream, remote, read);
        Ok(())
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn sink(&self) -> Arc<EnvSink> {
        self.sink.lock().unwrap_or_else(|e| e.into_inner()).clone()
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
    fn over_capacity(&self) -> bool {
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
    async fn make_room(&self) -> bool {
        *self.waiting_room.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.shed.fetch_add(1, Ordering::AcqRel);
        // Idle connections on engine tasks look at `shed` when woken (a
        // few: a flood at the limit must not wake every one each time),
        // those on a JS thread's lane when it hears of it.
        for w in snapshot(&self.watchers).into_iter().take(SHED_WAKES) {
            w.wake();
        }
        self.sink().push(Event::ShedIdle { server: self.id });
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
            self.sink().push(Event::ServerClose { server: self.id });
        }
    }

    /// Stops listening and closes every connection with `code`; emits
    /// `ServerClose` once the last one has ended.
    pub fn close(&self, code: u16, reason: &str) {
        self.close_where(code, reason, |_| true);
    }

    /// The server's environment is going away (`sink`): stops listening
    /// and closes, with 1001, the connections whose events go there. Ones
    /// posted to other threads stay open there.
    pub fn close_for_gone_env(&self, sink: &Arc<EnvSink>) {
        self.close_where(GOING_AWAY, "", |c| Arc::ptr_eq(&c.sink(), sink));
    }

    fn close_where(&self, code: u16, reason: &str, mine: impl Fn(&Conn) -> bool) {
        if self.closing.swap(true, Ordering::AcqRel) {
            return;
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

    pub(crate) fn emit_error(
        &self,
        remote: SocketAddr,
        local: SocketAddr,
        code: &'static str,
        message: String,
    ) {
        self.sink().push(Event::ServerError {
            server: self.id,
            remote,
            local,
            code,
            message,
        });
    }
}

/// A connection's task, from its acceptance to its end. Every connection
/// holds this future for its whole life: what is rare (no room) is boxed,
/// so it costs the others nothing (inline, the refusal's linger buffer
/// made every connection 4 KiB larger).
pub(super) async fn connection(
    server: Arc<Server>,
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
    local: SocketAddr,
    buf: Vec<u8>,
) {
    if server.over_capacity() && !Box::pin(server.make_room()).await {
        let response = closing_response(503, None, &[], b"server full");
        Box::pin(task::refuse(stream, &response)).await;
    } else {
        task::run(stream, remote, local, server.clone(), buf, true).await;
    }
    server.task_done();
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
