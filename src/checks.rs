//! Properties that must hold for any input, one function per sans-IO part.
//! The fuzz targets in `fuzz/` (cargo fuzz, nightly) call them with
//! coverage-guided input; the tests below call them with seeded
//! pseudo-random input in every `cargo test`. A broken property panics;
//! input is never an error in itself.
//!
//! Most checks compare a whole input with the same bytes cut into pieces,
//! because TCP may cut anywhere: the engine must reach the same result
//! whatever the reads were. The first bytes of an input choose settings and
//! cuts, so the fuzzer can explore those too.

use crate::http::body::trim_ows;
use crate::http::body::{body_kind, expects_continue, keep_alive, BodyDecoder, BodyKind};
use crate::http::form::is_urlencoded;
use crate::http::framing::{
    is_field_value, is_token, write_chunk, write_last_chunk, write_response_head, RequestInfo,
};
use crate::http::head::{parse_request_head, Field, HeadError, RequestHead, MAX_HEADERS};
use crate::protocol::close::{is_valid_wire_code, ClosePayload};
use crate::protocol::decoder::{Decoder, DecoderConfig, Message};
use crate::protocol::deflate::{
    negotiate, slide, Agreed, DeflateConfig, Deflater, InflateError, Inflater, Inflating, Step,
};
use crate::protocol::frame::{encode_header, parse_header, write_frame, OpCode, MAX_HEADER_LEN};
use crate::protocol::handshake::UpgradeHeaders;
use crate::protocol::mask::{apply_mask, apply_mask_offset, extend_masked};
use crate::protocol::utf8::{self, Utf8Validator};
use flate2::{Compress, Compression, FlushCompress, Status};

/// `data` cut into pieces whose lengths follow `seed` (1 to 16 bytes, or
/// all in one when `seed` is 0); none when `data` is empty.
fn pieces(data: &[u8], seed: u8) -> Vec<&[u8]> {
    if data.is_empty() {
        return Vec::new();
    }
    if seed == 0 {
        return vec![data];
    }
    let mut out = Vec::new();
    let mut rest = data;
    let mut s = seed as usize;
    while !rest.is_empty() {
        let n = (s % 16 + 1).min(rest.len());
        out.push(&rest[..n]);
        rest = &rest[n..];
        s = s.wrapping_mul(31).wrapping_add(7) % 251;
    }
    out
}

/// Header values are read as Latin-1, as Node does.
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

// --- HTTP request heads ---

/// Input: 2 bytes of `maxHeaderSize` (1..=8192), then the request bytes.
///
/// - Every prefix of a complete head is incomplete: a head cut by TCP is
///   never refused nor read as another head.
/// - A complete head holds what httparse parsed, header values as Latin-1,
///   and its field lookups agree with a scan of its headers.
/// - What the server derives from a head (body framing, keep-alive, upgrade
///   headers, extension offers) never panics.
pub fn http_head(data: &[u8]) {
    let [a, b, buf @ ..] = data else { return };
    let max = usize::from(u16::from_le_bytes([*a, *b])) % 8192 + 1;
    let whole = parse_request_head(buf, max);
    let step = (buf.len() / 64).max(1);
    match &whole {
        Ok(Some((head, n))) => {
            assert!(*n <= buf.len() && *n <= max);
            for k in (0..*n).step_by(step) {
                assert_eq!(parse_request_head(&buf[..k], max), Ok(None), "prefix {k}");
            }
            assert_eq!(parse_request_head(&buf[..*n], max), whole);
            // Every line of an accepted head ends in CRLF (no lone LF).
            let lf = buf[..*n].iter().enumerate().filter(|(_, &c)| c == b'\n');
            assert!(lf.clone().all(|(i, _)| i > 0 && buf[i - 1] == b'\r'));
            same_as_httparse(head, &buf[..*n]);
            derived(head);
        }
        Ok(None) => {
            assert!(buf.len() <= max);
            for k in (0..buf.len()).step_by(step) {
                assert_eq!(parse_request_head(&buf[..k], max), Ok(None), "prefix {k}");
            }
        }
        Err(HeadError::TooLarge | HeadError::Malformed | HeadError::Host) => {
            for k in (0..buf.len()).step_by(step) {
                // Incomplete, or refused already: either is fine.
                if let Ok(Some(_)) = parse_request_head(&buf[..k], max) {
                    panic!("prefix {k} completes a head the whole refuses");
                }
            }
        }
    }
}

