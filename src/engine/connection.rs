//! A connection's engine task before any upgrade: room for it
//! (`maxConnections`), then its requests one by one, each routed
//! (`http::route`): to the request handler (`http.rs`), to the JS thread's
//! keep-alive keep-alive executor once idle (`keepalive/`), or to a WebSocket (`upgrade.rs`).

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use tokio::io::AsyncWriteExt;

use super::events::LowData;
use super::http::{serve_one, After, IdleTimer};
use super::idle::IdleConn;
use super::server::{error_code, CloseWatch, Server};
use super::tls::{Handshake, LowError, Tls};
use super::transport::Transport;
use crate::http::head::{parse_request_head, HeadError, RequestHead};
use crate::http::response::closing_response;
use crate::http::route::{route, Route};

/// A connection's task, from its acceptance to its end. Every connection
/// holds this future for its whole life: what is rare (no room, a
/// refusal, the WebSocket) is boxed, so it costs the others nothing.
pub(super) async fn connection(
    server: Arc<Server>,
    stream: Transport,
    remote: SocketAddr,
    local: SocketAddr,
    buf: Vec<u8>,
) {
    // A TLS server's own connections start with the handshake; one taken
    // over from Node (`handleUpgrade`, with bytes already read) does not.
    let mut redirect = false;
    let stream = match (&server.config.tls, stream) {
        (Some(tls), Transport::Plain(tcp)) if buf.is_empty() => {
            match Box::pin(secure(tls, tcp, &server, remote, local)).await {
                Secured::Tls(s) => s,
                Secured::Plain(tcp) => {
                    redirect = true;
                    Transport::Plain(tcp)
                }
                Secured::Dropped => return server.task_done(),
            }
        }
        (_, stream) => stream,
    };
    if server.over_capacity() && !Box::pin(server.make_room()).await {
        let response = closing_response(503, None, &[], b"server full");
        Box::pin(stream.refuse(&response)).await;
    } else {
        run(
            stream,
            remote,
            local,
            server.clone(),
            buf,
            Start::First { redirect },
        )
        .await;
    }
    server.task_done();
}

/// How a TLS server's connection starts.
enum Secured {
    Tls(Transport),
    /// Plain text that JS chose to carry on (`disableSSL()`).
    Plain(tokio::net::TcpStream),
    Dropped,
}

/// The TLS handshake, or, for plain text on the TLS port, JS's choice
/// (`lowError` code 1): only this connection waits for it.
async fn secure(
    tls: &Tls,
    tcp: tokio::net::TcpStream,
    server: &Server,
    remote: SocketAddr,
    local: SocketAddr,
) -> Secured {
    let limit = server.config.handshake_timeout;
    match tls.handshake(tcp, limit).await {
        Handshake::Done(s) => Secured::Tls(Transport::Tls(s)),
        Handshake::NotTls(tcp, seen) => {
            let code = LowError::NotTls as u32;
            if server
                .low_error(code, remote, local, LowData::Bytes(seen), limit)
                .await
            {
                Secured::Plain(tcp)
            } else {
                Secured::Dropped
            }
        }
        Handshake::Failed(code, what) => {
            let data = LowData::Text(what);
            server
                .low_error(code as u32, remote, local, data, limit)
                .await;
            Secured::Dropped
        }
        Handshake::Gone => Secured::Dropped,
    }
}

/// Where `run` starts.
#[derive(Clone, Copy)]
enum Start {
    /// A new connection; `redirect`: plain HTTP on a TLS port.
    First { redirect: bool },
    /// Back from the JS thread, with requests served already.
    Again,
}

/// Gives a connection the JS thread served back to an engine task,
/// which serves `read_ahead` (bytes of its next request) first, as on any
/// connection.
pub fn hand_back(idle: IdleConn, read_ahead: Vec<u8>) {
    resume(idle, move |stream, remote, local, server| {
        run(stream, remote, local, server, read_ahead, Start::Again)
    });
}

/// Closes a connection the JS thread served, the engine's way: our FIN
/// first, then reading briefly, so a client still sending does not get a
/// reset that destroys the response it has not read yet.
pub fn close(idle: IdleConn) {
    resume(idle, |stream, _, _, _| stream.refuse(b""));
}

/// Runs `then` on a new engine task for `idle`'s socket.
fn resume<F, Fut>(mut idle: IdleConn, then: F)
where
    F: FnOnce(Transport, SocketAddr, SocketAddr, Arc<Server>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (Some(stream), Ok(rt)) = (idle.take_stream(), super::runtime::handle()) else {
        return;
    };
    // The new task counts for the server's close (`idle`'s count ends
    // when it drops below).
    let server = idle.server.clone();
    server.task_started();
    let (remote, local) = (idle.remote, idle.local);
    drop(idle);
    rt.spawn(async move {
        if let Ok(stream) = tokio::net::TcpStream::from_std(stream) {
            then(Transport::Plain(stream), remote, local, server.clone()).await;
        }
        server.task_done();
    });
}

