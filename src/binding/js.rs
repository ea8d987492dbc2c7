//! Small raw N-API helpers for the hot paths (event delivery, the raw
//! calls), where napi-rs's typed wrappers would add conversions per event
//! or per call: making values, reading arguments, calling JS, scopes.

use std::ffi::c_void;
use std::os::raw::c_char;
use std::ptr;

use napi::sys;

/// A JS string from UTF-8 bytes the engine already validated.
///
/// # Safety
/// `env` must be the current environment, on its JS thread, in a handle scope.
pub unsafe fn string(env: sys::napi_env, s: &[u8]) -> sys::napi_value {
    let mut v = ptr::null_mut();
    // SAFETY: `s` is valid for `s.len()` bytes; the caller guarantees `env`.
    unsafe {
        sys::napi_create_string_utf8(env, s.as_ptr() as *const c_char, s.len() as isize, &mut v)
    };
    v
}

/// A JS string from Latin-1 bytes (ASCII included), which V8 copies as
/// they are.
///
/// # Safety
/// As [`string`].
pub unsafe fn latin1(env: sys::napi_env, s: &[u8]) -> sys::napi_value {
    let mut v = ptr::null_mut();
    // SAFETY: `s` is valid for `s.len()` bytes; the caller guarantees `env`.
    unsafe {
        sys::napi_create_string_latin1(env, s.as_ptr() as *const c_char, s.len() as isize, &mut v)
    };
    v
}

/// # Safety
/// As [`string`].
pub unsafe fn number(env: sys::napi_env, n: f64) -> sys::napi_value {
    let mut v = ptr::null_mut();
    // SAFETY: the caller guarantees `env`.
    unsafe { sys::napi_create_double(env, n, &mut v) };
    v
}

/// # Safety
/// As [`string`].
pub unsafe fn undefined(env: sys::napi_env) -> sys::napi_value {
    let mut v = ptr::null_mut();
    // SAFETY: the caller guarantees `env`.
    unsafe { sys::napi_get_undefined(env, &mut v) };
    v
}

/// A new ArrayBuffer holding a copy of `data`.
///
/// # Safety
/// As [`string`].
pub unsafe fn arraybuffer(env: sys::napi_env, data: &[u8]) -> sys::napi_value {
    let mut v = ptr::null_mut();
    let mut dst: *mut std::ffi::c_void = ptr::null_mut();
    // SAFETY: the caller guarantees `env`; on success `dst` points to
    // `data.len()` writable bytes owned by the new ArrayBuffer.
    unsafe {
        if sys::napi_create_arraybuffer(env, data.len(), &mut dst, &mut v) == sys::Status::napi_ok
            && !data.is_empty()
        {
            ptr::copy_nonoverlapping(data.as_ptr(), dst as *mut u8, data.len());
        }
    }
    v
}

/// A JS array of `items`.
///
/// # Safety
/// As [`string`]; every item must be a live value of `env`.
pub unsafe fn array(env: sys::napi_env, items: &[sys::napi_value]) -> sys::napi_value {
    let mut v = ptr::null_mut();
    // SAFETY: the caller guarantees `env` and the items.
    unsafe {
        sys::napi_create_array_with_length(env, items.len(), &mut v);
        for (i, item) in items.iter().enumerate() {
            sys::napi_set_element(env, v, i as u32, *item);
        }
    }
    v
}

/// Calls `f` with `args`. A JS exception thrown by it is reported as an
/// uncaught exception (like an exception in any event handler), and the
/// caller carries on with the next event.
///
/// # Safety
/// As [`string`]; `f` and the args must be live values of `env`.
pub unsafe fn call(env: sys::napi_env, f: sys::napi_value, args: &[sys::napi_value]) {
    // SAFETY: the caller guarantees `env`, `f` and `args`.
    unsafe {
        let recv = undefined(env);
        let mut result = ptr::null_mut();
        let status = sys::napi_call_function(env, recv, f, args.len(), args.as_ptr(), &mut result);
        if status != sys::Status::napi_ok {
            let mut pending = false;
            sys::napi_is_exception_pending(env, &mut pending);
            if pending {
                let mut err = ptr::null_mut();
                sys::napi_get_and_clear_last_exception(env, &mut err);
                sys::napi_fatal_exception(env, err);
            }
        }
    }
}

