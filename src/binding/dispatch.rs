//! One engine event as one call of the environment's JS dispatcher:
//! `dispatch(kind, …)` with the event's fields as JS values (HTTP requests
//! go in groups instead, `request_group`).

use napi::bindgen_prelude::ToNapiValue;
use napi::sys;

use super::connection::NativeConnection;
use super::env::EnvState;
use super::facts::{conn_info, socket_info};
use super::js;
use crate::engine::events::{Event, LowData};
use crate::engine::exchange::Notice;

/// Event kinds as the numbers the dispatcher takes (declared in `contract`).
pub mod kind {
    use super::super::contract::EventKind as K;

    const fn n(k: K) -> f64 {
        k as i32 as f64
    }
    pub const TEXT: f64 = n(K::Text);
    pub const BINARY: f64 = n(K::Binary);
    pub const CLOSE: f64 = n(K::Close);
    pub const PONG: f64 = n(K::Pong);
    pub const DRAIN: f64 = n(K::Drain);
    pub const ERROR: f64 = n(K::Error);
    pub const OPEN: f64 = n(K::Open);
    pub const ACCEPT: f64 = n(K::Accept);
    pub const SERVER_ERROR: f64 = n(K::ServerError);
    pub const SERVER_CLOSE: f64 = n(K::ServerClose);
    pub const ADOPT: f64 = n(K::Adopt);
    pub const REQUESTS: f64 = n(K::Requests);
    pub const RESPONSE_DRAIN: f64 = n(K::ResponseDrain);
    pub const RESPONSE_CLOSE: f64 = n(K::ResponseClose);
    pub const PEER_CLOSE: f64 = n(K::PeerClose);
    pub const SENT: f64 = n(K::Sent);
    pub const LOW_ERROR: f64 = n(K::LowError);
    pub const BACKPLANE: f64 = n(K::Backplane);
}

