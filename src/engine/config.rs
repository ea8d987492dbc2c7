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
    /// Bytes of HTTP request bodies a server holds at once, read but not
    /// yet handed to JS. Past it, bodies are not read further until others
    /// leave, so TCP pushes back on their clients (each still bounded by
    /// `request_timeout`). Default 64 MiB: without it, 100 clients each
    /// parking a body just under `max_body_size` pin 1 GB.
    pub max_body_buffer: usize,
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
    /// 16 MiB: well above a burst, far below memory trouble. While a
    /// connection is over it, the engine also stops reading from it: a
    /// peer that does not read cannot make us queue answers (pongs) for
    /// ever, and TCP pushes back on it instead.
    pub max_backpressure: usize,
    /// Bytes queued for one connection past which it is closed (1008,
    /// `WS_ERR_BACKPRESSURE`) instead of queueing more: an app that ignores
    /// `send()`'s `false` for a peer that never reads would otherwise grow
    /// without bound (as uWebSockets' `closeOnBackpressureLimit`). Default
    /// 64 MiB, four times `max_backpressure`: room for a burst past the soft
    /// limit, a bound on what one peer can pin. Zero = no limit.
    pub backpressure_limit: usize,
    /// Send a ping after this much silence, close (1001) when the next
    /// interval passes with nothing received. Default 30 s, as the
    /// heartbeat in `ws`'s README (uWebSockets closes after 120 s idle):
    /// a peer that vanished without a FIN (power loss, a NAT that forgot
    /// the flow) is found within two intervals instead of holding its
    /// connection for ever, and a ping every 30 s keeps the usual 60 s
    /// proxy and NAT idle timeouts from cutting quiet connections. Zero =
    /// off.
    pub ping_interval: Duration,
    /// Time to wait for the peer's close frame after ours. Default 10 s.
    pub close_timeout: Duration,
    /// Connections allowed at once, WebSocket and HTTP alike. A new one
    /// past the limit closes the longest-idle keep-alive HTTP connection
    /// to make room, or is answered 503 when there is none. 0 = no limit.
    pub max_connections: usize,
    /// permessage-deflate (RFC 7692): `None` ignores offers (the default:
    /// compression costs CPU and memory per connection). With
    /// `compress: false` offers are agreed and incoming messages inflated,
    /// but nothing is compressed (`perMessageDeflateAllow`).
    pub deflate: Option<DeflateConfig>,
    /// Upgrades only for this path (the target before any `?`); others
    /// are answered 400, as `ws` does. `None`: every path.
    pub path: Option<String>,
    /// TLS on every connection accepted (`cert`/`key`); `None`: plain.
    pub tls: Option<super::tls::Tls>,
    /// The listen backlog: connections the kernel completes before the
    /// engine accepts them. Default 511, as Node's `net.Server`.
    pub backlog: u32,
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
            max_body_buffer: 64 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(300),
            masking: false,
            max_backpressure: 16 * 1024 * 1024,
            backpressure_limit: 64 * 1024 * 1024,
            ping_interval: Duration::from_secs(30),
            close_timeout: Duration::from_secs(10),
            max_connections: 0,
            deflate: None,
            path: None,
            tls: None,
            backlog: 511,
        }
    }
}
