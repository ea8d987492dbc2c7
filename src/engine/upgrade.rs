//! The WebSocket handshake on the server's side (RFC 6455 §4.2): the
//! upgrade request checked, extensions negotiated, JS's decision awaited
//! (`accept`/`reject`), then the session (`session`) runs the connection.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::time::sleep;

use super::conn::{Conn, Phase};
use super::events::{ConnInfo, Event};
use super::server::Server;
use super::session::Session;
use super::tls::TlsInfo;
use super::topics::DeflateKey;
use super::transport::Transport;
use super::ServerConfig;
use crate::http::head::RequestHead;
use crate::http::response::closing_response;
use crate::protocol::close;
use crate::protocol::deflate::{negotiate, Agreed};
use crate::protocol::handshake::UpgradeHeaders;

/// The upgrade request `head` asked for a WebSocket; `leftover` is what
/// came after it (early frames).
pub(super) async fn upgrade(
    stream: Transport,
    head: RequestHead,
    leftover: Vec<u8>,
    remote: SocketAddr,
    local: SocketAddr,
    server: Arc<Server>,
    tls: Option<Arc<TlsInfo>>,
) {
    let cfg = &server.config;
    let Handshake {
        key,
        protocols,
        extensions,
        agreed,
        compress,
    } = match handshake(&head, cfg) {
        Ok(h) => h,
        Err(refusal) => {
            Box::pin(stream.refuse(&refusal.response)).await;
            server.emit_error(remote, local, tls, refusal.code, refusal.message);
            return;
        }
    };
    // Without context takeover each message is compressed alone, so a
    // publish can compress once for every such subscriber.
    let shared_deflate = match (&agreed, cfg.deflate.as_ref()) {
        (Some(a), Some(d)) if compress && a.server_no_context_takeover => Some(DeflateKey {
            bits: a.server_max_window_bits,
            level: d.level,
            threshold: d.threshold,
        }),
        _ => None,
    };
    let info = Arc::new(ConnInfo {
        head,
        remote,
        local,
        protocols,
        tls,
    });
    let conn = Conn::new(
        server.id,
        cfg,
        server.queue(),
        key,
        info,
        extensions,
        compress,
        server.topics.clone(),
        shared_deflate,
    );
    if !server.register(&conn) {
        let response = closing_response(503, None, &[], b"server closing or full");
        Box::pin(stream.refuse(&response)).await;
        return;
    }
    if server.has_accept_handler() {
        conn.emit(Event::Accept {
            server: server.id,
            conn: conn.clone(),
        });
        let decision = Box::pin(wait_decision(&conn, &stream, cfg.handshake_timeout)).await;
        if matches!(decision, Decision::Late)
            && conn
                .reject(503, Some("the server did not decide in time"))
                .is_ok()
        {
            server.emit_error(
                remote,
                local,
                conn.info.tls.clone(),
                "ETIMEDOUT",
                "upgrade not accepted or rejected within handshakeTimeout".into(),
            );
        }
    } else {
        let _ = conn.accept(None);
        conn.emit(Event::Open {
            server: server.id,
            conn: conn.clone(),
        });
    }

    let open = matches!(conn.lock().phase, Phase::Open);
    if open {
        // The session runs in a task of its own, so what stays allocated
        // for the connection's life is the session's state (~0.5 KiB),
        // not this function's and the HTTP task's (~2 KiB together).
        let session = Session::new(stream, conn.clone(), leftover, cfg, agreed);
        server.task_started();
        tokio::spawn(run_session(session, conn, server));
    } else {
        // Rejected (or terminated) before opening: send what is queued.
        let out = std::mem::take(&mut conn.lock().out);
        Box::pin(stream.refuse(&out)).await;
        conn.set_closed();
        // JS has a (pending) object for it: tell it the connection is gone.
        conn.emit(Event::Close {
            conn: conn.id,
            code: close::ABNORMAL,
            reason: String::new(),
        });
        server.unregister(conn.id);
    }
}