fn same_as_httparse(head: &RequestHead, bytes: &[u8]) {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    let n = match req.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!("httparse: {other:?}"),
    };
    assert_eq!(n, bytes.len());
    assert_eq!(head.method(), req.method.unwrap());
    assert_eq!(head.target(), latin1(req.path.unwrap().as_bytes()));
    assert_eq!(head.minor, req.version.unwrap());
    assert_eq!(head.header_count(), req.headers.len());
    let ours: Vec<(&str, &str)> = head.headers().collect();
    assert_eq!(ours.len(), req.headers.len());
    for ((name, value), h) in ours.iter().zip(req.headers.iter()) {
        assert_eq!(*name, h.name);
        assert_eq!(*value, latin1(h.value));
    }
    // The form JS receives: target, then names and values, `\n` between
    // (and after the target when no header follows).
    let mut items = head.target_and_fields().split('\n');
    assert_eq!(items.next(), Some(head.target()));
    for (name, value) in &ours {
        assert_eq!(items.next(), Some(*name));
        assert_eq!(items.next(), Some(*value));
    }
    if ours.is_empty() {
        assert_eq!(items.next(), Some(""));
    }
    assert_eq!(items.next(), None);
    match head.query() {
        Some(q) => assert_eq!(format!("{}?{q}", head.path()), head.target()),
        None => assert_eq!(head.path(), head.target()),
    }
    for f in [
        Field::ContentLength,
        Field::TransferEncoding,
        Field::Connection,
        Field::Expect,
        Field::ContentType,
        Field::Upgrade,
    ] {
        let scanned: Vec<&str> = ours
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(f.name()))
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(head.has_field(f), !scanned.is_empty(), "{f:?}");
        assert_eq!(head.field(f).collect::<Vec<_>>(), scanned, "{f:?}");
        assert_eq!(head.header(f.name()), scanned.first().copied(), "{f:?}");
    }
}

fn derived(head: &RequestHead) {
    let kind = body_kind(head);
    let (te, cl) = (
        head.has_field(Field::TransferEncoding),
        head.has_field(Field::ContentLength),
    );
    match kind {
        // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length (never
        // a length when both came: the smuggling case), and a connection
        // that had both closes after the answer.
        Ok(BodyKind::Length(_)) => assert!(cl && !te),
        Ok(BodyKind::Chunked) => assert!(te && head.minor == 1),
        Ok(BodyKind::None) => assert!(!te),
        Err(_) => assert!(te || cl),
    }
    if te && cl {
        assert!(!keep_alive(head));
    }
    let _ = (expects_continue(head), is_urlencoded(head));
    let info = RequestInfo::from_head(head);
    assert_eq!(info.minor, head.minor);
    let upgrade = UpgradeHeaders::scan(head.header_pairs());
    if let Ok(key) = upgrade.validate(head.method(), head.minor) {
        assert_eq!(key.len(), 24);
    }
    let offers: Vec<&[u8]> = upgrade.extensions.clone();
    if let Some((answer, agreed)) = negotiate(&offers, &DeflateConfig::default()) {
        assert!(answer.starts_with("permessage-deflate"), "{answer}");
        assert!((8..=15).contains(&agreed.client_max_window_bits));
        assert!((8..=15).contains(&agreed.server_max_window_bits));
    }
}

// --- HTTP request bodies ---

/// What a body decoder made of a run of reads.
#[derive(Debug, PartialEq, Eq)]
struct BodyRun {
    body: Vec<u8>,
    /// Bytes taken from the input in all (0 after an error).
    consumed: usize,
    done: bool,
    error: Option<crate::http::body::BodyError>,
}

fn decode_body(kind: BodyKind, max: usize, reads: &[&[u8]]) -> BodyRun {
    let mut d = BodyDecoder::new(kind, max);
    let mut run = BodyRun {
        body: Vec::new(),
        consumed: 0,
        done: d.is_done(),
        error: None,
    };
    // An empty first read reports a declared length over the limit.
    for read in std::iter::once(&[][..]).chain(reads.iter().copied()) {
        if run.done {
            break;
        }
        match d.feed(read, &mut run.body) {
            Ok((used, done)) => {
                // Until done, every byte is taken (partial lines are held).
                assert!(done || used == read.len(), "{used} of {}", read.len());
                run.consumed += used;
                run.done = done;
            }
            Err(e) => {
                // What was taken before is the caller's to discard.
                run.consumed = 0;
                run.error = Some(e);
                // Errors stick.
                assert_eq!(d.feed(b"0\r\n\r\n", &mut Vec::new()), Err(e));
                break;
            }
        }
        assert_eq!(d.received(), run.body.len() as u64);
        assert!(run.body.len() <= max);
    }
    assert_eq!(d.is_done(), run.done);
    run
}

