//! The opening handshake, server side (RFC 6455 §4.2).

use base64::Engine as _;
use sha1::{Digest, Sha1};

/// The GUID every server appends to the client's key (§1.3).
const WS_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (§4.2.2 step 5.4).
pub fn accept_key(key: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(key);
    h.update(WS_GUID);
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Why an upgrade request is refused, with the HTTP status it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("the upgrade request must use GET")]
    NotGet,
    #[error("the upgrade request must be HTTP/1.1 or later")]
    OldHttp,
    #[error("missing Host header")]
    NoHost,
    #[error("Connection header does not contain 'upgrade'")]
    NoConnectionUpgrade,
    #[error("missing or invalid Sec-WebSocket-Key")]
    BadKey,
    /// §4.2.2: answer 426 with the versions we speak.
    #[error("unsupported Sec-WebSocket-Version")]
    BadVersion,
}

impl HandshakeError {
    pub fn status(self) -> u16 {
        match self {
            HandshakeError::BadVersion => 426,
            _ => 400,
        }
    }
}

/// Whether a header value, as a comma-separated list, contains `token`
/// (case-insensitive, §4.2.1).
pub fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Headers that matter to an upgrade, found in one pass.
#[derive(Debug, Default)]
pub struct UpgradeHeaders<'a> {
    pub upgrade_websocket: bool,
    pub connection_upgrade: bool,
    pub host: bool,
    pub key: Option<&'a [u8]>,
    pub version: Option<&'a [u8]>,
    /// Every `Sec-WebSocket-Protocol` value, joined in order.
    pub protocols: Vec<String>,
    /// Every `Sec-WebSocket-Extensions` value.
    pub extensions: Vec<&'a [u8]>,
}

impl<'a> UpgradeHeaders<'a> {
    pub fn scan<I>(headers: I) -> Self
    where
        I: IntoIterator<Item = (&'a str, &'a [u8])>,
    {
        let mut u = UpgradeHeaders::default();
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("upgrade") {
                u.upgrade_websocket |= has_token(value, "websocket");
            } else if name.eq_ignore_ascii_case("connection") {
                u.connection_upgrade |= has_token(value, "upgrade");
            } else if name.eq_ignore_ascii_case("host") {
                u.host = true;
            } else if name.eq_ignore_ascii_case("sec-websocket-key") {
                u.key = Some(value.trim_ascii());
            } else if name.eq_ignore_ascii_case("sec-websocket-version") {
                u.version = Some(value.trim_ascii());
            } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
                u.protocols.extend(parse_protocols(value));
            } else if name.eq_ignore_ascii_case("sec-websocket-extensions") {
                u.extensions.push(value);
            }
        }
        u
    }

    /// Checks §4.2.1 for a request already known to ask for `websocket`.
    /// `http_minor`: 1 for HTTP/1.1.
    pub fn validate(&self, method: &str, http_minor: u8) -> Result<&'a [u8], HandshakeError> {
        if method != "GET" {
            return Err(HandshakeError::NotGet);
        }
        if http_minor < 1 {
            return Err(HandshakeError::OldHttp);
        }
        if !self.host {
            return Err(HandshakeError::NoHost);
        }
        if !self.connection_upgrade {
            return Err(HandshakeError::NoConnectionUpgrade);
        }
        if self.version != Some(b"13") {
            return Err(HandshakeError::BadVersion);
        }
        let key = self.key.ok_or(HandshakeError::BadKey)?;
        // §4.2.1 item 5: base64 of 16 bytes is 24 characters.
        let ok = key.len() == 24
            && base64::engine::general_purpose::STANDARD
                .decode(key)
                .is_ok_and(|k| k.len() == 16);
        if !ok {
            return Err(HandshakeError::BadKey);
        }
        Ok(key)
    }
}

