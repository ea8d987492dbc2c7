//! Delivering the engine's events to JS: one threadsafe-function wake
//! drains the whole batch, one dispatcher call per event (`events`), HTTP
//! requests in groups (`request_group`). The deliveries of one event-loop
//! turn that run past [`TURN_BUDGET_MS`] stop and go on in the loop's next
//! turn ([`Resume`]), so timers, immediates and other I/O are not starved
//! by a flood of events for slow handlers. This is also what the keep-alive executor and
//! the resume call back into (`keepalive::Host`, `pacing::Host`).

use std::ffi::c_void;

use napi::sys;

use super::dispatch::deliver;
use super::env::EnvState;
use super::js;
use super::keepalive::{self, KeepAlive};
use super::pacing::{self, GroupSize, Resume, TURN_BUDGET_MS};
use super::request_group::deliver_requests;
use crate::engine::events::Event;

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
    crate::engine::wakeups::begin_batch();
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
            crate::engine::wakeups::set_last_event(
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
    crate::engine::wakeups::end_batch();
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
    state.queue.take(&mut batch);
    let mut old = std::mem::replace(&mut *state.current.borrow_mut(), batch);
    old.clear();
    state.spare.replace(old);
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
        if let Some(held) = conn.take_held(&state.queue) {
            state.current.borrow_mut().append(held);
            more = true;
            still.push(conn);
        }
    }
    state.moving.borrow_mut().extend(still);
    more
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
            || self.queue.is_scheduled();
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

impl keepalive::Host for EnvState {
    fn keepalive(&self) -> Option<&KeepAlive<Self>> {
        self.keepalive.as_ref()
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