/// Input: a kind byte (even: chunked; odd: a Content-Length from the next
/// 2 bytes), 2 bytes of `maxBodySize`, a cut seed, then the body bytes.
///
/// - The body, the bytes consumed, completion and the error are the same
///   however the bytes are cut.
/// - The output never exceeds the limit.
/// - Data framed by `write_chunk` decodes back to itself, and one byte less
///   of limit refuses it.
pub fn http_body(data: &[u8]) {
    let [k, l0, l1, m0, m1, cut, rest @ ..] = data else {
        return;
    };
    let max = usize::from(u16::from_le_bytes([*m0, *m1]));
    let kind = if k & 1 == 0 {
        BodyKind::Chunked
    } else {
        BodyKind::Length(u64::from(u16::from_le_bytes([*l0, *l1])))
    };
    let whole = decode_body(kind, max, &[rest]);
    assert_eq!(decode_body(kind, max, &pieces(rest, *cut)), whole);
    if whole.done && whole.error.is_none() {
        assert!(whole.consumed <= rest.len());
    }

    // Round trip through the response side's chunk writer.
    let mut framed = Vec::new();
    for piece in pieces(rest, cut.wrapping_add(1)) {
        write_chunk(&mut framed, piece);
    }
    write_last_chunk(&mut framed);
    let wire_len = framed.len();
    framed.extend_from_slice(b"GET / HTTP/1.1\r\n");
    for seed in [0, *cut, k.wrapping_add(3)] {
        let run = decode_body(BodyKind::Chunked, rest.len(), &pieces(&framed, seed));
        let want = BodyRun {
            body: rest.to_vec(),
            consumed: wire_len,
            done: true,
            error: None,
        };
        assert_eq!(run, want);
    }
    if !rest.is_empty() {
        let run = decode_body(BodyKind::Chunked, rest.len() - 1, &[&framed]);
        assert_eq!(run.error, Some(crate::http::body::BodyError::TooLarge));
    }
}

// --- HTTP response heads ---

/// Input: flags (HTTP minor, HEAD, keep-alive, a body length, a reason),
/// 2 bytes of status, 2 bytes of body length, then header names and values
/// separated by 0xff (UTF-8, invalid bytes read as U+FFFD).
///
/// - The head always parses as one HTTP/1.1 response head (whatever the
///   user's names and values, nothing splits it), with at most one
///   Content-Length and never with Transfer-Encoding too.
/// - The framing returned matches the head's headers.
/// - The head is the same whether or not the previous call's was cached.
pub fn response_head(data: &[u8]) {
    let [flags, s0, s1, b0, b1, rest @ ..] = data else {
        return;
    };
    let req = RequestInfo {
        minor: flags & 1,
        head_method: flags & 2 != 0,
        keep_alive: flags & 4 != 0,
    };
    let status = u16::from_le_bytes([*s0, *s1]) % 1100;
    let body_len = (flags & 8 != 0).then_some(u64::from(u16::from_le_bytes([*b0, *b1])));
    let mut items = rest
        .split(|&b| b == 0xff)
        .map(|s| String::from_utf8_lossy(s).into_owned());
    let reason = if flags & 16 != 0 { items.next() } else { None };
    let items: Vec<String> = items.collect();
    let headers: Vec<(&str, &str)> = items
        .chunks(2)
        .map(|p| (p[0].as_str(), p.get(1).map_or("", String::as_str)))
        .collect();

    let build = |out: &mut Vec<u8>| {
        write_response_head(out, &req, status, reason.as_deref(), &headers, body_len)
    };
    // Twice in a row (the second may come from the cache), then after a
    // different common head, which replaces the cache. Tried again if the
    // Date line changed meanwhile, at a second's turn.
    let other: [(&str, &str); 1] = [("x-other", "1")];
    let mut tries = 0;
    let (first, f) = loop {
        let (mut first, mut second, mut third) = (Vec::new(), Vec::new(), Vec::new());
        let f = build(&mut first);
        assert_eq!(build(&mut second), f);
        write_response_head(&mut Vec::new(), &req, 299, None, &other, Some(1));
        assert_eq!(build(&mut third), f);
        if first == second && second == third {
            break (first, f);
        }
        tries += 1;
        assert!(tries < 3, "a cached head differs");
    };

    let mut slots = vec![httparse::EMPTY_HEADER; headers.len() + 4];
    let mut res = httparse::Response::new(&mut slots);
    match res.parse(&first) {
        Ok(httparse::Status::Complete(n)) => assert_eq!(n, first.len()),
        other => panic!("{other:?}: {}", String::from_utf8_lossy(&first)),
    }
    let want_status = if (100..=999).contains(&status) {
        status
    } else {
        500
    };
    assert_eq!(res.code, Some(want_status));
    let values = |name: &str| -> Vec<String> {
        res.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| latin1(h.value))
            .collect()
    };
    let lengths = values("content-length");
    let codings = values("transfer-encoding");
    assert!(lengths.len() <= 1, "{lengths:?}");
    assert!(lengths.is_empty() || codings.is_empty());
    assert_eq!(f.chunked, codings == ["chunked"]);
    if let Some(n) = f.content_length {
        assert_eq!(lengths, [n.to_string()]);
    }
    if f.chunked {
        assert!(f.send_body && req.minor == 1 && f.content_length.is_none());
    }
    // The user's headers go out as given (trimmed), in order, but for the
    // framing ones, which are the server's, and those it must refuse.
    let framing = ["content-length", "transfer-encoding", "connection"];
    let is_framing = |n: &str| framing.iter().any(|f| n.eq_ignore_ascii_case(f));
    let want: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (*n, trim_ows(v)))
        .filter(|(n, v)| is_token(n) && is_field_value(v) && !is_framing(n))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    let user_date = want.iter().any(|(n, _)| n.eq_ignore_ascii_case("date"));
    let got: Vec<(String, String)> = res
        .headers
        .iter()
        .filter(|h| !is_framing(h.name) && (user_date || !h.name.eq_ignore_ascii_case("date")))
        .map(|h| (h.name.to_owned(), latin1(h.value)))
        .collect();
    assert_eq!(got, want);

    let connection = values("connection");
    assert_eq!(connection.len(), 1);
    let keep = connection[0].starts_with("keep-alive");
    assert!(keep || connection[0].starts_with("close"));
    assert_eq!(keep, f.keep_alive);
    if f.keep_alive {
        // The client must be able to find the end of the response.
        assert!(req.keep_alive && (!f.send_body || f.chunked || f.content_length.is_some()));
    }
}