/// The subprotocols offered in one `Sec-WebSocket-Protocol` value.
pub fn parse_protocols(value: &[u8]) -> impl Iterator<Item = String> + '_ {
    value
        .split(|&b| b == b',')
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty())
        .map(|t| String::from_utf8_lossy(t).into_owned())
}

/// The `101 Switching Protocols` response (§4.2.2 step 5).
pub fn response_101(key: &[u8], protocol: Option<&str>, extensions: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accept_key(key).as_bytes());
    if let Some(p) = protocol.filter(|p| !p.is_empty()) {
        out.extend_from_slice(b"\r\nSec-WebSocket-Protocol: ");
        out.extend_from_slice(p.as_bytes());
    }
    if let Some(e) = extensions.filter(|e| !e.is_empty()) {
        out.extend_from_slice(b"\r\nSec-WebSocket-Extensions: ");
        out.extend_from_slice(e.as_bytes());
    }
    out.extend_from_slice(b"\r\n\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_accept_key() {
        // §1.3 worked example.
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    fn headers(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static [u8])> {
        let mut h: Vec<(&str, &[u8])> = vec![
            ("Host", b"example.com"),
            ("Upgrade", b"websocket"),
            ("Connection", b"keep-alive, Upgrade"),
            ("Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", b"13"),
        ];
        for (n, v) in extra {
            h.retain(|(name, _)| !name.eq_ignore_ascii_case(n));
            if !v.is_empty() {
                h.push((n, v.as_bytes()));
            }
        }
        h
    }

    fn check(extra: &[(&'static str, &'static str)]) -> Result<(), HandshakeError> {
        let h = headers(extra);
        UpgradeHeaders::scan(h.iter().copied())
            .validate("GET", 1)
            .map(|_| ())
    }

    #[test]
    fn validation() {
        assert_eq!(check(&[]), Ok(()));
        assert_eq!(check(&[("Host", "")]), Err(HandshakeError::NoHost));
        assert_eq!(
            check(&[("Connection", "close")]),
            Err(HandshakeError::NoConnectionUpgrade)
        );
        assert_eq!(
            check(&[("Sec-WebSocket-Version", "8")]),
            Err(HandshakeError::BadVersion)
        );
        assert_eq!(
            check(&[("Sec-WebSocket-Version", "")]),
            Err(HandshakeError::BadVersion)
        );
        assert_eq!(
            check(&[("Sec-WebSocket-Key", "")]),
            Err(HandshakeError::BadKey)
        );
        assert_eq!(
            check(&[("Sec-WebSocket-Key", "c2hvcnQ=")]),
            Err(HandshakeError::BadKey)
        );
        assert_eq!(HandshakeError::BadVersion.status(), 426);
        let h = headers(&[]);
        let u = UpgradeHeaders::scan(h.iter().copied());
        assert_eq!(u.validate("POST", 1), Err(HandshakeError::NotGet));
        assert_eq!(u.validate("GET", 0), Err(HandshakeError::OldHttp));
    }

    #[test]
    fn tokens_and_protocols() {
        assert!(has_token(b"Keep-Alive, UPGRADE", "upgrade"));
        assert!(!has_token(b"upgraded", "upgrade"));
        let h: Vec<(&str, &[u8])> = vec![
            ("Sec-WebSocket-Protocol", b"chat, superchat"),
            ("sec-websocket-protocol", b" v2 ,,"),
        ];
        let u = UpgradeHeaders::scan(h.iter().copied());
        assert_eq!(u.protocols, vec!["chat", "superchat", "v2"]);
    }

    #[test]
    fn response_has_every_header() {
        let r = String::from_utf8(response_101(
            b"dGhlIHNhbXBsZSBub25jZQ==",
            Some("chat"),
            None,
        ))
        .unwrap();
        assert!(r.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(r.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(r.contains("Sec-WebSocket-Protocol: chat\r\n"));
        assert!(!r.contains("Extensions"));
        assert!(r.ends_with("\r\n\r\n"));
    }
}
