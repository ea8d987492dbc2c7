//! Who may write a connection's socket at a given moment.
//!
//! The engine task owns every socket. On a plain TCP socket the JS thread
//! may also write, at the end of a batch, straight from `send()` or
//! `res.end()` with one non-blocking `send(2)` (no engine wake for the
//! common small reply). That permission is a [`Writer`] value kept under
//! the connection's (or exchange's) lock, next to the queue it protects:
//! the direct path writes only while it finds [`Writer::Open`], and the
//! task retires it (under the same lock) before the socket may close, so
//! no direct write can reach a closed socket, or a reused descriptor.
//! A transport JS may not write (TLS: bytes must pass through its session)
//! simply never hands out a [`Direct`].

/// A socket the JS thread may write to directly. Not `Clone`: it lives in
/// one [`Writer`], which is retired before the socket closes.
#[derive(Debug)]
pub(crate) struct Direct {
    fd: i32,
}

impl Direct {
    /// The direct path to socket `fd`.
    ///
    /// # Safety
    /// The [`Writer`] this goes into must be retired (or dropped) before
    /// `fd` is closed.
    pub(crate) unsafe fn new(fd: i32) -> Direct {
        Direct { fd }
    }

    /// One non-blocking `send(2)` of what fits of `data`; the bytes that
    /// went (0 when none did, or the socket failed: the task finds out).
    pub(super) fn send(&self, data: &[u8]) -> usize {
        #[cfg(unix)]
        {
            if data.is_empty() {
                return 0;
            }
            // SAFETY: `fd` is open while this `Direct` is reachable (see `new`).
            unsafe { super::sys::send_now(self.fd, data) }
        }
        #[cfg(not(unix))]
        {
            let _ = data;
            0
        }
    }
}

/// Which side may write the socket now.
#[derive(Debug, Default)]
pub(crate) enum Writer {
    /// The engine task only: the connection is not in its loop yet, or its
    /// transport cannot be written from another thread (TLS).
    #[default]
    Engine,
    /// The task holds bytes it took from the queue and has not written
    /// them all: a direct write now would overtake them.
    TaskWriting(Direct),
    /// The task holds nothing: the JS thread may write.
    Open(Direct),
    /// The connection is closing its socket: nobody writes any more.
    Retired,
}

impl Writer {
    /// The direct path, when the JS thread may take it now.
    pub(super) fn direct(&self) -> Option<&Direct> {
        match self {
            Writer::Open(d) => Some(d),
            _ => None,
        }
    }

    /// The task's loop starts: hands out the direct path, if the
    /// transport has one. A retired writer stays retired.
    pub(super) fn bind(&mut self, direct: Option<Direct>) {
        if let (Writer::Engine, Some(d)) = (&*self, direct) {
            *self = Writer::Open(d);
        }
    }

    /// The task took bytes from the queue (`true`) or wrote all it took.
    pub(super) fn task_holds(&mut self, holding: bool) {
        *self = match std::mem::take(self) {
            Writer::Open(d) if holding => Writer::TaskWriting(d),
            Writer::TaskWriting(d) if !holding => Writer::Open(d),
            other => other,
        };
    }

    /// No write may follow: called under the owner's lock before the
    /// socket closes.
    pub(super) fn retire(&mut self) {
        *self = Writer::Retired;
    }

    #[cfg(test)]
    fn is_retired(&self) -> bool {
        matches!(self, Writer::Retired)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    /// Two threads: one writes directly whenever the writer lets it, the
    /// other hands the socket to and from "the task" and then retires and
    /// closes it, and opens a new socket that takes the same descriptor
    /// number. Not one byte may reach the new socket.
    #[test]
    fn no_direct_write_after_retire() {
        for round in 0..200 {
            let (ours, mut theirs) = UnixStream::pair().unwrap();
            theirs.set_nonblocking(true).unwrap();
            let fd = ours.as_raw_fd();
            // SAFETY: the writer is retired below before `ours` closes.
            let writer = Arc::new(Mutex::new(Writer::Engine));
            writer
                .lock()
                .unwrap()
                .bind(Some(unsafe { Direct::new(fd) }));
            let stop = Arc::new(AtomicBool::new(false));
            let js = {
                let (writer, stop) = (writer.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut sent = 0usize;
                    while !stop.load(Ordering::Acquire) {
                        let g = writer.lock().unwrap();
                        if let Some(d) = g.direct() {
                            sent += d.send(b"x");
                        }
                    }
                    sent
                })
            };
            // The task takes and gives back its turn a few times.
            for i in 0..(round % 7) {
                writer.lock().unwrap().task_holds(i % 2 == 0);
            }
            writer.lock().unwrap().task_holds(false);
            // Retire, then close, then reuse the descriptor number.
            writer.lock().unwrap().retire();
            drop(ours);
            let (reused, mut peer) = UnixStream::pair().unwrap();
            peer.set_nonblocking(true).unwrap();
            let reused_fd = reused.as_raw_fd();
            std::thread::sleep(std::time::Duration::from_micros(200));
            stop.store(true, Ordering::Release);
            let sent = js.join().unwrap();
            let mut got = Vec::new();
            let _ = theirs.read_to_end(&mut got);
            // Every byte the direct path counted reached the first socket.
            assert_eq!(got.len(), sent, "round {round}");
            let mut leaked = [0u8; 64];
            let n = peer.read(&mut leaked).unwrap_or(0);
            assert_eq!(
                n, 0,
                "round {round}: a direct write reached descriptor {reused_fd} after retire"
            );
            assert!(writer.lock().unwrap().is_retired());
        }
    }

    #[test]
    fn transitions() {
        let mut w = Writer::Engine;
        assert!(w.direct().is_none());
        w.bind(None);
        assert!(matches!(w, Writer::Engine));
        // SAFETY: never used to write.
        w.bind(Some(unsafe { Direct::new(-1) }));
        assert!(w.direct().is_some());
        w.task_holds(true);
        assert!(w.direct().is_none() && matches!(w, Writer::TaskWriting(_)));
        w.task_holds(false);
        assert!(w.direct().is_some());
        w.retire();
        // SAFETY: as above.
        w.bind(Some(unsafe { Direct::new(-1) }));
        assert!(w.direct().is_none() && w.is_retired());
    }
}
