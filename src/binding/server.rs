//! `NativeServer`: a listening socket and its settings.

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi_derive::napi;

use super::env::EnvState;
use crate::engine::backplane::{check_url, Backplane, BackplaneConfig, History};
use crate::engine::listener;
use crate::engine::server::{error_code, Server};
use crate::engine::tls::{Material, Tls, TlsError};
use crate::engine::ServerConfig;
use crate::protocol::deflate::DeflateConfig;

/// Settings index.js has already checked; absent fields keep their defaults
/// (see `engine::config`).
#[napi(object)]
pub struct ServerOptions {
    pub max_payload: Option<f64>,
    pub max_header_size: Option<f64>,
    pub max_body_size: Option<f64>,
    pub max_body_buffer: Option<f64>,
    /// Milliseconds.
    pub handshake_timeout: Option<f64>,
    /// Milliseconds; 0 = off.
    pub request_timeout: Option<f64>,
    pub masking: Option<bool>,
    pub max_backpressure: Option<f64>,
    pub backpressure_limit: Option<f64>,
    /// Milliseconds.
    pub close_timeout: Option<f64>,
    /// Milliseconds; 0 = off.
    pub ping_interval: Option<f64>,
    pub max_connections: Option<f64>,
    /// permessage-deflate: negotiate at all.
    pub deflate: Option<bool>,
    /// Compress outgoing messages (false: `perMessageDeflateAllow`).
    pub deflate_compress: Option<bool>,
    pub deflate_threshold: Option<f64>,
    pub deflate_level: Option<u32>,
    pub deflate_server_no_context_takeover: Option<bool>,
    pub deflate_client_no_context_takeover: Option<bool>,
    pub deflate_server_max_window_bits: Option<u32>,
    pub deflate_client_max_window_bits: Option<u32>,
    /// Upgrades only for this path.
    pub path: Option<String>,
    pub backlog: Option<u32>,
    /// TLS: the certificate chain, key and extra CA certificates (PEM),
    /// and the key's passphrase.
    pub tls_cert: Option<Buffer>,
    pub tls_key: Option<Buffer>,
    pub tls_ca: Option<Buffer>,
    pub tls_passphrase: Option<String>,
    /// Certificates chosen by SNI (`hosts`).
    pub tls_hosts: Option<Vec<HostMaterial>>,
    /// Session-ticket keys shared with other processes (`ticketKeys`).
    pub tls_ticket_keys: Option<Buffer>,
    /// The Redis backplane (`backplane`): its URL, key prefix, history
    /// (present: history mode) size and TTL (ms), heartbeat (ms), and the
    /// bytes of publishes held while Redis is away.
    pub backplane_url: Option<String>,
    pub backplane_prefix: Option<String>,
    pub backplane_history_size: Option<f64>,
    pub backplane_history_ttl: Option<f64>,
    pub backplane_heartbeat: Option<f64>,
    pub backplane_max_pending: Option<f64>,
}

/// One entry of `hosts`, or `addHost`'s argument; `setSecureContext`'s
/// with no names.
#[napi(object)]
pub struct HostMaterial {
    pub names: Vec<String>,
    pub cert: Buffer,
    pub key: Buffer,
    pub passphrase: Option<String>,
    pub ca: Option<Buffer>,
}

impl HostMaterial {
    fn material(&self) -> Material<'_> {
        Material {
            cert: &self.cert,
            key: &self.key,
            passphrase: self.passphrase.as_deref(),
            ca: self.ca.as_deref(),
        }
    }
}

