//! Per-environment state (main thread and each worker): the event queue the
//! engine feeds, the threadsafe function that wakes this environment, the
//! JS dispatcher, and what to close when the environment goes away. Made
//! and torn down by `lifecycle`; the code that uses it sits above this.

use std::cell::{Cell, RefCell};
use std::ptr;
use std::sync::{Arc, RwLock};

use napi::bindgen_prelude::*;
use napi::sys;

use super::id_map::IdMap;
use super::keepalive::KeepAlive;
use super::pacing::{GroupSize, Resume};
use crate::engine::conn::Conn;
use crate::engine::events::{Batch, EventQueue};
use crate::engine::exchange::Exchange;
use crate::engine::server::Server;

/// The threadsafe function, shared with the engine's waker. `None` once the
/// environment is being torn down: the engine must stop calling it first
/// (calls racing a worker's teardown crash Node 20, nodejs/node#58484).
pub(super) struct Tsfn(pub(super) RwLock<Option<TsfnPtr>>);

#[derive(Clone, Copy)]
pub(super) struct TsfnPtr(pub(super) sys::napi_threadsafe_function);
// SAFETY: napi_call_threadsafe_function is documented to be callable from
// any thread; the pointer is only dereferenced by Node.
unsafe impl Send for TsfnPtr {}
// SAFETY: as above.
unsafe impl Sync for TsfnPtr {}

impl Tsfn {
    pub(super) fn wake(&self) {
        let guard = self.0.read().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = *guard {
            // SAFETY: the function is alive while it is in the slot; teardown
            // takes it out under the write lock before releasing it.
            unsafe { sys::napi_call_threadsafe_function(t.0, ptr::null_mut(), 0) };
        }
    }
}

pub struct EnvState {
    pub env: sys::napi_env,
    pub queue: Arc<EventQueue>,
    pub(super) tsfn: Arc<Tsfn>,
    pub(super) dispatcher: Cell<sys::napi_ref>,
    /// The batch not in use, swapped with the queue's on each wake.
    pub spare: RefCell<Batch>,
    /// The batch being delivered. Events are taken one at a time, so a
    /// `post` from inside a handler can pull out the rest of its connection's.
    pub current: RefCell<Batch>,
    /// Connections posted to this environment whose held events are still
    /// to be delivered (`Conn::take_held`).
    pub moving: RefCell<Vec<Arc<Conn>>>,
    /// Reasons to keep the event loop alive (listening servers, open
    /// connections), counted by index.js.
    pub(super) holds: Cell<u32>,
    pub servers: RefCell<IdMap<Arc<Server>>>,
    pub conns: RefCell<IdMap<Arc<Conn>>>,
    /// HTTP responses delivered to JS and not ended yet, by exchange id.
    pub exchanges: RefCell<IdMap<Arc<Exchange>>>,
    /// Keep-alive HTTP connections served on this thread (Linux).
    pub keepalive: Option<KeepAlive<EnvState>>,
    /// Goes on with a delivery that yielded to the event loop.
    pub resume: Option<Resume<EnvState>>,
    /// The Float64Array that carries request groups' numbers, and its data
    /// (`request_group::request_numbers`); null until the first group.
    pub request_nums: Cell<(sys::napi_ref, *mut f64)>,
    /// `response::respond`'s buffers, kept between calls so a response
    /// costs no allocation: the header block last given (JS asks for it
    /// again with the `SAME_HEAD` flag), and the reason and string body.
    pub response_text: RefCell<ResponseText>,
    /// The text of a request group (`request_group::deliver_requests`), kept
    /// between groups so a group costs no allocation.
    pub request_text: Cell<Vec<u8>>,
    /// How many requests the next group may hold.
    pub group: GroupSize,
}

/// See [`EnvState::response_text`].
#[derive(Default)]
pub struct ResponseText {
    /// The header block (UTF-8; emptied if it was not).
    pub block: Vec<u8>,
    /// Where its names and values are: (name start, name end, value start,
    /// value end), found once per block.
    pub fields: Vec<(u32, u32, u32, u32)>,
    pub reason: Vec<u8>,
    pub body: Vec<u8>,
}

/// The environment's instance data: its state, leaked at init.
pub(super) struct StatePtr(pub(super) *const EnvState);

impl EnvState {
    /// This environment's state; `init` must have run.
    pub fn get(env: &Env) -> Result<&'static EnvState> {
        match env.get_instance_data::<StatePtr>()? {
            // SAFETY: the state is leaked at init and never freed (see `lifecycle::cleanup`).
            Some(p) => Ok(unsafe { &*p.0 }),
            None => Err(Error::new(
                Status::GenericFailure,
                "sack: init() was not called in this environment",
            )),
        }
    }

    pub fn dispatcher(&self) -> sys::napi_value {
        let mut f = ptr::null_mut();
        // SAFETY: on the JS thread of `self.env`; the reference is alive
        // until cleanup.
        unsafe { sys::napi_get_reference_value(self.env, self.dispatcher.get(), &mut f) };
        f
    }

    /// `on`: one more reason to keep the loop alive; `!on`: one fewer.
    pub fn hold(&self, on: bool) {
        let before = self.holds.get();
        let after = if on {
            before + 1
        } else {
            before.saturating_sub(1)
        };
        self.holds.set(after);
        let guard = self.tsfn.0.read().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = *guard {
            // SAFETY: on the JS thread of `self.env`, with a live function.
            unsafe {
                if before == 0 && after > 0 {
                    sys::napi_ref_threadsafe_function(self.env, t.0);
                } else if before > 0 && after == 0 {
                    sys::napi_unref_threadsafe_function(self.env, t.0);
                }
            }
        }
    }
}
