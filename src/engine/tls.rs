//! TLS: certificates and keys from PEM to a rustls server configuration,
//! with errors that name the option and the reason, and the handshake of
//! an accepted connection on the engine thread (never on a JS thread).

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpStream;

/// The first byte of a TLS record carrying a handshake (RFC 8446 §5.1).
const HANDSHAKE_RECORD: u8 = 0x16;

/// Bad TLS material: which option, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{option}: {reason}")]
pub struct TlsError {
    pub option: &'static str,
    pub reason: String,
}

fn bad(option: &'static str, reason: impl Into<String>) -> TlsError {
    TlsError {
        option,
        reason: reason.into(),
    }
}

/// PEM material for one certificate.
#[derive(Debug, Clone, Copy)]
pub struct Material<'a> {
    /// The certificate, then any intermediates.
    pub cert: &'a [u8],
    pub key: &'a [u8],
    /// Opens an encrypted PKCS#8 key.
    pub passphrase: Option<&'a str>,
    /// More certificates, appended to the chain.
    pub ca: Option<&'a [u8]>,
}

/// The chain and signing key of `m`, checked to belong together.
pub fn certified_key(m: &Material<'_>) -> Result<Arc<CertifiedKey>, TlsError> {
    let mut chain = certificates("cert", m.cert)?;
    if let Some(ca) = m.ca {
        chain.extend(certificates("ca", ca)?);
    }
    let key = private_key(m.key, m.passphrase)?;
    let signer = any_supported_type(&key)
        .map_err(|e| bad("key", format!("not a key rustls can sign with ({e})")))?;
    let certified = CertifiedKey::new(chain, signer);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => return Err(bad("key", "does not match the certificate (cert)")),
    }
    Ok(Arc::new(certified))
}

fn certificates(
    option: &'static str,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(option, format!("unreadable PEM ({e})")))?;
    if chain.is_empty() {
        return Err(bad(option, "no \"BEGIN CERTIFICATE\" block in the PEM"));
    }
    Ok(chain)
}

/// The key in `pem`: PKCS#8 (also encrypted, opened with `passphrase`),
/// PKCS#1 (RSA) or SEC1 (EC).
fn private_key(pem: &[u8], passphrase: Option<&str>) -> Result<PrivateKeyDer<'static>, TlsError> {
    let text = String::from_utf8_lossy(pem);
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(bad(
            "key",
            "an OpenSSL-encrypted PEM (Proc-Type: 4,ENCRYPTED) is not supported; convert it to \
             encrypted PKCS#8 with `openssl pkcs8 -topk8 -in key.pem -out key8.pem` (and keep \
             `passphrase`)",
        ));
    }
    if let Some(der) = encrypted_pkcs8(&text)? {
        let Some(passphrase) = passphrase else {
            return Err(bad(
                "passphrase",
                "the key is encrypted: give its passphrase",
            ));
        };
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
            .map_err(|e| bad("key", format!("unreadable encrypted PKCS#8 ({e})")))?;
        let plain = info
            .decrypt(passphrase)
            .map_err(|_| bad("passphrase", "wrong passphrase for the key"))?;
        return Ok(PrivatePkcs8KeyDer::from(plain.as_bytes().to_vec()).into());
    }
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
        let (kind, der) = section.map_err(|e| bad("key", format!("unreadable PEM ({e})")))?;
        let key = match kind {
            SectionKind::PrivateKey => PrivateKeyDer::Pkcs8(der.into()),
            SectionKind::RsaPrivateKey => PrivateKeyDer::Pkcs1(der.into()),
            SectionKind::EcPrivateKey => PrivateKeyDer::Sec1(der.into()),
            _ => continue,
        };
        return Ok(key);
    }
    Err(bad(
        "key",
        "no private key in the PEM (PKCS#8 \"PRIVATE KEY\", PKCS#1 \"RSA PRIVATE KEY\" or SEC1 \
         \"EC PRIVATE KEY\")",
    ))
}

/// The DER of an "ENCRYPTED PRIVATE KEY" block, if `text` has one.
fn encrypted_pkcs8(text: &str) -> Result<Option<Vec<u8>>, TlsError> {
    const BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
    const END: &str = "-----END ENCRYPTED PRIVATE KEY-----";
    let Some(start) = text.find(BEGIN) else {
        return Ok(None);
    };
    let body = &text[start + BEGIN.len()..];
    let Some(end) = body.find(END) else {
        return Err(bad("key", "unreadable PEM (no END line)"));
    };
    let b64: String = body[..end].split_whitespace().collect();
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map(Some)
        .map_err(|e| bad("key", format!("unreadable PEM ({e})")))
}

