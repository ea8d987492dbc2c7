//! An environment's start and end: `init` (from JS) makes its state, its
//! threadsafe function and its raw calls; `keep_alive` counts what holds
//! its event loop; `cleanup` (a Node environment clean-up hook) stops the
//! engine from calling it and closes what it owned.

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::ptr;
use std::sync::{Arc, RwLock};

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;

use super::env::{EnvState, StatePtr, Tsfn, TsfnPtr};
use super::id_map::IdMap;
use crate::engine::events::{Batch, EventQueue};
use crate::engine::handoff;

/// Sets up this environment's event delivery and defines the raw fast-path
/// functions (`send`, `respond`, `abort`) on `fast`; lib/dispatch.js calls
/// it when it loads (again, with a newer dispatcher, when another copy of
/// the JavaScript loads in the same environment).
#[napi]
pub fn init(env: Env, dispatcher: Function, fast: Object) -> Result<()> {
    set_up(&env, dispatcher.raw(), fast.raw())
}

/// One more (`true`) or one fewer reason to keep the event loop alive.
#[napi]
pub fn keep_alive(env: Env, on: bool) -> Result<()> {
    EnvState::get(&env)?.hold(on);
    Ok(())
}

/// What `init` does: `dispatcher(kind, id, a, b, c)` receives every
/// engine event from now on.
///
/// JS may load more than once in one environment: test runners such as
/// Jest load a package's JavaScript afresh for every test file but its
/// addon once per process. Then the newest dispatcher takes every event
/// (an older copy's module scope may belong to a torn-down test), and
/// lib/registry.js shares the servers and connections among the copies.
fn set_up(env: &Env, dispatcher: sys::napi_value, fast: sys::napi_value) -> Result<()> {
    if let Some(p) = env.get_instance_data::<StatePtr>()? {
        // SAFETY: as in `EnvState::get`.
        let state = unsafe { &*p.0 };
        let raw = env.raw();
        // SAFETY: on the JS thread, inside this call; the old reference is
        // ours and no longer handed out (a batch being delivered holds the
        // function itself, which stays valid in its scope).
        unsafe {
            let mut dref = ptr::null_mut();
            check(sys::napi_create_reference(raw, dispatcher, 1, &mut dref))?;
            sys::napi_delete_reference(raw, state.dispatcher.replace(dref));
            super::raw_calls::install(raw, fast, p.0);
        }
        return Ok(());
    }
    let raw = env.raw();
    let tsfn = Arc::new(Tsfn(RwLock::new(None)));
    let waker_tsfn = tsfn.clone();
    let state = Box::leak(Box::new(EnvState {
        env: raw,
        queue: EventQueue::new(Box::new(move || waker_tsfn.wake())),
        tsfn: tsfn.clone(),
        dispatcher: Cell::new(ptr::null_mut()),
        spare: RefCell::new(Batch::default()),
        current: RefCell::new(Batch::default()),
        moving: RefCell::new(Vec::new()),
        holds: Cell::new(0),
        servers: RefCell::new(IdMap::default()),
        conns: RefCell::new(IdMap::default()),
        exchanges: RefCell::new(IdMap::default()),
        // SAFETY: inside this call from JS, on its thread.
        keepalive: unsafe { super::keepalive::KeepAlive::new(raw) },
        // SAFETY: as above.
        resume: unsafe { super::pacing::Resume::new(raw) },
        request_nums: Cell::new((ptr::null_mut(), ptr::null_mut())),
        response_text: RefCell::default(),
        request_text: Cell::default(),
        group: Default::default(),
    }));
    if let Some(keepalive) = state.keepalive.as_ref() {
        keepalive.bind(state);
        state.queue.enable_keepalive(true);
    }
    if let Some(resume) = state.resume.as_ref() {
        resume.bind(state);
    }
    let state_ptr: *const EnvState = state;
    // Registered before anything below can fail: the keep-alive executor's and the
    // resume's handles are live and must be closed when the environment
    // goes, or a worker's loop would not close.
    env.add_env_cleanup_hook(state_ptr as usize, |p| cleanup(p as *const EnvState))?;
    // SAFETY: on the JS thread; every out-pointer is valid; the context
    // pointer outlives the function (the state is never freed).
    unsafe {
        let mut dref = ptr::null_mut();
        check(sys::napi_create_reference(raw, dispatcher, 1, &mut dref))?;
        state.dispatcher.set(dref);
        let mut name = ptr::null_mut();
        check(sys::napi_create_string_utf8(
            raw,
            c"sack".as_ptr(),
            4,
            &mut name,
        ))?;
        let mut t = ptr::null_mut();
        // Its `hasRef()` says whether the holds keep the loop alive.
        let resource =
            super::js::resource_with_has_ref(raw, Some(tsfn_has_ref), state_ptr as *mut c_void);
        check(sys::napi_create_threadsafe_function(
            raw,
            ptr::null_mut(),
            resource,
            name,
            0,
            1,
            ptr::null_mut(),
            None,
            state_ptr as *mut c_void,
            Some(super::delivery::on_wake),
            &mut t,
        ))?;
        // Weak: only explicit holds keep the loop alive.
        check(sys::napi_unref_threadsafe_function(raw, t))?;
        *tsfn.0.write().unwrap_or_else(|e| e.into_inner()) = Some(TsfnPtr(t));
    }
    env.set_instance_data(StatePtr(state_ptr), (), |_| {})?;
    // SAFETY: on the JS thread; `fast` is an object of this call.
    unsafe { super::raw_calls::install(raw, fast, state_ptr) };
    Ok(())
}

