//! The session's timer step: the closing handshake's deadlines
//! (`closeTimeout`) and the keep-alive ping (`pingInterval`).

use std::future::Future;
use std::task::Context;

use tokio::time::{sleep, Instant};

use super::core::Core;
use super::{Closing, Next};
use crate::protocol::close;

impl Core {
    pub(super) fn poll_timers(&mut self, cx: &mut Context<'_>) -> Next {
        if self.closing == Closing::Flush {
            if self.flushed() {
                return Next::End(self.abnormal());
            }
            // A peer that stops reading must not hold the connection (and
            // the server's close) forever: closeTimeout bounds the flush
            // too, and the close then reports 1006.
            let close_timeout = self.close_timeout;
            let d = self
                .deadline
                .get_or_insert_with(|| Box::pin(sleep(close_timeout)));
            if d.as_mut().poll(cx).is_ready() {
                return Next::End((close::ABNORMAL, String::new()));
            }
            return Next::Wait;
        }
        if let Some(d) = self.deadline.as_mut() {
            if d.as_mut().poll(cx).is_ready() {
                if self.closing == Closing::PeerClosed {
                    // JS did not answer in time: answer now.
                    self.deadline = None;
                    let (code, reason) = self
                        .outcome
                        .as_ref()
                        .map_or((close::NO_STATUS, ""), |(c, r)| (*c, r.as_str()));
                    self.conn.answer_close(code, reason);
                    self.closing = Closing::Flush;
                    return Next::Again;
                }
                return Next::End(self.abnormal());
            }
        }
        if self.closing == Closing::No && self.poll_ping(cx) {
            // Silent for two intervals: close (1001) without waiting.
            let mut g = self.conn.lock();
            self.conn
                .queue_close(&mut g, Some((close::GOING_AWAY, "ping timeout")));
            drop(g);
            self.outcome = Some((close::ABNORMAL, "ping timeout".into()));
            self.closing = Closing::Flush;
            return Next::Again;
        }
        Next::Go
    }

    /// The keep-alive timer fired or not; returns true when the peer has
    /// sent nothing for an interval after our ping and must be dropped.
    /// Anything read counts as life (`on_bytes` clears `awaiting_pong`),
    /// so a pong that comes right after its ping counts however the timer
    /// rounds; a peer busy sending gets no pings at all.
    fn poll_ping(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(timer) = self.ping_timer.as_mut() else {
            return false;
        };
        if timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        let now = Instant::now();
        // Re-armed lazily: reads only stamp `last_read`.
        let quiet_until = self.last_read + self.ping_interval;
        if now < quiet_until {
            timer.as_mut().reset(quiet_until);
            let _ = timer.as_mut().poll(cx);
            return false;
        }
        if self.awaiting_pong {
            return true;
        }
        self.awaiting_pong = true;
        let _ = self.conn.ping(&[]);
        timer.as_mut().reset(now + self.ping_interval);
        let _ = timer.as_mut().poll(cx);
        false
    }
}