fn element_size(kind: sys::napi_typedarray_type) -> usize {
    match kind {
        3 | 4 => 2,  // int16, uint16
        5..=7 => 4,  // int32, uint32, float32
        8..=10 => 8, // float64, bigint64, biguint64
        _ => 1,      // int8, uint8, uint8_clamped
    }
}

/// The bytes of an ArrayBuffer, TypedArray or DataView, if `v` is one.
///
/// # Safety
/// On the JS thread of `env`; the slice is valid until JS runs again.
pub unsafe fn binary<'a>(env: sys::napi_env, v: sys::napi_value) -> Option<&'a [u8]> {
    // SAFETY (whole body): the caller guarantees `env` and `v`; every out
    // pointer is a local.
    unsafe {
        let mut is = false;
        let mut data: *mut c_void = ptr::null_mut();
        let mut len = 0usize;
        sys::napi_is_typedarray(env, v, &mut is);
        if is {
            let mut kind = 0;
            let mut ab = ptr::null_mut();
            let mut offset = 0;
            sys::napi_get_typedarray_info(
                env,
                v,
                &mut kind,
                &mut len,
                &mut data,
                &mut ab,
                &mut offset,
            );
            len *= element_size(kind);
        } else {
            sys::napi_is_arraybuffer(env, v, &mut is);
            if is {
                sys::napi_get_arraybuffer_info(env, v, &mut data, &mut len);
            } else {
                sys::napi_is_dataview(env, v, &mut is);
                if !is {
                    return None;
                }
                let mut ab = ptr::null_mut();
                let mut offset = 0;
                sys::napi_get_dataview_info(env, v, &mut len, &mut data, &mut ab, &mut offset);
            }
        }
        Some(if len == 0 || data.is_null() {
            &[]
        } else {
            std::slice::from_raw_parts(data as *const u8, len)
        })
    }
}