/// "No limit" for a timeout: a century, which every timer and clock sum
/// here holds without overflowing.
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The engine's configuration; bad TLS material is an error naming the
/// option (`ERR_SACK_TLS_MATERIAL`, a `TypeError` in lib/).
fn config(o: &ServerOptions) -> std::result::Result<ServerConfig, TlsError> {
    let d = ServerConfig::default();
    let size = |v: Option<f64>, def: usize| v.map(|x| x.max(0.0) as usize).unwrap_or(def);
    let ms = |v: Option<f64>, def: Duration| {
        v.map(|x| Duration::from_millis(x.max(0.0) as u64))
            .unwrap_or(def)
    };
    // 0 turns a limit off, for every limit (as `ws`'s maxPayload and
    // Node's timeouts): no size, or a wait of a century.
    let no_size = |n: usize| if n == 0 { usize::MAX } else { n };
    let no_time = |t: Duration| if t.is_zero() { NEVER } else { t };
    Ok(ServerConfig {
        max_payload: no_size(size(o.max_payload, d.max_payload)),
        max_header_size: no_size(size(o.max_header_size, d.max_header_size)),
        max_body_size: no_size(size(o.max_body_size, d.max_body_size)),
        max_body_buffer: size(o.max_body_buffer, d.max_body_buffer),
        handshake_timeout: no_time(ms(o.handshake_timeout, d.handshake_timeout)),
        request_timeout: ms(o.request_timeout, d.request_timeout),
        masking: o.masking.unwrap_or(d.masking),
        max_backpressure: size(o.max_backpressure, d.max_backpressure),
        backpressure_limit: size(o.backpressure_limit, d.backpressure_limit),
        close_timeout: no_time(ms(o.close_timeout, d.close_timeout)),
        ping_interval: ms(o.ping_interval, d.ping_interval),
        max_connections: size(o.max_connections, d.max_connections),
        deflate: o.deflate.unwrap_or(false).then(|| {
            let dd = DeflateConfig::default();
            let bits = |v: Option<u32>, def: u8| v.map(|b| b.clamp(8, 15) as u8).unwrap_or(def);
            DeflateConfig {
                threshold: size(o.deflate_threshold, dd.threshold),
                level: o.deflate_level.map(|l| l.min(9)).unwrap_or(dd.level),
                server_no_context_takeover: o
                    .deflate_server_no_context_takeover
                    .unwrap_or(dd.server_no_context_takeover),
                client_no_context_takeover: o
                    .deflate_client_no_context_takeover
                    .unwrap_or(dd.client_no_context_takeover),
                server_max_window_bits: bits(
                    o.deflate_server_max_window_bits,
                    dd.server_max_window_bits,
                ),
                client_max_window_bits: bits(
                    o.deflate_client_max_window_bits,
                    dd.client_max_window_bits,
                ),
                compress: o.deflate_compress.unwrap_or(true),
            }
        }),
        path: o.path.clone(),
        backlog: o.backlog.unwrap_or(d.backlog),
        tls: tls(o)?,
    })
}

fn tls(o: &ServerOptions) -> std::result::Result<Option<Tls>, TlsError> {
    let default = match (o.tls_cert.as_ref(), o.tls_key.as_ref()) {
        (Some(cert), Some(key)) => Some(Material {
            cert,
            key,
            passphrase: o.tls_passphrase.as_deref(),
            ca: o.tls_ca.as_deref(),
        }),
        _ => None,
    };
    let hosts = o.tls_hosts.as_deref().unwrap_or(&[]);
    if default.is_none() && hosts.is_empty() {
        return Ok(None);
    }
    let tls = Tls::new(default.as_ref())?;
    for (i, h) in hosts.iter().enumerate() {
        tls.add_host(&h.names, &h.material())
            .map_err(|e| TlsError {
                option: "hosts",
                reason: format!("[{i}] ({}): {e}", h.names.join(", ")),
            })?;
    }
    if let Some(keys) = o.tls_ticket_keys.as_ref() {
        tls.set_ticket_keys(keys)?;
    }
    Ok(Some(tls))
}

/// The `backplane` option, or a `TypeError`-coded error for a bad URL.
fn backplane(o: &ServerOptions) -> Result<Option<BackplaneConfig>, &'static str> {
    let Some(url) = o.backplane_url.clone() else {
        return Ok(None);
    };
    check_url(&url)
        .map_err(|e| Error::new("ERR_SACK_BACKPLANE_URL", format!("backplane.url: {e}")))?;
    let ms = |v: Option<f64>, d: u64| Duration::from_millis(v.map_or(d, |v| v.max(0.0) as u64));
    Ok(Some(BackplaneConfig {
        url,
        prefix: o.backplane_prefix.clone().unwrap_or_else(|| "sack:".into()),
        history: o.backplane_history_size.map(|size| History {
            size: (size.max(1.0)) as u64,
            ttl: ms(o.backplane_history_ttl, 300_000),
        }),
        heartbeat: ms(o.backplane_heartbeat, 1000).max(Duration::from_millis(10)),
        max_pending: o
            .backplane_max_pending
            .map_or(64 << 20, |v| v.max(0.0) as usize),
    }))
}

/// Starts the backplane of a server just made; it stops when the server
/// starts closing.
fn start_backplane(
    server: &Arc<Server>,
    cfg: Option<BackplaneConfig>,
) -> Result<Option<Arc<Backplane>>, &'static str> {
    let Some(cfg) = cfg else {
        return Ok(None);
    };
    let bp = Backplane::start(server, cfg).map_err(|e| {
        server.close(1001, "");
        Error::new("ERR_SACK_INIT", e.to_string())
    })?;
    let stop = bp.clone();
    server.on_close(Box::new(move || stop.stop()));
    Ok(Some(bp))
}

