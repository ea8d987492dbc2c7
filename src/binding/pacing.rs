//! How much of the JS thread deliveries take: the budget of one event-loop
//! turn ([`TURN_BUDGET_MS`]), the [`Resume`] that goes on with a delivery
//! in the loop's next turn, and the size of request groups
//! ([`GroupSize`]). Generic over the environment holding them ([`Host`]),
//! which sits above this module.

use std::cell::Cell;
use std::ffi::c_void;

use napi::sys;

use super::js;
use super::uv::{self, Uv, UV_ASYNC, UV_CHECK};

/// How long the deliveries of one event-loop turn may keep the JS thread
/// before the loop gets its other work done: Node's own I/O callbacks hand
/// back after one read, and a flood of events for slow handlers must not
/// hold timers, immediates and other sockets for seconds (Node's
/// threadsafe function calls again at once, in the same turn, while more
/// is queued). Long enough that a busy server yields a few hundred times a
/// second at most, where a yield costs microseconds.
pub const TURN_BUDGET_MS: u64 = 10;

/// What a [`Resume`] needs of the environment holding it.
pub trait Host: Sized + 'static {
    /// The resume whose handles call back (the one `bind` was called on).
    fn resume(&self) -> Option<&Resume<Self>>;
    fn env(&self) -> sys::napi_env;
    /// Goes on delivering queued events, as a threadsafe-function wake
    /// does.
    ///
    /// # Safety
    /// On the environment's JS thread, inside a callback scope.
    unsafe fn drain(&self);
    /// After an internal error (a caught panic) in a delivery: what is
    /// left goes on in the next turn.
    fn recover(&self);
}

/// The means to go on with a delivery in the event loop's next turn: a
/// libuv async handle of the environment's loop (Linux; elsewhere a
/// delivery runs to its end, as before). Only this JS thread sends it.
///
/// The async handle is created before the threadsafe function's
/// (`lifecycle::init`): libuv runs the async handles of one wake-up in
/// creation order, so a resume sent from a threadsafe-function call runs
/// in the next turn, not later in the same pass. (When one `epoll_wait`
/// fills libuv's event array, it polls again in the same turn and the
/// resume may run there: it then finds the turn's budget spent and yields
/// again at once.)
pub struct Resume<H> {
    uv: &'static Uv,
    handle: *mut c_void,
    /// A check handle, started by a turn's first delivery: the check phase
    /// follows the poll phase (where deliveries run), so it ends the turn's
    /// account of time.
    turn_end: *mut c_void,
    entry: js::Entry,
    /// A delivery yielded and the handle is sent: the next delivery is the
    /// resume's, not a threadsafe-function wake's.
    pending: Cell<bool>,
    /// When this turn's first delivery began (`clock::mono_ms`).
    turn_began: Cell<Option<u64>>,
    closed: Cell<bool>,
    /// The handles' owner (`bind`), as their callbacks find it.
    host: std::marker::PhantomData<*const H>,
}

impl<H: Host> Resume<H> {
    /// # Safety
    /// On the JS thread of `env`, inside a handle scope.
    pub unsafe fn new(env: sys::napi_env) -> Option<Resume<H>> {
        let uv = uv::uv()?;
        // SAFETY (whole block): as documented; the handles are initialized
        // on this environment's loop before anything can send or start them.
        unsafe {
            let loop_ = uv::event_loop(env)?;
            let entry = js::Entry::new(env, c"sack:events")?;
            let handle = uv::alloc_handle(uv, UV_ASYNC);
            if (uv.async_init)(loop_, handle, on_resume::<H>) != 0 {
                return None;
            }
            let turn_end = uv::alloc_handle(uv, UV_CHECK);
            if (uv.check_init)(loop_, turn_end) != 0 {
                (uv.close)(handle, None);
                return None;
            }
            // Neither holds the loop: the async one only while a resume is
            // pending (`send`), the check one never.
            (uv.unref)(handle);
            (uv.unref)(turn_end);
            Some(Resume {
                uv,
                handle,
                turn_end,
                entry,
                pending: Cell::new(false),
                turn_began: Cell::new(None),
                closed: Cell::new(false),
                host: std::marker::PhantomData,
            })
        }
    }

    /// Makes `state`, which holds this resume, the owner of its handles.
    pub fn bind(&self, state: &'static H) {
        uv::set_owner(self.handle, state);
        uv::set_owner(self.turn_end, state);
    }

    /// Whether a delivery yielded and its resume is still to run.
    pub fn pending(&self) -> bool {
        self.pending.get()
    }

