//! Frame headers (RFC 6455 §5.2): parsing and encoding.

/// Frame opcodes (§5.2, §11.8). Reserved opcodes are refused by [`parse_header`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum OpCode {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xa,
}

impl OpCode {
    fn from_u8(v: u8) -> Option<OpCode> {
        Some(match v {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xa => OpCode::Pong,
            _ => return None,
        })
    }

    /// Control frames have the high opcode bit set (§5.5).
    #[inline]
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// RSV1: "per-message compressed" when permessage-deflate is agreed (RFC 7692 §6).
    pub rsv1: bool,
    pub opcode: OpCode,
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
    /// Bytes the header itself took (2 to 14).
    pub header_len: usize,
}

/// A header that breaks §5.2 or §5.5: always close code 1002.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// RSV2/RSV3 set (no extension defines them), or RSV1 without one that does.
    ReservedBits,
    /// Opcodes 3–7 and 0xB–0xF.
    ReservedOpcode,
    /// A control frame with more than 125 bytes or without FIN.
    BadControlFrame,
    /// A 64-bit length with the most significant bit set (§5.2).
    BadLength,
    /// A length not in its shortest form. RFC 6455 §5.2 says "the minimal
    /// number of bytes MUST be used"; we accept it, like browsers do, but the
    /// variant lets a stricter caller refuse it.
    NonMinimalLength,
}

/// Parses the header at the start of `buf`. `Ok(None)`: more bytes needed.
/// `allow_rsv1`: an extension that uses RSV1 was agreed.
pub fn parse_header(buf: &[u8], allow_rsv1: bool) -> Result<Option<FrameHeader>, HeaderError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let b0 = buf[0];
    let b1 = buf[1];
    let fin = b0 & 0x80 != 0;
    let rsv1 = b0 & 0x40 != 0;
    if b0 & 0x30 != 0 || (rsv1 && !allow_rsv1) {
        return Err(HeaderError::ReservedBits);
    }
    let opcode = OpCode::from_u8(b0 & 0x0f).ok_or(HeaderError::ReservedOpcode)?;
    let masked = b1 & 0x80 != 0;
    let len7 = b1 & 0x7f;
    if opcode.is_control() && (!fin || len7 > 125) {
        return Err(HeaderError::BadControlFrame);
    }
    let (payload_len, mut pos) = match len7 {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let len = u64::from_be_bytes(buf[2..10].try_into().unwrap());
            if len >> 63 != 0 {
                return Err(HeaderError::BadLength);
            }
            (len, 10)
        }
        n => (n as u64, 2),
    };
    let mask = if masked {
        if buf.len() < pos + 4 {
            return Ok(None);
        }
        let m = [buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]];
        pos += 4;
        Some(m)
    } else {
        None
    };
    Ok(Some(FrameHeader {
        fin,
        rsv1,
        opcode,
        mask,
        payload_len,
        header_len: pos,
    }))
}

/// Largest header: 2 + 8 (length) + 4 (mask).
pub const MAX_HEADER_LEN: usize = 14;

