//! The hot-path calls as raw N-API functions, which JS gets on the `fast`
//! object `init` is given: `send` (here) and the `res` calls (`response`).
//! No napi-rs wrappers: no class unwrap, no intermediate String; the
//! environment's state comes in as each function's data pointer.

use std::ffi::c_void;
use std::ptr;

use napi::sys;

use super::connection::status;
use super::env::EnvState;
use crate::protocol::frame::OpCode;

use status::BAD_TYPE;

/// `send(id, data)`: queues `data` on connection `id` of this environment
/// (`ws.send()`); text is copied by V8 straight into the write queue.
/// Returns a status (see `connection::status`, and [`BAD_TYPE`]).
///
/// # Safety
/// Called by Node with the data pointer given at creation (the leaked
/// `EnvState` of this environment).
pub unsafe extern "C" fn send(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY (whole body): called by Node on the JS thread with valid `env`
    // and `info`; the data pointer is the environment's never-freed state.
    unsafe {
        let (argv, state) = super::js::args::<2, EnvState>(env, info);
        let result = |code: i32| super::js::int(env, code);
        let mut id = 0f64;
        sys::napi_get_value_double(env, argv[0], &mut id);
        let conns = state.conns.borrow();
        let Some(conn) = conns.get(&(id as u64)) else {
            return result(status::NOT_OPEN);
        };
        let v = argv[1];
        let mut t = 0;
        sys::napi_typeof(env, v, &mut t);
        let r = if t == sys::ValueType::napi_string {
            let mut len = 0usize;
            sys::napi_get_value_string_utf8(env, v, ptr::null_mut(), 0, &mut len);
            conn.send_with(OpCode::Text, len, |dst| {
                let mut written = 0usize;
                sys::napi_get_value_string_utf8(env, v, dst as *mut _, len + 1, &mut written);
            })
        } else if let Some(bytes) = super::js::binary(env, v) {
            conn.send(OpCode::Binary, bytes)
        } else {
            return result(BAD_TYPE);
        };
        result(match r {
            Ok(true) => status::OK,
            Ok(false) => status::FULL,
            Err(_) => status::NOT_OPEN,
        })
    }
}

/// Defines the raw functions on `target` (index.js's native helpers).
///
/// # Safety
/// On the JS thread of `env`; `target` is an object of `env`; `state` is
/// this environment's never-freed state.
pub unsafe fn install(env: sys::napi_env, target: sys::napi_value, state: *const EnvState) {
    type Raw = unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value;
    let functions: [(&std::ffi::CStr, Raw); 5] = [
        (c"send", send),
        (c"respond", super::response::respond),
        (c"abort", super::response::abort),
        (c"watch", super::response::watch),
        (c"exchanges", super::response::exchanges),
    ];
    for (name, f) in functions {
        // SAFETY: as above; `name` is NUL-terminated.
        unsafe {
            let mut v = ptr::null_mut();
            sys::napi_create_function(
                env,
                name.as_ptr(),
                name.to_bytes().len() as isize,
                Some(f),
                state as *mut c_void,
                &mut v,
            );
            sys::napi_set_named_property(env, target, name.as_ptr(), v);
        }
    }
}