/// The certificates of a server: the default, and those chosen by SNI.
/// Replaced while the server runs; a handshake takes what is here at its
/// ClientHello, and connections already open keep theirs.
#[derive(Debug, Default)]
struct Certs {
    default: Option<Arc<CertifiedKey>>,
    /// By exact name (lower case, no trailing dot).
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` as `example.com`: one left-most label.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl Certs {
    fn for_name(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = name {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if let Some(k) = self.exact.get(&name) {
                return Some(k.clone());
            }
            // RFC 6125 §6.4.3: the wildcard stands for the whole
            // left-most label, and for nothing else.
            if let Some(k) = name
                .split_once('.')
                .and_then(|(_, parent)| self.wildcard.get(parent))
            {
                return Some(k.clone());
            }
        }
        self.default.clone()
    }
}

#[derive(Debug, Default)]
struct Certificates(RwLock<Certs>);

impl Certificates {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Certs> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Certs> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // `None` (an unknown name and no default) fails the handshake.
        self.read().for_name(hello.server_name())
    }
}

/// A host name as `hosts` takes it: lower case, no trailing dot; a
/// wildcard only as a whole left-most label (`*.example.com`).
pub enum HostName {
    Exact(String),
    /// The part after `*.`.
    Wildcard(String),
}

impl HostName {
    pub fn parse(name: &str) -> Result<HostName, TlsError> {
        let lower = name.trim_end_matches('.').to_ascii_lowercase();
        let bad_name = || {
            bad(
                "host",
                format!("{name:?} is not a host name or a *.name wildcard"),
            )
        };
        let valid = |s: &str| {
            !s.is_empty()
                && s.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                })
        };
        match lower.strip_prefix("*.") {
            Some(parent) if valid(parent) && parent.contains('.') => {
                Ok(HostName::Wildcard(parent.to_string()))
            }
            Some(_) => Err(bad_name()),
            None if valid(&lower) => Ok(HostName::Exact(lower)),
            None => Err(bad_name()),
        }
    }
}

/// Bytes of a session-ticket key, as Node's `ticketKeys`: a 16-byte name
/// that tickets carry, then 32 bytes of AES-256-GCM key.
pub const TICKET_KEYS_LEN: usize = 48;
/// How long a ticket may resume a session: 2 hours, as OpenSSL's default.
const TICKET_LIFETIME_S: u32 = 2 * 3600;

/// Session tickets sealed with keys that several processes may share
/// (`ticketKeys`), so a client resumes on whichever one a load balancer
/// picks. A ticket is the key's name, a random nonce, and the sealed
/// session state (RFC 5077 §4's layout, with an AEAD).
struct Tickets {
    /// The key new tickets are sealed with, and the one before it, still
    /// opened so that tickets outlive a rotation.
    keys: RwLock<(TicketKey, Option<TicketKey>)>,
    rng: ring::rand::SystemRandom,
}

#[derive(Clone)]
struct TicketKey {
    bytes: [u8; TICKET_KEYS_LEN],
}

impl TicketKey {
    fn name(&self) -> &[u8] {
        &self.bytes[..16]
    }

    fn aead(&self) -> Option<ring::aead::LessSafeKey> {
        let unbound =
            ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &self.bytes[16..]).ok()?;
        Some(ring::aead::LessSafeKey::new(unbound))
    }
}

impl std::fmt::Debug for Tickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tickets { .. }")
    }
}

impl Tickets {
    fn new() -> Result<Tickets, TlsError> {
        let rng = ring::rand::SystemRandom::new();
        let mut bytes = [0u8; TICKET_KEYS_LEN];
        ring::rand::SecureRandom::fill(&rng, &mut bytes)
            .map_err(|_| bad("ticketKeys", "no random bytes for a ticket key"))?;
        Ok(Tickets {
            keys: RwLock::new((TicketKey { bytes }, None)),
            rng,
        })
    }

    fn set(&self, keys: &[u8]) -> Result<(), TlsError> {
        let bytes: [u8; TICKET_KEYS_LEN] = keys.try_into().map_err(|_| {
            bad(
                "ticketKeys",
                format!("must be {TICKET_KEYS_LEN} bytes (got {})", keys.len()),
            )
        })?;
        let mut k = self.keys.write().unwrap_or_else(|e| e.into_inner());
        let old = std::mem::replace(&mut k.0, TicketKey { bytes });
        k.1 = Some(old);
        Ok(())
    }

    fn get(&self) -> [u8; TICKET_KEYS_LEN] {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).0.bytes
    }
}

impl rustls::server::ProducesTickets for Tickets {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        TICKET_LIFETIME_S
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let key = self
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone();
        let mut nonce = [0u8; 12];
        ring::rand::SecureRandom::fill(&self.rng, &mut nonce).ok()?;
        let mut out = Vec::with_capacity(16 + 12 + plain.len() + 16);
        out.extend_from_slice(key.name());
        out.extend_from_slice(&nonce);
        let mut sealed = plain.to_vec();
        key.aead()?
            .seal_in_place_append_tag(
                ring::aead::Nonce::assume_unique_for_key(nonce),
                ring::aead::Aad::from(key.name()),
                &mut sealed,
            )
            .ok()?;
        out.extend_from_slice(&sealed);
        Some(out)
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        if ticket.len() < 16 + 12 + 16 {
            return None;
        }
        let (name, rest) = ticket.split_at(16);
        let (nonce, sealed) = rest.split_at(12);
        let key = {
            let k = self.keys.read().unwrap_or_else(|e| e.into_inner());
            if k.0.name() == name {
                k.0.clone()
            } else {
                k.1.clone().filter(|old| old.name() == name)?
            }
        };
        let mut buf = sealed.to_vec();
        let nonce = ring::aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
        let plain = key
            .aead()?
            .open_in_place(nonce, ring::aead::Aad::from(name), &mut buf)
            .ok()?;
        Some(plain.to_vec())
    }
}

/// A server's TLS: its rustls configuration, and the certificates and
/// ticket keys it uses, which may change while it runs.
#[derive(Debug, Clone)]
pub struct Tls {
    config: Arc<rustls::ServerConfig>,
    certs: Arc<Certificates>,
    tickets: Arc<Tickets>,
}

impl Tls {
    /// TLS 1.2 and 1.3 with `default` (the certificate for clients that
    /// name no host, or one `hosts` does not have); ALPN `http/1.1`;
    /// session resumption by tickets and by a session cache.
    pub fn new(default: Option<&Material<'_>>) -> Result<Tls, TlsError> {
        let certs = Arc::new(Certificates::default());
        if let Some(m) = default {
            certs.write().default = Some(certified_key(m)?);
        }
        // ring: it builds with a C compiler alone on every platform the
        // package targets (aws-lc-rs, which rustls now prefers for its
        // post-quantum key exchange, needs cmake and more per platform).
        #[allow(deprecated)]
        let mut provider = rustls::crypto::ring::default_provider();
        // X25519 first: the key share every browser and Node send, and
        // several times faster in ring than P-384, which ring's default
        // list puts first (a server that prefers it makes such clients
        // pay a HelloRetryRequest round trip and the slow curve).
        {
            use rustls::crypto::ring::kx_group::{SECP256R1, SECP384R1, X25519};
            provider.kx_groups = vec![X25519, SECP256R1, SECP384R1];
        }
        let provider = Arc::new(provider);
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad("cert", e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(certs.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tickets = Arc::new(Tickets::new()?);
        config.ticketer = tickets.clone();
        Ok(Tls {
            config: Arc::new(config),
            certs,
            tickets,
        })
    }

    /// The session-ticket key (`getTicketKeys`).
    pub fn ticket_keys(&self) -> [u8; TICKET_KEYS_LEN] {
        self.tickets.get()
    }

    /// Seals new tickets with `keys` (`ticketKeys`, `setTicketKeys`);
    /// tickets sealed with the key before still open.
    pub fn set_ticket_keys(&self, keys: &[u8]) -> Result<(), TlsError> {
        self.tickets.set(keys)
    }

    /// Replaces the default certificate (`setSecureContext`).
    pub fn set_default(&self, m: &Material<'_>) -> Result<(), TlsError> {
        let key = certified_key(m)?;
        self.certs.write().default = Some(key);
        Ok(())
    }

    /// Adds or replaces the certificate of `names` (`hosts`, `addHost`):
    /// the last definition of a name wins. Nothing changes on an error.
    pub fn add_host(&self, names: &[String], m: &Material<'_>) -> Result<(), TlsError> {
        if names.is_empty() {
            return Err(bad("host", "no name given"));
        }
        let parsed = names
            .iter()
            .map(|n| HostName::parse(n))
            .collect::<Result<Vec<_>, _>>()?;
        let key = certified_key(m)?;
        let mut certs = self.certs.write();
        for name in parsed {
            match name {
                HostName::Exact(n) => certs.exact.insert(n, key.clone()),
                HostName::Wildcard(n) => certs.wildcard.insert(n, key.clone()),
            };
        }
        Ok(())
    }

    /// Removes the certificate of `name`; whether there was one.
    pub fn remove_host(&self, name: &str) -> Result<bool, TlsError> {
        let mut certs = self.certs.write();
        Ok(match HostName::parse(name)? {
            HostName::Exact(n) => certs.exact.remove(&n).is_some(),
            HostName::Wildcard(n) => certs.wildcard.remove(&n).is_some(),
        })
    }

    /// The start of a connection accepted on a TLS server, within `limit`:
    /// its first bytes decide whether it speaks TLS, then the handshake
    /// runs (on the engine thread).
    pub(super) async fn handshake(&self, stream: TcpStream, limit: Duration) -> Handshake {
        let work = async {
            // What the client sends first, left in the socket: plain HTTP
            // carried on after `disableSSL()` loses no byte.
            let mut first = vec![0u8; 4096];
            let n = match stream.peek(&mut first).await {
                Ok(0) | Err(_) => return Handshake::Gone,
                Ok(n) => n,
            };
            if first[0] != HANDSHAKE_RECORD {
                first.truncate(n);
                return Handshake::NotTls(stream, first);
            }
            let acceptor = rustls::server::Acceptor::default();
            let start = match tokio_rustls::LazyConfigAcceptor::new(acceptor, stream).await {
                Ok(start) => start,
                Err(e) => return failure(&e),
            };
            let name = start.client_hello().server_name().map(str::to_string);
            if self.certs.read().for_name(name.as_deref()).is_none() {
                return Handshake::Failed(LowError::UnknownHost, name.unwrap_or_default());
            }
            match start.into_stream(self.config.clone()).await {
                Ok(s) => Handshake::Done(Box::new(s)),
                Err(e) => failure(&e),
            }
        };
        if limit.is_zero() {
            return work.await;
        }
        tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
            Handshake::Failed(LowError::Handshake, "handshake timeout".to_string())
        })
    }
}

/// How the start of a TLS server's connection went.
pub(super) enum Handshake {
    /// Boxed: a rustls session is large.
    Done(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// The first bytes (given) are no TLS record: plain text on a TLS port.
    NotTls(TcpStream, Vec<u8>),
    /// The handshake failed: why, and the SNI name (`UnknownHost`) or a
    /// description.
    Failed(LowError, String),
    /// The client left before sending anything.
    Gone,
}

/// `lowError` codes, as the contract numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum LowError {
    NotTls = 1,
    Handshake = 2,
    Certificate = 3,
    OtherTls = 4,
    UnknownHost = 7,
}

/// Classifies a failed handshake: the client refused our certificate (3),
/// the TLS exchange itself failed (2), or the connection did (4).
fn failure(e: &io::Error) -> Handshake {
    use rustls::AlertDescription as A;
    let code = match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::AlertReceived(
            A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA,
        ))
        | Some(rustls::Error::InvalidCertificate(_)) => LowError::Certificate,
        Some(_) => LowError::Handshake,
        None if e.kind() == io::ErrorKind::InvalidData => LowError::Handshake,
        None => LowError::OtherTls,
    };
    Handshake::Failed(code, e.to_string())
}

/// What JS learns of a TLS connection.
#[derive(Debug, Clone)]
pub struct TlsInfo {
    /// The SNI name the client asked for.
    pub hostname: Option<String>,
    /// "TLSv1.3" or "TLSv1.2", as Node's `getProtocol()` says it.
    pub protocol: &'static str,
    /// The cipher suite's IANA name.
    pub cipher: &'static str,
}

impl TlsInfo {
    pub(super) fn of(conn: &rustls::ServerConnection) -> TlsInfo {
        TlsInfo {
            hostname: conn.server_name().map(str::to_string),
            protocol: match conn.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
                Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
                _ => "unknown",
            },
            cipher: conn
                .negotiated_cipher_suite()
                .and_then(|s| s.suite().as_str())
                .unwrap_or("unknown"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        assert!(
            matches!(HostName::parse("Example.COM."), Ok(HostName::Exact(n)) if n == "example.com")
        );
        assert!(
            matches!(HostName::parse("*.example.com"), Ok(HostName::Wildcard(n)) if n == "example.com")
        );
        for bad in [
            "",
            "*",
            "*.com",
            "a.*.com",
            "*a.example.com",
            "a..b",
            "ex ample.com",
        ] {
            assert!(HostName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
