//! The keep-alive executor: keep-alive connections served on the JS thread, with no
//! engine wake, thread switch or handoff per request (`conn.rs` does the
//! socket work). This file: a libuv poll
//! handle per keep-alive connection on this environment's own event loop,
//! the requests of one loop turn handed to JS in one call, and the idle
//! sweep. Linux only. libuv's functions are looked up at run time, as
//! N-API's are; where they are missing there is no keep-alive executor, and connections
//! stay on their engine tasks. `SACK_HTTP_LANE=0` turns the lane off (for
//! comparisons). What it needs of its environment (the dispatcher, the
//! request groups' format) comes through [`Host`].

mod conn;

use std::cell::{Cell, RefCell, RefMut};
use std::ffi::{c_int, c_void};
use std::ptr;
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};

use napi::sys;

use super::id_map::IdMap;
use super::js::Entry;
use super::pacing::{GroupSize, TURN_BUDGET_MS};
use super::uv::{
    alloc_handle, data_of, free_poll, owner_of, set_data, set_owner, uv, Uv, UV_ASYNC, UV_CHECK,
    UV_POLL, UV_READABLE, UV_TIMER, UV_WRITABLE,
};
use crate::engine::events::Event;
use crate::engine::idle::IdleConn;
use conn::{KeepAliveConn, Progress, Step};

/// Rounds of work per loop turn at most (each may call JS once).
const MAX_ROUNDS: usize = 64;

/// What the keep-alive executor needs of the environment holding it, which sits above
/// this module.
pub trait Host: Sized + 'static {
    /// The keep-alive executor whose handles call back (the one `bind` was called on).
    fn keepalive(&self) -> Option<&KeepAlive<Self>>;
    fn env(&self) -> sys::napi_env;
    /// The environment's JS dispatcher.
    fn dispatcher(&self) -> sys::napi_value;
    /// How many requests one JS call may take.
    fn group(&self) -> &GroupSize;
    /// Hands `requests` to `f`, the dispatcher, in one call.
    ///
    /// # Safety
    /// On the environment's JS thread, inside a handle scope.
    unsafe fn deliver_requests(&self, f: sys::napi_value, requests: &mut Vec<Event>);
}

/// Connections whose response ended after its handler returned: woken from
/// `Exchange::wake` (on this JS thread), delivered by an async handle.
struct Woken {
    /// `None` once the keep-alive executor is gone.
    keys: Mutex<Option<Vec<u64>>>,
    handle: usize,
    send: unsafe extern "C" fn(*mut c_void) -> c_int,
}

struct KeepAliveWake {
    key: u64,
    woken: Arc<Woken>,
}

impl Wake for KeepAliveWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut keys = self.woken.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(keys) = keys.as_mut() {
            keys.push(self.key);
            // SAFETY: the handle is alive while `keys` is `Some` (the keep-alive executor
            // clears it under this lock before closing the handle).
            unsafe { (self.woken.send)(self.woken.handle as *mut c_void) };
        }
    }
}

struct Slot {
    conn: KeepAliveConn,
    poll: *mut c_void,
    /// The events the poll handle watches now (0: stopped).
    events: c_int,
    /// Poll events gathered while the connection waits in `ready` (`None`:
    /// not there). One entry per connection: libuv reports a readable
    /// socket every turn while it waits (level-triggered), and a round
    /// may leave it waiting when its group is full.
    queued: Option<c_int>,
    waker: Waker,
    /// Bytes came while a response is in flight (a pipelined request):
    /// not watched for reading until it ends (libuv's poll is level
    /// triggered).
    read_ahead: bool,
    /// The server closes: past this (`clock::mono_ms`) a response still
    /// in flight is given up (`closeTimeout`).
    close_by: Option<u64>,
}

/// A round's working lists (see `KeepAlive::run`).
#[derive(Default)]
struct Round {
    items: Vec<u64>,
    requests: Vec<Event>,
    asked: Vec<u64>,
}

/// This environment's keep-alive executor.
pub struct KeepAlive<H> {
    uv: &'static Uv,
    loop_: *mut c_void,
    conns: RefCell<IdMap<Slot>>,
    next_key: Cell<u64>,
    /// Connections to look at in the next round, in the order they came
    /// (their events are in their slots: `Slot::queued`).
    ready: RefCell<Vec<u64>>,
    /// `run`'s vectors, kept between rounds so a round allocates nothing.
    round: RefCell<Round>,
    /// `clock::mono_ms` at the start of the current round, and again once
    /// its JS call returns: when the responses it looks at ended, near
    /// enough for idle timeouts.
    now: Cell<u64>,
    woken: Arc<Woken>,
    check: *mut c_void,
    check_on: Cell<bool>,
    timer: *mut c_void,
    /// The sweep's period (0: stopped).
    sweep_ms: Cell<u64>,
    entry: Entry,
    closed: Cell<bool>,
    /// The environment holding this keep-alive executor (`bind`), null until then.
    owner: Cell<*const H>,
}

