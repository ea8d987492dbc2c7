//! Cheap clocks for the per-request path.
//!
//! An HTTP response needs the time twice: for its `Date` header (to the
//! second) and for the start of the connection's idle time (timeouts are
//! whole seconds or more). Linux's coarse clocks answer both from the vDSO
//! without reading the hardware counter, a few nanoseconds instead of tens
//! in a virtual machine; their resolution (one scheduler tick, 1–10 ms) is
//! far below what either use can see. Elsewhere the precise clocks stand in.

use std::time::{SystemTime, UNIX_EPOCH};

/// Whole seconds since the Unix epoch, for `Date` (RFC 9110 §6.6.1).
pub fn unix_secs() -> u64 {
    #[cfg(target_os = "linux")]
    {
        if let Some(t) = coarse(libc::CLOCK_REALTIME_COARSE) {
            return t.tv_sec.max(0) as u64;
        }
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Milliseconds on a monotonic clock with an arbitrary origin: for
/// measuring spans, comparable only with other readings of this function.
pub fn mono_ms() -> u64 {
    #[cfg(target_os = "linux")]
    {
        if let Some(t) = coarse(libc::CLOCK_MONOTONIC_COARSE) {
            return t.tv_sec.max(0) as u64 * 1000 + t.tv_nsec.max(0) as u64 / 1_000_000;
        }
    }
    use std::sync::OnceLock;
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    ORIGIN
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

#[cfg(target_os = "linux")]
fn coarse(clock: libc::clockid_t) -> Option<libc::timespec> {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec for the call.
    let r = unsafe { libc::clock_gettime(clock, &mut t) };
    (r == 0).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_agree_with_std() {
        let std_secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(unix_secs().abs_diff(std_secs) <= 1);
        let a = mono_ms();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let b = mono_ms();
        // One tick of coarseness either side.
        assert!((20..1000).contains(&(b - a)), "{a} → {b}");
    }
}