fn bad_material(e: TlsError) -> Error<&'static str> {
    Error::new("ERR_SACK_TLS_MATERIAL", e.to_string())
}

/// The numeric option defaults, in the units the options take (bytes,
/// milliseconds), from [`ServerConfig::default`]: lib/options.js and
/// `Websocket.defaults` read them here, so they are written down once.
#[napi]
pub fn option_defaults() -> ServerOptions {
    let d = ServerConfig::default();
    let n = |v: usize| Some(v as f64);
    let ms = |v: Duration| Some(v.as_millis() as f64);
    ServerOptions {
        max_payload: n(d.max_payload),
        max_header_size: n(d.max_header_size),
        max_body_size: n(d.max_body_size),
        max_body_buffer: n(d.max_body_buffer),
        handshake_timeout: ms(d.handshake_timeout),
        request_timeout: ms(d.request_timeout),
        masking: Some(d.masking),
        max_backpressure: n(d.max_backpressure),
        backpressure_limit: n(d.backpressure_limit),
        close_timeout: ms(d.close_timeout),
        ping_interval: ms(d.ping_interval),
        max_connections: n(d.max_connections),
        deflate: None,
        deflate_compress: None,
        deflate_threshold: None,
        deflate_level: None,
        deflate_server_no_context_takeover: None,
        deflate_client_no_context_takeover: None,
        deflate_server_max_window_bits: None,
        deflate_client_max_window_bits: None,
        path: None,
        backlog: None,
        tls_cert: None,
        tls_key: None,
        tls_ca: None,
        tls_passphrase: None,
        tls_hosts: None,
        tls_ticket_keys: None,
        backplane_url: None,
        backplane_prefix: None,
        backplane_history_size: Some(1000.0),
        backplane_history_ttl: Some(300_000.0),
        backplane_heartbeat: Some(1000.0),
        backplane_max_pending: Some((64u64 << 20) as f64),
    }
}

/// A listening WebSocket server.
#[napi]
pub struct NativeServer {
    pub(super) server: Arc<Server>,
    /// Topics across processes (`backplane`), if configured.
    pub(super) backplane: Option<Arc<Backplane>>,
}

/// Binds `address:port` now; errors carry Node's `code` (`EADDRINUSE`, …).
#[napi]
pub fn listen(
    env: Env,
    address: String,
    port: u32,
    options: ServerOptions,
) -> Result<NativeServer, &'static str> {
    let state = EnvState::get(&env).map_err(|e| Error::new("ERR_SACK_INIT", e.reason))?;
    let port =
        u16::try_from(port).map_err(|_| Error::new("ERR_SOCKET_BAD_PORT", "port out of range"))?;
    let config = config(&options).map_err(bad_material)?;
    let bp = backplane(&options)?;
    let server = listener::bind(&address, port, config, state.queue.clone()).map_err(|e| {
        let code = error_code(&e);
        Error::new(code, format!("{code}: {e} ({address}:{port})"))
    })?;
    state.servers.borrow_mut().insert(server.id, server.clone());
    let backplane = start_backplane(&server, bp)?;
    Ok(NativeServer { server, backplane })
}

/// A server bound to nothing (`noServer`): connections come through
/// `NativeServer::adopt`.
#[napi]
pub fn listen_none(env: Env, options: ServerOptions) -> Result<NativeServer, &'static str> {
    let state = EnvState::get(&env).map_err(|e| Error::new("ERR_SACK_INIT", e.reason))?;
    let config = config(&options).map_err(bad_material)?;
    let bp = backplane(&options)?;
    let server = listener::unbound(config, state.queue.clone())
        .map_err(|e| Error::new("ERR_SACK_INIT", e.to_string()))?;
    state.servers.borrow_mut().insert(server.id, server.clone());
    let backplane = start_backplane(&server, bp)?;
    Ok(NativeServer { server, backplane })
}