/// Whether an idle connection of `server` may move to its environment's
/// JS thread: when that thread serves keep-alive HTTP (the binding's
/// keep-alive executor opts in with `EventQueue::enable_keepalive`).
fn wanted(server: &Server, stream: &Transport) -> bool {
    cfg!(unix) && stream.is_plain() && !server.is_closing() && server.queue().keepalive_enabled()
}

/// Moves an idle keep-alive connection (its task ends) to the JS thread.
/// `idle_since` (`clock::mono_ms`) is when its last response ended: the
/// idle timeout runs from there, not from the move.
fn to_keepalive(
    stream: Transport,
    remote: SocketAddr,
    local: SocketAddr,
    server: Arc<Server>,
    idle_since: u64,
) {
    // Leaves the engine's epoll; the socket stays non-blocking.
    let Some(stream) = stream.into_std() else {
        return;
    };
    let queue = server.queue();
    let idle = IdleConn::new(stream, server, remote, local, idle_since);
    if let Some(idle) = queue.push_keepalive(idle) {
        // The environment stopped taking them meanwhile.
        hand_back(idle, Vec::new());
    }
}

/// Serves a connection: `buf` holds bytes already read from it, `first`
/// says whether it has had a request yet (a fresh connection, or one that
/// comes back from the keep-alive executor).
async fn run(
    mut stream: Transport,
    remote: SocketAddr,
    local: SocketAddr,
    server: Arc<Server>,
    mut buf: Vec<u8>,
    start: Start,
) {
    let (mut first, redirect) = match start {
        Start::First { redirect } => (true, redirect),
        Start::Again => (false, false),
    };
    // What requests tell JS of the TLS session (once per connection).
    let tls = stream.tls_info().map(Arc::new);
    let cfg = &server.config;
    // The request-head and keep-alive idle timeout: one timer for the
    // connection's life (see `IdleTimer`).
    let mut timer = IdleTimer::new(cfg.handshake_timeout);
    // Wakes the task for its HTTP responses (see `Exchange::waker`).
    let waker = Arc::new(AtomicWaker::new());
    // Dropped before an upgrade: a WebSocket closes by its own handshake.
    let closing = CloseWatch::new(&server);
    loop {
        if server.is_closing() {
            return; // closed while the last response went out
        }
        let head = next_head(
            &mut stream,
            &mut buf,
            cfg.max_header_size,
            &mut timer,
            &closing,
            first,
        );
        let head = match head.await {
            Awaited::Head(h) => Some(h),
            Awaited::Timeout => None,
            // Server closing, or asking an idle keep-alive connection to
            // make room: drop it, no request going.
            Awaited::Shed => return,
        };
        let (head, used) = match head {
            Some(Ok(h)) => h,
            Some(Err(HeadFailure::Closed)) => return,
            Some(Err(HeadFailure::Io(e))) => {
                server.emit_error(remote, local, tls.clone(), error_code(&e), e.to_string());
                return;
            }
            Some(Err(HeadFailure::Bad(e))) => {
                let response = closing_response(e.status(), None, &[], e.to_string().as_bytes());
                Box::pin(stream.refuse(&response)).await;
                server.emit_error(remote, local, tls.clone(), "HPE_INVALID", e.to_string());
                return;
            }
            // An idle keep-alive connection timing out is no error.
            None if !first => return,
            None => {
                server.emit_error(
                    remote,
                    local,
                    tls.clone(),
                    "ETIMEDOUT",
                    "handshake timeout".into(),
                );
                return;
            }
        };
        first = false;
        buf.drain(..used);
        let refusal = match route(&head, server.has_request_handler()) {
            Route::WebSocket => {
                // The WebSocket takes the connection from here.
                drop(timer);
                drop(closing);
                return Box::pin(super::upgrade::upgrade(
                    stream, head, buf, remote, local, server, tls,
                ))
                .await;
            }
            Route::NotWebSocket => closing_response(
                426,
                None,
                &[("Upgrade", "websocket")],
                b"this server speaks WebSocket",
            ),
            // Before the handler and any body; the connection closes, so
            // a body the client sends anyway is never read as a request.
            Route::Unmet => closing_response(417, None, &[], b"unsupported expectation"),
            Route::Plain | Route::WithBody => {
                // Inline, not boxed: a box per request costs more than
                // the few hundred bytes it would keep out of the task.
                let after = serve_one(
                    &mut stream,
                    &server,
                    head,
                    redirect,
                    &tls,
                    &mut buf,
                    remote,
                    local,
                    &mut timer,
                    &waker,
                    &closing,
                )
                .await;
                match after {
                    // Idle now, and the server asks for room (`make_room`).
                    After::Next if buf.is_empty() && server.take_shed() => return,
                    // Idle between requests with nothing read ahead: the JS
                    // thread may serve the connection from here on. (Not
                    // when the task learned of the response's end only from
                    // its timer: the head wait serves a request that came
                    // just then, or ends the connection on time.)
                    After::Next
                        if buf.is_empty()
                            && !timer.is_over()
                            && !redirect
                            && wanted(&server, &stream) =>
                    {
                        drop(closing);
                        let since = timer.since.unwrap_or_else(crate::clock::mono_ms);
                        to_keepalive(stream, remote, local, server, since);
                        return;
                    }
                    After::Next => {
                        // TLS: the response's last records before waiting.
                        if !stream.is_plain() && stream.flush().await.is_err() {
                            return;
                        }
                        continue;
                    }
                    After::Close => return Box::pin(stream.refuse(b"")).await,
                    After::Refuse(response, code, why) => {
                        server.emit_error(remote, local, tls.clone(), code, why);
                        return Box::pin(stream.refuse(&response)).await;
                    }
                }
            }
        };
        return Box::pin(stream.refuse(&refusal)).await;
    }
}