// --- WebSocket frames ---

/// Every message and control frame the decoder produced, and how it ended.
#[derive(Debug, PartialEq, Eq)]
struct FrameRun {
    events: Vec<String>,
    /// The close code of a violation.
    failed: Option<u16>,
    closed: bool,
    /// Bytes decoded, up to the close frame if one came (0 after a
    /// violation).
    consumed: usize,
}

fn decode_frames(cfg: DecoderConfig, reads: &[&[u8]]) -> FrameRun {
    let mut d = Decoder::new(cfg);
    let mut run = FrameRun {
        events: Vec::new(),
        failed: None,
        closed: false,
        consumed: 0,
    };
    let mut pending: Vec<u8> = Vec::new();
    for read in reads {
        pending.extend_from_slice(read);
        let mut closed = false;
        let events = &mut run.events;
        let r = d.decode(&mut pending, |m| {
            match &m {
                Message::Text(t) => {
                    assert!(utf8::validate(t).is_ok());
                    assert!(t.len() <= cfg.max_payload);
                }
                Message::Binary(b) => assert!(b.len() <= cfg.max_payload),
                Message::Compressed { payload, .. } => {
                    assert!(cfg.allow_rsv1);
                    assert!(payload.len() <= cfg.max_payload);
                }
                Message::Ping(p) | Message::Pong(p) => assert!(p.len() <= 125),
                Message::Close(p) => {
                    // Only codes that may be sent (§7.4); the reason is
                    // text by its type.
                    if let ClosePayload::Code(code, reason) = p {
                        assert!(is_valid_wire_code(*code), "close code {code}");
                        assert!(reason.len() <= 123);
                    }
                    closed = true;
                }
            }
            events.push(format!("{m:?}"));
            !closed
        });
        match r {
            Ok(used) => {
                assert!(used <= pending.len());
                pending.drain(..used);
                run.consumed += used;
            }
            Err(v) => {
                assert!(matches!(v.code, 1002 | 1007 | 1009), "violation {v:?}");
                run.consumed = 0;
                run.failed = Some(v.code);
                return run;
            }
        }
        if closed {
            run.closed = true;
            break;
        }
    }
    run
}

