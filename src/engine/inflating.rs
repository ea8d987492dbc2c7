//! Compressed messages that inflate over several turns of their
//! connection's task (permessage-deflate bombs among them), and the
//! engine-wide limit on how many do at once.

use std::cell::RefCell;

use crate::protocol::close;
use crate::protocol::decoder::Violation;
use crate::protocol::deflate::{InflateError, Inflating, Step};
use crate::protocol::utf8;

/// A compressed message inflating over several turns of its task.
pub(super) struct Inflation {
    pub job: Inflating,
    pub text: bool,
    /// The compressed bytes not inflated yet.
    pub rest: Vec<u8>,
    /// Its place among the messages inflating at once, once it has one.
    pub slot: Option<InflateSlot>,
    /// Waiting for a place (its waker is queued for one).
    pub waiting: bool,
}

/// Messages that may inflate past their first slice at once, engine-wide.
/// Each may grow to `maxPayload` before it proves too big, so this bounds
/// what deflate bombs can pin (two of 100 MiB by default, where eight
/// clients bombing at once took 3 GiB); the others wait their turn, reading
/// nothing meanwhile.
const INFLATING_AT_ONCE: usize = 2;

thread_local! {
    /// Places taken, and the tasks waiting for one (engine thread).
    static INFLATE_SLOTS: RefCell<(usize, std::collections::VecDeque<std::task::Waker>)> =
        const { RefCell::new((0, std::collections::VecDeque::new())) };
}

/// A place among the [`INFLATING_AT_ONCE`]; freed when dropped (the
/// message is whole or failed, or its connection ended).
pub(super) struct InflateSlot;

impl InflateSlot {
    /// A place, or `None` with `waker` queued for the next one freed.
    pub(super) fn take(waker: &std::task::Waker) -> Option<InflateSlot> {
        INFLATE_SLOTS.with(|s| {
            let (taken, waiting) = &mut *s.borrow_mut();
            if *taken < INFLATING_AT_ONCE {
                *taken += 1;
                return Some(InflateSlot);
            }
            if !waiting.iter().any(|w| w.will_wake(waker)) {
                waiting.push_back(waker.clone());
            }
            None
        })
    }
}

impl Drop for InflateSlot {
    fn drop(&mut self) {
        let next = INFLATE_SLOTS.with(|s| {
            let (taken, waiting) = &mut *s.borrow_mut();
            *taken -= 1;
            waiting.pop_front()
        });
        if let Some(w) = next {
            w.wake();
        }
    }
}

thread_local! {
    /// The inflate output buffer, lent to one connection at a time while it
    /// decodes a read (a connection inflating over several turns keeps
    /// it), so an idle connection holds none.
    static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// The thread's inflate buffer (empty, maybe with capacity).
pub(super) fn take_scratch() -> Vec<u8> {
    SCRATCH.try_with(|s| s.take()).unwrap_or_default()
}

/// Gives `v` back to the thread, if it is no larger than `keep`.
pub(super) fn give_scratch(mut v: Vec<u8>, keep: usize) {
    if v.capacity() > 0 && v.capacity() <= keep {
        v.clear();
        let _ = SCRATCH.try_with(|s| s.set(v));
    }
}

/// Why an inflated message fails the connection, if it does.
pub(super) fn inflate_violation(
    r: Result<Step, InflateError>,
    text: bool,
    inflated: &[u8],
) -> Option<Violation> {
    match r {
        Err(InflateError::TooBig) => Some(Violation {
            code: close::MESSAGE_TOO_BIG,
            reason: "message too big",
        }),
        Err(e) => Some(Violation {
            code: e.close_code(),
            reason: "invalid compressed data",
        }),
        Ok(_) if text && utf8::validate(inflated).is_err() => Some(Violation {
            code: close::INVALID_PAYLOAD,
            reason: "invalid UTF-8",
        }),
        Ok(_) => None,
    }
}
