//! The native half of `res`: raw N-API functions on the per-request hot
//! path (no class instance per request, no intermediate strings), put on
//! JS's `fast` object by `raw_calls::install`. A response is named by its
//! exchange id; the environment keeps the live ones in
//! `EnvState::exchanges` until they end.

use std::os::raw::c_char;
use std::ptr;

use napi::sys;

use super::connection::status;
use super::env::EnvState;
use super::js;
use crate::engine::exchange::{ExchangeError, Head};

use status::BAD_TYPE;

/// `respond`'s flags, added to the status (declared in `contract`).
pub mod flags {
    use super::super::contract::ResponsePart as P;

    pub const STATUS: u32 = P::Status as u32;
    pub const LAST: u32 = P::Last as u32;
    pub const NEW_HEAD: u32 = P::NewHead as u32;
    pub const SAME_HEAD: u32 = P::SameHead as u32;
    pub const REASON: u32 = P::Reason as u32;
    pub const TEXT_BODY: u32 = P::TextBody as u32;
    pub const BINARY_BODY: u32 = P::BinaryBody as u32;
}

/// Appends the UTF-8 of JS string `v` to `out`, in one N-API call when it
/// fits the spare capacity (the usual case), in two otherwise.
///
/// # Safety
/// On the JS thread of `env`; `v` is a string of `env`.
unsafe fn read_utf8(env: sys::napi_env, v: sys::napi_value, out: &mut Vec<u8>) {
    const FIRST_TRY: usize = 4096;
    // SAFETY (whole body): the caller guarantees `env` and `v`; V8 writes at
    // most `room - 1` bytes plus a NUL into the reserved spare capacity, and
    // reports in `written` how many (without the NUL) are initialized.
    unsafe {
        out.reserve(FIRST_TRY);
        let start = out.len();
        let room = out.capacity() - start;
        let mut written = 0usize;
        sys::napi_get_value_string_utf8(
            env,
            v,
            out.as_mut_ptr().add(start) as *mut c_char,
            room,
            &mut written,
        );
        // V8 stops before a character that does not fit whole (at most 4
        // bytes): with more room than that left over, nothing was cut.
        if written + 5 <= room {
            out.set_len(start + written);
            return;
        }
        let mut len = 0usize;
        sys::napi_get_value_string_utf8(env, v, ptr::null_mut(), 0, &mut len);
        out.reserve(len + 1);
        sys::napi_get_value_string_utf8(
            env,
            v,
            out.as_mut_ptr().add(start) as *mut c_char,
            len + 1,
            &mut written,
        );
        out.set_len(start + written);
    }
}

/// Finds the names and values of header block `block` (joined by `\n`);
/// a block that is not UTF-8 (V8 writes only UTF-8) is emptied.
fn find_fields(block: &mut Vec<u8>, fields: &mut Vec<(u32, u32, u32, u32)>) {
    fields.clear();
    if std::str::from_utf8(block).is_err() {
        block.clear();
    }
    if block.is_empty() {
        return;
    }
    let mut cuts = block
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .map(|(i, _)| i as u32)
        .chain([block.len() as u32]);
    let mut start = 0u32;
    while let (Some(n), Some(v)) = (cuts.next(), cuts.next()) {
        fields.push((start, n, n + 1, v));
        start = v + 1;
    }
}

