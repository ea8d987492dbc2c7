//! Waking connection tasks from the JS thread, once per batch.
//!
//! Waking a tokio task from another thread costs a syscall (the runtime's
//! eventfd) every time. A burst of `send()`s to many connections would pay it
//! per connection. Instead, their wakers are collected here and one flusher
//! task on the engine thread, woken once, wakes them all locally.

use std::future::poll_fn;
use std::sync::Mutex;
use std::task::{Poll, Waker};

use atomic_waker::AtomicWaker;

static DIRTY: Mutex<Vec<Waker>> = Mutex::new(Vec::new());
static FLUSHER: AtomicWaker = AtomicWaker::new();

/// Queues `waker` (a connection task with new output) for the flusher.
pub fn schedule(waker: Waker) {
    let first = {
        let mut d = DIRTY.lock().unwrap_or_else(|e| e.into_inner());
        d.push(waker);
        d.len() == 1
    };
    if first {
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
