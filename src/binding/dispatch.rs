//! Delivering engine events to JS: one threadsafe-function wake drains the
//! whole batch, calling the environment's dispatcher once per event. The
//! deliveries of one event-loop turn that run past [`TURN_BUDGET_MS`] stop
//! and go on in the loop's next turn ([`Resume`]), so timers, immediates
//! and other I/O are not starved by a flood of events for slow handlers.

use std::ffi::c_void;
use std::ptr;

use napi::bindgen_prelude::ToNapiValue;
use napi::sys;

use super::connection::NativeConnection;
use super::contract::{RequestField, RequestFlag, METHODS};
use super::env::EnvState;
use super::js;
use super::lane::{self, Lane};
use super::pacing::{self, GroupSize, Resume, MAX_REQUESTS, TURN_BUDGET_MS};
use crate::engine::exchange::Notice;
use crate::engine::sink::{ConnInfo, Event};
use std::net::SocketAddr;

/// Event kinds as the numbers `dispatch` takes (declared in `contract`).
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
}

/// The threadsafe function's callback, on the environment's JS thread.
///
/// # Safety
/// Called by Node with `context` = the `EnvState` given at creation. `env`
/// is null when the function is being finalized: then nothing is touched.
pub unsafe extern "C" fn on_wake(
    env: sys::napi_env,
    _js_cb: sys::napi_value,
    context: *mut c_void,
    _data: *mut c_void,
) {
    if env.is_null() || context.is_null() {
        return;
    }
    // No panic may unwind into Node (it would abort the process): report it
    // and carry on with the next wake.
    let run = std::panic::AssertUnwindSafe(|| {
        // SAFETY: as documented on this function.
        unsafe { drain(env, context) }
    });
    if std::panic::catch_unwind(run).is_err() {
        eprintln!("sack: internal error while delivering events (please report)");
        // SAFETY: as in `drain`.
        unsafe { &*(context as *const EnvState) }.recover();
    }
}

/// Delivers queued events of this environment: what was left by a delivery
/// that yielded, then the engine's queue, until the turn's deliveries have
/// run for [`TURN_BUDGET_MS`]. The clock is looked at before every event
/// (a coarse clock read costs nanoseconds, an event far more); one group
/// of HTTP requests is one JS call and is not cut.
///
/// # Safety
/// As `on_wake`, with `env` and `context` not null.
unsafe fn drain(env: sys::napi_env, context: *mut c_void) {
    // SAFETY: see above; the state is never freed.
    let state = unsafe { &*(context as *const EnvState) };
    if state.resume.as_ref().is_some_and(|r| r.pending()) {
        // A delivery yielded: its resume goes on, in order, and takes the
        // engine's queue after what it left.
        return;
    }
    // Left over from a delivery that yielded (its events come first), or
    // the engine's queue.
    let mut took = false;
    if state.current.borrow().events.is_empty() {
        refill(state);
        took = true;
    }
    // Obtained in the callback's own scope, so valid in every per-event one.
    let dispatcher = state.dispatcher();
    // The turn's budget, shared by every delivery of the turn: Node may
    // call several in a row.
    let started = match state.resume.as_ref() {
        Some(r) => r.turn_start(),
        None => crate::clock::mono_ms(),
    };
    crate::engine::flush::begin_batch();
    loop {
        if crate::clock::mono_ms().wrapping_sub(started) >= TURN_BUDGET_MS && state.yield_turn(took)
        {
            break;
        }
        let mut requests = Vec::new();
        let next = {
            let mut cur = state.current.borrow_mut();
            let mut ev = cur.events.pop_front();
            // HTTP requests in a row go to JS in one call.
            if let Some(Event::Request { .. }) = ev {
                requests.extend(ev.take());
                while requests.len() < state.group.get()
                    && matches!(cur.events.front(), Some(Event::Request { .. }))
                {
                    requests.extend(cur.events.pop_front());
                }
            }
            // The batch's last event may answer straight to its socket.
            crate::engine::flush::set_last_event(
                cur.events.is_empty() && state.moving.borrow().is_empty(),
            );
            ev
        };
        if !requests.is_empty() {
            // SAFETY: as for a single event below.
            unsafe {
                let _scope = js::Scope::open(env);
                deliver_requests(env, state, dispatcher, &mut requests);
            }
            continue;
        }
        let Some(ev) = next else {
            // Connections posted here: deliver what was held while they
            // moved, until none is left and their events flow directly.
            if release_moving(state) {
                continue;
            }
            if !took {
                // The leftovers are done: now the engine's queue.
                refill(state);
                took = true;
                continue;
            }
            break;
        };
        // A scope per event keeps the handles of a large batch from piling
        // up. SAFETY: on the JS thread of `env`; every value is created in
        // this scope and used before it closes.
        unsafe {
            let _scope = js::Scope::open(env);
            deliver(env, state, dispatcher, ev);
        }
    }
    crate::engine::flush::end_batch();
    let done = state.current.borrow().events.is_empty();
    if done {
        let mut batch = state.current.take();
        batch.clear();
        state.spare.replace(batch);
    }
}

