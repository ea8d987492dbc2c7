//! The write queue of a connection whose outgoing messages are
//! compressed: `send()` on the JS thread only copies a message in, as a
//! record, and the engine compresses and frames it (`session::write`), so
//! compression never runs on the JS thread. A record is a kind byte, a
//! little-endian u64 length, then the bytes.

/// Bytes to write as they are (responses, control frames).
pub(super) const RAW: u8 = 0;
/// A text message, to compress when at or above the threshold.
pub(super) const TEXT: u8 = 1;
/// A binary message, likewise.
pub(super) const BINARY: u8 = 2;
pub(super) const HEADER: usize = 9;

pub(super) fn begin(out: &mut Vec<u8>, kind: u8) -> usize {
    out.push(kind);
    let at = out.len();
    out.extend_from_slice(&[0; 8]);
    at
}

pub(super) fn end(out: &mut [u8], at: usize) {
    let len = (out.len() - at - 8) as u64;
    out[at..at + 8].copy_from_slice(&len.to_le_bytes());
}

/// Splits the next record off `buf`: (kind, bytes, rest).
pub(super) fn next(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    if buf.len() < HEADER {
        return None;
    }
    let len = u64::from_le_bytes(buf[1..HEADER].try_into().ok()?) as usize;
    let body = buf.get(HEADER..HEADER + len)?;
    Some((buf[0], body, &buf[HEADER + len..]))
}