impl<H: Host> KeepAlive<H> {
    /// Sets up the keep-alive executor of environment `env` (on its JS thread, inside a
    /// call from JS); `None` where there is none.
    ///
    /// # Safety
    /// On the JS thread of `env`, inside a handle scope.
    pub unsafe fn new(env: sys::napi_env) -> Option<KeepAlive<H>> {
        if std::env::var_os("SACK_HTTP_LANE").is_some_and(|v| v == "0") {
            return None;
        }
        let uv = uv()?;
        // SAFETY (whole block): on the JS thread of `env`; out-pointers are
        // locals; the handles are initialized on this environment's loop
        // before anything can start them.
        unsafe {
            let loop_ = super::uv::event_loop(env)?;
            let entry = Entry::new(env, c"sack:http")?;

            let check = alloc_handle(uv, UV_CHECK);
            let timer = alloc_handle(uv, UV_TIMER);
            let wake = alloc_handle(uv, UV_ASYNC);
            // A handle left initialized would keep a worker's loop from
            // closing: undo the ones that took if a later one fails.
            if (uv.check_init)(loop_, check) != 0 {
                return None;
            }
            if (uv.timer_init)(loop_, timer) != 0 {
                (uv.close)(check, None);
                return None;
            }
            if (uv.async_init)(loop_, wake, on_async::<H>) != 0 {
                (uv.close)(check, None);
                (uv.close)(timer, None);
                return None;
            }
            // None of them keeps the process alive: listening servers do.
            (uv.unref)(check);
            (uv.unref)(timer);
            (uv.unref)(wake);
            Some(KeepAlive {
                uv,
                loop_,
                conns: RefCell::new(IdMap::default()),
                next_key: Cell::new(1),
                ready: RefCell::new(Vec::new()),
                round: RefCell::default(),
                now: Cell::new(0),
                woken: Arc::new(Woken {
                    keys: Mutex::new(Some(Vec::new())),
                    handle: wake as usize,
                    send: uv.async_send,
                }),
                check,
                check_on: Cell::new(false),
                timer,
                sweep_ms: Cell::new(0),
                entry,
                closed: Cell::new(false),
                owner: Cell::new(ptr::null()),
            })
        }
    }

    /// Makes `state`, which holds this keep-alive executor, the owner of its handles, as
    /// libuv's callbacks find it.
    pub fn bind(&self, state: &'static H) {
        self.owner.set(state);
        for h in [self.check, self.timer, self.woken.handle as *mut c_void] {
            set_owner(h, state);
        }
    }

    /// Takes a connection the engine moved here (`Event::KeepAlive`).
    pub fn adopt(&self, idle: IdleConn) {
        if self.closed.get() || idle.server.is_closing() {
            return; // dropped: closed
        }
        let conn = KeepAliveConn::new(idle);
        let poll = alloc_handle(self.uv, UV_POLL);
        // SAFETY: a fresh handle on this loop, for the connection's open
        // socket; started below with a callback of this module.
        if unsafe { (self.uv.poll_init)(self.loop_, poll, conn.fd()) } != 0 {
            // SAFETY: never initialized, so libuv does not know it.
            unsafe { free_poll(poll) };
            let (idle, read_ahead) = conn.into_idle();
            crate::engine::connection::hand_back(idle, read_ahead);
            return;
        }
        // Connections do not keep the process alive (`server.unref()`
        // holds): listening servers and explicit holds do.
        // SAFETY: the handle just initialized.
        unsafe { (self.uv.unref)(poll) };
        let key = self.next_key.get();
        self.next_key.set(key + 1);
        set_data(poll, key as usize);
        set_owner(poll, self.owner.get());
        let waker = Waker::from(Arc::new(KeepAliveWake {
            key,
            woken: self.woken.clone(),
        }));
        self.arm_sweep(conn.limit_ms());
        let mut slot = Slot {
            conn,
            poll,
            events: 0,
            queued: None,
            waker,
            read_ahead: false,
            close_by: None,
        };
        self.watch(&mut slot, UV_READABLE);
        self.conns.borrow_mut().insert(key, slot);
        // Its task moves it when a request comes (or its timer fires): a
        // waiting request is served this loop turn, before a sweep could
        // take the connection for idle (idle time runs from its last
        // response).
        self.mark(key, UV_READABLE);
    }

