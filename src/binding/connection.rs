//! `NativeConnection`: the JS handle of one connection. Methods return small
//! status numbers instead of throwing; index.js turns them into errors of the
//! right class (`TypeError`, `RangeError`, `Error` with `code`).

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::engine::conn::{Conn, ConnError};
use crate::protocol::frame::OpCode;

/// Status numbers shared with index.js.
pub mod status {
    use super::super::contract::CallStatus as S;

    pub const OK: i32 = S::Ok as i32;
    pub const FULL: i32 = S::Full as i32;
    pub const NOT_OPEN: i32 = S::NotOpen as i32;
    pub const ALREADY_DECIDED: i32 = S::AlreadyDecided as i32;
    pub const PROTOCOL_NOT_OFFERED: i32 = S::ProtocolNotOffered as i32;
    pub const BAD_CLOSE_CODE: i32 = S::BadCloseCode as i32;
    pub const BAD_TYPE: i32 = S::BadType as i32;
    pub const GONE: i32 = S::Gone as i32;
}

fn code(e: ConnError) -> i32 {
    match e {
        ConnError::NotOpen => status::NOT_OPEN,
        ConnError::AlreadyDecided => status::ALREADY_DECIDED,
        ConnError::ProtocolNotOffered => status::PROTOCOL_NOT_OFFERED,
        ConnError::BadCloseCode => status::BAD_CLOSE_CODE,
        ConnError::Gone => status::GONE,
    }
}

fn done(r: std::result::Result<(), ConnError>) -> i32 {
    r.map(|_| status::OK).unwrap_or_else(code)
}

fn sent(r: std::result::Result<bool, ConnError>) -> i32 {
    match r {
        Ok(true) => status::OK,
        Ok(false) => status::FULL,
        Err(e) => code(e),
    }
}

/// A server-side WebSocket connection, owned by the engine. index.js wraps
/// it in the user-facing `ws` object.
#[napi]
pub struct NativeConnection {
    pub(super) conn: Arc<Conn>,
}

impl NativeConnection {
    pub(crate) fn new(conn: Arc<Conn>) -> Self {
        NativeConnection { conn }
    }
}

#[napi]
impl NativeConnection {
    /// Process-wide id of the connection (events name it).
    #[napi(getter)]
    pub fn id(&self) -> f64 {
        self.conn.id as f64
    }

    /// Accepts a pending upgrade with an optional subprotocol.
    #[napi]
    pub fn accept(&self, protocol: Option<String>) -> i32 {
        done(self.conn.accept(protocol.as_deref()))
    }

    /// Refuses a pending upgrade with an HTTP status (default 403).
    #[napi]
    pub fn reject(&self, status: Option<u32>, reason: Option<String>) -> i32 {
        let status = status.unwrap_or(403).min(999) as u16;
        done(self.conn.reject(status, reason.as_deref()))
    }

    /// Queues a text frame.
    #[napi]
    pub fn send_text(&self, text: String) -> i32 {
        sent(self.conn.send(OpCode::Text, text.as_bytes()))
    }

    /// Queues a binary frame with exactly the view's bytes.
    #[napi]
    pub fn send_binary(&self, data: Uint8ArraySlice) -> i32 {
        sent(self.conn.send(OpCode::Binary, &data))
    }

    /// Sends a ping (payload cut to 125 bytes).
    #[napi]
    pub fn ping(&self, data: Option<Uint8ArraySlice>) -> i32 {
        done(self.conn.ping(data.as_deref().unwrap_or(&[])))
    }

    /// Starts the closing handshake (code and reason checked by index.js).
    #[napi]
    pub fn close(&self, code: u32, reason: String) -> i32 {
        let code = u16::try_from(code).unwrap_or(0);
        done(self.conn.close(code, &reason))
    }

    /// Drops the connection without a closing handshake.
    #[napi]
    pub fn terminate(&self) {
        self.conn.terminate()
    }

    /// Stops (`true`) or resumes reading from the socket.
    #[napi]
    pub fn set_blocked(&self, blocked: bool) {
        self.conn.set_blocked(blocked)
    }

    /// TCP_NODELAY on or off.
    #[napi]
    pub fn set_no_delay(&self, on: bool) {
        self.conn.set_nodelay(on)
    }

    /// For a send callback: `[target, handed]`, the queue total it waits
    /// for and the total with the socket now (an `Event::Sent` comes once
    /// `handed` reaches `target`, if it has not already).
    #[napi]
    pub fn watch_sent(&self) -> Vec<f64> {
        let (target, sent) = self.conn.watch_sent();
        vec![target as f64, sent as f64]
    }

    /// Waits for `target` (the next callback's) after an `Event::Sent`;
    /// returns the total with the socket now.
    #[napi]
    pub fn watch_sent_at(&self, target: f64) -> f64 {
        self.conn.watch_sent_at(target as u64) as f64
    }

    /// Bytes handed to the socket so far, as they were queued.
    #[napi(getter)]
    pub fn sent_total(&self) -> f64 {
        self.conn.sent_total() as f64
    }

    /// Bytes queued and not yet written to the socket.
    #[napi(getter)]
    pub fn buffered_amount(&self) -> f64 {
        self.conn.buffered_amount() as f64
    }

    /// The subprotocol chosen at accept, or "".
    #[napi(getter)]
    pub fn protocol(&self) -> String {
        self.conn.protocol()
    }

    /// The upgrade request as `lib/connection.js` reads it (see
    /// `facts::conn_info`), made when JS first needs it: a connection
    /// whose headers are never read costs no JS strings for them.
    #[napi]
    pub fn info<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        // SAFETY: on the JS thread of `env` (a napi method call), inside
        // the call's handle scope.
        unsafe {
            let v = super::facts::conn_info(env.raw(), &self.conn.info);
            Unknown::from_napi_value(env.raw(), v)
        }
    }

    /// The agreed extensions (`Sec-WebSocket-Extensions` answer), or "".
    #[napi(getter)]
    pub fn extensions(&self) -> String {
        self.conn.extensions.clone()
    }
}

/// Registers this environment to receive one connection posted to
/// `destination` (`standing`: every one until cancelled); returns the
/// token the arrivals will carry.
#[napi]
pub fn thread_accept(env: Env, destination: String, standing: Option<bool>) -> Result<f64> {
    let state = super::env::EnvState::get(&env)?;
    let token = crate::engine::handoff::register(
        &destination,
        state.queue.clone(),
        standing.unwrap_or(false),
    );
    Ok(token as f64)
}

/// Cancels the registration `token`; false when it was used or cancelled.
#[napi]
pub fn thread_cancel(token: f64) -> bool {
    crate::engine::handoff::unregister(token as u64)
}

/// Moves `connection` to the next receiver of `destination`, with `data`
/// (serialized by JS) for it. False when no receiver is registered (the
/// connection stays here).
#[napi]
pub fn thread_post(
    env: Env,
    destination: String,
    connection: &NativeConnection,
    data: Option<Uint8Array>,
) -> Result<bool> {
    let state = super::env::EnvState::get(&env)?;
    let conn = connection.conn.clone();
    let id = conn.id;
    let data = data.map(|d| d.to_vec());
    let moved = crate::engine::handoff::post(&conn, &destination, data, |earlier| {
        // Events for it still queued here: the rest of the batch being
        // delivered, then what arrived since.
        state.current.borrow_mut().extract_conn(id, earlier);
        state.queue.lock().extract_conn(id, earlier);
    });
    if moved {
        state.conns.borrow_mut().remove(&id);
        state.moving.borrow_mut().retain(|c| c.id != id);
    }
    Ok(moved)
}
