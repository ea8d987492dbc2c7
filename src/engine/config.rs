//! Server settings, each with its default and the reason for it.

use std::time::Duration;

use crate::protocol::deflate::DeflateConfig;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest incoming message. Default 100 MiB, as `ws`: big enough for
    /// real payloads, small enough that one peer cannot exhaust memory.
    /// Larger → close 1009.
    pub max_payload: usize,
    /// Largest HTTP request head. Default 16 KiB, as Node's `http`. → 431.
    pub max_header_size: usize,
    /// Largest HTTP request body (request handler). Default 10 MiB. → 413.
    pub max_body_size: usize,
    /// Time allowed for the request head to arrive. Default 10 s: slow
    /// clients get through, idle sockets that never speak do not linger.
    pub handshake_timeout: Duration,
    /// Time allowed for an HTTP request's body to arrive after its head.
    /// Default 300 s, as Node's `requestTimeout`: `handshake_timeout`
    /// bounds each pause, so without this a client sending a byte now and
    /// then could hold the connection, and up to `max_body_size` of memory,
    /// for ever. Zero = no limit. → 408.
    pub request_timeout: Duration,
    /// Mask the server's frames (non-standard; browsers refuse it). Default off.
    pub masking: bool,
    /// `send()` (and an HTTP response's `write()`) returns false once this
    /// many bytes wait to be written ([`under_backpressure`]). Default
    /// 16 MiB: well above a burst, far below memory trouble.
    pub max_backpressure: usize,
    /// Send a ping after this much silence, close (1001) when the next
    /// interval passes with no pong. Default 0 (off), as `ws`.
    pub ping_interval: Duration,
    /// Time to wait for the peer's close frame after ours. Default 10 s.
    pub close_timeout: Duration,
    /// Open connections allowed at once; more are answered 503. 0 = no limit.
    pub max_connections: usize,
    /// permessage-deflate (RFC 7692): `None` ignores offers (the default:
    /// compression costs CPU and memory per connection). With
    /// `compress: false` offers are agreed and incoming messages inflated,
    /// but nothing is compressed (`perMessageDeflateAllow`).
    pub deflate: Option<DeflateConfig>,
}

/// Whether `queued` bytes waiting to be written are under the
/// `maxBackpressure` limit: below it, or none at all (so a limit of 0 is
/// under once the queue is empty). Sends return false when not; the drain
/// is due when they fall back under.
pub fn under_backpressure(queued: usize, limit: usize) -> bool {
    queued < limit || queued == 0
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_payload: 100 * 1024 * 1024,
            max_header_size: 16 * 1024,
            max_body_size: 10 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(300),
            masking: false,
            max_backpressure: 16 * 1024 * 1024,
            ping_interval: Duration::ZERO,
            close_timeout: Duration::from_secs(10),
            max_connections: 0,
            deflate: None,
        }
    }
}
