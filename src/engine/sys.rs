//! The system calls the engine makes itself rather than through tokio: the
//! bare `recvfrom(2)` / `sendto(2)` of the hot paths (from any thread, for
//! the JS thread's direct writes and the keep-alive executor), and the peeks that
//! tell a peer gone from one that sent bytes.

use tokio::net::TcpStream;

/// One non-blocking read into `buf`'s spare capacity (`WouldBlock` when
/// tokio knows of no readiness, or the read finds none and clears it).
#[cfg(target_os = "linux")]
pub(super) fn recv_into(stream: &TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut got = 0;
    let r = stream.try_io(tokio::io::Interest::READABLE, || {
        let room = buf.capacity() - buf.len();
        got = recv_bare(raw_fd(stream), buf)?;
        // A short read emptied the socket (epoll is edge-triggered; a later
        // arrival signals anew): drop the readiness now, as tokio's own
        // `poll_read` does, instead of learning it from one more read.
        if got > 0 && got < room {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        Ok(got)
    });
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && got > 0 => Ok(got),
        r => r,
    }
}

/// One `recvfrom(2)` into `buf`'s spare capacity (the bare system call on
/// Linux); from any thread.
#[cfg(unix)]
pub(crate) fn recv_bare(fd: i32, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    // The bare system call on Linux, as in `send_now`: libc's `recv` is a
    // cancellation point, and these threads never cancel.
    // SAFETY: `fd` is the caller's open socket; `spare` is writable for its
    // length; no address is asked for.
    #[cfg(target_os = "linux")]
    let n = unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            fd,
            spare.as_mut_ptr(),
            spare.len(),
            0,
            std::ptr::null_mut::<libc::sockaddr>(),
            std::ptr::null_mut::<libc::socklen_t>(),
        ) as isize
    };
    // SAFETY: as above.
    #[cfg(not(target_os = "linux"))]
    let n = unsafe { libc::recv(fd, spare.as_mut_ptr().cast(), spare.len(), 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel wrote `n` bytes into the spare capacity.
    unsafe { buf.set_len(buf.len() + n as usize) };
    Ok(n as usize)
}

#[cfg(not(target_os = "linux"))]
pub(super) fn recv_into(stream: &TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    stream.try_read_buf(buf)
}

/// Whether the peer has closed its side with nothing left to read (a
/// non-blocking peek of one byte gives 0).
pub(super) fn peer_gone(stream: &TcpStream) -> bool {
    peer_gone_fd(raw_fd(stream))
}

/// `peer_gone` for socket `fd` (from any thread).
#[cfg(unix)]
pub(crate) fn peer_gone_fd(fd: i32) -> bool {
    let mut byte = 0u8;
    // SAFETY: one writable byte; no address; a bad fd only fails the call.
    let n = unsafe {
        libc::recv(
            fd,
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n == 0
}

#[cfg(not(unix))]
pub(crate) fn peer_gone_fd(_: i32) -> bool {
    false
}

#[cfg(unix)]
pub(super) fn raw_fd(stream: &TcpStream) -> i32 {
    std::os::fd::AsRawFd::as_raw_fd(stream)
}

/// Writes what it can of `data` to socket `fd` with one non-blocking
/// `send(2)`, from any thread; returns how many bytes went (0 on error).
///
/// # Safety
/// `fd` must be an open socket for the whole call.
#[cfg(unix)]
pub(super) unsafe fn send_now(fd: i32, data: &[u8]) -> usize {
    // SAFETY: as the caller guarantees.
    unsafe { send_now_raw(fd, data) }.max(0) as usize
}

/// `send_now`, returning the call's result (negative: see `errno`).
///
/// # Safety
/// `fd` must be an open socket for the whole call.
#[cfg(unix)]
pub(crate) unsafe fn send_now_raw(fd: i32, data: &[u8]) -> isize {
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    // The bare system call on Linux: libc's `send` wrapper is a
    // cancellation point, and toggling that costs as much as a quarter of
    // the call's user time; this thread never cancels.
    // SAFETY: `fd` as the caller guarantees; the buffer is valid for its
    // length; no address is passed (null, 0).
    #[cfg(target_os = "linux")]
    let n = unsafe {
        libc::syscall(
            libc::SYS_sendto,
            fd,
            data.as_ptr(),
            data.len(),
            flags,
            std::ptr::null::<libc::sockaddr>(),
            0 as libc::socklen_t,
        ) as isize
    };
    // SAFETY: as above.
    #[cfg(not(target_os = "linux"))]
    let n = unsafe { libc::send(fd, data.as_ptr() as *const libc::c_void, data.len(), flags) };
    n
}

#[cfg(not(unix))]
pub(super) fn raw_fd(_: &TcpStream) -> i32 {
    -1
}