/// How the wait for a request head ended.
enum Awaited {
    Head(Result<(RequestHead, usize), HeadFailure>),
    /// `handshakeTimeout` passed (idle, or the head incomplete).
    Timeout,
    /// The server closes, or sheds idle connections for room.
    Shed,
}

/// Waits for the next request head: one already read (pipelined), or
/// read from the socket, until the idle timer or the server's close.
async fn next_head(
    stream: &mut Transport,
    buf: &mut Vec<u8>,
    max: usize,
    timer: &mut IdleTimer,
    closing: &CloseWatch<'_>,
    first: bool,
) -> Awaited {
    if !buf.is_empty() {
        if let Some(h) = parse_request_head(buf, max)
            .map_err(HeadFailure::Bad)
            .transpose()
        {
            return Awaited::Head(h);
        }
    }
    // Bytes of the next request have come: no longer idle.
    let begun = AtomicBool::new(!buf.is_empty());
    tokio::select! {
        // In this order, and without select!'s random start.
        biased;
        h = poll_fn(|cx| {
            let h = poll_head(stream, cx, buf, max);
            begun.store(!buf.is_empty(), Ordering::Relaxed);
            h
        }) => Awaited::Head(h),
        _ = poll_fn(|cx| timer.poll_expired(cx)) => Awaited::Timeout,
        _ = poll_fn(|cx| closing.poll_idle(cx, !first && !begun.load(Ordering::Relaxed))) => Awaited::Shed,
    }
}

enum HeadFailure {
    /// EOF before any byte: a probe or a client that changed its mind.
    Closed,
    Io(std::io::Error),
    Bad(HeadError),
}

/// Reads until `buf` (which holds no complete head) holds a request head.
fn poll_head(
    stream: &mut Transport,
    cx: &mut Context<'_>,
    buf: &mut Vec<u8>,
    max: usize,
) -> Poll<Result<(RequestHead, usize), HeadFailure>> {
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity().max(1024));
        }
        match std::task::ready!(stream.poll_recv(cx, buf)) {
            Ok(0) => {
                return Poll::Ready(Err(if buf.is_empty() {
                    HeadFailure::Closed
                } else {
                    HeadFailure::Io(std::io::ErrorKind::UnexpectedEof.into())
                }))
            }
            Ok(_) => {
                if let Some(done) = parse_request_head(buf, max).map_err(HeadFailure::Bad)? {
                    return Poll::Ready(Ok(done));
                }
            }
            Err(e) => return Poll::Ready(Err(HeadFailure::Io(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every connection's task holds its future for its whole life: keep it
    /// small (sub-futures are boxed; inline they made it 7 KiB).
    use super::super::transport::Transport;

    #[test]
    fn connection_future_stays_small() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let a = l.local_addr().unwrap();
            let s = Transport::Plain(tokio::net::TcpStream::connect(a).await.unwrap());
            let queue = super::super::events::EventQueue::new(Box::new(|| {}));
            let server =
                super::super::listener::bind("127.0.0.1", 0, Default::default(), queue).unwrap();
            let f = super::run(s, a, a, server.clone(), Vec::new(), super::Start::Again);
            let size = std::mem::size_of_val(&f);
            assert!(size <= 1024, "connection future is {size} bytes");
            drop(f);
            // And the task around it, from the accept.
            let s = Transport::Plain(tokio::net::TcpStream::connect(a).await.unwrap());
            let f = super::connection(server.clone(), s, a, a, Vec::new());
            let size = std::mem::size_of_val(&f);
            assert!(size <= 1280, "connection task is {size} bytes");
            drop(f);
            server.close(1001, "");
        });
    }
}
