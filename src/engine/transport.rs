//! The byte stream under a connection: every read and write the engine
//! makes on a connection goes through [`Transport`], plain TCP or a TLS
//! session over it (`tls.rs`), so the HTTP and WebSocket code above it has
//! one path for both.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

use super::tls::TlsInfo;
use super::writer::Direct;
use tokio_rustls::server::TlsStream;

/// How long a closed connection keeps reading (and discarding) after our
/// FIN, so unread input does not turn the close into a reset that could
/// destroy our last bytes in flight.
const LINGER: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub(crate) enum Transport {
    Plain(TcpStream),
    /// Boxed: a rustls session is large, and plain connections would
    /// carry its size.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Transport {
    /// The TCP socket under it.
    fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(s) => s.get_ref().0,
        }
    }

    /// Reads what is there into `buf`'s spare capacity (`Ready(Ok(0))`:
    /// the peer ended).
    pub(super) fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut Vec<u8>,
    ) -> Poll<io::Result<usize>> {
        match self {
            Transport::Plain(s) => loop {
                match super::sys::recv_into(s, buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::task::ready!(s.poll_read_ready(cx))?;
                    }
                    r => return Poll::Ready(r),
                }
            },
            Transport::Tls(s) => {
                let spare = buf.spare_capacity_mut();
                let mut rb = ReadBuf::uninit(spare);
                std::task::ready!(Pin::new(s).poll_read(cx, &mut rb))?;
                let n = rb.filled().len();
                // SAFETY: `poll_read` initialized `n` bytes of the spare capacity.
                unsafe { buf.set_len(buf.len() + n) };
                Poll::Ready(Ok(n))
            }
        }
    }

    /// Readiness of the socket for reading (bytes, a FIN or an error).
    pub(super) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp().poll_read_ready(cx)
    }

    /// Whether the peer has closed its side with nothing left to read.
    pub(super) fn peer_gone(&self) -> bool {
        super::sys::peer_gone(self.tcp())
    }

    /// TLS facts for JS (`None` on a plain connection).
    pub(super) fn tls_info(&self) -> Option<TlsInfo> {
        match self {
            Transport::Plain(_) => None,
            Transport::Tls(s) => Some(TlsInfo::of(s.get_ref().1)),
        }
    }

    /// Resolves once the peer has left (FIN or reset). Bytes it sends
    /// meanwhile stay unread: only readiness is looked at, so a FIN behind
    /// them is still seen.
    pub(super) async fn left(&self) {
        let stream = self.tcp();
        // A FIN that came with the last read was consumed with its
        // readiness: look once.
        if self.peer_gone() {
            return;
        }
        loop {
            match stream.ready(tokio::io::Interest::READABLE).await {
                Ok(r) if !r.is_read_closed() && !r.is_error() => {
                    if self.peer_gone() {
                        return;
                    }
                    // Bytes: forget this readiness so the next change wakes us.
                    let _ = stream.try_io(tokio::io::Interest::READABLE, || {
                        Err::<(), _>(io::ErrorKind::WouldBlock.into())
                    });
                }
                _ => return,
            }
        }
    }

    pub(super) fn set_nodelay(&self, on: bool) {
        let _ = self.tcp().set_nodelay(on);
    }

    /// The direct path for the JS thread (see `writer`).
    ///
    /// # Safety
    /// The [`Writer`](super::writer::Writer) it goes into must be retired
    /// before this transport is dropped.
    pub(super) unsafe fn direct(&self) -> Option<Direct> {
        #[cfg(unix)]
        {
            // TLS bytes must go through the session: no direct path.
            let Transport::Plain(s) = self else {
                return None;
            };
            // SAFETY: as the caller guarantees.
            Some(unsafe { Direct::new(std::os::fd::AsRawFd::as_raw_fd(s)) })
        }
        #[cfg(not(unix))]
        {
            None
        }
    }

    /// The socket itself, for the JS thread's keep-alive executor (`keep-alive executor`);
    /// `None` where a transport cannot leave the engine.
    pub(super) fn into_std(self) -> Option<std::net::TcpStream> {
        match self {
            Transport::Plain(s) => s.into_std().ok(),
            Transport::Tls(_) => None,
        }
    }

    pub(super) fn is_plain(&self) -> bool {
        matches!(self, Transport::Plain(_))
    }

    /// Writes a final response, ends our side, and lingers briefly so the
    /// client reads it before the socket goes away.
    pub(super) async fn refuse(mut self, response: &[u8]) {
        if !response.is_empty() {
            let _ = timeout(Duration::from_secs(5), self.write_all(response)).await;
        }
        self.linger().await;
    }

    /// After the close: our FIN, then read and discard until the peer's
    /// FIN or the linger time, so the peer sees an orderly end.
    pub(super) async fn linger(mut self) {
        let _ = timeout(Duration::from_secs(1), self.shutdown()).await;
        let end = Instant::now() + LINGER;
        let mut discard = [0u8; 4096];
        while let Ok(Ok(n)) = tokio::time::timeout_at(end, self.read(&mut discard)).await {
            if n == 0 {
                break;
            }
        }
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, data),
            Transport::Tls(s) => Pin::new(s).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