/// Calls `f`, the dispatcher, for `ev`.
///
/// # Safety
/// On the JS thread of `env`, inside a handle scope.
pub unsafe fn deliver(env: sys::napi_env, state: &EnvState, f: sys::napi_value, ev: Event) {
    use kind::*;
    // SAFETY (whole body): on the JS thread of `env`, inside a handle scope
    // opened by the caller.
    unsafe {
        let n = |x: f64| js::number(env, x);
        match ev {
            Event::Message {
                conn,
                text,
                start,
                len,
            } => {
                let data = bytes_value(env, state, text, start, len);
                let kind = if text { TEXT } else { BINARY };
                js::call(env, f, &[n(kind), n(conn as f64), data]);
            }
            Event::Pong { conn, start, len } => {
                let data = bytes_value(env, state, false, start, len);
                js::call(env, f, &[n(PONG), n(conn as f64), data]);
            }
            Event::Drain { conn } => js::call(env, f, &[n(DRAIN), n(conn as f64)]),
            Event::Sent { conn, upto } => {
                js::call(env, f, &[n(SENT), n(conn as f64), n(upto as f64)])
            }
            Event::Error {
                conn,
                code,
                message,
            } => js::call(
                env,
                f,
                &[
                    n(ERROR),
                    n(conn as f64),
                    js::string(env, code.as_bytes()),
                    js::string(env, message.as_bytes()),
                ],
            ),
            Event::PeerClose { conn, code, reason } => {
                // The handlers of the messages before it have run: what they
                // sent is queued, and our close frame goes after it.
                conn.answer_close(code, &reason);
                js::call(env, f, &[n(PEER_CLOSE), n(conn.id as f64)]);
            }
            Event::Close { conn, code, reason } => {
                state.conns.borrow_mut().remove(&conn);
                js::call(
                    env,
                    f,
                    &[
                        n(CLOSE),
                        n(conn as f64),
                        n(code as f64),
                        js::string(env, reason.as_bytes()),
                    ],
                );
            }
            Event::Open { server, conn } => open_or_accept(env, state, f, OPEN, server, conn),
            Event::Accept { server, conn } => open_or_accept(env, state, f, ACCEPT, server, conn),
            Event::Adopt {
                token,
                destination,
                conn,
                data,
            } => {
                state.moving.borrow_mut().push(conn.clone());
                state.conns.borrow_mut().insert(conn.id, conn.clone());
                let id = conn.id;
                let info = conn_info(env, &conn.info);
                let Ok(handle) = NativeConnection::to_napi_value(env, NativeConnection::new(conn))
                else {
                    return;
                };
                js::call(
                    env,
                    f,
                    &[
                        n(ADOPT),
                        n(token as f64),
                        handle,
                        info,
                        n(id as f64),
                        js::string(env, destination.as_bytes()),
                        match data {
                            Some(d) => js::arraybuffer(env, &d),
                            None => js::undefined(env),
                        },
                    ],
                );
            }
            Event::ServerError {
                server,
                remote,
                local,
                tls,
                code,
                message,
            } => {
                let info = socket_info(env, remote, local, tls.as_deref());
                js::call(
                    env,
                    f,
                    &[
                        n(SERVER_ERROR),
                        n(server as f64),
                        info,
                        js::string(env, code.as_bytes()),
                        js::string(env, message.as_bytes()),
                    ],
                );
            }
            Event::LowError {
                server,
                code,
                remote,
                local,
                data,
                decide,
            } => {
                // Before any TLS session: no TLS facts.
                let info = socket_info(env, remote, local, None);
                let data = match &data {
                    LowData::Bytes(b) => js::arraybuffer(env, b),
                    LowData::Text(t) => js::string(env, t.as_bytes()),
                };
                js::call(
                    env,
                    f,
                    &[
                        n(LOW_ERROR),
                        n(server as f64),
                        n(f64::from(code)),
                        info,
                        data,
                        n(decide as f64),
                    ],
                );
            }
            // Delivered in groups by `deliver_requests`.
            Event::Request { exchange, .. } => exchange.abort(),
            Event::Response { exchange, notice } => {
                let kind = match notice {
                    Notice::Drain => RESPONSE_DRAIN,
                    Notice::Close => {
                        // Nothing JS does with it can reach the client now.
                        state.exchanges.borrow_mut().remove(&exchange);
                        RESPONSE_CLOSE
                    }
                };
                js::call(env, f, &[n(kind), n(exchange as f64)]);
            }
            Event::ShedIdle { server } => {
                if let Some(keepalive) = state.keepalive.as_ref() {
                    keepalive.shed_idle(server);
                }
            }
            Event::KeepAlive { conn } => match state.keepalive.as_ref() {
                Some(keepalive) => keepalive.adopt(conn),
                None => crate::engine::connection::hand_back(conn, Vec::new()),
            },
            Event::Backplane {
                server,
                what,
                id,
                text,
            } => js::call(
                env,
                f,
                &[
                    n(BACKPLANE),
                    n(server as f64),
                    n(f64::from(what)),
                    n(id as f64),
                    js::string(env, text.as_bytes()),
                ],
            ),
            Event::ServerClose { server } => {
                state.servers.borrow_mut().remove(&server);
                js::call(env, f, &[n(SERVER_CLOSE), n(server as f64)]);
            }
        }
    }
}

unsafe fn open_or_accept(
    env: sys::napi_env,
    state: &EnvState,
    f: sys::napi_value,
    kind: f64,
    server: u64,
    conn: std::sync::Arc<crate::engine::conn::Conn>,
) {
    // SAFETY (whole body): on the JS thread of `env`, inside a handle scope.
    unsafe {
        state.conns.borrow_mut().insert(conn.id, conn.clone());
        let id = conn.id;
        let handle_info = conn.info.clone();
        let handle = match NativeConnection::to_napi_value(env, NativeConnection::new(conn)) {
            Ok(h) => h,
            Err(_) => return,
        };
        // An accept handler reads the request at once; an open without one
        // often never does: JS asks for it then (`NativeConnection::info`).
        let info = if kind == kind::ACCEPT {
            conn_info(env, &handle_info)
        } else {
            js::undefined(env)
        };
        js::call(
            env,
            f,
            &[
                js::number(env, kind),
                js::number(env, server as f64),
                handle,
                info,
                js::number(env, id as f64),
            ],
        );
    }
}

/// Message bytes of the batch being delivered, as a JS string or ArrayBuffer.
unsafe fn bytes_value(
    env: sys::napi_env,
    state: &EnvState,
    text: bool,
    start: usize,
    len: usize,
) -> sys::napi_value {
    let cur = state.current.borrow();
    let data = &cur.arena[start..start + len];
    // SAFETY: on the JS thread of `env`, inside a handle scope.
    unsafe {
        if text {
            js::string(env, data)
        } else {
            js::arraybuffer(env, data)
        }
    }
}