/// Makes the engine's queue the current batch (the current one must be
/// delivered) and clears the wake flag, so what the engine queues from now
/// on wakes this environment again.
fn refill(state: &EnvState) {
    let mut batch = state.spare.take();
    state.sink.take(&mut batch);
    let mut old = std::mem::replace(&mut *state.current.borrow_mut(), batch);
    old.clear();
    state.spare.replace(old);
}

impl EnvState {
    /// The delivery ran out of its turn: asks for the rest to come in the
    /// loop's next turn. False where it cannot (no resume handle), or when
    /// nothing is left (`took`: the engine's queue was taken already, and
    /// the engine has queued nothing since).
    fn yield_turn(&self, took: bool) -> bool {
        let Some(r) = self.resume.as_ref() else {
            return false;
        };
        let left = !self.current.borrow().events.is_empty()
            || !self.moving.borrow().is_empty()
            || self.sink.is_scheduled();
        if took && !left {
            return false;
        }
        r.send()
    }

    /// After an internal error (a caught panic) in a delivery: what is left
    /// goes on in the next turn rather than waiting for a wake that the
    /// engine, seeing its flag set, will not send.
    fn recover(&self) {
        if let Some(r) = self.resume.as_ref() {
            r.clear();
        }
        self.yield_turn(false);
    }
}

impl pacing::Host for EnvState {
    fn resume(&self) -> Option<&Resume<Self>> {
        self.resume.as_ref()
    }

    fn env(&self) -> sys::napi_env {
        self.env
    }

    unsafe fn drain(&self) {
        // SAFETY: as the caller guarantees; the state is never freed.
        unsafe { drain(self.env, self as *const EnvState as *mut c_void) }
    }

    fn recover(&self) {
        EnvState::recover(self)
    }
}

impl lane::Host for EnvState {
    fn lane(&self) -> Option<&Lane<Self>> {
        self.lane.as_ref()
    }

    fn env(&self) -> sys::napi_env {
        self.env
    }

    fn dispatcher(&self) -> sys::napi_value {
        EnvState::dispatcher(self)
    }

    fn group(&self) -> &GroupSize {
        &self.group
    }

    unsafe fn deliver_requests(&self, f: sys::napi_value, requests: &mut Vec<Event>) {
        // SAFETY: as the caller guarantees.
        unsafe { deliver_requests(self.env, self, f, requests) }
    }
}

