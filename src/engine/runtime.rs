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
    handle.spawn(super::flush::run());
    handle.spawn(super::sink::notifier());
    std::thread::Builder::new()
        .name("sack-engine".into())
        .spawn(move || {
            super::sink::enable_deferred_wakes();
            batch_scheduling();
            rt.block_on(std::future::pending::<()>())
        })?;
    *slot = Some(handle.clone());
    Ok(handle)
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