/// `respond(id, code, reason, head, body)`: queues part of the response of
/// exchange `id`. `code` is the status (below 1024) plus flags that say
/// what the other arguments are ([`flags`]), so no argument's type is
/// asked for. The head's header block is a string of names and values
/// joined by `\n` (index.js checks they hold no `\n`); with
/// [`flags::SAME_HEAD`] it is the block last given in this environment
/// (handlers set the same headers on every response, and it is then
/// neither read nor converted again). `body`: a string (sent as UTF-8) or
/// binary. Returns undefined when queued, else a status
/// (`connection::status`, [`BAD_TYPE`]): `FULL` when queued and the queue
/// is over `maxBackpressure` (a drain notice follows), `NOT_OPEN` when the
/// response has ended or its connection is gone (nothing was queued).
///
/// # Safety
/// Called by Node with the data pointer given at creation.
pub unsafe extern "C" fn respond(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY (whole body): called by Node on the JS thread with valid `env`
    // and `info`; every value read is one of this call's arguments. A value
    // not of the type its flag says makes N-API report an error and read
    // nothing.
    unsafe {
        let (argv, state) = js::args::<5, EnvState>(env, info);
        let mut code = 0u32;
        sys::napi_get_value_uint32(env, argv[1], &mut code);
        let mut text = state.response_text.borrow_mut();
        let text = &mut *text;
        // A new block is kept first, whatever follows: JS counts on it.
        if code & flags::NEW_HEAD != 0 {
            text.block.clear();
            read_utf8(env, argv[3], &mut text.block);
            find_fields(&mut text.block, &mut text.fields);
        }
        let with_head = code & (flags::NEW_HEAD | flags::SAME_HEAD) != 0;
        // The body's bytes (valid until JS runs again, which it does not
        // before this returns).
        let body = argv[4];
        let bytes: &[u8] = if code & flags::TEXT_BODY != 0 {
            text.body.clear();
            read_utf8(env, body, &mut text.body);
            &text.body
        } else if code & flags::BINARY_BODY != 0 {
            match js::binary(env, body) {
                Some(bytes) => bytes,
                None => return js::int(env, BAD_TYPE),
            }
        } else {
            &[]
        };
        let mut id = 0f64;
        sys::napi_get_value_double(env, argv[0], &mut id);
        let last = code & flags::LAST != 0;
        // The last part takes the exchange out of the map (one lookup);
        // others borrow it. Nothing below reaches JS or this map.
        let removed = if last {
            state.exchanges.borrow_mut().remove(&(id as u64))
        } else {
            None
        };
        let exchanges = (!last).then(|| state.exchanges.borrow());
        let ex = match &exchanges {
            Some(map) => map.get(&(id as u64)),
            None => removed.as_ref(),
        };
        let Some(ex) = ex else {
            return js::int(env, status::NOT_OPEN);
        };
        let status = code & flags::STATUS;

        let mut reason = None;
        if with_head && code & flags::REASON != 0 {
            text.reason.clear();
            read_utf8(env, argv[2], &mut text.reason);
            // V8 writes well-formed UTF-8 (lone surrogates become U+FFFD).
            reason = Some(std::str::from_utf8(&text.reason).unwrap_or(""));
        }
        // A few headers fit on the stack; more spill to a vector.
        let fields: &[_] = if with_head { &text.fields } else { &[] };
        let pair = |&(a, b, c, d): &(u32, u32, u32, u32)| {
            // SAFETY: `find_fields` checked the block is UTF-8 and cut it
            // only at '\n' bytes, which leaves every piece UTF-8.
            let at = |from: u32, to: u32| {
                std::str::from_utf8_unchecked(&text.block[from as usize..to as usize])
            };
            (at(a, b), at(c, d))
        };
        let mut fixed = [("", ""); 16];
        let spill: Vec<_>;
        let pairs = if fields.len() <= fixed.len() {
            for (slot, f) in fixed.iter_mut().zip(fields) {
                *slot = pair(f);
            }
            &fixed[..fields.len()]
        } else {
            spill = fields.iter().map(pair).collect();
            &spill[..]
        };
        let head = with_head.then_some(Head {
            status: status.min(999) as u16,
            reason,
            headers: pairs,
        });

        let r = ex.respond(head, bytes.len(), |out| out.extend_from_slice(bytes), last);
        // A large reason or body does not stay with the environment (the
        // block does: SAME_HEAD may ask for it again).
        for v in [&mut text.reason, &mut text.body] {
            if v.capacity() > 64 * 1024 {
                *v = Vec::new();
            }
        }
        let ex_id = ex.id;
        // Ended or its connection gone: no later call can use it.
        let finished = matches!(r, Err(ExchangeError::Ended | ExchangeError::Closed));
        if last {
            // Refused for another reason: it stays for a later call.
            if let (Err(_), Some(ex), false) = (r, removed, finished) {
                state.exchanges.borrow_mut().insert(ex_id, ex);
            }
        } else if finished {
            drop(exchanges);
            state.exchanges.borrow_mut().remove(&ex_id);
        }
        match r {
            // Undefined: no value to make on the usual path.
            Ok(false) => ptr::null_mut(),
            Ok(true) => js::int(env, status::FULL),
            Err(ExchangeError::HeadSent) => js::int(env, status::ALREADY_DECIDED),
            Err(_) => js::int(env, status::NOT_OPEN),
        }
    }
}

/// `watch(id)`: asks for a close notice should the connection of
/// exchange `id` go before its response ends. Returns `OK`, or `NOT_OPEN`
/// when it has gone already (or the response has ended): no notice comes.
///
/// # Safety
/// Called by Node with the data pointer given at creation.
pub unsafe extern "C" fn watch(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: as in `respond`.
    let (id, state) = unsafe { id_arg(env, info) };
    let open = state
        .exchanges
        .borrow()
        .get(&id)
        .is_some_and(|ex| ex.watch());
    if !open {
        // Gone (or ended): no later call can use it.
        state.exchanges.borrow_mut().remove(&id);
    }
    // SAFETY: on the JS thread of `env`.
    unsafe { js::int(env, if open { status::OK } else { status::NOT_OPEN }) }
}

/// `exchanges()`: how many responses this environment holds open (their
/// handlers may still write), for tests that check none is left behind.
///
/// # Safety
/// Called by Node with the data pointer given at creation.
pub unsafe extern "C" fn exchanges(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: as in `respond`.
    unsafe {
        let (_, state) = js::args::<0, EnvState>(env, info);
        js::int(env, state.exchanges.borrow().len() as i32)
    }
}

/// The exchange id that is a call's one argument, with the environment's
/// state.
///
/// # Safety
/// As `js::args`.
unsafe fn id_arg(env: sys::napi_env, info: sys::napi_callback_info) -> (u64, &'static EnvState) {
    // SAFETY: as the caller guarantees; a non-number reads as 0, no exchange.
    unsafe {
        let (argv, state) = js::args::<1, EnvState>(env, info);
        let mut id = 0f64;
        sys::napi_get_value_double(env, argv[0], &mut id);
        (id as u64, state)
    }
}

/// `abort(id)`: drops the connection of exchange `id` (a handler failed
/// after the head went out).
///
/// # Safety
/// Called by Node with the data pointer given at creation.
pub unsafe extern "C" fn abort(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY (whole body): as in `respond`.
    unsafe {
        let (id, state) = id_arg(env, info);
        let ex = state.exchanges.borrow_mut().remove(&id);
        if let Some(ex) = ex {
            ex.abort();
        }
        let mut v = ptr::null_mut();
        sys::napi_get_undefined(env, &mut v);
        v
    }
}

/// The reason phrase a head for `status` carries with `reason` set by the
/// handler (the standard one when `reason` is absent, empty or not
/// sendable; "Unknown" for a code without one): `res.statusMessage` reads
/// it once the head is fixed, so the two cannot differ.
#[napi_derive::napi]
pub fn reason_phrase(status: u32, reason: Option<String>) -> String {
    let status = u16::try_from(status).unwrap_or(0);
    crate::http::framing::status_reason(status, reason.as_deref()).to_owned()
}