    /// When this loop turn's deliveries began: now, for the turn's first.
    pub fn turn_start(&self) -> u64 {
        if let Some(t) = self.turn_began.get() {
            return t;
        }
        let now = crate::clock::mono_ms();
        if !self.closed.get() {
            self.turn_began.set(Some(now));
            // SAFETY: the live check handle, on its loop's thread.
            unsafe { (self.uv.check_start)(self.turn_end, on_turn_end::<H>) };
        }
        now
    }

    /// Asks for a delivery in the loop's next turn; false when closed, or
    /// when one is asked for already.
    pub fn send(&self) -> bool {
        if self.closed.get() || self.pending.get() {
            return false;
        }
        self.pending.set(true);
        // SAFETY: the live handle (not closed), on its loop's thread. A
        // pending resume holds the loop: the events left are owed to JS.
        unsafe {
            (self.uv.ref_)(self.handle);
            (self.uv.async_send)(self.handle);
        }
        true
    }

    /// Forgets a resume asked for (after a caught panic, which may have
    /// left it so with nothing to run it).
    pub fn clear(&self) {
        self.pending.set(false);
    }

    /// The environment goes away; what is left is its clean-up's.
    pub fn close(&self) {
        if self.closed.replace(true) {
            return;
        }
        // SAFETY: the live handles of this loop, closed once; their memory
        // is left to the process, as the state's is.
        unsafe {
            (self.uv.close)(self.handle, None);
            (self.uv.close)(self.turn_end, None);
        }
    }
}

/// The environment owning handle `h` of a resume, and that resume.
fn resume_of<H: Host>(h: *mut c_void) -> Option<(&'static H, &'static Resume<H>)> {
    let p = uv::owner_of::<H>(h);
    if p.is_null() {
        return None;
    }
    // SAFETY: set by `Resume::bind` to a state that is never freed.
    let state: &'static H = unsafe { &*p };
    Some((state, state.resume()?))
}

/// The check handle's callback: the turn's deliveries are over.
unsafe extern "C" fn on_turn_end<H: Host>(h: *mut c_void) {
    if let Some((_, r)) = resume_of::<H>(h) {
        r.turn_began.set(None);
        if !r.closed.get() {
            // SAFETY: the live check handle, on its loop's thread.
            unsafe { (r.uv.check_stop)(h) };
        }
    }
}

/// The resume handle's callback: goes on with the delivery that yielded.
unsafe extern "C" fn on_resume<H: Host>(h: *mut c_void) {
    let Some((state, r)) = resume_of::<H>(h) else {
        return;
    };
    if r.closed.get() || !r.pending.replace(false) {
        return;
    }
    // SAFETY: the live handle, on its loop's thread.
    unsafe { (r.uv.unref)(h) };
    // A resume starts its own account, so it always delivers something,
    // even should the turn's check handle not have run since the yield.
    r.turn_began.set(None);
    let run = std::panic::AssertUnwindSafe(|| {
        // SAFETY: a libuv callback on the environment's JS thread, with no
        // JS on the stack; the state is the one the drain is for.
        unsafe { r.entry.run(state.env(), || state.drain()) }
    });
    if std::panic::catch_unwind(run).is_err() {
        eprintln!("sack: internal error while delivering events (please report)");
        state.recover();
    }
}

/// Most HTTP requests handed to JS in one call.
pub const MAX_REQUESTS: usize = 256;
/// Requests in the first group: a group is one JS call, which the turn's
/// budget cannot cut, so the size grows only while handlers are fast.
const FIRST_GROUP: usize = 16;

/// How many HTTP requests go to JS in one call (both the engine's
/// deliveries and the keep-alive executor's rounds): doubling up to [`MAX_REQUESTS`]
/// while full groups take under 2 ms, cut to about a millisecond's worth
/// when one took longer. Slow handlers then come one or a few per call, and
/// the turn's budget can stop between calls.
pub struct GroupSize(Cell<usize>);

impl Default for GroupSize {
    fn default() -> Self {
        GroupSize(Cell::new(FIRST_GROUP))
    }
}

impl GroupSize {
    pub fn get(&self) -> usize {
        self.0.get()
    }

    /// A group of `n` requests took `took`. (A precise clock: the coarse
    /// one steps by 4 ms or more, too coarse for groups of a millisecond.)
    pub fn took(&self, n: usize, took: std::time::Duration) {
        let us = took.as_micros() as usize;
        let size = self.0.get();
        if us >= 2000 {
            self.0.set((n * 1000 / us).max(1));
        } else if n >= size {
            // Only a full group says that more would have been fast too.
            self.0.set((size * 2).min(MAX_REQUESTS));
        }
    }
}
