//! A connection's facts as JS values, for the objects `lib/` makes: the
//! upgrade request (`ws.url`, `ws.headers`, …), the TLS session, and the
//! `socketInfo` of server events.

use std::net::SocketAddr;

use napi::sys;

use super::js;
use crate::engine::events::ConnInfo;
use crate::engine::tls::TlsInfo;

/// A connection's upgrade request as JS values (`lib/connection.js`).
///
/// # Safety
/// On the JS thread of `env`, inside a handle scope.
pub(super) unsafe fn conn_info(env: sys::napi_env, info: &ConnInfo) -> sys::napi_value {
    // SAFETY (whole body): on the JS thread of `env`, inside a handle scope.
    unsafe {
        let mut raw = Vec::with_capacity(info.head.header_count() * 2);
        for (n, v) in info.head.headers() {
            raw.push(js::string(env, n.as_bytes()));
            raw.push(js::string(env, v.as_bytes()));
        }
        let tls = tls_values(env, info.tls.as_deref());
        let protocols: Vec<_> = info
            .protocols
            .iter()
            .map(|p| js::string(env, p.as_bytes()))
            .collect();
        js::array(
            env,
            &[
                js::string(env, info.head.target().as_bytes()),
                js::array(env, &raw),
                js::string(env, info.remote.ip().to_string().as_bytes()),
                js::number(env, info.remote.port() as f64),
                js::string(env, info.local.ip().to_string().as_bytes()),
                js::number(env, info.local.port() as f64),
                js::array(env, &protocols),
                js::string(env, info.head.method().as_bytes()),
                js::number(env, info.head.minor as f64),
                tls[0],
                tls[1],
                tls[2],
            ],
        )
    }
}

/// A connection's TLS facts as JS values: the SNI name, the protocol
/// version and the cipher suite (undefined on a plain connection).
///
/// # Safety
/// On the JS thread of `env`, inside a handle scope.
pub(super) unsafe fn tls_values(env: sys::napi_env, tls: Option<&TlsInfo>) -> [sys::napi_value; 3] {
    // SAFETY (whole body): as the caller guarantees.
    unsafe {
        let text =
            |s: Option<&str>| s.map_or(js::undefined(env), |s| js::string(env, s.as_bytes()));
        [
            text(tls.and_then(|t| t.hostname.as_deref())),
            text(tls.map(|t| t.protocol)),
            text(tls.map(|t| t.cipher)),
        ]
    }
}

/// `socketInfo` for the server's `error` and `lowError` events:
/// [remoteAddress, remotePort, localAddress, localPort, hostname,
/// tlsVersion, cipher].
///
/// # Safety
/// On the JS thread of `env`, inside a handle scope.
pub(super) unsafe fn socket_info(
    env: sys::napi_env,
    remote: SocketAddr,
    local: SocketAddr,
    tls: Option<&TlsInfo>,
) -> sys::napi_value {
    // SAFETY (whole body): as the caller guarantees.
    unsafe {
        let [host, version, cipher] = tls_values(env, tls);
        js::array(
            env,
            &[
                js::string(env, remote.ip().to_string().as_bytes()),
                js::number(env, remote.port() as f64),
                js::string(env, local.ip().to_string().as_bytes()),
                js::number(env, local.port() as f64),
                host,
                version,
                cipher,
            ],
        )
    }
}
