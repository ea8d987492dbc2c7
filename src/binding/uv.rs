//! libuv, as the running Node exports it: the few functions sack's own
//! handles need (the keep-alive executor's polls, check and timers; the deliveries'
//! resume handle, `pacing`), looked up at run time as N-API's are, and
//! handles allocated with a small header naming the environment that owns
//! them. Linux only: elsewhere [`uv`] is `None` and callers do without.

use std::alloc::Layout;
use std::ffi::{c_int, c_void};
use std::sync::OnceLock;

// libuv's handle types and poll events (uv.h).
pub const UV_ASYNC: c_int = 1;
pub const UV_CHECK: c_int = 2;
pub const UV_POLL: c_int = 8;
pub const UV_TIMER: c_int = 13;
pub const UV_READABLE: c_int = 1;
pub const UV_WRITABLE: c_int = 2;

pub type HandleCb = unsafe extern "C" fn(*mut c_void);
pub type PollCb = unsafe extern "C" fn(*mut c_void, c_int, c_int);

/// The libuv functions the keep-alive executor uses, from the running Node.
pub struct Uv {
    pub handle_size: unsafe extern "C" fn(c_int) -> usize,
    pub poll_init: unsafe extern "C" fn(*mut c_void, *mut c_void, c_int) -> c_int,
    pub poll_start: unsafe extern "C" fn(*mut c_void, c_int, PollCb) -> c_int,
    pub poll_stop: unsafe extern "C" fn(*mut c_void) -> c_int,
    pub close: unsafe extern "C" fn(*mut c_void, Option<HandleCb>),
    pub check_init: unsafe extern "C" fn(*mut c_void, *mut c_void) -> c_int,
    pub check_start: unsafe extern "C" fn(*mut c_void, HandleCb) -> c_int,
    pub check_stop: unsafe extern "C" fn(*mut c_void) -> c_int,
    pub timer_init: unsafe extern "C" fn(*mut c_void, *mut c_void) -> c_int,
    pub timer_start: unsafe extern "C" fn(*mut c_void, HandleCb, u64, u64) -> c_int,
    pub timer_stop: unsafe extern "C" fn(*mut c_void) -> c_int,
    pub async_init: unsafe extern "C" fn(*mut c_void, *mut c_void, HandleCb) -> c_int,
    pub async_send: unsafe extern "C" fn(*mut c_void) -> c_int,
    pub ref_: unsafe extern "C" fn(*mut c_void),
    pub unref: unsafe extern "C" fn(*mut c_void),
}

pub fn uv() -> Option<&'static Uv> {
    static UV: OnceLock<Option<Uv>> = OnceLock::new();
    UV.get_or_init(|| {
        #[cfg(target_os = "linux")]
        {
            fn sym(name: &std::ffi::CStr) -> Option<*mut c_void> {
                // SAFETY: dlsym with a NUL-terminated name; RTLD_DEFAULT
                // searches the process (Node exports libuv for addons).
                let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
                (!p.is_null()).then_some(p)
            }
            /// A function pointer of type `F` from a symbol's address.
            ///
            /// # Safety
            /// `F` must be the symbol's C signature as a function pointer.
            unsafe fn cast<F: Copy>(p: *mut c_void) -> F {
                assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<*mut c_void>());
                // SAFETY: same size (checked); the caller vouches for the type.
                unsafe { std::mem::transmute_copy(&p) }
            }
            macro_rules! f {
                ($name:literal) => {
                    // SAFETY: the symbol is libuv's function of that name,
                    // whose C signature the field's type spells out.
                    unsafe { cast(sym($name)?) }
                };
            }
            Some(Uv {
                handle_size: f!(c"uv_handle_size"),
                poll_init: f!(c"uv_poll_init"),
                poll_start: f!(c"uv_poll_start"),
                poll_stop: f!(c"uv_poll_stop"),
                close: f!(c"uv_close"),
                check_init: f!(c"uv_check_init"),
                check_start: f!(c"uv_check_start"),
                check_stop: f!(c"uv_check_stop"),
                timer_init: f!(c"uv_timer_init"),
                timer_start: f!(c"uv_timer_start"),
                timer_stop: f!(c"uv_timer_stop"),
                async_init: f!(c"uv_async_init"),
                async_send: f!(c"uv_async_send"),
                ref_: f!(c"uv_ref"),
                unref: f!(c"uv_unref"),
            })
        }
        #[cfg(not(target_os = "linux"))]
        {
            None
        }
    })
    .as_ref()
}

/// The libuv loop of environment `env`, if N-API gives one.
///
/// # Safety
/// On the JS thread of `env`.
pub unsafe fn event_loop(env: napi::sys::napi_env) -> Option<*mut c_void> {
    let mut loop_ = std::ptr::null_mut();
    // SAFETY: as documented; the out-pointer is a local.
    let status = unsafe { napi::sys::napi_get_uv_event_loop(env, &mut loop_) };
    (status == napi::sys::Status::napi_ok && !loop_.is_null()).then_some(loop_ as *mut c_void)
}

/// Bytes in front of every handle sack allocates. They hold the handle's
/// owner, the environment it serves, so libuv's callbacks find their state
/// even where one thread has two: the addon loaded again (with
/// `require.cache` cleared) is an environment of its own.
const HEADER: usize = 16;

/// A zeroed libuv handle of `kind` with no owner yet, freed by
/// [`free_poll`] (a close callback). Every handle starts with its
/// `void *data`.
pub fn alloc_handle(uv: &Uv, kind: c_int) -> *mut c_void {
    // SAFETY: plain query.
    let size = unsafe { (uv.handle_size)(kind) };
    let layout = handle_layout(size);
    // SAFETY: the layout is not zero-sized.
    let p = unsafe { std::alloc::alloc_zeroed(layout) };
    if p.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    // SAFETY: HEADER is within the allocation, and keeps its alignment.
    unsafe { p.add(HEADER) as *mut c_void }
}

fn handle_layout(size: usize) -> Layout {
    Layout::from_size_align(HEADER + size.max(64), 16).unwrap_or(Layout::new::<[u128; 32]>())
}

/// Names `state` the owner of handle `h`. The header holds a plain
/// pointer: each handle's callbacks read it back as the type set here.
pub fn set_owner<T>(h: *mut c_void, state: *const T) {
    // SAFETY: `h` came from `alloc_handle`, whose header is ours.
    unsafe { *((h as *mut u8).sub(HEADER) as *mut *const T) = state };
}

/// The owner of `h`, as `set_owner` stored it (null: none yet); `T` must
/// be the type it was set as.
pub fn owner_of<T>(h: *mut c_void) -> *const T {
    // SAFETY: as in `set_owner`.
    unsafe { *((h as *const u8).sub(HEADER) as *const *const T) }
}

/// Frees a poll handle from `alloc_handle`: the close callback of poll
/// handles, or for one libuv never knew (its init failed).
pub unsafe extern "C" fn free_poll(h: *mut c_void) {
    if let Some(uv) = uv() {
        // SAFETY: `h` came from `alloc_handle(uv, UV_POLL)`, and libuv is
        // done with it (closed, or never initialized).
        unsafe {
            let size = (uv.handle_size)(UV_POLL);
            std::alloc::dealloc((h as *mut u8).sub(HEADER), handle_layout(size));
        }
    }
}

pub fn set_data(h: *mut c_void, data: usize) {
    // SAFETY: `h` is a live handle; `data` is its first field.
    unsafe { *(h as *mut usize) = data };
}

pub fn data_of(h: *mut c_void) -> usize {
    // SAFETY: as in `set_data`.
    unsafe { *(h as *const usize) }
}