#[napi]
impl NativeServer {
    /// Replaces the default certificate from the next handshake on.
    #[napi]
    pub fn set_secure_context(&self, m: HostMaterial) -> Result<(), &'static str> {
        self.tls()?.set_default(&m.material()).map_err(bad_material)
    }

    /// Adds or replaces the certificate of `m.names` (SNI).
    #[napi]
    pub fn add_host(&self, m: HostMaterial) -> Result<(), &'static str> {
        self.tls()?
            .add_host(&m.names, &m.material())
            .map_err(bad_material)
    }

    /// Removes the certificate of `name`; whether there was one.
    #[napi]
    pub fn remove_host(&self, name: String) -> Result<bool, &'static str> {
        self.tls()?.remove_host(&name).map_err(bad_material)
    }

    /// The `lowError` handler's choice for plain text on the TLS port
    /// (`decide`, from the event): carry it on as plain HTTP, or drop it.
    #[napi]
    pub fn decide_low(&self, decide: f64, plain: bool) -> bool {
        self.server.decide_low(decide as u64, plain)
    }

    /// The session-ticket key new tickets are sealed with.
    #[napi]
    pub fn get_ticket_keys(&self) -> Result<Buffer, &'static str> {
        Ok(self.tls()?.ticket_keys().to_vec().into())
    }

    /// Seals new tickets with `keys`; tickets of the key before still open.
    #[napi]
    pub fn set_ticket_keys(&self, keys: Buffer) -> Result<(), &'static str> {
        self.tls()?.set_ticket_keys(&keys).map_err(bad_material)
    }

    fn tls(&self) -> Result<&Tls, &'static str> {
        self.server.config.tls.as_ref().ok_or_else(|| {
            Error::new(
                "ERR_SACK_NOT_TLS",
                "this server has no TLS (give cert and key, or hosts)".to_string(),
            )
        })
    }

    /// Process-wide id (events name it).
    #[napi(getter)]
    pub fn id(&self) -> f64 {
        self.server.id as f64
    }

    /// `[address, port, family]` actually bound.
    #[napi]
    pub fn address(&self) -> (String, u32, String) {
        let a = self.server.local_addr();
        let family = if a.is_ipv6() { "IPv6" } else { "IPv4" };
        (a.ip().to_string(), a.port() as u32, family.to_string())
    }

    /// Takes over the TCP connection of descriptor `fd` (Node's socket,
    /// which JS closes after this: the engine works on its own duplicate),
    /// with `read`, the bytes Node read from it already (`handleUpgrade`).
    #[napi]
    pub fn adopt(&self, fd: i32, read: Uint8Array) -> Result<()> {
        #[cfg(unix)]
        {
            use std::os::fd::BorrowedFd;
            if fd < 0 {
                return Err(Error::new(Status::InvalidArg, "no file descriptor"));
            }
            // SAFETY: JS passes the descriptor of a socket it keeps open
            // for the whole call; it is only duplicated here.
            let socket = unsafe { BorrowedFd::borrow_raw(fd) }
                .try_clone_to_owned()
                .map_err(|e| Error::new(Status::GenericFailure, e.to_string()))?;
            listener::adopt(&self.server, socket, read.to_vec())
                .map_err(|e| Error::new(Status::GenericFailure, e.to_string()))
        }
        #[cfg(not(unix))]
        {
            let _ = (fd, read);
            Err(Error::new(
                Status::GenericFailure,
                "handleUpgrade needs a socket file descriptor (Linux, macOS)",
            ))
        }
    }

    /// Which JS handlers exist (no accept handler: the engine accepts).
    #[napi]
    pub fn set_handlers(&self, accept: bool, request: bool) {
        self.server.set_handlers(accept, request)
    }

    /// Stops listening and closes every connection with `code`.
    #[napi]
    pub fn close(&self, env: Env, code: u32, reason: String) {
        self.server
            .close(u16::try_from(code).unwrap_or(1001), &reason);
        // Its idle keep-alive connections on this thread close too.
        if let Some(keepalive) = EnvState::get(&env).ok().and_then(|s| s.keepalive.as_ref()) {
            keepalive.server_closing(self.server.id);
        }
    }

    /// Keep-alive HTTP connections of this server served on this thread
    /// (diagnostics for the tests; the executor's old name, as in
    /// `SACK_HTTP_LANE`).
    #[napi]
    pub fn lane_connections(&self, env: Env) -> u32 {
        EnvState::get(&env)
            .ok()
            .and_then(|s| s.keepalive.as_ref())
            .map_or(0, |l| l.count(self.server.id) as u32)
    }

    /// Entries waiting for the keep-alive executor's next round on this thread, of
    /// every server (diagnostics: one per connection at most).
    #[napi]
    pub fn lane_waiting(&self, env: Env) -> u32 {
        EnvState::get(&env)
            .ok()
            .and_then(|s| s.keepalive.as_ref())
            .map_or(0, |l| l.waiting() as u32)
    }

    /// Open connections.
    #[napi(getter)]
    pub fn connections(&self) -> u32 {
        self.server.connection_count() as u32
    }
}