/// Input: flags (mask required, RSV1 allowed, a small `maxPayload`), a cut
/// seed, then the bytes a client sent.
///
/// - Messages, violations and the bytes decoded are the same however the
///   bytes are cut.
/// - Text is UTF-8, nothing exceeds `maxPayload`, RSV1 only when agreed.
/// - Messages framed by `encode_header` (masked, some in many fragments
///   with a ping after the first) decode back to themselves.
pub fn ws_frames(data: &[u8]) {
    let [flags, cut, rest @ ..] = data else {
        return;
    };
    let cfg = DecoderConfig {
        max_payload: if flags & 4 != 0 {
            usize::from(flags >> 3) * 8
        } else {
            1 << 20
        },
        require_mask: flags & 1 != 0,
        allow_rsv1: flags & 2 != 0,
    };
    let whole = decode_frames(cfg, &[rest]);
    assert_eq!(decode_frames(cfg, &pieces(rest, *cut)), whole);
    if let Ok(Some(h)) = parse_header(rest, cfg.allow_rsv1) {
        if cfg.require_mask && h.mask.is_none() {
            // §5.1: an unmasked client frame fails the connection at once.
            assert_eq!((whole.failed, whole.events.len()), (Some(1002), 0));
        }
    }

    // Round trip: messages cut from the input, each in one or more frames.
    let mut wire = Vec::new();
    let mut want = Vec::new();
    for (i, msg) in pieces(rest, cut.wrapping_add(5)).into_iter().enumerate() {
        let text = std::str::from_utf8(msg).is_ok();
        let opcode = if text { OpCode::Text } else { OpCode::Binary };
        let mask = [msg[0], i as u8, *flags, 0x5a];
        let frags = pieces(msg, msg[0] % 3);
        for (j, frag) in frags.iter().enumerate() {
            let op = if j == 0 { opcode } else { OpCode::Continuation };
            put_frame(&mut wire, j + 1 == frags.len(), op, frag, mask);
            if j == 0 && frags.len() > 1 {
                put_frame(
                    &mut wire,
                    true,
                    OpCode::Ping,
                    &msg[..msg.len().min(125)],
                    mask,
                );
                want.push(format!("{:?}", Message::Ping(&msg[..msg.len().min(125)])));
            }
        }
        want.push(format!(
            "{:?}",
            if text {
                Message::Text(msg)
            } else {
                Message::Binary(msg)
            }
        ));
    }
    let cfg = DecoderConfig::default();
    for seed in [0, *cut, flags.wrapping_add(1)] {
        let run = decode_frames(cfg, &pieces(&wire, seed));
        assert_eq!(run.events, want);
        assert_eq!(
            (run.failed, run.closed, run.consumed),
            (None, false, wire.len())
        );
    }

    // Every length form (7-bit, 16-bit, 64-bit; §5.2) at its edges, as the
    // server writes frames (unmasked, read by a client) and as a client
    // does (masked).
    let fill = rest.first().copied().unwrap_or(b'a');
    for len in [0, 1, 125, 126, 127, 65535, 65536] {
        let payload = vec![fill; len];
        for mask in [None, Some([*flags, *cut, fill, 1])] {
            let mut wire = Vec::new();
            write_frame(&mut wire, OpCode::Binary, false, &payload, mask);
            let header = parse_header(&wire, false).unwrap().unwrap();
            assert_eq!(header.payload_len, len as u64);
            assert_eq!(header.header_len + len, wire.len());
            let mut d = Decoder::new(DecoderConfig {
                require_mask: mask.is_some(),
                ..DecoderConfig::default()
            });
            // In two reads, cut anywhere.
            let at = usize::from(u16::from_le_bytes([*flags, *cut])) % (wire.len() + 1);
            let (mut first, mut second) = (wire[..at].to_vec(), wire[at..].to_vec());
            let mut got = Vec::new();
            let used = d
                .decode(&mut first, |m| {
                    got.push(format!("{m:?}"));
                    true
                })
                .unwrap();
            assert_eq!(used, if at == wire.len() { at } else { 0 });
            let mut rest_of = first[used..].to_vec();
            rest_of.append(&mut second);
            let mut data = None;
            let used2 = d
                .decode(&mut rest_of, |m| {
                    if let Message::Binary(b) = m {
                        data = Some(b.to_vec());
                    }
                    true
                })
                .unwrap();
            assert_eq!(used + used2, wire.len());
            if used == wire.len() {
                assert_eq!(got, [format!("{:?}", Message::Binary(&payload))]);
            } else {
                assert!(got.is_empty());
                assert_eq!(data.as_deref(), Some(&payload[..]));
            }
        }
    }
}

fn put_frame(out: &mut Vec<u8>, fin: bool, op: OpCode, payload: &[u8], mask: [u8; 4]) {
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = encode_header(&mut head, fin, false, op, payload.len(), Some(mask));
    out.extend_from_slice(&head[..n]);
    extend_masked(out, payload, mask);
}