    /// Server `id` closes: its idle connections go now; busy ones close
    /// after their response (which says `Connection: close`), or after
    /// its `closeTimeout` when the response does not end.
    pub fn server_closing(&self, id: u64) {
        let now = crate::clock::mono_ms();
        let mut idle = Vec::new();
        let mut longest = 0;
        for (k, s) in self.conns.borrow_mut().iter_mut() {
            if s.conn.server().id != id {
                continue;
            }
            if s.conn.busy() {
                let limit = s.conn.server().config.close_timeout.as_millis() as u64;
                s.close_by = Some(now.saturating_add(limit));
                longest = longest.max(limit);
            } else {
                idle.push(*k);
            }
        }
        for key in idle {
            drop(self.remove(key));
        }
        if longest > 0 {
            self.arm_sweep(longest);
        }
    }

    /// Server `id` is at `maxConnections` and asks its idle keep-alive
    /// connections to make room: the longest idle one here closes, if
    /// the server still wants one (`Server::take_shed`).
    pub fn shed_idle(&self, id: u64) {
        let oldest = self
            .conns
            .borrow()
            .iter()
            .filter(|(_, s)| {
                s.conn.server().id == id
                    && !s.conn.busy()
                    && !s.conn.has_buffered()
                    && s.queued.is_none()
            })
            .min_by_key(|(_, s)| s.conn.idle_since())
            .map(|(k, s)| (*k, s.conn.server().clone()));
        if let Some((key, server)) = oldest {
            if server.take_shed() {
                drop(self.remove(key));
            }
        }
    }

    /// The environment goes away: every connection closes.
    pub fn shutdown(&self) {
        if self.closed.replace(true) {
            return;
        }
        *self.woken.keys.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let keys: Vec<u64> = self.conns.borrow().keys().copied().collect();
        for key in keys {
            drop(self.remove(key));
        }
        // SAFETY: handles of this loop, closed once (`closed` guards);
        // their memory is left to the process, as the state's is.
        unsafe {
            (self.uv.close)(self.check, None);
            (self.uv.close)(self.timer, None);
            (self.uv.close)(self.woken.handle as *mut c_void, None);
        }
    }

    fn watch(&self, slot: &mut Slot, events: c_int) {
        if slot.events == events {
            return;
        }
        // SAFETY: the slot's live poll handle.
        unsafe {
            if events == 0 {
                (self.uv.poll_stop)(slot.poll);
            } else {
                (self.uv.poll_start)(slot.poll, events, on_poll::<H>);
            }
        }
        slot.events = events;
    }

    /// Takes a connection out of the keep-alive executor; its poll handle closes now,
    /// which also takes the socket out of libuv's epoll.
    fn remove(&self, key: u64) -> Option<KeepAliveConn> {
        let slot = self.conns.borrow_mut().remove(&key)?;
        // SAFETY: the slot's live poll handle, closed once; freed by its
        // close callback.
        unsafe { (self.uv.close)(slot.poll, Some(free_poll)) };
        Some(slot.conn)
    }

    /// Puts connection `key` in the next round with poll `events` (0: none,
    /// negative: an error), or adds them to its entry already there.
    fn mark(&self, key: u64, events: c_int) {
        {
            let mut conns = self.conns.borrow_mut();
            let Some(slot) = conns.get_mut(&key) else {
                return; // gone
            };
            if let Some(q) = slot.queued {
                slot.queued = Some(if q < 0 || events < 0 { -1 } else { q | events });
                return;
            }
            slot.queued = Some(events);
        }
        self.ready.borrow_mut().push(key);
        if !self.check_on.replace(true) {
            // SAFETY: the keep-alive executor's live check handle.
            unsafe { (self.uv.check_start)(self.check, on_check::<H>) };
        }
    }

    fn arm_sweep(&self, limit_ms: u64) {
        let period = (limit_ms / 4).clamp(20, 1000);
        let now = self.sweep_ms.get();
        if now != 0 && now <= period {
            return;
        }
        self.sweep_ms.set(period);
        // SAFETY: the keep-alive executor's live timer handle.
        unsafe { (self.uv.timer_start)(self.timer, on_sweep::<H>, period, period) };
    }