fn check(status: i32) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::new(Status::from(status), "N-API call failed"))
    }
}

/// The environment is going away (worker exit, process exit): stop the
/// engine from calling it, then close what it owned with 1001.
fn cleanup(state: *const EnvState) {
    // SAFETY: the state is leaked at init and never freed: after teardown the
    // threadsafe function may still be finalized with a null env, which
    // `on_wake` checks before touching the context. Leaking one small struct
    // per environment is the price of never reading freed memory.
    let state = unsafe { &*state };
    if let Some(keepalive) = state.keepalive.as_ref() {
        // The engine moves no more connections here; those here close.
        state.queue.enable_keepalive(false);
        keepalive.shutdown();
    }
    if let Some(resume) = state.resume.as_ref() {
        resume.close();
    }
    if let Some(t) = state
        .tsfn
        .0
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    {
        // SAFETY: taken out of the slot under the write lock: no engine call
        // is in flight or can start.
        unsafe { sys::napi_release_threadsafe_function(t.0, 1) };
    }
    handoff::unregister_env(&state.queue);
    for server in state.servers.take().into_values() {
        server.close_for_gone_env(&state.queue);
    }
    // Connections of this environment, including ones posted here whose
    // arrival was not delivered yet.
    let mut leftover = state.current.take();
    let mut queued = Batch::default();
    state.queue.shut(&mut queued);
    leftover.append(queued);
    let mut conns = state.conns.take();
    // Responses nobody will end: their connections are dropped.
    for ex in state.exchanges.take().into_values() {
        ex.abort();
    }
    for ev in leftover.events {
        if let Some(conn) = crate::engine::events::end_for_gone(ev) {
            conns.insert(conn.id, conn);
        }
    }
    for conn in state.moving.take() {
        conns.insert(conn.id, conn);
    }
    for conn in conns.into_values() {
        crate::engine::events::close_for_gone(&conn, &state.queue);
    }
    state.spare.take();
}

/// `hasRef()` of the threadsafe function's resource: whether a listening
/// server or an open connection keeps the event loop alive through it.
unsafe extern "C" fn tsfn_has_ref(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let mut data: *mut c_void = ptr::null_mut();
    let mut v = ptr::null_mut();
    // SAFETY: called by Node on the JS thread of `env`; `data` is the
    // environment's state (never freed), given at creation.
    unsafe {
        sys::napi_get_cb_info(
            env,
            info,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            &mut data,
        );
        let held = !data.is_null() && (*(data as *const EnvState)).holds.get() > 0;
        sys::napi_get_boolean(env, held, &mut v);
    }
    v
}