/// Input: a mask, an offset byte, then data. The word-at-a-time masking
/// functions agree with masking byte by byte, and masking twice restores.
pub fn mask(data: &[u8]) {
    let [m0, m1, m2, m3, off, rest @ ..] = data else {
        return;
    };
    let m = [*m0, *m1, *m2, *m3];
    let naive = |offset: usize| -> Vec<u8> {
        rest.iter()
            .enumerate()
            .map(|(i, b)| b ^ m[(i + offset) % 4])
            .collect()
    };
    let mut a = rest.to_vec();
    apply_mask(&mut a, m);
    assert_eq!(a, naive(0));
    let offset = usize::from(*off);
    let mut b = rest.to_vec();
    apply_mask_offset(&mut b, m, offset);
    assert_eq!(b, naive(offset));
    let mut c = Vec::new();
    extend_masked(&mut c, rest, m);
    assert_eq!(c, a);
    apply_mask(&mut a, m);
    assert_eq!(a, rest);
}

/// Input: a cut seed, then bytes. `validate` and the streaming validator,
/// fed in any pieces, agree with the standard library.
pub fn utf8(data: &[u8]) {
    let [cut, rest @ ..] = data else { return };
    let want = std::str::from_utf8(rest).is_ok();
    assert_eq!(utf8::validate(rest).is_ok(), want);
    let mut v = Utf8Validator::new();
    let streamed = pieces(rest, *cut).iter().all(|p| v.feed(p).is_ok()) && v.finish().is_ok();
    assert_eq!(streamed, want);
}

// --- permessage-deflate ---

/// Input: flags (context takeover each way, window bits), a limit byte, a
/// cut seed, then bytes.
///
/// - Inflating arbitrary bytes never panics and never produces more than
///   the limit and one byte.
/// - Messages compressed by `Deflater` inflate back to themselves, message
///   after message, with or without context takeover, while another
///   connection's messages take turns on the thread's compressor.
/// - So do those of a client that ends some messages with BFINAL
///   (§7.2.3.4) and refers back across them, as long as its first message
///   ends with BFINAL (see `Inflater`'s history).
pub fn deflate(data: &[u8]) {
    let [flags, limit, cut, rest @ ..] = data else {
        return;
    };
    let bits = 8 + (flags >> 2) % 8;
    let agreed = Agreed {
        server_no_context_takeover: flags & 1 != 0,
        client_no_context_takeover: flags & 2 != 0,
        server_max_window_bits: bits,
        client_max_window_bits: bits,
    };
    let max = usize::from(*limit) * 64;
    let mut inflater = Inflater::new(&agreed);
    // The same input inflated in slices (as the engine does past its first
    // slice) reaches the same outcome and bytes as inflated whole.
    let mut sliced = Inflater::new(&agreed);
    let budget = 1 + usize::from(*cut) * 7;
    for piece in pieces(rest, *cut) {
        let mut out = Vec::new();
        let r = inflater.inflate(piece, max, &mut out);
        assert!(out.len() <= max + 1, "{} > {max} + 1", out.len());
        if r.is_ok() {
            assert!(out.len() <= max);
        }
        let mut by_slice = Vec::new();
        let mut job = Inflating::new(piece.len(), &by_slice);
        let mut left = piece;
        let s = loop {
            match sliced.step(&mut job, left, max, &mut by_slice, budget) {
                Ok(Step::More(used)) => left = &left[used..],
                done => break done.map(|_| ()),
            }
        };
        assert_eq!(s, r, "sliced and whole inflation differ");
        if r.is_ok() {
            assert_eq!(by_slice, out);
        }
    }

    // The client's settings mirror ours, as if the client were this
    // Deflater: the Inflater reads client_*.
    let mirrored = Agreed {
        client_no_context_takeover: agreed.server_no_context_takeover,
        client_max_window_bits: agreed.server_max_window_bits,
        ..agreed.clone()
    };
    let level = u32::from(flags >> 5) * 3 / 2;
    let mut deflater = Deflater::new(&agreed, level);
    let mut inflater = Inflater::new(&mirrored);
    // Another connection, with context takeover, on the same compressor
    // (same level and window) now and then.
    let plain = Agreed {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        ..agreed.clone()
    };
    let mut other = Deflater::new(&plain, level);
    let mut other_inflater = Inflater::new(&plain);
    for (n, msg) in pieces(rest, cut.wrapping_add(9)).into_iter().enumerate() {
        let mut wire = Vec::new();
        assert!(deflater.deflate(msg, &mut wire));
        let mut out = Vec::new();
        inflater
            .inflate(&wire, msg.len(), &mut out)
            .expect("our own deflate output");
        assert_eq!(out, msg);
        if (usize::from(*cut) >> (n % 8)) & 1 != 0 {
            let mut wire = Vec::new();
            assert!(other.deflate(msg, &mut wire));
            let mut out = Vec::new();
            other_inflater
                .inflate(&wire, msg.len(), &mut out)
                .expect("our own deflate output");
            assert_eq!(out, msg);
        }
    }
    let takeover = !agreed.client_no_context_takeover;
    let mut client = FinalSender::new(takeover);
    let mut inflater = Inflater::new(&agreed);
    for (n, msg) in pieces(rest, cut.wrapping_add(5)).into_iter().enumerate() {
        let last = n == 0 || (usize::from(*limit) >> (n % 8)) & 1 != 0;
        let wire = client.send(msg, last);
        let mut out = Vec::new();
        inflater
            .inflate(&wire, msg.len(), &mut out)
            .expect("a BFINAL client's output");
        assert_eq!(out, msg);
    }
    if let Some(last) = rest.last() {
        // One byte over the limit is refused, without a full inflate.
        let big = vec![*last; 4096 + usize::from(*limit)];
        let mut wire = Vec::new();
        assert!(Deflater::new(&agreed, 6).deflate(&big, &mut wire));
        let mut out = Vec::new();
        let r = Inflater::new(&mirrored).inflate(&wire, big.len() - 1, &mut out);
        assert_eq!(r, Err(InflateError::TooBig));
        assert!(out.len() <= big.len());
    }
}