/// Writes a frame header into `out` and returns its length.
#[inline]
pub fn encode_header(
    out: &mut [u8; MAX_HEADER_LEN],
    fin: bool,
    rsv1: bool,
    opcode: OpCode,
    payload_len: usize,
    mask: Option<[u8; 4]>,
) -> usize {
    out[0] = (fin as u8) << 7 | (rsv1 as u8) << 6 | opcode as u8;
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut pos = if payload_len < 126 {
        out[1] = mask_bit | payload_len as u8;
        2
    } else if payload_len <= u16::MAX as usize {
        out[1] = mask_bit | 126;
        out[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
        4
    } else {
        out[1] = mask_bit | 127;
        out[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
        10
    };
    if let Some(m) = mask {
        out[pos..pos + 4].copy_from_slice(&m);
        pos += 4;
    }
    pos
}

/// Appends a whole frame to `out`, masking the payload copy when `mask` is set.
pub fn write_frame(
    out: &mut Vec<u8>,
    opcode: OpCode,
    rsv1: bool,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = encode_header(&mut head, true, rsv1, opcode, payload.len(), mask);
    out.reserve(n + payload.len());
    out.extend_from_slice(&head[..n]);
    match mask {
        Some(m) => super::mask::extend_masked(out, payload, m),
        None => out.extend_from_slice(payload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    #[test]
    fn rfc_examples() {
        // §5.7: unmasked "Hello".
        let h = parse_header(&hex("81 05 48 65 6c 6c 6f"), false)
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.fin, h.opcode, h.payload_len, h.header_len),
            (true, OpCode::Text, 5, 2)
        );
        // §5.7: masked "Hello".
        let h = parse_header(&hex("81 85 37 fa 21 3d 7f 9f 4d 51 58"), false)
            .unwrap()
            .unwrap();
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!(h.header_len, 6);
        // §5.7: 256 bytes binary, 16-bit length.
        let h = parse_header(&hex("82 7E 01 00"), false).unwrap().unwrap();
        assert_eq!(
            (h.opcode, h.payload_len, h.header_len),
            (OpCode::Binary, 256, 4)
        );
        // §5.7: 64 KiB binary, 64-bit length.
        let h = parse_header(&hex("82 7F 00 00 00 00 00 01 00 00"), false)
            .unwrap()
            .unwrap();
        assert_eq!((h.payload_len, h.header_len), (65536, 10));
        // §5.7: unmasked ping "Hello".
        let h = parse_header(&hex("89 05 48 65 6c 6c 6f"), false)
            .unwrap()
            .unwrap();
        assert_eq!(h.opcode, OpCode::Ping);
    }

    #[test]
    fn incomplete_at_every_offset() {
        for frame in [
            hex("81 85 37 fa 21 3d"),
            hex("82 FE 01 00 01 02 03 04"),
            hex("82 FF 00 00 00 00 00 01 00 00 01 02 03 04"),
        ] {
            for cut in 0..frame.len() {
                assert_eq!(parse_header(&frame[..cut], false), Ok(None), "cut {cut}");
            }
            assert!(parse_header(&frame, false).unwrap().is_some());
        }
    }

    #[test]
    fn refusals() {
        assert_eq!(
            parse_header(&hex("C1 80"), false),
            Err(HeaderError::ReservedBits)
        );
        assert!(
            parse_header(&hex("C1 80 00 00 00 00"), true)
                .unwrap()
                .unwrap()
                .rsv1
        );
        assert_eq!(
            parse_header(&hex("A1 80"), true),
            Err(HeaderError::ReservedBits)
        );
        assert_eq!(
            parse_header(&hex("91 80"), true),
            Err(HeaderError::ReservedBits)
        );
        for op in [3u8, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf] {
            assert_eq!(
                parse_header(&[0x80 | op, 0x80], false),
                Err(HeaderError::ReservedOpcode),
                "opcode {op}"
            );
        }
        assert_eq!(
            parse_header(&hex("09 80"), false),
            Err(HeaderError::BadControlFrame)
        );
        assert_eq!(
            parse_header(&hex("89 FE 00 7e"), false),
            Err(HeaderError::BadControlFrame)
        );
        assert_eq!(
            parse_header(&hex("82 FF 80 00 00 00 00 00 00 00"), false),
            Err(HeaderError::BadLength)
        );
    }

    #[test]
    fn encode_round_trips_every_length_class() {
        for len in [0usize, 1, 125, 126, 127, 65535, 65536, 70000] {
            for mask in [None, Some([9, 8, 7, 6])] {
                let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let mut out = Vec::new();
                write_frame(&mut out, OpCode::Binary, false, &payload, mask);
                let h = parse_header(&out, false).unwrap().unwrap();
                assert_eq!(h.payload_len as usize, len);
                assert_eq!(h.mask, mask);
                let mut body = out[h.header_len..].to_vec();
                if let Some(m) = mask {
                    super::super::mask::apply_mask(&mut body, m);
                }
                assert_eq!(body, payload);
            }
        }
    }
}
