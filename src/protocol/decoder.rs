//! The receiving half of the protocol: frames to messages (RFC 6455 §5.4–5.6).
//!
//! Sans-IO: the caller hands in whatever bytes it has; the decoder consumes
//! every complete frame, unmasks it in place, checks it and reports each
//! whole message. Unconsumed bytes (a partial frame) are the caller's to keep.

use super::close::{self, parse_close_payload, ClosePayload};
use super::frame::{parse_header, HeaderError, OpCode};
use super::mask::apply_mask;
use super::utf8::{self, Utf8Validator};

/// Receive-side settings.
#[derive(Debug, Clone, Copy)]
pub struct DecoderConfig {
    /// Largest message accepted, in bytes (after reassembly). Larger → 1009.
    pub max_payload: usize,
    /// Client frames must be masked (§5.1); a server always sets this.
    pub require_mask: bool,
    /// An extension that gives RSV1 a meaning (permessage-deflate) was agreed.
    pub allow_rsv1: bool,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            max_payload: 100 * 1024 * 1024,
            require_mask: true,
            allow_rsv1: false,
        }
    }
}

/// A complete message or control frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message, already checked to be UTF-8.
    Text(&'a [u8]),
    Binary(&'a [u8]),
    /// A message sent with RSV1 (permessage-deflate): to be inflated, and for
    /// text, checked for UTF-8 after inflation.
    Compressed {
        text: bool,
        payload: &'a [u8],
    },
    Ping(&'a [u8]),
    Pong(&'a [u8]),
    Close(ClosePayload<'a>),
}

/// The peer broke the protocol: close with `code`. `reason` is for logs and
/// the close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation {
    pub code: u16,
    pub reason: &'static str,
}

impl Violation {
    const fn protocol(reason: &'static str) -> Self {
        Violation {
            code: close::PROTOCOL_ERROR,
            reason,
        }
    }
}

impl From<HeaderError> for Violation {
    fn from(e: HeaderError) -> Self {
        Violation::protocol(match e {
            HeaderError::ReservedBits => "reserved bits set",
            HeaderError::ReservedOpcode => "reserved opcode",
            HeaderError::BadControlFrame => "fragmented or oversized control frame",
            HeaderError::BadLength => "invalid payload length",
            HeaderError::NonMinimalLength => "non-minimal payload length",
        })
    }
}

const TOO_BIG: Violation = Violation {
    code: close::MESSAGE_TOO_BIG,
    reason: "message too big",
};
const BAD_UTF8: Violation = Violation {
    code: close::INVALID_PAYLOAD,
    reason: "invalid UTF-8",
};

#[derive(Debug, Clone, Copy)]
struct Partial {
    text: bool,
    compressed: bool,
}

/// Reassembles fragmented messages across calls.
#[derive(Debug)]
pub struct Decoder {
    config: DecoderConfig,
    partial: Option<Partial>,
    fragments: Vec<u8>,
    utf8: Utf8Validator,
}

impl Decoder {
    pub fn new(config: DecoderConfig) -> Self {
        Decoder {
            config,
            partial: None,
            fragments: Vec::new(),
            utf8: Utf8Validator::new(),
        }
    }

    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// Decodes the complete frames at the start of `input`, calling
    /// `on_message` for each message; `on_message` returns `false` to stop
    /// (after a close frame, say). Returns how many bytes were consumed.
    /// On `Err` the connection must be failed with the violation's code.
    pub fn decode<F>(&mut self, input: &mut [u8], mut on_message: F) -> Result<usize, Violation>
    where
        F: FnMut(Message<'_>) -> bool,
    {
        let cfg = self.config;
        let mut pos = 0;
        loop {
            let Some(h) = parse_header(&input[pos..], cfg.allow_rsv1)? else {
                return Ok(pos);
            };
            if cfg.require_mask && h.mask.is_none() {
                return Err(Violation::protocol("client frame not masked"));
            }
            // RFC 7692 §6.1: RSV1 never marks a control frame.
            if h.rsv1 && h.opcode.is_control() {
                return Err(Violation::protocol("RSV1 on a control frame"));
            }
            // Checked before buffering, so an oversized frame never allocates.
            let held = if h.opcode.is_control() {
                0
            } else {
                self.fragments.len() as u64
            };
            if h.payload_len.saturating_add(held) > cfg.max_payload as u64 {
                return Err(TOO_BIG);
            }
            let len = h.payload_len as usize;
            let start = pos + h.header_len;
            if input.len() - start < len {
                return Ok(pos);
            }
            let end = start + len;
            let payload = &mut input[start..end];
            if let Some(m) = h.mask {
                apply_mask(payload, m);
            }
            pos = end;
            let go_on = match h.opcode {
                OpCode::Ping => on_message(Message::Ping(payload)),
                OpCode::Pong => on_message(Message::Pong(payload)),
                OpCode::Close => {
                    let p = parse_close_payload(payload).map_err(|e| Violation {
                        code: e.close_code(),
                        reason: "invalid close frame",
                    })?;
                    on_message(Message::Close(p));
                    return Ok(pos);
                }
                OpCode::Text | OpCode::Binary => {
                    if self.partial.is_some() {
                        return Err(Violation::protocol("new message inside a fragmented one"));
                    }
                    let text = h.opcode == OpCode::Text;
                    if h.fin {
                        if h.rsv1 {
                            on_message(Message::Compressed { text, payload })
                        } else if text {
                            utf8::validate(payload).map_err(|_| BAD_UTF8)?;
                            on_message(Message::Text(payload))
                        } else {
                            on_message(Message::Binary(payload))
                        }
                    } else {
                        self.partial = Some(Partial {
                            text,
                            compressed: h.rsv1,
                        });
                        self.utf8.reset();
                        self.push_fragment(payload)?;
                        true
                    }
                }
                OpCode::Continuation => {
                    let Some(p) = self.partial else {
                        return Err(Violation::protocol("continuation without a message"));
                    };
                    // RFC 7692 §6.1: RSV1 marks only the first frame.
                    if h.rsv1 {
                        return Err(Violation::protocol("RSV1 on a continuation frame"));
                    }
                    self.push_fragment(payload)?;
                    if h.fin {
                        self.partial = None;
                        if p.text && !p.compressed {
                            self.utf8.finish().map_err(|_| BAD_UTF8)?;
                        }
                        let data = std::mem::take(&mut self.fragments);
                        let go_on = on_message(if p.compressed {
                            Message::Compressed {
                                text: p.text,
                                payload: &data,
                            }
                        } else if p.text {
                            Message::Text(&data)
                        } else {
                            Message::Binary(&data)
                        });
                        // Keep the allocation for the next fragmented message
                        // unless it is large.
                        if data.capacity() <= 64 * 1024 {
                            self.fragments = data;
                            self.fragments.clear();
                        }
                        go_on
                    } else {
                        true
                    }
                }
            };
            if !go_on {
                return Ok(pos);
            }
        }
    }

    fn push_fragment(&mut self, payload: &[u8]) -> Result<(), Violation> {
        let p = self.partial.expect("a message is in progress");
        if p.text && !p.compressed {
            // Fail fast: reject at the first fragment that cannot be UTF-8.
            self.utf8.feed(payload).map_err(|_| BAD_UTF8)?;
        }
        self.fragments.extend_from_slice(payload);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::write_frame;

    #[derive(Debug, PartialEq, Eq)]
    enum Owned {
        Text(String),
        Binary(Vec<u8>),
        Compressed(bool, Vec<u8>),
        Ping(Vec<u8>),
        Pong(Vec<u8>),
        Close(Option<(u16, String)>),
    }

    fn own(m: Message<'_>) -> Owned {
        match m {
            Message::Text(t) => Owned::Text(String::from_utf8(t.to_vec()).unwrap()),
            Message::Binary(b) => Owned::Binary(b.to_vec()),
            Message::Compressed { text, payload } => Owned::Compressed(text, payload.to_vec()),
            Message::Ping(b) => Owned::Ping(b.to_vec()),
            Message::Pong(b) => Owned::Pong(b.to_vec()),
            Message::Close(ClosePayload::Empty) => Owned::Close(None),
            Message::Close(ClosePayload::Code(c, r)) => Owned::Close(Some((c, r.to_string()))),
        }
    }

    const MASK: Option<[u8; 4]> = Some([0xa1, 0xb2, 0xc3, 0xd4]);

    fn frame(fin: bool, rsv1: bool, op: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_frame(&mut out, OpCode::Binary, rsv1, payload, MASK);
        out[0] = (fin as u8) << 7 | (rsv1 as u8) << 6 | op;
        out
    }

    /// Feeds `stream` split at `split` the way the engine does (keeping the
    /// unconsumed tail), returning the messages or the first violation.
    fn run(cfg: DecoderConfig, stream: &[u8], split: usize) -> Result<Vec<Owned>, Violation> {
        let mut d = Decoder::new(cfg);
        let mut out = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        for piece in [&stream[..split], &stream[split..]] {
            pending.extend_from_slice(piece);
            let used = d.decode(&mut pending, |m| {
                out.push(own(m));
                true
            })?;
            pending.drain(..used);
        }
        Ok(out)
    }

    fn every_split(stream: &[u8]) -> Result<Vec<Owned>, Violation> {
        let first = run(DecoderConfig::default(), stream, 0);
        for split in 1..=stream.len() {
            assert_eq!(
                run(DecoderConfig::default(), stream, split),
                first,
                "split {split}"
            );
        }
        first
    }

    #[test]
    fn single_frames() {
        let mut s = frame(true, false, 1, b"Hello");
        s.extend(frame(true, false, 2, &[1, 2, 3]));
        s.extend(frame(true, false, 9, b"pi"));
        s.extend(frame(true, false, 0xa, b""));
        s.extend(frame(true, false, 8, &[0x03, 0xe9, b'b', b'y', b'e']));
        assert_eq!(
            every_split(&s).unwrap(),
            vec![
                Owned::Text("Hello".into()),
                Owned::Binary(vec![1, 2, 3]),
                Owned::Ping(b"pi".to_vec()),
                Owned::Pong(vec![]),
                Owned::Close(Some((1001, "bye".into()))),
            ]
        );
    }

    #[test]
    fn fragments_with_interleaved_control_frames() {
        let mut s = frame(false, false, 1, "Hel".as_bytes());
        s.extend(frame(true, false, 9, b"x"));
        s.extend(frame(false, false, 0, "lo κό".as_bytes()[..5].as_ref()));
        s.extend(frame(true, false, 0, &"lo κό".as_bytes()[5..]));
        assert_eq!(
            every_split(&s).unwrap(),
            vec![Owned::Ping(b"x".to_vec()), Owned::Text("Hello κό".into())]
        );
    }

    #[test]
    fn large_frames_all_length_classes() {
        for len in [125usize, 126, 65535, 65536, 200_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let s = frame(true, false, 2, &payload);
            for split in [0, 1, 2, 5, 9, 13, s.len() / 2, s.len() - 1] {
                assert_eq!(
                    run(DecoderConfig::default(), &s, split).unwrap(),
                    vec![Owned::Binary(payload.clone())]
                );
            }
        }
    }

    fn violation(stream: &[u8]) -> u16 {
        every_split(stream).unwrap_err().code
    }

    #[test]
    fn protocol_errors_close_1002() {
        // Unmasked client frame.
        let mut unmasked = Vec::new();
        write_frame(&mut unmasked, OpCode::Text, false, b"hi", None);
        assert_eq!(violation(&unmasked), 1002);
        assert_eq!(
            violation(&frame(true, true, 1, b"x")),
            1002,
            "RSV1 not agreed"
        );
        assert_eq!(
            violation(&frame(true, false, 3, b"")),
            1002,
            "reserved opcode"
        );
        assert_eq!(
            violation(&frame(false, false, 9, b"")),
            1002,
            "fragmented ping"
        );
        assert_eq!(
            violation(&frame(true, false, 9, &[0; 126])),
            1002,
            "ping > 125"
        );
        assert_eq!(
            violation(&frame(true, false, 0, b"x")),
            1002,
            "lone continuation"
        );
        let mut s = frame(false, false, 1, b"a");
        s.extend(frame(true, false, 1, b"b"));
        assert_eq!(violation(&s), 1002, "text inside fragmented text");
        assert_eq!(
            violation(&frame(true, false, 8, &[3])),
            1002,
            "1-byte close"
        );
        assert_eq!(
            violation(&frame(true, false, 8, &[0x03, 0xed])),
            1002,
            "close 1005"
        );
    }

    #[test]
    fn rsv1_rules_with_deflate_agreed() {
        let cfg = DecoderConfig {
            allow_rsv1: true,
            ..Default::default()
        };
        let mut s = frame(false, true, 1, b"ab");
        s.extend(frame(true, false, 0, b"cd"));
        assert_eq!(
            run(cfg, &s, 3).unwrap(),
            vec![Owned::Compressed(true, b"abcd".to_vec())]
        );
        let mut s = frame(false, true, 2, b"ab");
        s.extend(frame(true, true, 0, b"cd"));
        assert_eq!(
            run(cfg, &s, 0).unwrap_err().code,
            1002,
            "RSV1 on continuation"
        );
        assert_eq!(
            run(cfg, &frame(true, true, 9, b""), 0).unwrap_err().code,
            1002
        );
    }

    #[test]
    fn invalid_utf8_at_every_position_closes_1007() {
        let text = "aκόσμεb".as_bytes();
        for pos in 0..=text.len() {
            let mut bad = text.to_vec();
            bad.insert(pos, 0xff);
            assert_eq!(
                violation(&frame(true, false, 1, &bad)),
                1007,
                "single, pos {pos}"
            );
            // The same text in two fragments cut at every place.
            for cut in 0..=bad.len() {
                let mut s = frame(false, false, 1, &bad[..cut]);
                s.extend(frame(true, false, 0, &bad[cut..]));
                assert_eq!(violation(&s), 1007, "fragmented, pos {pos} cut {cut}");
            }
        }
        // Truncated character at the end of the last fragment.
        let mut s = frame(false, false, 1, &[0xce]);
        s.extend(frame(true, false, 0, b""));
        assert_eq!(violation(&s), 1007);
        // Bad close reason.
        assert_eq!(violation(&frame(true, false, 8, &[0x03, 0xe8, 0xc0])), 1007);
    }

    #[test]
    fn every_close_code() {
        for code in 0..=5000u16 {
            let s = frame(true, false, 8, &code.to_be_bytes());
            let r = run(DecoderConfig::default(), &s, 0);
            if close::is_valid_wire_code(code) {
                assert_eq!(r.unwrap(), vec![Owned::Close(Some((code, String::new())))]);
            } else {
                assert_eq!(r.unwrap_err().code, 1002, "code {code}");
            }
        }
    }

    #[test]
    fn max_payload_checked_before_buffering() {
        let cfg = DecoderConfig {
            max_payload: 10,
            ..Default::default()
        };
        // Only the header of a huge frame has arrived: refuse already.
        let mut head = frame(true, false, 2, &[]);
        head[1] = 0x80 | 127;
        head.truncate(2);
        head.extend_from_slice(&(1u64 << 40).to_be_bytes());
        head.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(run(cfg, &head, 0).unwrap_err().code, 1009);
        // Fragments that add up to too much.
        let mut s = frame(false, false, 2, &[0; 6]);
        s.extend(frame(true, false, 0, &[0; 6]));
        assert_eq!(run(cfg, &s, 0).unwrap_err().code, 1009);
        // Exactly the limit is fine.
        let mut s = frame(false, false, 2, &[0; 5]);
        s.extend(frame(true, false, 0, &[0; 5]));
        assert_eq!(run(cfg, &s, 0).unwrap(), vec![Owned::Binary(vec![0; 10])]);
    }

    #[test]
    fn stops_after_close() {
        let mut s = frame(true, false, 8, &[]);
        s.extend(frame(true, false, 1, b"after"));
        let mut d = Decoder::new(DecoderConfig::default());
        let mut n = 0;
        let used = d.decode(&mut s, |_| {
            n += 1;
            true
        });
        assert_eq!(n, 1);
        assert_eq!(used.unwrap(), 6);
    }
}
