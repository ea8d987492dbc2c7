//! Waking connection tasks from the JS thread, once per batch.
//!
//! Waking a tokio task from another thread costs a syscall (the runtime's
//! eventfd) every time. A burst of `send()`s to many connections would pay it
//! per connection. Instead, their wakers are collected here and one flusher
//! task on the engine thread, woken once, wakes them all locally.

use std::cell::Cell;
use std::future::poll_fn;
use std::sync::Mutex;
use std::task::{Poll, Waker};

use atomic_waker::AtomicWaker;

static DIRTY: Mutex<Vec<Waker>> = Mutex::new(Vec::new());
static FLUSHER: AtomicWaker = AtomicWaker::new();

thread_local! {
    /// Set while a JS thread delivers a batch of events: the flusher is then
    /// woken once at the end of the batch (`end_batch`), not at the first
    /// send, which would hand the core to the engine mid-batch.
    static IN_BATCH: Cell<bool> = const { Cell::new(false) };
    static OWED: Cell<bool> = const { Cell::new(false) };
    /// Set while JS handles the last event of a batch (see `Conn::try_direct`).
    static DIRECT: Cell<bool> = const { Cell::new(false) };
}

/// Whether a send may write to its socket directly from this thread now.
pub fn direct_allowed() -> bool {
    DIRECT.with(Cell::get)
}

/// The JS thread is about to deliver the last event of its batch (`true`),
/// or any other (`false`).
pub fn set_last_event(last: bool) {
    DIRECT.with(|d| d.set(last));
}

/// Queues `waker` (a connection task with new output) for the flusher.
pub fn schedule(waker: Waker) {
    let first = {
        let mut d = DIRTY.lock().unwrap_or_else(|e| e.into_inner());
        d.push(waker);
        d.len() == 1
    };
    if first {
        if IN_BATCH.with(Cell::get) {
            OWED.with(|o| o.set(true));
        } else {
            FLUSHER.wake();
        }
    }
}

/// The calling (JS) thread starts delivering a batch of events.
pub fn begin_batch() {
    IN_BATCH.with(|b| b.set(true));
}

/// The batch is delivered: wake the flusher if sends are waiting.
pub fn end_batch() {
    IN_BATCH.with(|b| b.set(false));
    DIRECT.with(|d| d.set(false));
    if OWED.with(|o| o.replace(false)) {
        FLUSHER.wake();
    }
}

/// The flusher task; spawned once on the runtime.
pub(super) async fn run() {
    let mut batch: Vec<Waker> = Vec::new();
    poll_fn(|cx| {
        FLUSHER.register(cx.waker());
        std::mem::swap(
            &mut batch,
            &mut DIRTY.lock().unwrap_or_else(|e| e.into_inner()),
        );
        for w in batch.drain(..) {
            w.wake();
        }
        Poll::<()>::Pending
    })
    .await
}
