//! Where a request goes: the rules every executor applies to a request
//! head, once (the engine task and the JS thread's keep-alive keep-alive executor alike).

use super::body::{body_kind, unmet_expectation, BodyKind};
use super::head::{Field, RequestHead};
use crate::protocol::handshake::UpgradeHeaders;

/// The way a request head goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// An upgrade to a WebSocket (its handshake may still fail: 400/426).
    WebSocket,
    /// No request handler: answered 426, this server speaks WebSocket.
    NotWebSocket,
    /// An `Expect` the server cannot meet: answered 417 before any body.
    Unmet,
    /// To the request handler, with no body to read and nothing unusual:
    /// what the JS thread's keep-alive executor may serve itself.
    Plain,
    /// To the request handler, after its body (or its `100 Continue`), or
    /// a head whose framing is bad (answered 400): the engine's.
    WithBody,
}

/// Routes `head` for a server that has (or not) a request handler.
pub fn route(head: &RequestHead, has_request_handler: bool) -> Route {
    if asks_websocket(head, has_request_handler) {
        Route::WebSocket
    } else if !has_request_handler {
        Route::NotWebSocket
    } else if unmet_expectation(head) {
        Route::Unmet
    } else if matches!(body_kind(head), Ok(BodyKind::None)) && !head.has_field(Field::Expect) {
        Route::Plain
    } else {
        Route::WithBody
    }
}

/// Whether a request goes the WebSocket way (RFC 6455 §4.2.1), where a
/// malformed upgrade gets 400. With a request handler, only a real upgrade
/// does: `Upgrade: websocket` named in `Connection` (RFC 9110 §7.6.1), on
/// HTTP/1.1 (§7.8: an HTTP/1.0 `Upgrade` MUST be ignored); other requests
/// reach the handler, as in Node. Without one, any `Upgrade: websocket`
/// does, so its 400 says what is wrong rather than a 426. The header check
/// first spares the scan for plain requests.
fn asks_websocket(head: &RequestHead, has_request_handler: bool) -> bool {
    if !head.has_field(Field::Upgrade) {
        return false;
    }
    let u = UpgradeHeaders::scan(head.header_pairs());
    u.upgrade_websocket && (!has_request_handler || (u.connection_upgrade && head.minor == 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::parse_request_head;

    fn route_of(req: &str, handler: bool) -> Route {
        let (head, _) = parse_request_head(req.as_bytes(), 8192).unwrap().unwrap();
        route(&head, handler)
    }

    #[test]
    fn routes() {
        let up = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
        assert_eq!(route_of(up, true), Route::WebSocket);
        assert_eq!(route_of(up, false), Route::WebSocket);
        // Without `Connection: upgrade`, or on HTTP/1.0: a plain request
        // for a handler, a (failing) upgrade without one.
        let half = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n";
        assert_eq!(route_of(half, true), Route::Plain);
        assert_eq!(route_of(half, false), Route::WebSocket);
        let old = "GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
        assert_eq!(route_of(old, true), Route::Plain);
        let get = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(route_of(get, false), Route::NotWebSocket);
        assert_eq!(route_of(get, true), Route::Plain);
        let post = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(route_of(post, true), Route::WithBody);
        let cont =
            "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(route_of(cont, true), Route::WithBody);
        let odd = "GET / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n";
        assert_eq!(route_of(odd, true), Route::Unmet);
    }
}