    /// Closes connections idle for their whole timeout (no error: as an
    /// engine task does for an idle keep-alive connection).
    fn sweep(&self) {
        let now = crate::clock::mono_ms();
        let expired: Vec<u64> = self
            .conns
            .borrow()
            .iter()
            .filter(|(_, s)| s.conn.expired(now) || s.close_by.is_some_and(|t| now >= t))
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            drop(self.remove(key));
        }
        if self.conns.borrow().is_empty() {
            self.sweep_ms.set(0);
            // SAFETY: the keep-alive executor's live timer handle.
            unsafe { (self.uv.timer_stop)(self.timer) };
        }
    }

    /// The check handle's work: every marked connection takes a step;
    /// the requests found go to JS together; then their responses (most
    /// ended during the call) are looked at, which may find more.
    fn run(&self, state: &H) {
        // Taken out for the round (no borrow is held while JS runs).
        let mut round = std::mem::take(&mut *self.round.borrow_mut());
        let started = crate::clock::mono_ms();
        for _ in 0..MAX_ROUNDS {
            std::mem::swap(&mut round.items, &mut *self.ready.borrow_mut());
            if round.items.is_empty() {
                break;
            }
            self.now.set(crate::clock::mono_ms());
            for key in round.items.drain(..) {
                if round.requests.len() >= state.group().get() {
                    // The group is full: next round, its events kept.
                    self.ready.borrow_mut().push(key);
                    continue;
                }
                if let Some(ev) = self.step(key) {
                    round.requests.push(ev);
                    round.asked.push(key);
                }
            }
            if round.requests.is_empty() {
                continue;
            }
            // SAFETY: on this environment's JS thread, from a libuv callback
            // (no JS on the stack): the scopes are opened here.
            unsafe { self.call_js(state, &mut round.requests) };
            // Responses that ended during the call start their idle time
            // now, not when the round began: the handlers may have run long.
            self.now.set(crate::clock::mono_ms());
            for key in round.asked.drain(..) {
                self.after(key);
            }
            // Slow handlers and long pipelines: the loop's other work goes
            // first, as for the engine's deliveries.
            if self.now.get().wrapping_sub(started) >= TURN_BUDGET_MS {
                break;
            }
        }
        *self.round.borrow_mut() = round;
        if self.ready.borrow().is_empty() {
            if self.check_on.replace(false) {
                // SAFETY: the keep-alive executor's live check handle.
                unsafe { (self.uv.check_stop)(self.check) };
            }
        } else {
            // Work left (a long pipeline): the check handle stays on, and
            // this wake keeps the loop from blocking before it runs again.
            // SAFETY: the keep-alive executor's live async handle.
            unsafe { (self.woken.send)(self.woken.handle as *mut c_void) };
        }
    }

    /// How many connections of server `id` this keep-alive executor serves.
    pub fn count(&self, id: u64) -> usize {
        self.conns
            .borrow()
            .values()
            .filter(|s| s.conn.server().id == id)
            .count()
    }

    /// Entries waiting for the next round.
    pub fn waiting(&self) -> usize {
        self.ready.borrow().len()
    }

    /// One connection's step, with the poll events it gathered while it
    /// waited in `ready`; a request for JS, if that is what it found.
    fn step(&self, key: u64) -> Option<Event> {
        let events = {
            let mut conns = self.conns.borrow_mut();
            let slot = conns.get_mut(&key)?; // gone
            let events = slot.queued.take()?;
            if events < 0 {
                // libuv stopped the handle itself when it reported the error.
                slot.events = 0;
            }
            events
        };
        // Errors (negative status) show as readable: the read reports them.
        let readable = events & UV_READABLE != 0 || events < 0;
        if readable {
            let mut conns = self.conns.borrow_mut();
            let slot = conns.get_mut(&key)?;
            if slot.conn.busy() {
                if events < 0 {
                    // The socket failed with a request pending: given up
                    // (its response's 'close' comes as the exchange
                    // detaches).
                    drop(conns);
                    drop(self.remove(key));
                    return None;
                }
                if slot.conn.peer_gone() {
                    // Its FIN: the handler has a grace to answer, as on
                    // an engine task (`LEFT_GRACE`); then the sweep
                    // gives it up.
                    let by =
                        crate::clock::mono_ms().saturating_add(crate::engine::idle::LEFT_GRACE_MS);
                    slot.close_by = Some(slot.close_by.map_or(by, |t| t.min(by)));
                    drop(conns);
                    self.arm_sweep(crate::engine::idle::LEFT_GRACE_MS);
                    conns = self.conns.borrow_mut();
                }
                if let Some(slot) = conns.get_mut(&key) {
                    slot.read_ahead = true;
                }
            }
        }
        let mut slot = self.settle(key)?;
        match slot.conn.next(readable) {
            Step::Request(ev) => Some(ev),
            Step::Wait => {
                self.watch(&mut slot, UV_READABLE);
                None
            }
            step => {
                drop(slot);
                let conn = self.remove(key)?;
                if let Step::HandBack = step {
                    let (idle, read_ahead) = conn.into_idle();
                    crate::engine::connection::hand_back(idle, read_ahead);
                } // Drop: the peer is gone; the socket closes with `conn`.
                None
            }
        }
    }

    /// After JS had the request of `key`: where does its response stand?
    fn after(&self, key: u64) {
        let Some(mut slot) = self.settle(key) else {
            return;
        };
        if slot.conn.has_buffered() {
            // A pipelined request: next round.
            drop(slot);
            self.mark(key, 0);
        } else {
            self.watch(&mut slot, UV_READABLE);
        }
    }

    /// Writes what the response of `key` has queued and acts on where it
    /// stands: waits for its end or for room in the socket, or closes the
    /// connection. The connection's slot when it is in the keep-alive executor with no
    /// response in flight.
    fn settle(&self, key: u64) -> Option<RefMut<'_, Slot>> {
        let mut slot = RefMut::filter_map(self.conns.borrow_mut(), |c| c.get_mut(&key)).ok()?;
        match slot.conn.progress(self.now.get()) {
            Progress::Idle => {
                slot.read_ahead = false;
                Some(slot)
            }
            // Readable too while nothing is read ahead: a client that
            // leaves is seen (`step`).
            Progress::Busy => {
                let events = if slot.read_ahead { 0 } else { UV_READABLE };
                self.wait_for_end(&mut slot, events);
                None
            }
            Progress::Blocked => {
                let events = if slot.read_ahead { 0 } else { UV_READABLE };
                self.wait_for_end(&mut slot, UV_WRITABLE | events);
                None
            }
            Progress::Close => {
                drop(slot);
                if let Some(conn) = self.remove(key) {
                    crate::engine::connection::close(conn.into_idle().0);
                }
                None
            }
        }
    }

    fn wait_for_end(&self, slot: &mut Slot, events: c_int) {
        slot.conn.waker.register(&slot.waker);
        self.watch(slot, events);
    }

    /// Hands `requests` to JS in one call, as the engine's batches go.
    ///
    /// # Safety
    /// On this environment's JS thread, with no JS on the stack.
    unsafe fn call_js(&self, state: &H, requests: &mut Vec<Event>) {
        // SAFETY: as documented.
        unsafe {
            self.entry.run(state.env(), || {
                let f = state.dispatcher();
                crate::engine::wakeups::begin_batch();
                state.deliver_requests(f, requests);
                crate::engine::wakeups::end_batch();
            })
        }
    }
}