/// Moves held events of arriving connections into the current batch.
/// Returns whether there is anything new to deliver.
fn release_moving(state: &EnvState) -> bool {
    let moving = state.moving.take();
    if moving.is_empty() {
        return false;
    }
    let mut more = false;
    let mut still = Vec::new();
    for conn in moving {
        if let Some(held) = conn.take_held(&state.sink) {
            state.current.borrow_mut().append(held);
            more = true;
            still.push(conn);
        }
    }
    state.moving.borrow_mut().extend(still);
    more
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

unsafe fn conn_info(env: sys::napi_env, info: &ConnInfo) -> sys::napi_value {
    // SAFETY (whole body): on the JS thread of `env`, inside a handle scope.
    unsafe {
        let mut raw = Vec::with_capacity(info.head.header_count() * 2);
        for (n, v) in info.head.headers() {
            raw.push(js::string(env, n.as_bytes()));
            raw.push(js::string(env, v.as_bytes()));
        }
        let protocols: Vec<_> = info
            .protocols
            .iter()
            .map(|p| js::string(env, p.as_bytes()))
            .collect();
        js::array(
            env,
            &[
                js::string(env, info.head.target().as_bytes()),
                js::array(env, &raw),
                js::string(env, info.remote.ip().to_string().as_bytes()),
                js::number(env, info.remote.port() as f64),
                js::string(env, info.local.ip().to_string().as_bytes()),
                js::number(env, info.local.port() as f64),
                js::array(env, &protocols),
                js::string(env, info.head.method().as_bytes()),
                js::number(env, info.head.minor as f64),
            ],
        )
    }
}

/// Numbers per request in `deliver_requests`'s Float64Array.
const REQUEST_STRIDE: usize = RequestField::Stride as usize;

/// The length of `s` in UTF-16 units: a JS string's length.
fn js_length(s: &str) -> f64 {
    if s.is_ascii() {
        s.len() as f64
    } else {
        s.encode_utf16().count() as f64
    }
}

/// The position of `?` in `s` in UTF-16 units (-1 for none): JS then needs
/// no search.
fn js_query_at(s: &str) -> f64 {
    s.find('?').map_or(-1.0, |q| js_length(&s[..q]))
}

/// An address as one number: IPv4 as `ip * 65536 + port` (exact in a
/// double), an IPv4-mapped IPv6 one as `-(that) - 1`; `None` for others.
fn address_number(a: SocketAddr) -> Option<f64> {
    let (v4, mapped) = match a {
        SocketAddr::V4(v4) => (*v4.ip(), false),
        SocketAddr::V6(v6) => (v6.ip().to_ipv4_mapped()?, true),
    };
    let n = f64::from(u32::from(v4)) * 65536.0 + f64::from(a.port());
    Some(if mapped { -n - 1.0 } else { n })
}

/// The Float64Array for a group's numbers, with room for `len`: the
/// environment's own one, made once and reused (JS reads it only during
/// the call, and deliveries never nest: they come only from libuv
/// callbacks), or a new one for a group larger than that.
///
/// # Safety
/// On the JS thread of `env`, inside a handle scope.
unsafe fn request_numbers(
    env: sys::napi_env,
    state: &EnvState,
    len: usize,
) -> (sys::napi_value, *mut f64) {
    const KEPT: usize = MAX_REQUESTS * REQUEST_STRIDE;
    // SAFETY (whole body): as documented; out-pointers are locals; the kept
    // array's data stays where it is (JS never detaches it).
    unsafe {
        let (kept, kept_data) = state.request_nums.get();
        if len <= KEPT && !kept.is_null() {
            let mut v = ptr::null_mut();
            sys::napi_get_reference_value(env, kept, &mut v);
            if !v.is_null() {
                return (v, kept_data);
            }
        }
        let size = if len <= KEPT { KEPT } else { len };
        let mut data: *mut c_void = ptr::null_mut();
        let mut ab = ptr::null_mut();
        let mut v = ptr::null_mut();
        sys::napi_create_arraybuffer(env, size * 8, &mut data, &mut ab);
        sys::napi_create_typedarray(env, sys::TypedarrayType::float64_array, size, ab, 0, &mut v);
        if data.is_null() || v.is_null() {
            return (v, ptr::null_mut());
        }
        if size == KEPT && kept.is_null() {
            let mut r = ptr::null_mut();
            sys::napi_create_reference(env, v, 1, &mut r);
            state.request_nums.set((r, data as *mut f64));
        }
        (v, data as *mut f64)
    }
}

/// Hands `requests` (all `Event::Request`) to JS in one call:
/// `dispatch(REQUESTS, count, nums, text, extra)`.
///
/// - `nums` (Float64Array, [`REQUEST_STRIDE`] per request): server id,
///   exchange id, flags (bit 0 HTTP/1.1, bit 1 urlencoded form, bit 2
///   method in text, bit 3 has `extra`), method number (index in
///   [`METHODS`]), remote and local address ([`address_number`], NaN when
///   in `extra`), the target's length, the position of its `?` (-1:
///   none) and the headers' length, all in UTF-16 units (so JS cuts
///   `text` without searching it).
/// - `text`: per request `[method "\n"] target "\n" headers`, the headers
///   as names and values joined by `\n`; requests joined by `\r`. Neither
///   character can occur in a parsed target, name or value.
/// - `extra`: undefined, or an array with per request `[body, remote,
///   local]`: the body ArrayBuffer (or undefined), and address strings
///   `"<ip> <port>"` for addresses `nums` cannot hold.
pub(super) unsafe fn deliver_requests(
    env: sys::napi_env,
    state: &EnvState,
    f: sys::napi_value,
    requests: &mut Vec<Event>,
) {
    // SAFETY (whole body): on the JS thread of `env`, inside a handle scope
    // opened by the caller; `data` points to at least
    // `count * REQUEST_STRIDE` doubles of the group's Float64Array
    // (`request_numbers`), written before JS sees them.
    unsafe {
        let count = requests.len();
        let len = count * REQUEST_STRIDE;
        let (nums_v, data) = request_numbers(env, state, len);
        if data.is_null() {
            for ev in requests.drain(..) {
                if let Event::Request { exchange, .. } = ev {
                    exchange.abort();
                }
            }
            return;
        }
        let nums = std::slice::from_raw_parts_mut(data, len);
        let mut text = state.request_text.take();
        text.clear();
        let mut extra: sys::napi_value = ptr::null_mut();
        for (i, ev) in requests.drain(..).enumerate() {
            let Event::Request {
                server,
                exchange,
                head,
                body,
                remote,
                local,
            } = ev
            else {
                continue;
            };
            let form = crate::http::form::is_urlencoded(&head);
            let has_body = !body.is_empty()
                || head.has_field(crate::http::head::Field::ContentLength)
                || head.has_field(crate::http::head::Field::TransferEncoding);
            let method = METHODS.iter().position(|m| *m == head.method());
            let (remote_n, local_n) = (address_number(remote), address_number(local));
            let needs_extra = has_body || remote_n.is_none() || local_n.is_none();
            let flag = |on: bool, f: RequestFlag| if on { f as u32 } else { 0 };
            let flags = flag(head.minor >= 1, RequestFlag::Http11)
                | flag(form, RequestFlag::UrlencodedForm)
                | flag(method.is_none(), RequestFlag::MethodInText)
                | flag(needs_extra, RequestFlag::HasExtra);
            let o = i * REQUEST_STRIDE;
            let mut set = |f: RequestField, v: f64| nums[o + f as usize] = v;
            set(RequestField::Server, server as f64);
            set(RequestField::Exchange, exchange.id as f64);
            set(RequestField::Flags, f64::from(flags));
            set(RequestField::Method, method.map_or(-1.0, |m| m as f64));
            set(RequestField::Remote, remote_n.unwrap_or(f64::NAN));
            set(RequestField::Local, local_n.unwrap_or(f64::NAN));
            let target = head.target();
            set(RequestField::TargetLength, js_length(target));
            set(RequestField::QueryAt, js_query_at(target));
            let headers = &head.target_and_fields()[target.len() + 1..];
            set(RequestField::HeadersLength, js_length(headers));
            state.exchanges.borrow_mut().insert(exchange.id, exchange);

            if i > 0 {
                text.push(b'\r');
            }
            if method.is_none() {
                text.extend_from_slice(head.method().as_bytes());
                text.push(b'\n');
            }
            text.extend_from_slice(head.target_and_fields().as_bytes());
            head.recycle();

            if needs_extra {
                if extra.is_null() {
                    sys::napi_create_array_with_length(env, count * 3, &mut extra);
                }
                let base = (i * 3) as u32;
                let body_v = if has_body {
                    js::arraybuffer(env, &body)
                } else {
                    js::undefined(env)
                };
                sys::napi_set_element(env, extra, base, body_v);
                for (k, (a, n)) in [(remote, remote_n), (local, local_n)]
                    .into_iter()
                    .enumerate()
                {
                    if n.is_none() {
                        let s = format!("{} {}", a.ip(), a.port());
                        sys::napi_set_element(
                            env,
                            extra,
                            base + 1 + k as u32,
                            js::string(env, s.as_bytes()),
                        );
                    }
                }
            }
        }
        // Targets are UTF-8; header values were decoded as Latin-1 into
        // UTF-8 strings, so the whole text is UTF-8. Mostly it is ASCII,
        // which V8 takes as Latin-1 without decoding.
        let text_v = if text.is_ascii() {
            js::latin1(env, &text)
        } else {
            js::string(env, &text)
        };
        if text.capacity() <= 256 * 1024 {
            state.request_text.set(text);
        }
        let extra = if extra.is_null() {
            js::undefined(env)
        } else {
            extra
        };
        let started = std::time::Instant::now();
        js::call(
            env,
            f,
            &[
                js::number(env, kind::REQUESTS),
                js::number(env, count as f64),
                nums_v,
                text_v,
                extra,
            ],
        );
        state.group.took(count, started.elapsed());
    }
}

unsafe fn deliver(env: sys::napi_env, state: &EnvState, f: sys::napi_value, ev: Event) {
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
                code,
                message,
            } => {
                let info = js::array(
                    env,
                    &[
                        js::string(env, remote.ip().to_string().as_bytes()),
                        n(remote.port() as f64),
                        js::string(env, local.ip().to_string().as_bytes()),
                        n(local.port() as f64),
                    ],
                );
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
                if let Some(lane) = state.lane.as_ref() {
                    lane.shed_idle(server);
                }
            }
            Event::HttpLane { conn } => match state.lane.as_ref() {
                Some(lane) => lane.adopt(conn),
                None => crate::engine::connection::hand_back(conn, Vec::new()),
            },
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
        let info = conn_info(env, &handle_info);
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
