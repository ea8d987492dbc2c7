//! The thread registry: moving live connections between JS environments
//! (main thread, `worker_threads`).
//!
//! Node cannot transfer sockets to workers (ws#1907); sack does not need to.
//! The socket stays in the engine and only the place its events go changes.
//! A destination string maps to receivers, first come first served: a
//! one-shot receiver is used once, a standing one (a worker pool's) stays
//! and takes its turn again after the others.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::conn::Conn;
use super::events::{Batch, Event, EventQueue};

struct Receiver {
    token: u64,
    queue: Arc<EventQueue>,
    /// Stays registered after a connection (until `unregister`).
    standing: bool,
}

static RECEIVERS: Mutex<Option<HashMap<String, VecDeque<Receiver>>>> = Mutex::new(None);
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

fn with<R>(f: impl FnOnce(&mut HashMap<String, VecDeque<Receiver>>) -> R) -> R {
    let mut g = RECEIVERS.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

/// Registers a receiver for `destination` in the environment of `queue`
/// (`standing`: for every connection until unregistered, not just one);
/// the returned token names it when a connection arrives.
pub fn register(destination: &str, queue: Arc<EventQueue>, standing: bool) -> u64 {
    let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
    with(|m| {
        m.entry(destination.to_string())
            .or_default()
            .push_back(Receiver {
                token,
                queue,
                standing,
            })
    });
    token
}

/// Forgets the receiver `token`; false when it is not registered (used,
/// or forgotten already).
pub fn unregister(token: u64) -> bool {
    with(|m| {
        let mut found = false;
        for q in m.values_mut() {
            let before = q.len();
            q.retain(|r| r.token != token);
            found |= q.len() != before;
        }
        m.retain(|_, q| !q.is_empty());
        found
    })
}

/// Forgets every receiver of an environment that is going away.
pub fn unregister_env(queue: &Arc<EventQueue>) {
    with(|m| {
        for q in m.values_mut() {
            q.retain(|r| !Arc::ptr_eq(&r.queue, queue));
        }
        m.retain(|_, q| !q.is_empty());
    })
}

/// Moves `conn` to the next receiver of `destination`; false (and nothing
/// changes) when there is none. A pending connection is accepted on the
/// receiver's behalf. `undelivered` collects the events already queued for
/// the posting environment and not yet delivered: it runs after events are
/// being held, so nothing can slip in between, and its events go first.
pub fn post(
    conn: &Arc<Conn>,
    destination: &str,
    data: Option<Vec<u8>>,
    undelivered: impl FnOnce(&mut Batch),
) -> bool {
    let Some((token, queue)) = with(|m| {
        let q = m.get_mut(destination)?;
        let rx = q.pop_front()?;
        let taken = (rx.token, rx.queue.clone());
        if rx.standing {
            q.push_back(rx); // its turn again after the others
        }
        if q.is_empty() {
            m.remove(destination);
        }
        Some(taken)
    }) else {
        return false;
    };
    if conn.is_pending() {
        let _ = conn.accept(None);
    }
    conn.begin_move(queue.clone());
    // The socket reaches its receiver as a new one would: reading, with
    // TCP_NODELAY (what its new object reports). The old thread's `block()`
    // or `noDelay = false` is not the receiver's to know of or undo.
    conn.set_blocked(false);
    conn.set_nodelay(true);
    let mut earlier = Batch::default();
    undelivered(&mut earlier);
    conn.prepend_held(earlier);
    queue.push(Event::Adopt {
        token,
        destination: destination.to_string(),
        conn: conn.clone(),
        data,
    });
    true
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::engine::events::ConnInfo;
    use crate::http::head::RequestHead;

    fn open_conn(queue: Arc<EventQueue>) -> Arc<Conn> {
        let addr = "127.0.0.1:1".parse().unwrap();
        let info = Arc::new(ConnInfo {
            head: RequestHead::new("GET", "/", 1, &[]),
            remote: addr,
            local: addr,
            protocols: Vec::new(),
            tls: None,
        });
        let key = b"dGhlIHNhbXBsZSBub25jZQ==".to_vec();
        let conn = Conn::new(
            1,
            &Default::default(),
            queue,
            key,
            info,
            String::new(),
            false,
            crate::engine::conn::ConnTopics::new(),
            None,
        );
        conn.accept(None).unwrap();
        conn
    }

    /// The receiver's environment tears down between the registry lookup
    /// and the delivery: the socket is closed with 1001, not left open with
    /// nobody to read its events, and what comes later is not kept.
    #[test]
    fn a_socket_posted_to_an_environment_that_goes_away_meanwhile_is_closed() {
        let home = EventQueue::new(Box::new(|| {}));
        let away = EventQueue::new(Box::new(|| {}));
        let conn = open_conn(home);
        conn.set_blocked(true);
        register("registry-test-gone", away.clone(), false);
        let mut last = Batch::default();
        let posted = post(&conn, "registry-test-gone", None, |_| {
            // The environment's clean-up, at the worst moment.
            unregister_env(&away);
            away.shut(&mut last);
        });
        assert!(posted);
        assert!(last.is_empty(), "the adoption came after the last drain");
        assert!(
            !conn.lock().blocked,
            "a moved socket reaches its receiver reading"
        );
        assert_eq!(conn.lock().nodelay, Some(true), "and with TCP_NODELAY");
        let until = Instant::now() + Duration::from_secs(5);
        while !conn.lock().close_sent {
            assert!(Instant::now() < until, "closed with 1001 by the engine");
            std::thread::sleep(Duration::from_millis(2));
        }
        // Events still coming for it are discarded, not queued for ever.
        conn.emit(Event::Drain { conn: conn.id });
        assert!(away.lock().events.is_empty());
        assert!(
            !post(&conn, "registry-test-gone", None, |_| {}),
            "no receiver is left"
        );
    }

    /// A blocked socket closed for its gone environment reads again, so the
    /// client's answer to the 1001 completes the close.
    #[test]
    fn a_blocked_socket_closed_for_a_gone_environment_reads_again() {
        let home = EventQueue::new(Box::new(|| {}));
        let conn = open_conn(home.clone());
        conn.set_blocked(true);
        crate::engine::events::close_for_gone(&conn, &home);
        let g = conn.lock();
        assert!(!g.blocked);
        assert!(g.close_sent);
    }
}