/// Runs `f` with the keep-alive executor of handle `h`, keeping panics out of libuv.
fn with_keepalive<H: Host>(h: *mut c_void, f: impl FnOnce(&'static H, &KeepAlive<H>)) {
    let p = owner_of::<H>(h);
    if p.is_null() {
        return;
    }
    // SAFETY: set by `bind` to a state that is never freed.
    let state: &'static H = unsafe { &*p };
    let Some(keepalive) = state.keepalive() else {
        return;
    };
    if keepalive.closed.get() {
        return;
    }
    let run = std::panic::AssertUnwindSafe(|| f(state, keepalive));
    if std::panic::catch_unwind(run).is_err() {
        eprintln!("sack: internal error in the HTTP keepalive (please report)");
    }
}

unsafe extern "C" fn on_poll<H: Host>(h: *mut c_void, status: c_int, events: c_int) {
    let key = data_of(h) as u64;
    with_keepalive::<H>(h, |_, keepalive| {
        keepalive.mark(key, if status < 0 { -1 } else { events })
    });
}

unsafe extern "C" fn on_check<H: Host>(h: *mut c_void) {
    with_keepalive::<H>(h, |state, keepalive| keepalive.run(state));
}

unsafe extern "C" fn on_async<H: Host>(h: *mut c_void) {
    with_keepalive::<H>(h, |_, keepalive| {
        let keys = {
            let mut g = keepalive
                .woken
                .keys
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            g.as_mut().map(std::mem::take).unwrap_or_default()
        };
        for key in keys {
            keepalive.mark(key, 0);
        }
    });
}

unsafe extern "C" fn on_sweep<H: Host>(h: *mut c_void) {
    with_keepalive::<H>(h, |_, keepalive| keepalive.sweep());
}