/// A client compressing with plain zlib that ends a message with a final
/// block (BFINAL) when asked, and a sync flush otherwise. After a final
/// block it starts a new stream; with context takeover that stream starts
/// from the last 32 KiB it sent, so later messages may refer back across
/// the final block, as §7.2.2 allows.
pub struct FinalSender {
    stream: Compress,
    /// The stream ended with a final block: reset it before the next one.
    ended: bool,
    takeover: bool,
    sent: Vec<u8>,
}

impl FinalSender {
    pub fn new(takeover: bool) -> Self {
        FinalSender {
            stream: Compress::new(Compression::new(6), false),
            ended: false,
            takeover,
            sent: Vec::new(),
        }
    }

    /// One message's payload, as the client puts it on the wire.
    pub fn send(&mut self, msg: &[u8], last_block: bool) -> Vec<u8> {
        if !self.takeover {
            self.sent.clear();
        }
        let stream = &mut self.stream;
        if self.ended || !self.takeover {
            // A reset, not a new stream: creating one zeroes ~256 KiB.
            stream.reset();
            if !self.sent.is_empty() {
                stream.set_dictionary(&self.sent).expect("dictionary");
            }
            self.ended = false;
        }
        let flush = if last_block {
            FlushCompress::Finish
        } else {
            FlushCompress::Sync
        };
        let mut wire = Vec::with_capacity(msg.len() + 64);
        let mut input = msg;
        loop {
            if wire.capacity() - wire.len() < 64 {
                wire.reserve(wire.capacity().max(64));
            }
            let before = stream.total_in();
            let status = stream
                .compress_vec(input, &mut wire, flush)
                .expect("compress");
            input = &input[(stream.total_in() - before) as usize..];
            let done = match flush {
                FlushCompress::Finish => status == Status::StreamEnd,
                _ => input.is_empty() && wire.len() < wire.capacity(),
            };
            if done {
                break;
            }
        }
        if last_block {
            // §7.2.3.4: the final block is followed by padding up to a
            // byte, which zlib already did. A new stream follows.
            self.ended = true;
        } else {
            // §7.2.1: the sync flush's 00 00 FF FF is not sent.
            assert!(wire.ends_with(&[0, 0, 0xff, 0xff]), "sync flush");
            wire.truncate(wire.len() - 4);
        }
        slide(&mut self.sent, msg);
        wire
    }
}

#[cfg(test)]
mod tests {
    //! Seeded pseudo-random input for each check: valid inputs, mutated a
    //! little (bytes flipped, inserted, dropped, cut short), and noise.

    use super::*;

