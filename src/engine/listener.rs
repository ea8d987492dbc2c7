//! Listening: a synchronous bind (so the JS constructor can throw at
//! once), then an accept loop on the engine thread that gives each
//! connection its task (`connection.rs`).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::connection::connection;
use super::events::EventQueue;
use super::server::{error_code, Server};
use super::transport::Transport;
use super::{runtime, ServerConfig};

/// The accept loop's listener; dropping it (the loop is aborted by
/// `close`) closes the socket, then counts the loop's task as done.
struct Listening {
    listener: Option<tokio::net::TcpListener>,
    server: Arc<Server>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        drop(self.listener.take());
        self.server.task_done();
    }
}

/// Resolves `address` (an IP, a host name, or empty for the default
/// dual-stack `::`) and binds, falling back to `0.0.0.0` where the machine
/// has no IPv6.
fn bind_socket(address: &str, port: u16, backlog: u32) -> io::Result<std::net::TcpListener> {
    let any6 = address.is_empty() || address == "::" || address == "::0" || address == "[::]";
    if any6 {
        let addr = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
        return match listen(addr, backlog) {
            Err(e) if matches!(error_code(&e), "EAFNOSUPPORT" | "EADDRNOTAVAIL" | "EINVAL") => {
                listen(
                    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
                    backlog,
                )
            }
            r => r,
        };
    }
    let host = address.trim_start_matches('[').trim_end_matches(']');
    let addr = match host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port),
        // A name that does not resolve is Node's ENOTFOUND.
        Err(_) => (host, port)
            .to_socket_addrs()
            .map_err(|e| io::Error::new(io::ErrorKind::NotFound, e.to_string()))?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "address not found"))?,
    };
    listen(addr, backlog)
}

fn listen(addr: SocketAddr, backlog: u32) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As Node does: a restarted server can bind while old sockets sit in TIME_WAIT.
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        socket.set_only_v6(false)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Binds now (errors surface to the caller) and starts accepting.
pub fn bind(
    address: &str,
    port: u16,
    config: ServerConfig,
    queue: Arc<EventQueue>,
) -> io::Result<Arc<Server>> {
    let std_listener = bind_socket(address, port, config.backlog)?;
    let local = std_listener.local_addr()?;
    let runtime = runtime::handle()?;
    let listener = {
        let _guard = runtime.enter();
        tokio::net::TcpListener::from_std(std_listener)?
    };
    let server = Server::new(config, queue, local);
    let guard = Listening {
        listener: Some(listener),
        server: server.clone(),
    };
    let handle = runtime.spawn(async move {
        let guard = guard;
        if let Some(listener) = guard.listener.as_ref() {
            accept_loop(guard.server.clone(), listener).await;
        }
    });
    server.set_accept_task(handle);
    Ok(server)
}

/// A server that listens on nothing (`noServer`): its connections come
/// from another server through [`adopt`].
pub fn unbound(config: ServerConfig, queue: Arc<EventQueue>) -> io::Result<Arc<Server>> {
    runtime::handle()?;
    let unspecified = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0);
    Ok(Server::new(config, queue, unspecified))
}

async fn accept_loop(server: Arc<Server>, listener: &tokio::net::TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => serve(&server, stream, remote, Vec::with_capacity(1024)),
            // Out of file descriptors and the like: back off, keep listening.
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Serves a new connection, of which `buf` holds what was read already.
fn serve(server: &Arc<Server>, stream: tokio::net::TcpStream, remote: SocketAddr, buf: Vec<u8>) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(server.local_addr());
    server.task_started();
    let stream = Transport::Plain(stream);
    tokio::spawn(connection(server.clone(), stream, remote, local, buf));
}

/// Takes over a connection another server accepted (Node's `http`, for
/// `handleUpgrade`): `socket` is its own descriptor for it, and
/// `read` the bytes that server read already (the request head, and
/// any after it). From here it is served as one this server accepted.
#[cfg(unix)]
pub fn adopt(server: &Arc<Server>, socket: std::os::fd::OwnedFd, read: Vec<u8>) -> io::Result<()> {
    if server.is_closing() {
        return Err(io::Error::new(io::ErrorKind::NotConnected, "server closed"));
    }
    let std = std::net::TcpStream::from(socket);
    std.set_nonblocking(true)?;
    let remote = std.peer_addr()?;
    let runtime = runtime::handle()?;
    let _guard = runtime.enter();
    let stream = tokio::net::TcpStream::from_std(std)?;
    serve(server, stream, remote, read);
    Ok(())
}
