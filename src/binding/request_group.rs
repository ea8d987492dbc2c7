//! HTTP requests handed to JS in groups, one dispatcher call per group:
//! the wire format (numbers in a Float64Array, the heads as one string,
//! bodies and odd addresses aside) that lib/ reads with `RequestField`.

use std::ffi::c_void;
use std::net::SocketAddr;
use std::ptr;

use napi::sys;

use super::contract::{RequestField, RequestFlag, METHODS};
use super::dispatch::kind;
use super::env::EnvState;
use super::js;
use super::pacing::MAX_REQUESTS;
use crate::engine::events::Event;

/// Values per request in `extra`: body, remote, local, TLS facts.
const EXTRA: usize = 4;

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
///   local, tls]`: the body ArrayBuffer (or undefined), address strings
///   `"<ip> <port>"` for addresses `nums` cannot hold, and on TLS
///   `[hostname, version, cipher]`.
pub unsafe fn deliver_requests(
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
                redirect,
                tls,
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
            let needs_extra = has_body || remote_n.is_none() || local_n.is_none() || tls.is_some();
            let flag = |on: bool, f: RequestFlag| if on { f as u32 } else { 0 };
            let flags = flag(head.minor >= 1, RequestFlag::Http11)
                | flag(form, RequestFlag::UrlencodedForm)
                | flag(method.is_none(), RequestFlag::MethodInText)
                | flag(needs_extra, RequestFlag::HasExtra)
                | flag(redirect, RequestFlag::Redirect);
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
                    sys::napi_create_array_with_length(env, count * EXTRA, &mut extra);
                }
                let base = (i * EXTRA) as u32;
                let body_v = if has_body {
                    js::arraybuffer(env, &body)
                } else {
                    js::undefined(env)
                };
                sys::napi_set_element(env, extra, base, body_v);
                if let Some(t) = tls.as_deref() {
                    let info = js::array(env, &super::facts::tls_values(env, Some(t)));
                    sys::napi_set_element(env, extra, base + 3, info);
                }
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
