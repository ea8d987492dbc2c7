//! Close codes (RFC 6455 §7.4) and close frame payloads (§5.5.1).

/// Normal closure.
pub const NORMAL: u16 = 1000;
/// The endpoint is going away (server shutdown, worker exit).
pub const GOING_AWAY: u16 = 1001;
/// A protocol violation by the peer.
pub const PROTOCOL_ERROR: u16 = 1002;
/// Reserved: no status code was present. Reported, never sent.
pub const NO_STATUS: u16 = 1005;
/// Reserved: the connection dropped without a close frame. Reported, never sent.
pub const ABNORMAL: u16 = 1006;
/// Text that is not UTF-8 (§8.1).
pub const INVALID_PAYLOAD: u16 = 1007;
/// A message larger than the endpoint accepts.
pub const MESSAGE_TOO_BIG: u16 = 1009;
/// An endpoint ends a connection that broke its policy (§7.4.1): here, a
/// peer that lets more than `backpressureLimit` pile up unread.
pub const POLICY_VIOLATION: u16 = 1008;
/// An unexpected condition on the server.
pub const INTERNAL_ERROR: u16 = 1011;

/// Longest close reason: a control frame carries at most 125 payload bytes,
/// two of which are the code (§5.5).
pub const MAX_REASON_BYTES: usize = 123;

/// Whether `code` may appear in a close frame on the wire (§7.4.1, §7.4.2 and
/// the IANA registry): 1000–1003, 1007–1014 and the 3000–4999 range. 1004,
/// 1005, 1006 and 1015 are reserved and must never be sent.
pub fn is_valid_wire_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// What a close frame's payload said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClosePayload<'a> {
    /// An empty payload: reported as 1005.
    Empty,
    Code(u16, &'a str),
}

/// Why a close payload was refused, with the code to close with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadClose {
    /// One byte, or a code that must not be sent: 1002.
    Protocol,
    /// A reason that is not UTF-8: 1007.
    InvalidUtf8,
}

impl BadClose {
    pub fn close_code(self) -> u16 {
        match self {
            BadClose::Protocol => PROTOCOL_ERROR,
            BadClose::InvalidUtf8 => INVALID_PAYLOAD,
        }
    }
}

/// Parses and validates the payload of a received close frame.
pub fn parse_close_payload(payload: &[u8]) -> Result<ClosePayload<'_>, BadClose> {
    match payload.len() {
        0 => Ok(ClosePayload::Empty),
        1 => Err(BadClose::Protocol),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if !is_valid_wire_code(code) {
                return Err(BadClose::Protocol);
            }
            let reason =
                simdutf8::basic::from_utf8(&payload[2..]).map_err(|_| BadClose::InvalidUtf8)?;
            Ok(ClosePayload::Code(code, reason))
        }
    }
}

/// Builds a close frame payload: the code in network order, then the reason,
/// cut at a character boundary to fit 123 bytes.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_REASON_BYTES);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = Vec::with_capacity(2 + end);
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&reason.as_bytes()[..end]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_classified() {
        for code in 0..=u16::MAX {
            let valid = (1000..=1003).contains(&code)
                || (1007..=1014).contains(&code)
                || (3000..=4999).contains(&code);
            assert_eq!(is_valid_wire_code(code), valid, "code {code}");
            let payload = code.to_be_bytes();
            assert_eq!(
                parse_close_payload(&payload).is_ok(),
                valid,
                "payload for {code}"
            );
        }
    }

    #[test]
    fn payload_shapes() {
        assert_eq!(parse_close_payload(&[]), Ok(ClosePayload::Empty));
        assert_eq!(parse_close_payload(&[3]), Err(BadClose::Protocol));
        assert_eq!(
            parse_close_payload(&[0x03, 0xe8, b'o', b'k']),
            Ok(ClosePayload::Code(1000, "ok"))
        );
        assert_eq!(
            parse_close_payload(&[0x03, 0xe8, 0xff]),
            Err(BadClose::InvalidUtf8)
        );
    }

    #[test]
    fn reason_cut_at_char_boundary() {
        let long = "é".repeat(100); // 200 bytes
        let p = close_payload(1000, &long);
        assert!(p.len() <= 125);
        assert!(std::str::from_utf8(&p[2..]).is_ok());
        assert_eq!(p.len(), 2 + 122);
    }
}