    /// xorshift64*: deterministic, so a failure names its case.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn byte(&mut self) -> u8 {
            self.next() as u8
        }
    }

    fn mutate(rng: &mut Rng, mut v: Vec<u8>, edits: usize) -> Vec<u8> {
        for _ in 0..edits {
            let at = rng.below(v.len() + 1);
            match rng.below(5) {
                0 if at < v.len() => v[at] ^= 1 << rng.below(8),
                1 if at < v.len() => v[at] = rng.byte(),
                2 => v.insert(at, rng.byte()),
                3 if at < v.len() => {
                    v.remove(at);
                }
                4 => {
                    // Repeat a slice: duplicated headers, frames, chunks.
                    let from = rng.below(v.len() + 1);
                    let to = (from + rng.below(16)).min(v.len());
                    let copy = v[from..to].to_vec();
                    v.splice(at..at, copy);
                }
                _ => {}
            }
        }
        v
    }

    /// Runs `check` on `rounds` inputs: a settings prefix of `prefix`
    /// random bytes, then one of `seeds` mutated, or noise.
    fn run(name: &str, check: fn(&[u8]), prefix: usize, seeds: &[&[u8]], rounds: usize) {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
        for round in 0..rounds {
            let mut input: Vec<u8> = (0..prefix).map(|_| rng.byte()).collect();
            let body = match rng.below(8) {
                0 => (0..rng.below(300)).map(|_| rng.byte()).collect(),
                1 => seeds[rng.below(seeds.len())].to_vec(),
                _ => {
                    let seed = seeds[rng.below(seeds.len())].to_vec();
                    let edits = 1 + rng.below(4);
                    mutate(&mut rng, seed, edits)
                }
            };
            input.extend_from_slice(&body);
            let r = std::panic::catch_unwind(|| check(&input));
            assert!(r.is_ok(), "{name} round {round}: input {input:02x?}");
        }
    }

    const HEADS: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST /f?x=1&y HTTP/1.1\r\nHost: example.com\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n\r\na=b",
        b"PUT /u HTTP/1.1\r\nhost: h\r\nTransfer-Encoding: gzip, chunked\r\nExpect: 100-continue\r\n\r\n",
        b"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, permessage-deflate; server_max_window_bits=10\r\n\r\n",
        b"HEAD /x HTTP/1.0\nConnection: keep-alive\nX-Latin: caf\xe9\n\n",
        b"OPTIONS * HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\nX-Empty:\r\n\r\n",
    ];

    #[test]
    fn http_head_holds() {
        run("http_head", http_head, 2, HEADS, 4000);
    }

    #[test]
    fn http_body_holds() {
        let seeds: &[&[u8]] = &[
            b"5\r\nhello\r\n0\r\n\r\n",
            b"3;name=value;q=\"x\\\"y\"\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: t\r\n\r\nNEXT",
            b"A\r\n0123456789\r\n0 ; e\r\n\r\n",
            b"hello world, a plain body",
        ];
        run("http_body", http_body, 6, seeds, 4000);
    }

    #[test]
    fn response_head_holds() {
        let seeds: &[&[u8]] = &[
            b"Content-Type\xfftext/plain\xffContent-Length\xff5",
            b"Connection\xffclose, x-opt\xffTransfer-Encoding\xffchunked\xffDate\xffyesterday",
            b"Reason\r\nInjected\xffX-A\xffa\r\nb\xffContent-Length\xff12\xffcontent-length\xff12",
            b"OK\xffX-Latin\xffcaf\xe9\xffBad Name\xffv",
        ];
        run("response_head", response_head, 5, seeds, 4000);
    }

    #[test]
    fn ws_frames_hold() {
        // Masked frames (RFC 6455 §5.7's examples and their kin).
        let seeds: &[&[u8]] = &[
            b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58",
            b"\x01\x83\x00\x00\x00\x00Hel\x89\x80\x00\x00\x00\x00\x80\x82\x00\x00\x00\x00lo",
            b"\x82\xfe\x00\x04\x01\x02\x03\x04abcd\x88\x82\x00\x00\x00\x00\x03\xe8",
            b"\xc1\x85\x00\x00\x00\x00\xf2\x48\xcd\xc9\xc9\x07\x00",
            b"\x88\x80\x00\x00\x00\x00",
        ];
        run("ws_frames", ws_frames, 2, seeds, 4000);
    }

    #[test]
    fn mask_holds() {
        run(
            "mask",
            mask,
            5,
            &[b"0123456789abcdefghijklmnopqrstuvwxyz"],
            1000,
        );
    }

    #[test]
    fn utf8_holds() {
        let seeds: &[&[u8]] = &[
            "κόσμε a€𝄞".as_bytes(),
            b"\xed\xa0\x80\xf4\x90\x80\x80",
            b"\xf0\x9f\x98",
        ];
        run("utf8", utf8, 1, seeds, 4000);
    }

    #[test]
    fn deflate_holds() {
        let seeds: &[&[u8]] = &[
            b"\xf2\x48\xcd\xc9\xc9\x07\x00",
            b"\x00",
            b"Hello hello hello hello, a message that repeats and repeats",
        ];
        run("deflate", deflate, 3, seeds, 600);
    }
}
