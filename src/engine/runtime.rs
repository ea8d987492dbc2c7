//! The one tokio runtime of the process, on its own thread.
//!
//! A current-thread runtime: every connection task runs on the engine thread,
//! so connection state needs no cross-core handoff and the JS thread keeps
//! its core. It is started on first use and never shut down (a custom tokio
//! runtime cannot be restarted, napi-rs#3251); it ends with the process.

use std::sync::Mutex;
use tokio::runtime::Handle;

static HANDLE: Mutex<Option<Handle>> = Mutex::new(None);

/// The runtime's handle, starting the engine thread the first time.
pub fn handle() -> std::io::Result<Handle> {
    let mut slot = HANDLE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(h) = slot.as_ref() {
        return Ok(h.clone());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let handle = rt.handle().clone();
    handle.spawn(super::wakeups::run());
    super::events::start(&handle);
    handle.spawn(heartbeat());
    std::thread::Builder::new()
        .name("sack-engine".into())
        .spawn(move || {
            super::events::enable_deferred_wakes();
            batch_scheduling();
            rt.block_on(std::future::pending::<()>())
        })?;
    *slot = Some(handle.clone());
    Ok(handle)
}

/// A timer that always runs, once a second. Tokio interrupts its parked
/// driver (an eventfd write and a spurious epoll return) whenever a timer
/// is armed earlier than the driver's next wake-up, which is every time
/// when no timer was pending: every HTTP request and handshake arms a
/// timeout, so that was about one extra syscall pair per request. With
/// this one pending, the driver's next wake-up is at most a second away,
/// and only timers shorter than that interrupt it.
async fn heartbeat() {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
    }
}

/// Asks Linux not to let this thread preempt a running one when it wakes
/// (SCHED_BATCH). Where the engine and JS threads share a core, a socket
/// event would otherwise switch the core to the engine in the middle of a
/// JS batch, for a handful of events at a time; this way the engine runs
/// when JS waits, and gathers what came in meanwhile. With a core each, it
/// changes nothing.
#[cfg(target_os = "linux")]
fn batch_scheduling() {
    // SAFETY: plain syscall on the calling thread; the param is a local.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(0, libc::SCHED_BATCH, &param);
    }
}

#[cfg(not(target_os = "linux"))]
fn batch_scheduling() {}