/// The call's arguments and the function's data pointer, as a `T` (the
/// environment's state, for the raw calls).
///
/// # Safety
/// Called by Node with the data pointer given at creation: a `T` that is
/// never freed.
pub unsafe fn args<const N: usize, T>(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> ([sys::napi_value; N], &'static T) {
    let mut argc = N;
    let mut argv = [ptr::null_mut(); N];
    let mut data: *mut c_void = ptr::null_mut();
    // SAFETY: valid `env`/`info` from Node; missing arguments are filled
    // with `undefined`; the data pointer is the never-freed state.
    unsafe {
        sys::napi_get_cb_info(
            env,
            info,
            &mut argc,
            argv.as_mut_ptr(),
            ptr::null_mut(),
            &mut data,
        );
        (argv, &*(data as *const T))
    }
}

/// # Safety
/// On the JS thread of `env`.
pub unsafe fn int(env: sys::napi_env, code: i32) -> sys::napi_value {
    let mut v = ptr::null_mut();
    // SAFETY: the caller guarantees `env`.
    unsafe { sys::napi_create_int32(env, code, &mut v) };
    v
}

/// An object for an async resource, with a `hasRef()` method (`has_ref`,
/// called with `data`), as Node's handles have: tools that look for what
/// keeps the process alive (Jest's --detectOpenHandles) ask it.
///
/// # Safety
/// On the JS thread of `env`, inside a handle scope; `data` is what
/// `has_ref` expects, alive as long as the object.
pub unsafe fn resource_with_has_ref(
    env: sys::napi_env,
    has_ref: sys::napi_callback,
    data: *mut c_void,
) -> sys::napi_value {
    // SAFETY (whole block): as documented; out-pointers are locals.
    unsafe {
        let mut resource = ptr::null_mut();
        sys::napi_create_object(env, &mut resource);
        let mut f = ptr::null_mut();
        sys::napi_create_function(env, c"hasRef".as_ptr(), 6, has_ref, data, &mut f);
        if !f.is_null() {
            sys::napi_set_named_property(env, resource, c"hasRef".as_ptr(), f);
        }
        resource
    }
}

/// `hasRef()` of a resource that never holds the loop.
unsafe extern "C" fn has_ref_false(
    env: sys::napi_env,
    _info: sys::napi_callback_info,
) -> sys::napi_value {
    let mut v = ptr::null_mut();
    // SAFETY: called by Node on the JS thread of `env`.
    unsafe { sys::napi_get_boolean(env, false, &mut v) };
    v
}

/// An async resource for calling JS from sack's own libuv callbacks, where
/// no Node callback scope is open (the threadsafe function opens its own).
pub struct Entry {
    ctx: sys::napi_async_context,
    resource: sys::napi_ref,
}

impl Entry {
    /// A resource named `name` (shown by `async_hooks`).
    ///
    /// # Safety
    /// On the JS thread of `env`, inside a handle scope.
    pub unsafe fn new(env: sys::napi_env, name: &std::ffi::CStr) -> Option<Entry> {
        // SAFETY (whole block): as documented; out-pointers are locals.
        unsafe {
            // It never holds the event loop: Jest's --detectOpenHandles
            // asks `hasRef()`, and counts a resource without one as open.
            let resource = resource_with_has_ref(env, Some(has_ref_false), ptr::null_mut());
            let mut js_name = ptr::null_mut();
            sys::napi_create_string_utf8(
                env,
                name.as_ptr(),
                name.count_bytes() as isize,
                &mut js_name,
            );
            let mut ctx = ptr::null_mut();
            if sys::napi_async_init(env, resource, js_name, &mut ctx) != sys::Status::napi_ok {
                return None;
            }
            let mut resource_ref = ptr::null_mut();
            sys::napi_create_reference(env, resource, 1, &mut resource_ref);
            Some(Entry {
                ctx,
                resource: resource_ref,
            })
        }
    }

    /// Runs `f` in a handle scope and a callback scope: a proper entry into
    /// JS, so ticks and microtasks run when it returns, as after any I/O
    /// callback. The scopes close even if `f` panics.
    ///
    /// # Safety
    /// On the JS thread of `env` (this entry's), with no JS on the stack.
    pub unsafe fn run<R>(&self, env: sys::napi_env, f: impl FnOnce() -> R) -> R {
        /// Closes the callback scope when dropped.
        struct CallbackScope(sys::napi_env, sys::napi_callback_scope);
        impl Drop for CallbackScope {
            fn drop(&mut self) {
                // SAFETY: opened in `run` on this thread, closed once.
                unsafe { sys::napi_close_callback_scope(self.0, self.1) };
            }
        }
        // SAFETY (whole block): as documented; the scopes close in reverse
        // order of opening (locals drop in reverse), after `f`, which keeps
        // no handle past them.
        unsafe {
            let _scope = Scope::open(env);
            let mut resource = ptr::null_mut();
            sys::napi_get_reference_value(env, self.resource, &mut resource);
            let mut cb_scope = ptr::null_mut();
            sys::napi_open_callback_scope(env, resource, self.ctx, &mut cb_scope);
            let _cb = CallbackScope(env, cb_scope);
            f()
        }
    }
}

/// A handle scope, closed when dropped (also when a panic unwinds through
/// it: an unclosed scope would break every later call into JS).
pub struct Scope(sys::napi_env, sys::napi_handle_scope);

impl Scope {
    /// # Safety
    /// On the JS thread of `env`; the scope must be dropped on it too, in
    /// reverse order of other scopes opened there.
    pub unsafe fn open(env: sys::napi_env) -> Scope {
        let mut scope = ptr::null_mut();
        // SAFETY: as documented.
        unsafe { sys::napi_open_handle_scope(env, &mut scope) };
        Scope(env, scope)
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        // SAFETY: opened by `open` on this thread, closed once.
        unsafe { sys::napi_close_handle_scope(self.0, self.1) };
    }
}