/// An open WebSocket's life, then its socket's lingering close.
async fn run_session(mut session: Session, conn: Arc<Conn>, server: Arc<Server>) {
    let (code, reason) = poll_fn(|cx| session.poll_run(cx)).await;
    // No direct write from here on: the socket closes below.
    conn.set_closed();
    conn.emit(Event::Close {
        conn: conn.id,
        code,
        reason,
    });
    // Only the socket lingers: buffers and (de)compressors go now.
    Box::pin(session.into_transport().linger()).await;
    server.unregister(conn.id);
    server.task_done();
}

/// What an acceptable upgrade request asked for.
struct Handshake {
    key: Vec<u8>,
    protocols: Vec<String>,
    /// The `Sec-WebSocket-Extensions` answer ("" when none was agreed).
    extensions: String,
    agreed: Option<Agreed>,
    /// Outgoing messages are compressed.
    compress: bool,
}

/// Why an upgrade request was refused: the response, and the error event.
struct Refusal {
    response: Vec<u8>,
    code: &'static str,
    message: String,
}

/// Checks an upgrade request (RFC 6455 §4.2.1) against `path` and
/// negotiates permessage-deflate (RFC 7692 §5: the first acceptable
/// offer; none is no failure).
fn handshake(head: &RequestHead, cfg: &ServerConfig) -> Result<Handshake, Refusal> {
    if let Some(path) = cfg.path.as_deref() {
        let target = head.target();
        if target.split('?').next() != Some(path) {
            return Err(Refusal {
                response: closing_response(400, None, &[], b"no WebSocket at this path"),
                code: "WS_ERR_PATH",
                message: format!("upgrade to {target} refused (path is {path})"),
            });
        }
    }
    let up = UpgradeHeaders::scan(head.header_pairs());
    let key = match up.validate(head.method(), head.minor) {
        Ok(k) => k.to_vec(),
        Err(e) => {
            let extra: &[(&str, &str)] = if e.status() == 426 {
                &[("Sec-WebSocket-Version", "13")]
            } else {
                &[]
            };
            return Err(Refusal {
                response: closing_response(e.status(), None, extra, e.to_string().as_bytes()),
                code: "WS_ERR_HANDSHAKE",
                message: e.to_string(),
            });
        }
    };
    let agreed = match &cfg.deflate {
        Some(dc) if !up.extensions.is_empty() => negotiate(&up.extensions, dc),
        _ => None,
    };
    let compress = agreed.is_some() && cfg.deflate.as_ref().is_some_and(|d| d.compress);
    let (extensions, agreed) = match agreed {
        Some((header, a)) => (header, Some(a)),
        None => (String::new(), None),
    };
    Ok(Handshake {
        key,
        protocols: up.protocols.clone(),
        extensions,
        agreed,
        compress,
    })
}

/// How the wait for JS's accept/reject ended.
enum Decision {
    /// Accepted, rejected or terminated by JS.
    Made,
    /// The client left (FIN or reset): the connection is terminated.
    Gone,
    /// Not decided within the limit.
    Late,
}

/// Waits until JS accepted, rejected or terminated the connection, the
/// client went away (the connection is then terminated), or `limit`
/// passed (zero: no limit). Frames the client sent after its request stay
/// in the socket for the session.
async fn wait_decision(conn: &Conn, stream: &Transport, limit: Duration) -> Decision {
    let decided = poll_fn(|cx| {
        conn.waker.register(cx.waker());
        let g = conn.lock();
        if !matches!(g.phase, Phase::Pending { .. }) || g.terminate {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    });
    let late = async {
        if limit.is_zero() {
            std::future::pending::<()>().await;
        }
        sleep(limit).await
    };
    tokio::select! {
        biased;
        _ = decided => Decision::Made,
        _ = stream.left() => {
            conn.terminate();
            Decision::Gone
        }
        _ = late => Decision::Late,
    }
}
