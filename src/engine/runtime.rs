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
            rt.block_on(std::future::pending::<()>())
        })?;
    *slot = Some(handle.clone());
    Ok(handle)
}
