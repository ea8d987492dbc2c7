//! permessage-deflate (RFC 7692): the offer/response negotiation (§5, §7.1)
//! and the per-message DEFLATE transform (§7.2), server side.
//!
//! Memory (zlib-rs, read from its allocation code; pages are resident only
//! once written):
//! - A zlib-rs compressor is window 2·2^w + prev 2·2^w + a fixed 64 Ki-entry
//!   hash head (128 KiB whatever w is) + pending 64 KiB + symbol buffer
//!   48 KiB: about 370 KiB at w = 15, 244 KiB at w = 9. Connections do not
//!   own one: each thread keeps one per (level, w) in use and lends it for a
//!   message (see [`Deflater`]). A connection keeps what context takeover
//!   needs, the last 2^w bytes it compressed: up to 32 KiB at w = 15,
//!   nothing with `server_no_context_takeover`.
//! - The price: before each message the thread's compressor is reset and
//!   primed with that history (`set_dictionary` hashes every byte of it):
//!   about 1.3 ns a byte, ~40 µs for 32 KiB, next to ~85 µs to compress a
//!   4 KiB JSON message at level 7 (one thread, hot cache). Skipped when the
//!   compressor's last message was the same connection's. Still faster than a compressor per
//!   connection, whose 370 KiB were cold in cache at every message: a 4 KiB
//!   JSON echo over 32 connections went from 3.7–3.9 k to 5.8–6.0 k
//!   messages per server CPU-second at level 6.
//! - [`Inflater`]: a few KiB of state + a 32 KiB window. zlib-rs allocates and
//!   keeps the full 32 KiB of history whatever w is, written as messages pass:
//!   resident up to min(32 KiB, bytes received). The window bits we answer
//!   change the client's memory, not ours. A client that ends messages with
//!   BFINAL costs another 32 KiB (the history a new stream starts from).
//!
//! Measured (bench/deflate-memory.js, 1,000 connections, server RSS per
//! active connection, default options): 34 KiB after one 4 KiB message each
//! way, 70 KiB after one of 16 KiB, 102–121 KiB once the history is full
//! (10 × 4 KiB, 3 × 16 KiB); 350–390 KiB with a compressor per connection.
//!
//! The inflater creates its zlib stream lazily, on the first message that
//! needs it, so a connection that never receives a compressed message costs
//! nothing beyond the struct itself.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The empty stored block a sync flush ends with (§7.2.1 step 3, §7.2.2 step 1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The smallest step the inflate output grows by.
const MIN_GROW: usize = 1024;

/// Room kept free before each deflate call: zlib asks for more than six bytes
/// with a sync flush, or it may repeat the flush marker.
const DEFLATE_SLACK: usize = 64;

/// zlib refuses an 8-bit window for raw deflate; 9 is safe in its place. Its
/// compressor never emits a distance over 2^w − 262 (`MAX_DIST`), i.e. 250 for
/// w = 9, which a 256-byte window decodes (what zlib itself does for w = 8).
/// A 9-bit inflate window decodes any stream made with 8 bits.
fn zlib_bits(bits: u8) -> u8 {
    bits.clamp(9, 15)
}

/// Server settings, from the JS options `perMessageDeflate` /
/// `perMessageDeflateAllow`.
#[derive(Debug, Clone)]
pub struct DeflateConfig {
    /// Outgoing messages smaller than this are sent uncompressed (the caller
    /// checks it before calling [`Deflater::deflate`]).
    pub threshold: usize,
    /// zlib level, 0..=9 (larger values act as 9).
    pub level: u32,
    /// We reset our compressor after every message, and say so (§7.1.1.1).
    pub server_no_context_takeover: bool,
    /// We ask the client to reset its compressor after every message (§7.1.1.2).
    pub client_no_context_takeover: bool,
    /// Largest window we compress with, 8..=15 (8 is answered as 8 but
    /// compressed with 9, see [`zlib_bits`]). Announced only when the client
    /// offered `server_max_window_bits`; otherwise used silently, which is
    /// always allowed since the client must decode any window up to 15.
    pub server_max_window_bits: u8,
    /// Largest window we ask the client to use, 8..=15. Sent only if the client
    /// offered `client_max_window_bits` (§7.1.2.2).
    pub client_max_window_bits: u8,
    /// False for `perMessageDeflateAllow`: negotiate and inflate incoming
    /// messages, never deflate outgoing ones.
    pub compress: bool,
}

impl Default for DeflateConfig {
    /// The `ws` package's defaults (threshold 1024, full windows, context
    /// takeover both ways) but level 7: `ws` leaves zlib's default, 6, in
    /// place, and zlib-rs compresses 3 to 6 with zlib-ng's "medium"
    /// matcher, which sent 5.5 % more bytes than zlib's 6 on a 4 KiB JSON
    /// echo (938 against 889 per message); 7 is its first lazily matching
    /// level and sent 881. Level 1 is the option for speed.
    fn default() -> Self {
        DeflateConfig {
            threshold: 1024,
            level: 7,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            compress: true,
        }
    }
}

/// What both sides agreed (RFC 7692 §7.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreed {
    /// We reset our compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message.
    pub client_no_context_takeover: bool,
    /// The window we compress with, 8..=15: the value answered, or our own
    /// smaller one used silently when the client did not offer the parameter.
    pub server_max_window_bits: u8,
    /// The largest window the client may use (15 when not negotiated).
    pub client_max_window_bits: u8,
}

// --- Negotiation (RFC 6455 §9.1 grammar, RFC 7692 §7.1) ---

/// RFC 7230 §3.2.6 `tchar`.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&c| is_tchar(c))
}

/// Splits `s` at every `sep` outside a quoted-string; `None` when a quote is
/// left open (the rest of the header cannot be read).
fn split_unquoted(s: &[u8], sep: u8) -> Option<Vec<&[u8]>> {
    let mut parts = Vec::new();
    let (mut start, mut i, mut quoted) = (0, 0, false);
    while i < s.len() {
        match s[i] {
            b'\\' if quoted => i += 1, // quoted-pair: the next octet is literal
            b'"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if quoted {
        return None;
    }
    parts.push(&s[start..]);
    Some(parts)
}

/// A parameter value: a token, or a quoted-string that is a token once
/// unescaped (RFC 6455 §9.1).
fn param_value(v: &[u8]) -> Option<Vec<u8>> {
    let v = v.trim_ascii();
    let raw = match v.strip_prefix(b"\"") {
        Some(inner) => {
            let inner = inner.strip_suffix(b"\"")?;
            let mut out = Vec::with_capacity(inner.len());
            let mut it = inner.iter();
            while let Some(&c) = it.next() {
                match c {
                    b'\\' => out.push(*it.next()?),
                    b'"' => return None,
                    _ => out.push(c),
                }
            }
            out
        }
        None => v.to_vec(),
    };
    is_token(&raw).then_some(raw)
}

/// `8`..`15`, decimal, no leading zero (§7.1.2.1, §7.1.2.2).
fn window_bits(v: &[u8]) -> Option<u8> {
    match v {
        [d @ b'8'..=b'9'] => Some(d - b'0'),
        [b'1', d @ b'0'..=b'5'] => Some(10 + d - b'0'),
        _ => None,
    }
}

/// One permessage-deflate offer's parameters.
#[derive(Debug, Default)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: offered without a value.
    client_max_window_bits: Option<Option<u8>>,
}

/// Reads the parameters of one offer; `None` declines it (§7.1: unknown
/// parameter, bad value, or a parameter given twice).
fn parse_offer(params: &[&[u8]]) -> Option<Offer> {
    let mut o = Offer::default();
    let mut seen = 0u8;
    for p in params {
        let (name, value) = match p.iter().position(|&c| c == b'=') {
            Some(i) => (p[..i].trim_ascii(), Some(param_value(&p[i + 1..])?)),
            None => (p.trim_ascii(), None),
        };
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        let bit = if is("server_no_context_takeover") {
            // §7.1.1.1: no value.
            if value.is_some() {
                return None;
            }
            o.server_no_context_takeover = true;
            1
        } else if is("client_no_context_takeover") {
            // §7.1.1.2: no value.
            if value.is_some() {
                return None;
            }
            o.client_no_context_takeover = true;
            2
        } else if is("server_max_window_bits") {
            // §7.1.2.1: a value is required.
            o.server_max_window_bits = Some(window_bits(&value?)?);
            4
        } else if is("client_max_window_bits") {
            // §7.1.2.2: the value is optional.
            o.client_max_window_bits = Some(match value {
                Some(v) => Some(window_bits(&v)?),
                None => None,
            });
            8
        } else {
            return None;
        };
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
    }
    Some(o)
}

/// Builds the response to an acceptable offer.
fn accept(o: &Offer, cfg: &DeflateConfig) -> (String, Agreed) {
    let cfg_server_bits = cfg.server_max_window_bits.clamp(8, 15);
    let cfg_client_bits = cfg.client_max_window_bits.clamp(8, 15);
    let mut resp = String::from("permessage-deflate");
    // §7.1.1.1: the server may reset even if the client did not ask.
    let snct = o.server_no_context_takeover || cfg.server_no_context_takeover;
    if snct {
        resp.push_str("; server_no_context_takeover");
    }
    // §7.1.1.2: the server may ask the client to reset in any case.
    let cnct = o.client_no_context_takeover || cfg.client_no_context_takeover;
    if cnct {
        resp.push_str("; client_no_context_takeover");
    }
    // §7.1.2.1: answer the same or a smaller value. Not offered: we use our
    // window silently (a smaller window is always decodable) and do not
    // answer a parameter the client did not send.
    let server_bits = o
        .server_max_window_bits
        .map_or(cfg_server_bits, |b| b.min(cfg_server_bits));
    if o.server_max_window_bits.is_some() {
        resp.push_str(&format!("; server_max_window_bits={server_bits}"));
    }
    // §7.1.2.2: only if offered; a value offered is a bound we answer within.
    // Answering 15 says nothing, so it is left out.
    let client_bits = match o.client_max_window_bits {
        Some(offered) => {
            let b = offered.unwrap_or(15).min(cfg_client_bits);
            if b < 15 {
                resp.push_str(&format!("; client_max_window_bits={b}"));
            }
            b
        }
        None => 15,
    };
    let agreed = Agreed {
        server_no_context_takeover: snct,
        client_no_context_takeover: cnct,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
    };
    (resp, agreed)
}

/// Picks the first acceptable permessage-deflate offer among all
/// `Sec-WebSocket-Extensions` header values, in order (RFC 7692 §5, RFC 6455
/// §9.1: comma-separated extensions with `;` parameters, quoted values
/// allowed). Returns the response header value and the agreement, or `None`:
/// then no extension is used (an offer we cannot honour is declined, never
/// failing the handshake).
///
/// Unknown or repeated parameters and invalid values decline that offer only.
/// Everything else can be honoured: a smaller server window, a reset after
/// each message. `cfg.compress` does not change the negotiation.
pub fn negotiate(offers: &[&[u8]], cfg: &DeflateConfig) -> Option<(String, Agreed)> {
    for value in offers {
        let Some(extensions) = split_unquoted(value, b',') else {
            continue;
        };
        for ext in extensions {
            let Some(parts) = split_unquoted(ext, b';') else {
                continue;
            };
            let name = parts[0].trim_ascii();
            if !name.eq_ignore_ascii_case(b"permessage-deflate") {
                continue;
            }
            if let Some(offer) = parse_offer(&parts[1..]) {
                return Some(accept(&offer, cfg));
            }
        }
    }
    None
}

// --- Decompression (§7.2.2) ---

/// Why a compressed message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InflateError {
    /// The message inflates to more than the limit: close 1009 (RFC 6455 §7.4.1).
    #[error("message too big")]
    TooBig,
    /// Not valid DEFLATE data. RFC 7692 only says to _Fail the WebSocket
    /// Connection_; we close with 1007, "data within a message that was not
    /// consistent with the type of the message" (RFC 6455 §7.4.1), as `ws`
    /// does for inflate errors: the frames were well formed, their payload
    /// was not.
    #[error("invalid compressed data")]
    Corrupt,
}

impl InflateError {
    /// The close code this error fails the connection with.
    pub fn close_code(self) -> u16 {
        match self {
            InflateError::TooBig => 1009,
            InflateError::Corrupt => 1007,
        }
    }
}

/// Decompresses messages from the client.
///
/// With `client_no_context_takeover` the stream holds nothing between
/// messages and is dropped after each one (re-creating it is cheap: a few KiB
/// of state, the window is not zeroed), so an idle connection holds no
/// inflate memory.
pub struct Inflater {
    stream: Option<Decompress>,
    window_bits: u8,
    no_context_takeover: bool,
    /// `None` until the client first ends a DEFLATE stream with BFINAL
    /// (§7.2.3.4). From then on, the last 32 KiB inflated on this
    /// connection: a new stream starts with them as its dictionary, because
    /// with context takeover (§7.2.2) the client may refer back to earlier
    /// messages. zlib's own window cannot be read back through flate2, so
    /// a client that uses BFINAL pays one copy per message; others pay
    /// nothing.
    history: Option<Vec<u8>>,
}

impl Inflater {
    pub fn new(agreed: &Agreed) -> Self {
        Inflater {
            stream: None,
            window_bits: zlib_bits(agreed.client_max_window_bits),
            no_context_takeover: agreed.client_no_context_takeover,
            history: None,
        }
    }

    /// Inflates one whole message payload (the frames' payloads concatenated,
    /// RSV1 on the first), appending it to `out`. Fails with `TooBig` as soon
    /// as the message would exceed `max` bytes: the output grows in bounded
    /// steps and never past `max + 1` bytes beyond its length on entry (spare
    /// capacity the caller already had is used as is). An empty payload is an
    /// empty message.
    pub fn inflate(
        &mut self,
        payload: &[u8],
        max: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), InflateError> {
        let mut job = Inflating::new(payload.len(), out);
        let mut rest = payload;
        loop {
            match self.step(&mut job, rest, max, out, usize::MAX)? {
                Step::Done => return Ok(()),
                Step::More(used) => rest = &rest[used..],
            }
        }
    }

    /// Goes on with `job` (see [`Inflating`]), `rest` being the payload it
    /// has not consumed yet, until the message is whole ([`Step::Done`]) or
    /// about `budget` more bytes were produced ([`Step::More`]: call again
    /// with the rest). A caller serving many connections inflates a large
    /// message in such slices, so one message (a deflate bomb, say) does not
    /// hold the thread for the whole of it.
    pub fn step(
        &mut self,
        job: &mut Inflating,
        rest: &[u8],
        max: usize,
        out: &mut Vec<u8>,
        budget: usize,
    ) -> Result<Step, InflateError> {
        if job.empty {
            // Not valid DEFLATE data strictly, but unambiguous; feeding the
            // tail alone would leave the stream inside a stored block.
            return Ok(Step::Done);
        }
        let bits = self.window_bits;
        let stream = self
            .stream
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, bits));
        let result = inflate_steps(stream, &mut self.history, job, rest, max, out, budget);
        // §7.2.2: with client_no_context_takeover we MAY start each message
        // with an empty window. After an error the stream is unusable.
        if result.is_err() || (self.no_context_takeover && matches!(result, Ok(Step::Done))) {
            self.stream = None;
            self.history = None;
        }
        result
    }
}

/// A message being inflated, between [`Inflater::step`]s.
#[derive(Debug, Clone)]
pub struct Inflating {
    /// `out`'s length when the message began.
    start: usize,
    /// Output up to here is already in the history.
    seen: usize,
    /// Where in the 00 00 FF FF tail the inflating is, once the payload is
    /// all consumed.
    tail_at: Option<usize>,
    payload_len: usize,
    empty: bool,
}

impl Inflating {
    /// A message of `payload_len` compressed bytes, appended to `out`.
    pub fn new(payload_len: usize, out: &[u8]) -> Self {
        Inflating {
            start: out.len(),
            seen: out.len(),
            tail_at: None,
            payload_len,
            empty: payload_len == 0,
        }
    }
}

/// How far an [`Inflater::step`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The message is whole.
    Done,
    /// The slice's budget is spent; this many bytes of the payload given
    /// were consumed.
    More(usize),
}

/// The most one decompress call adds to the output: the unit in which a
/// step's budget is kept (zlib fills what room it is given).
const MAX_GROW: usize = 4 << 20;

/// The most a DEFLATE distance reaches back (RFC 1951 §2).
pub(crate) const WINDOW: usize = 32 * 1024;

/// Keeps the last [`WINDOW`] bytes of `history` followed by `more`.
pub(crate) fn slide(history: &mut Vec<u8>, more: &[u8]) {
    keep_last(history, more, WINDOW);
}

fn inflate_steps(
    d: &mut Decompress,
    history: &mut Option<Vec<u8>>,
    job: &mut Inflating,
    rest: &[u8],
    max: usize,
    out: &mut Vec<u8>,
    budget: usize,
) -> Result<Step, InflateError> {
    let start = job.start;
    // One byte past `max` is what proves a message too big.
    let limit = max.saturating_add(1);
    let stop_at = out.len().saturating_add(budget);
    let mut consumed = 0;
    // §7.2.2 step 1: decompress the payload followed by 00 00 FF FF.
    loop {
        let (is_tail, input) = match job.tail_at {
            None => (false, &rest[consumed..]),
            Some(at) => (true, &TAIL[at..]),
        };
        let produced = out.len() - start;
        if out.len() == out.capacity() {
            // Geometric growth, capped at the limit and at one step.
            let want = produced.max(job.payload_len * 2).max(MIN_GROW);
            out.reserve_exact(want.min(limit - produced).min(MAX_GROW));
        }
        let (in0, out0) = (d.total_in(), d.total_out());
        let status = d
            .decompress_vec(input, out, FlushDecompress::Sync)
            .map_err(|_| InflateError::Corrupt)?;
        let used = (d.total_in() - in0) as usize;
        let made = (d.total_out() - out0) as usize;
        match job.tail_at.as_mut() {
            None => consumed += used,
            Some(at) => *at += used,
        }
        let input_done = used == input.len();
        if out.len() - start > max {
            return Err(InflateError::TooBig);
        }
        if status == Status::StreamEnd {
            // §7.2.1: a sender MAY end blocks with BFINAL set; "the next
            // DEFLATE block follows the padded data" (§7.2.3.4 ends with a
            // 0x00 for that). Start a new stream for what follows. A
            // message that stops right at the final block needs no tail.
            d.reset(false);
            // §7.2.2: with context takeover what follows may still refer
            // back: the new stream gets the last 32 KiB inflated as
            // its dictionary. At the first BFINAL of a connection only
            // this message's output is at hand: exact when the stream
            // began with this message (a client that ends every message
            // with BFINAL), or when this message fills the window.
            let h = history.get_or_insert_with(Vec::new);
            slide(h, &out[job.seen..]);
            job.seen = out.len();
            if !h.is_empty() {
                d.set_dictionary(h).map_err(|_| InflateError::Corrupt)?;
            }
            if is_tail || input_done {
                return Ok(Step::Done);
            }
            continue;
        }
        let room = out.len() < out.capacity();
        if input_done && room {
            if is_tail {
                if let Some(h) = history {
                    slide(h, &out[job.seen..]);
                }
                return Ok(Step::Done);
            }
            job.tail_at = Some(0);
            continue;
        }
        if used == 0 && made == 0 && room {
            // Input and room but no progress: never expected from zlib.
            return Err(InflateError::Corrupt);
        }
        if out.len() >= stop_at {
            return Ok(Step::More(consumed));
        }
    }
}

// --- Compression (§7.2.1) ---

/// Compresses messages to the client.
///
/// A zlib-rs compressor is ~370 KiB whatever its window (see the module
/// comment), so a connection does not own one: each thread keeps one per
/// (level, window bits) in use ([`KEPT`]) and lends it for one message.
/// With context takeover (§7.2.1) the next message may refer back to the
/// last 2^w bytes of the messages compressed before, which the client holds
/// in its window; those bytes are all a connection keeps (`history`, 32 KiB
/// at w = 15). Before a message the thread's compressor is reset and primed
/// with them as a preset dictionary, the same LZ77 window an unbroken
/// stream would have. Hashing them costs half as much as compressing a
/// 4 KiB message (figures in the module comment), and is skipped when the
/// compressor's last message was this connection's: its window already
/// holds those bytes.
pub struct Deflater {
    level: u32,
    window_bits: u8,
    no_context_takeover: bool,
    /// With context takeover: the last 2^`window_bits` bytes of the messages
    /// compressed (not those sent uncompressed: the client's inflater never
    /// saw them).
    history: Vec<u8>,
    /// Names this connection's context in a thread's compressor (`owner`).
    id: u64,
    /// Messages compressed with takeover: with `id`, tells a compressor
    /// whose window is current from one this connection left (it moved to
    /// another thread since, say).
    serial: u64,
}

/// A thread's compressor for one (level, window bits).
struct Lent {
    level: u32,
    bits: u8,
    stream: Compress,
    /// The [`Deflater`] (`id`, `serial`) whose history the stream's window
    /// holds; id 0 when none.
    owner: (u64, u64),
}

/// Compressors kept per thread: one per (level, window bits) in use, the
/// least recently used replaced past this (servers of one process with
/// different settings share the engine's threads).
const KEPT: usize = 4;

thread_local! {
    static COMPRESSORS: RefCell<Vec<Lent>> = const { RefCell::new(Vec::new()) };
}

/// Deflater ids, never reused (0 is no owner).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Keeps the last `window` bytes of `history` followed by `more`. The
/// allocation doubles up to `window`, never past it.
fn keep_last(history: &mut Vec<u8>, more: &[u8], window: usize) {
    let want = (history.len() + more.len()).min(window);
    if want > history.capacity() {
        let cap = want.max(2 * history.capacity()).min(window);
        history.reserve_exact(cap - history.len());
    }
    if more.len() >= window {
        history.clear();
        history.extend_from_slice(&more[more.len() - window..]);
    } else {
        let keep = window - more.len();
        if history.len() > keep {
            history.drain(..history.len() - keep);
        }
        history.extend_from_slice(more);
    }
}

impl Deflater {
    /// `level`: 0..=9 (larger values act as 9).
    pub fn new(agreed: &Agreed, level: u32) -> Self {
        Deflater {
            level: level.min(9),
            window_bits: zlib_bits(agreed.server_max_window_bits),
            no_context_takeover: agreed.server_no_context_takeover,
            history: Vec::new(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            serial: 0,
        }
    }

    /// Compresses one whole message, appending the payload to `out` with the
    /// trailing 00 00 FF FF removed (§7.2.1). An empty message gives `00`.
    /// `false` (never expected: zlib fails only on a broken stream): nothing
    /// was appended and the context is unchanged, so the message can go
    /// uncompressed.
    #[must_use]
    pub fn deflate(&mut self, payload: &[u8], out: &mut Vec<u8>) -> bool {
        if payload.is_empty() {
            // An empty stored block without its last 4 octets. zlib would
            // emit nothing for a second flush in a row with no input.
            out.push(0x00);
            return true;
        }
        let shared = COMPRESSORS.try_with(|c| {
            c.try_borrow_mut()
                .ok()
                .map(|mut kept| self.deflate_with(&mut kept, payload, out))
        });
        match shared {
            Ok(Some(done)) => done,
            // The thread is exiting, or (never) a compressor is in use: a
            // compressor of its own for this message.
            _ => self.deflate_with(&mut Vec::new(), payload, out),
        }
    }

    fn deflate_with(&mut self, kept: &mut Vec<Lent>, payload: &[u8], out: &mut Vec<u8>) -> bool {
        let (level, bits) = (self.level, self.window_bits);
        let at = kept.iter().position(|l| l.level == level && l.bits == bits);
        let i = match at {
            Some(i) => i,
            None => {
                if kept.len() >= KEPT {
                    kept.remove(0);
                }
                kept.push(Lent {
                    level,
                    bits,
                    stream: Compress::new_with_window_bits(Compression::new(level), false, bits),
                    owner: (0, 0),
                });
                kept.len() - 1
            }
        };
        // Most recently used last.
        kept[i..].rotate_left(1);
        let Some(lent) = kept.last_mut() else {
            return false;
        };
        let takeover = !self.no_context_takeover;
        if !(takeover && lent.owner == (self.id, self.serial)) {
            // §7.1.1.1: without takeover each message starts from an empty
            // window; with it, from this connection's history.
            lent.stream.reset();
            if takeover
                && !self.history.is_empty()
                && lent.stream.set_dictionary(&self.history).is_err()
            {
                lent.owner = (0, 0);
                return false;
            }
        }
        lent.owner = (0, 0);
        let start = out.len();
        if !compress(&mut lent.stream, payload, out) {
            out.truncate(start);
            return false;
        }
        // §7.2.1 step 3: remove the 00 00 FF FF of that empty block.
        debug_assert!(out[start..].ends_with(&TAIL));
        if out[start..].ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        if takeover {
            self.serial += 1;
            lent.owner = (self.id, self.serial);
            keep_last(&mut self.history, payload, 1 << bits);
        }
        true
    }
}

/// Compresses `payload` with a sync flush (§7.2.1 step 2: the data ends with
/// an empty stored block, so the message ends on a byte boundary), appending
/// to `out`.
fn compress(c: &mut Compress, payload: &[u8], out: &mut Vec<u8>) -> bool {
    let start = out.len();
    // A guess at the usual text ratio; the loop below doubles if short.
    out.reserve(payload.len() / 4 + DEFLATE_SLACK);
    let mut input = payload;
    loop {
        if out.capacity() - out.len() < DEFLATE_SLACK {
            out.reserve((out.len() - start).max(MIN_GROW));
        }
        let in0 = c.total_in();
        if c.compress_vec(input, out, FlushCompress::Sync).is_err() {
            return false;
        }
        input = &input[(c.total_in() - in0) as usize..];
        // zlib: the flush is complete once a call leaves room unused.
        if input.is_empty() && out.len() < out.capacity() {
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agreed(snct: bool, cnct: bool, sbits: u8, cbits: u8) -> Agreed {
        Agreed {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: sbits,
            client_max_window_bits: cbits,
        }
    }

    const PLAIN: Agreed = Agreed {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };

    // --- negotiation ---

    type Tweak = fn(&mut DeflateConfig);
    /// Header values, config change, expected response and agreement.
    type Row = (
        &'static [&'static str],
        Tweak,
        Option<(&'static str, Agreed)>,
    );

    #[test]
    fn negotiation_table() {
        let none: Tweak = |_| {};
        let c10: Tweak = |c| c.client_max_window_bits = 10;
        let s9: Tweak = |c| c.server_max_window_bits = 9;
        let s10: Tweak = |c| c.server_max_window_bits = 10;
        let snct: Tweak = |c| c.server_no_context_takeover = true;
        let cnct: Tweak = |c| c.client_no_context_takeover = true;
        let allow: Tweak = |c| c.compress = false;
        let pmd = "permessage-deflate";
        #[rustfmt::skip]
        let rows: &[Row] = &[
            // Plain offer.
            (&["permessage-deflate"], none, Some((pmd, PLAIN))),
            // client_max_window_bits without a value: supported, we keep 15.
            (&["permessage-deflate; client_max_window_bits"], none, Some((pmd, PLAIN))),
            // ... and we answer our smaller window.
            (&["permessage-deflate; client_max_window_bits"], c10,
                Some(("permessage-deflate; client_max_window_bits=10", agreed(false, false, 15, 10)))),
            // With a value: we answer within it.
            (&["permessage-deflate; client_max_window_bits=12"], none,
                Some(("permessage-deflate; client_max_window_bits=12", agreed(false, false, 15, 12)))),
            (&["permessage-deflate; client_max_window_bits=12"], c10,
                Some(("permessage-deflate; client_max_window_bits=10", agreed(false, false, 15, 10)))),
            (&["permessage-deflate; client_max_window_bits=15"], none, Some((pmd, PLAIN))),
            (&["permessage-deflate; client_max_window_bits=8"], none,
                Some(("permessage-deflate; client_max_window_bits=8", agreed(false, false, 15, 8)))),
            // Not offered: never answered, the client keeps 15.
            (&["permessage-deflate"], c10, Some((pmd, PLAIN))),
            // server_max_window_bits is honoured, and echoed.
            (&["permessage-deflate; server_max_window_bits=10"], none,
                Some(("permessage-deflate; server_max_window_bits=10", agreed(false, false, 10, 15)))),
            (&["permessage-deflate; server_max_window_bits=15"], none,
                Some(("permessage-deflate; server_max_window_bits=15", PLAIN))),
            (&["permessage-deflate; server_max_window_bits=12"], s9,
                Some(("permessage-deflate; server_max_window_bits=9", agreed(false, false, 9, 15)))),
            (&["permessage-deflate; server_max_window_bits=8"], none,
                Some(("permessage-deflate; server_max_window_bits=8", agreed(false, false, 8, 15)))),
            // Our smaller window, not offered: used silently.
            (&["permessage-deflate"], s10, Some((pmd, agreed(false, false, 10, 15)))),
            // Invalid window values.
            (&["permessage-deflate; server_max_window_bits"], none, None),
            (&["permessage-deflate; server_max_window_bits=7"], none, None),
            (&["permessage-deflate; server_max_window_bits=16"], none, None),
            (&["permessage-deflate; server_max_window_bits=abc"], none, None),
            (&["permessage-deflate; server_max_window_bits=010"], none, None),
            (&["permessage-deflate; client_max_window_bits=7"], none, None),
            (&["permessage-deflate; client_max_window_bits=16"], none, None),
            (&["permessage-deflate; client_max_window_bits="], none, None),
            (&["permessage-deflate; client_max_window_bits=1 0"], none, None),
            // Quoted values, unescaped before checking.
            (&["permessage-deflate; client_max_window_bits=\"10\""], none,
                Some(("permessage-deflate; client_max_window_bits=10", agreed(false, false, 15, 10)))),
            (&["permessage-deflate; server_max_window_bits=\"1\\1\""], none,
                Some(("permessage-deflate; server_max_window_bits=11", agreed(false, false, 11, 15)))),
            (&["permessage-deflate; client_max_window_bits=\"abc\""], none, None),
            (&["permessage-deflate; client_max_window_bits=\"10"], none, None),
            // Context takeover, asked by the client or by us.
            (&["permessage-deflate; server_no_context_takeover"], none,
                Some(("permessage-deflate; server_no_context_takeover", agreed(true, false, 15, 15)))),
            (&["permessage-deflate; client_no_context_takeover"], none,
                Some(("permessage-deflate; client_no_context_takeover", agreed(false, true, 15, 15)))),
            (&["permessage-deflate"], snct,
                Some(("permessage-deflate; server_no_context_takeover", agreed(true, false, 15, 15)))),
            (&["permessage-deflate"], cnct,
                Some(("permessage-deflate; client_no_context_takeover", agreed(false, true, 15, 15)))),
            (&["permessage-deflate; server_no_context_takeover=1"], none, None),
            (&["permessage-deflate; client_no_context_takeover=\"\""], none, None),
            // Duplicates and unknown parameters.
            (&["permessage-deflate; client_max_window_bits; client_max_window_bits=10"], none, None),
            (&["permessage-deflate; server_no_context_takeover; server_no_context_takeover"], none, None),
            (&["permessage-deflate; foo"], none, None),
            (&["permessage-deflate; foo=bar"], none, None),
            (&["permessage-deflate;"], none, None),
            // Everything at once, with loose whitespace and case.
            (&["PerMessage-Deflate ;server_no_context_takeover;CLIENT_NO_CONTEXT_TAKEOVER ; server_max_window_bits = 10;client_max_window_bits=11 "], none,
                Some(("permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=11",
                    agreed(true, true, 10, 11)))),
            // Several offers: the first acceptable one wins.
            (&["permessage-deflate; server_max_window_bits=16, permessage-deflate; client_max_window_bits"], c10,
                Some(("permessage-deflate; client_max_window_bits=10", agreed(false, false, 15, 10)))),
            (&["permessage-deflate, permessage-deflate; server_no_context_takeover"], none, Some((pmd, PLAIN))),
            // Several header values, other extensions skipped.
            (&["x-webkit-deflate-frame", "permessage-deflate; foo, permessage-deflate; client_max_window_bits=9"], none,
                Some(("permessage-deflate; client_max_window_bits=9", agreed(false, false, 15, 9)))),
            // A quoted comma or semicolon does not split.
            (&["foo; x=\"a,b;permessage-deflate\", permessage-deflate"], none, Some((pmd, PLAIN))),
            // An open quote spoils its header value, not the next one.
            (&["permessage-deflate; x=\"open", "permessage-deflate"], none, Some((pmd, PLAIN))),
            // Nothing to accept.
            (&["foo, bar; baz=1"], none, None),
            (&[""], none, None),
            (&[], none, None),
            (&["permessage-deflate-x"], none, None),
            // perMessageDeflateAllow negotiates the same way.
            (&["permessage-deflate; client_max_window_bits"], allow, Some((pmd, PLAIN))),
        ];
        assert!(rows.len() >= 20);
        for (i, (headers, tweak, want)) in rows.iter().enumerate() {
            let mut cfg = DeflateConfig::default();
            tweak(&mut cfg);
            let offers: Vec<&[u8]> = headers.iter().map(|h| h.as_bytes()).collect();
            let got = negotiate(&offers, &cfg);
            let want = want.clone().map(|(s, a)| (s.to_string(), a));
            assert_eq!(got, want, "row {i}: {headers:?}");
        }
    }

    #[test]
    fn window_bit_values() {
        for b in 8..=15u8 {
            assert_eq!(window_bits(b.to_string().as_bytes()), Some(b));
        }
        for bad in ["", "0", "7", "08", "16", "99", "+9", "9 ", "ten"] {
            assert_eq!(window_bits(bad.as_bytes()), None, "{bad:?}");
        }
    }

    // --- RFC 7692 §7.2.3 examples ---

    fn inflate_one(a: &Agreed, payload: &[u8]) -> Result<Vec<u8>, InflateError> {
        let mut out = Vec::new();
        Inflater::new(a).inflate(payload, usize::MAX, &mut out)?;
        Ok(out)
    }

    const HELLO: &[u8] = &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    const HELLO_AGAIN: &[u8] = &[0xf2, 0x00, 0x11, 0x00, 0x00];

    #[test]
    fn rfc_7_2_3_1_hello() {
        let mut out = Vec::new();
        assert!(Deflater::new(&PLAIN, 6).deflate(b"Hello", &mut out));
        assert_eq!(out, HELLO);
        assert_eq!(inflate_one(&PLAIN, HELLO).unwrap(), b"Hello");
    }

    #[test]
    fn rfc_7_2_3_2_shared_window() {
        let mut d = Deflater::new(&PLAIN, 6);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        assert!(d.deflate(b"Hello", &mut a));
        assert!(d.deflate(b"Hello", &mut b));
        assert_eq!((&a[..], &b[..]), (HELLO, HELLO_AGAIN));

        let mut i = Inflater::new(&PLAIN);
        let mut out = Vec::new();
        i.inflate(HELLO, 100, &mut out).unwrap();
        i.inflate(HELLO_AGAIN, 100, &mut out).unwrap();
        assert_eq!(out, b"HelloHello");
    }

    #[test]
    fn rfc_7_2_3_2_without_context_takeover() {
        // Our reset: the second message does not refer to the first.
        let mut d = Deflater::new(&agreed(true, false, 15, 15), 6);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        assert!(d.deflate(b"Hello", &mut a));
        assert!(d.deflate(b"Hello", &mut b));
        assert_eq!((&a[..], &b[..]), (HELLO, HELLO));

        // The client promised to reset: its window is gone, so a reference
        // to the previous message is corrupt data.
        let mut i = Inflater::new(&agreed(false, true, 15, 15));
        let mut out = Vec::new();
        i.inflate(HELLO, 100, &mut out).unwrap();
        assert_eq!(
            i.inflate(HELLO_AGAIN, 100, &mut out),
            Err(InflateError::Corrupt)
        );
        // The next message starts afresh.
        out.clear();
        i.inflate(HELLO, 100, &mut out).unwrap();
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn rfc_7_2_3_3_stored_block() {
        let p = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        assert_eq!(inflate_one(&PLAIN, &p).unwrap(), b"Hello");
    }

    #[test]
    fn rfc_7_2_3_4_bfinal_block() {
        let p = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        let mut i = Inflater::new(&PLAIN);
        let mut out = Vec::new();
        i.inflate(&p, 100, &mut out).unwrap();
        // The stream ended and restarted: the next message still decodes,
        // and so does a final block without the trailing 0x00.
        i.inflate(&p, 100, &mut out).unwrap();
        i.inflate(&p[..7], 100, &mut out).unwrap();
        i.inflate(HELLO, 100, &mut out).unwrap();
        assert_eq!(out, b"HelloHelloHelloHello");
    }

    #[test]
    fn bfinal_messages_refer_back_across_streams() {
        use crate::checks::FinalSender;
        // Every message ends with BFINAL; each new stream starts from the
        // client's last 32 KiB, so a repeat is a few bytes of back-reference,
        // reaching one, two and three messages back.
        let (a, b, c) = (sample(1000, 1), sample(300, 2), sample(40_000, 3));
        let msgs: [&[u8]; 6] = [&a, &a, &b, &a, &c, &c];
        let mut client = FinalSender::new(true);
        let mut i = Inflater::new(&PLAIN);
        for (n, msg) in msgs.iter().enumerate() {
            let wire = client.send(msg, true);
            if n == 1 || n == 3 {
                assert!(wire.len() < 20, "message {n} referred back: {}", wire.len());
            }
            let mut out = Vec::new();
            i.inflate(&wire, msg.len(), &mut out).unwrap();
            assert_eq!(&out, msg, "message {n}");
        }
        // A client that switches between sync flushes and final blocks.
        let mut client = FinalSender::new(true);
        let mut i = Inflater::new(&PLAIN);
        for (n, msg) in msgs.iter().enumerate() {
            let wire = client.send(msg, n % 2 == 0);
            let mut out = Vec::new();
            i.inflate(&wire, msg.len(), &mut out).unwrap();
            assert_eq!(&out, msg, "message {n}");
        }
    }

    #[test]
    fn rfc_7_2_3_5_two_blocks() {
        let p = [
            0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
        ];
        assert_eq!(inflate_one(&PLAIN, &p).unwrap(), b"Hello");
        // Fragments are concatenated by the caller (§7.2.3.1, fragmented).
        let frags: [&[u8]; 2] = [&[0xf2, 0x48, 0xcd], &[0xc9, 0xc9, 0x07, 0x00]];
        assert_eq!(inflate_one(&PLAIN, &frags.concat()).unwrap(), b"Hello");
    }

    #[test]
    fn empty_messages() {
        let mut out = Vec::new();
        assert!(Deflater::new(&PLAIN, 6).deflate(b"", &mut out));
        assert_eq!(out, [0x00]);
        assert_eq!(inflate_one(&PLAIN, &out).unwrap(), b"");
        assert_eq!(inflate_one(&PLAIN, &[]).unwrap(), b"");
        // An empty payload leaves the stream usable.
        let mut i = Inflater::new(&PLAIN);
        let mut got = Vec::new();
        i.inflate(&[], 0, &mut got).unwrap();
        i.inflate(&[0x00], 0, &mut got).unwrap();
        i.inflate(HELLO, 5, &mut got).unwrap();
        assert_eq!(got, b"Hello");
    }

    // --- round trips ---

    /// xorshift: reproducible data with no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    /// Half text with repeats at all distances, half noise.
    fn sample(n: usize, seed: u64) -> Vec<u8> {
        let mut rng = Rng(seed | 1);
        let words = [
            "the ", "quick ", "brown ", "fox ", "jumps ", "over ", "lazy ", "dog ",
        ];
        let mut v = Vec::with_capacity(n + 16);
        while v.len() < n {
            if rng.next().is_multiple_of(4) {
                let k = (rng.next() % 16) as usize;
                let noise = rng.bytes(k);
                v.extend(noise);
            } else {
                v.extend_from_slice(words[(rng.next() % 8) as usize].as_bytes());
            }
        }
        v.truncate(n);
        v
    }

    #[test]
    fn round_trips_every_window_and_size() {
        for bits in 8..=15u8 {
            for takeover in [true, false] {
                let a = agreed(!takeover, !takeover, bits, bits);
                let mut d = Deflater::new(&a, 6);
                let mut i = Inflater::new(&a);
                for (k, size) in [0usize, 1, 1000, 100_000].into_iter().enumerate() {
                    // Twice each, so the second message can use the first.
                    for rep in 0..2 {
                        let msg = sample(size, (bits as u64) << 8 | k as u64);
                        let mut z = Vec::new();
                        assert!(d.deflate(&msg, &mut z));
                        assert!(!z.ends_with(&TAIL) || z.len() < 4);
                        let mut back = Vec::new();
                        i.inflate(&z, size, &mut back).unwrap();
                        assert!(back == msg, "bits {bits} size {size} rep {rep}");
                    }
                }
            }
        }
    }

    #[test]
    fn every_level_round_trips() {
        let msg = sample(20_000, 7);
        for level in 0..=10 {
            let mut z = Vec::new();
            assert!(Deflater::new(&PLAIN, level).deflate(&msg, &mut z));
            assert_eq!(inflate_one(&PLAIN, &z).unwrap(), msg, "level {level}");
        }
    }

    #[test]
    fn incompressible_data_grows_the_output() {
        let msg = Rng(99).bytes(300_000);
        let mut z = vec![0xaa; 3]; // appended after what is there
        assert!(Deflater::new(&PLAIN, 9).deflate(&msg, &mut z));
        assert_eq!(&z[..3], &[0xaa; 3]);
        assert!(z.len() > msg.len());
        let mut back = b"xy".to_vec();
        Inflater::new(&PLAIN)
            .inflate(&z[3..], msg.len(), &mut back)
            .unwrap();
        assert_eq!(&back[..2], b"xy");
        assert!(back[2..] == msg[..]);
    }

    // --- context takeover ---

    #[test]
    fn context_takeover_is_observable() {
        let msg = sample(4000, 3);
        let sizes = |a: &Agreed| {
            let mut d = Deflater::new(a, 6);
            let (mut x, mut y) = (Vec::new(), Vec::new());
            assert!(d.deflate(&msg, &mut x));
            assert!(d.deflate(&msg, &mut y));
            (x, y)
        };
        // Kept: the repeat is a few back-references.
        let (x, y) = sizes(&PLAIN);
        assert!(y.len() * 10 < x.len(), "{} vs {}", y.len(), x.len());
        // Reset: the same bytes twice.
        let (x, y) = sizes(&agreed(true, false, 15, 15));
        assert_eq!(x, y);

        // Inflating the kept-context pair needs the window: with
        // client_no_context_takeover the second message fails.
        let (x, y) = sizes(&PLAIN);
        let mut i = Inflater::new(&agreed(false, true, 15, 15));
        let mut out = Vec::new();
        i.inflate(&x, usize::MAX, &mut out).unwrap();
        assert_eq!(
            i.inflate(&y, usize::MAX, &mut Vec::new()),
            Err(InflateError::Corrupt)
        );
    }

    #[test]
    fn streams_are_created_lazily_and_dropped_without_takeover() {
        let a = agreed(true, true, 15, 15);
        let (mut d, mut i) = (Deflater::new(&a, 6), Inflater::new(&a));
        assert!(i.stream.is_none());
        let mut z = Vec::new();
        assert!(d.deflate(b"Hello", &mut z));
        assert!(d.history.capacity() == 0); // nothing to keep
        i.inflate(&z, 5, &mut Vec::new()).unwrap();
        assert!(i.stream.is_none()); // nothing worth keeping
        let mut i = Inflater::new(&PLAIN);
        i.inflate(&z, 5, &mut Vec::new()).unwrap();
        assert!(i.stream.is_some());
    }

    #[test]
    fn a_client_window_wider_than_agreed_is_tolerated() {
        // The second message refers 1000 bytes back, into the first: more
        // than a 9-bit window. zlib-rs keeps 32 KiB of history whatever the
        // window bits (and within one message the output itself is the
        // history), so it decodes; RFC 7692 does not ask the receiver to
        // police the window, only to decode what fits it.
        let msg = sample(1000, 5);
        let mut d = Deflater::new(&PLAIN, 6);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        assert!(d.deflate(&msg, &mut x));
        assert!(d.deflate(&msg, &mut y));
        assert!(y.len() < 20, "{}", y.len()); // it did refer back
        for bits in [8, 9, 15] {
            let mut i = Inflater::new(&agreed(false, false, 15, bits));
            let mut out = Vec::new();
            i.inflate(&x, usize::MAX, &mut out).unwrap();
            i.inflate(&y, usize::MAX, &mut out).unwrap();
            assert!(out == [&msg[..], &msg[..]].concat(), "bits {bits}");
        }
    }

    // --- limits and errors ---

    #[test]
    fn inflate_is_bounded_by_max() {
        let bomb_len = 10 * 1024 * 1024;
        let mut z = Vec::new();
        assert!(Deflater::new(&PLAIN, 9).deflate(&vec![0u8; bomb_len], &mut z));
        assert!(z.len() < 20_000, "{}", z.len());
        let max = 1024 * 1024;
        let mut out = Vec::new();
        let r = Inflater::new(&PLAIN).inflate(&z, max, &mut out);
        assert_eq!(r, Err(InflateError::TooBig));
        assert!(out.capacity() <= max + 64 * 1024, "{}", out.capacity());
        // Exactly at the limit passes; one byte over fails.
        let mut z = Vec::new();
        assert!(Deflater::new(&PLAIN, 6).deflate(&vec![7u8; 70_000], &mut z));
        let mut out = Vec::new();
        Inflater::new(&PLAIN).inflate(&z, 70_000, &mut out).unwrap();
        assert_eq!(out.len(), 70_000);
        assert_eq!(
            Inflater::new(&PLAIN).inflate(&z, 69_999, &mut Vec::new()),
            Err(InflateError::TooBig)
        );
        assert_eq!(
            Inflater::new(&PLAIN).inflate(HELLO, 4, &mut Vec::new()),
            Err(InflateError::TooBig)
        );
        assert_eq!(InflateError::TooBig.close_code(), 1009);
    }

    #[test]
    fn inflate_in_slices_matches_whole() {
        // Messages over many slices, with context takeover between them.
        let text: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i % 251) as u8 ^ (i >> 13) as u8)
            .collect();
        let mut d = Deflater::new(&PLAIN, 6);
        let mut whole = Inflater::new(&PLAIN);
        let mut sliced = Inflater::new(&PLAIN);
        for msg in [&text[..], &text[1000..2_500_000], b"tiny", b""] {
            let mut z = Vec::new();
            assert!(d.deflate(msg, &mut z));
            let mut a = Vec::new();
            whole.inflate(&z, usize::MAX, &mut a).unwrap();
            let mut b = Vec::new();
            let mut job = Inflating::new(z.len(), &b);
            let mut rest = &z[..];
            let mut slices = 0;
            loop {
                slices += 1;
                match sliced
                    .step(&mut job, rest, usize::MAX, &mut b, 100_000)
                    .unwrap()
                {
                    Step::Done => break,
                    Step::More(used) => rest = &rest[used..],
                }
            }
            assert!(a == msg, "whole: {} bytes for {}", a.len(), msg.len());
            assert!(b == msg, "sliced: {} bytes for {}", b.len(), msg.len());
            if msg.len() > 1_000_000 {
                assert!(slices > 2, "{slices} slices");
            }
        }
        // A bomb fails in a slice, as it does whole.
        let mut z = Vec::new();
        assert!(Deflater::new(&PLAIN, 9).deflate(&vec![0u8; 10 << 20], &mut z));
        let mut out = Vec::new();
        let mut inf = Inflater::new(&PLAIN);
        let mut job = Inflating::new(z.len(), &out);
        let mut rest = &z[..];
        let r = loop {
            match inf.step(&mut job, rest, 1 << 20, &mut out, 64 * 1024) {
                Ok(Step::More(used)) => rest = &rest[used..],
                other => break other,
            }
        };
        assert_eq!(r, Err(InflateError::TooBig));
    }

    #[test]
    fn corrupt_input() {
        for bad in [
            &[0xff, 0xff, 0xff][..],                   // BTYPE 11 is reserved
            &[0x00, 0x05, 0x00, 0x00, 0x00, 0x41][..], // stored LEN/NLEN mismatch
            &[0xf2, 0x00, 0x11, 0x00, 0x00][..],       // refers before the first byte
        ] {
            assert_eq!(
                inflate_one(&PLAIN, bad),
                Err(InflateError::Corrupt),
                "{bad:02x?}"
            );
        }
        // Noise is refused (sooner or later) and never panics.
        let mut rng = Rng(1234);
        let mut refused = 0;
        for _ in 0..200 {
            let noise = rng.bytes(64);
            if inflate_one(&PLAIN, &noise) == Err(InflateError::Corrupt) {
                refused += 1;
            }
        }
        assert!(refused > 150, "{refused}");
        // After an error the inflater starts afresh.
        let mut i = Inflater::new(&PLAIN);
        assert!(i.inflate(&[0xff; 3], 10, &mut Vec::new()).is_err());
        let mut out = Vec::new();
        i.inflate(HELLO, 10, &mut out).unwrap();
        assert_eq!(out, b"Hello");
        assert_eq!(InflateError::Corrupt.close_code(), 1007);
    }

    // --- window sizes on the wire ---

    /// A minimal DEFLATE decoder (RFC 1951), independent of zlib: returns the
    /// output and the largest back-reference distance used.
    fn decode_raw(data: &[u8]) -> (Vec<u8>, usize) {
        struct Bits<'a>(&'a [u8], usize);
        impl Bits<'_> {
            fn get(&mut self, n: u32) -> usize {
                let mut v = 0;
                for k in 0..n {
                    let bit = (self.0[self.1 / 8] >> (self.1 % 8)) & 1;
                    v |= (bit as usize) << k;
                    self.1 += 1;
                }
                v
            }
        }
        struct Huff(Vec<usize>, Vec<usize>); // counts per length, symbols
        fn huff(lengths: &[usize]) -> Huff {
            let mut counts = vec![0; 16];
            for &l in lengths {
                counts[l] += 1;
            }
            counts[0] = 0;
            let mut offs = [0; 16];
            for l in 1..15 {
                offs[l + 1] = offs[l] + counts[l];
            }
            let mut syms = vec![0; lengths.len()];
            for (s, &l) in lengths.iter().enumerate() {
                if l != 0 {
                    syms[offs[l]] = s;
                    offs[l] += 1;
                }
            }
            Huff(counts, syms)
        }
        fn sym(b: &mut Bits, h: &Huff) -> usize {
            let (mut code, mut first, mut index) = (0usize, 0usize, 0usize);
            for len in 1..16 {
                code |= b.get(1);
                let count = h.0[len];
                if code < first + count {
                    return h.1[index + code - first];
                }
                index += count;
                first = (first + count) << 1;
                code <<= 1;
            }
            panic!("bad code");
        }
        const LBASE: [usize; 29] = [
            3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99,
            115, 131, 163, 195, 227, 258,
        ];
        const LEXT: [u32; 29] = [
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
        ];
        const DBASE: [usize; 30] = [
            1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025,
            1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
        ];
        const DEXT: [u32; 30] = [
            0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12,
            12, 13, 13,
        ];
        let mut b = Bits(data, 0);
        let (mut out, mut max_dist) = (Vec::new(), 0);
        while b.1 < data.len() * 8 {
            let last = b.get(1);
            match b.get(2) {
                0 => {
                    b.1 = b.1.div_ceil(8) * 8;
                    let len = b.get(16);
                    assert_eq!(b.get(16), !len & 0xffff);
                    for _ in 0..len {
                        out.push(b.get(8) as u8);
                    }
                }
                t @ (1 | 2) => {
                    let (lit, dist) = if t == 1 {
                        let mut l = vec![8; 288];
                        l[144..256].fill(9);
                        l[256..280].fill(7);
                        (huff(&l), huff(&[5; 30]))
                    } else {
                        let (nlen, ndist, ncode) = (b.get(5) + 257, b.get(5) + 1, b.get(4) + 4);
                        const ORDER: [usize; 19] = [
                            16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
                        ];
                        let mut cl = [0; 19];
                        for &o in &ORDER[..ncode] {
                            cl[o] = b.get(3);
                        }
                        let ch = huff(&cl);
                        let mut l = Vec::new();
                        while l.len() < nlen + ndist {
                            match sym(&mut b, &ch) {
                                s @ 0..=15 => l.push(s),
                                16 => {
                                    let p = *l.last().unwrap();
                                    let n = 3 + b.get(2);
                                    l.extend(std::iter::repeat_n(p, n));
                                }
                                17 => {
                                    let n = 3 + b.get(3);
                                    l.extend(std::iter::repeat_n(0, n));
                                }
                                _ => {
                                    let n = 11 + b.get(7);
                                    l.extend(std::iter::repeat_n(0, n));
                                }
                            }
                        }
                        (huff(&l[..nlen]), huff(&l[nlen..]))
                    };
                    loop {
                        match sym(&mut b, &lit) {
                            s @ 0..=255 => out.push(s as u8),
                            256 => break,
                            s => {
                                let s = s - 257;
                                let len = LBASE[s] + b.get(LEXT[s]);
                                let d = sym(&mut b, &dist);
                                let dist = DBASE[d] + b.get(DEXT[d]);
                                max_dist = max_dist.max(dist);
                                for _ in 0..len {
                                    out.push(out[out.len() - dist]);
                                }
                            }
                        }
                    }
                }
                _ => panic!("reserved block type"),
            }
            if last == 1 {
                break;
            }
        }
        (out, max_dist)
    }

    // --- the thread's shared compressors ---

    /// Connections of different settings (more (level, bits) pairs than a
    /// thread keeps) take turns on this thread's compressors, message by
    /// message, sizes across their window. Each one's messages, as its
    /// client would inflate them (one DEFLATE stream with context takeover,
    /// or a stream per message without), decode with the independent
    /// decoder, within the window, and with our Inflater.
    #[test]
    fn interleaved_connections_round_trip_with_context_takeover() {
        struct Peer {
            d: Deflater,
            bits: u8,
            takeover: bool,
            sent: Vec<u8>,
            wire: Vec<u8>,
            inflater: Inflater,
        }
        let mut peers: Vec<Peer> = [
            (false, 15, 6),
            (false, 15, 1),
            (false, 8, 6),
            (false, 9, 9),
            (false, 12, 6),
            (true, 15, 6),
            (false, 10, 3),
            (true, 9, 6),
        ]
        .iter()
        .map(|&(snct, bits, level)| {
            let a = agreed(snct, false, bits, 15);
            let mirrored = agreed(false, snct, 15, bits);
            Peer {
                d: Deflater::new(&a, level),
                bits,
                takeover: !snct,
                sent: Vec::new(),
                wire: Vec::new(),
                inflater: Inflater::new(&mirrored),
            }
        })
        .collect();
        let mut rng = Rng(77);
        let base = sample(120_000, 9);
        for n in 0..600 {
            // Mostly a different connection than the last, sometimes the same.
            let p = &mut peers[(rng.next() % 8) as usize];
            let window = 1usize << p.bits;
            let len = match n % 5 {
                0 => 1 + (rng.next() % 64) as usize,
                1 => window - 1 + (rng.next() % 3) as usize, // the window's edge
                2 => (rng.next() % 9000) as usize,
                3 => 2 * window + (rng.next() % 100) as usize,
                _ => 300 + (rng.next() % 3000) as usize,
            };
            let at = (rng.next() as usize) % (base.len() - len);
            // Text that repeats across messages (and noise now and then).
            let msg = if n % 7 == 3 {
                rng.bytes(len)
            } else {
                base[at..at + len].to_vec()
            };
            let mut z = Vec::new();
            assert!(p.d.deflate(&msg, &mut z));
            let mut out = Vec::new();
            p.inflater.inflate(&z, msg.len(), &mut out).unwrap();
            assert!(out == msg, "message {n}");
            if p.takeover {
                p.wire.extend_from_slice(&z);
                p.wire.extend_from_slice(&TAIL);
                p.sent.extend_from_slice(&msg);
                // The history is the last 2^w bytes compressed, no more
                // (w = 9 for 8, see `zlib_bits`).
                let kept = 1 << zlib_bits(p.bits);
                let keep = p.sent.len().min(kept);
                assert!(p.d.history == p.sent[p.sent.len() - keep..]);
                assert!(p.d.history.capacity() <= kept);
            } else {
                let (back, dist) = decode_raw(&[&z[..], &TAIL[..]].concat());
                assert!(back == msg && dist <= window, "message {n}");
                assert!(p.d.history.capacity() == 0);
            }
        }
        for p in peers.iter().filter(|p| p.takeover) {
            assert!(p.sent.len() > 4 << p.bits, "{} bits", p.bits);
            let (back, dist) = decode_raw(&p.wire);
            assert!(back == p.sent, "{} bits", p.bits);
            assert!(dist <= 1 << p.bits, "{} bits: distance {dist}", p.bits);
        }
        COMPRESSORS.with(|c| assert!(c.borrow().len() <= KEPT));
    }

    #[test]
    fn takeover_through_another_connection_matches_an_unbroken_stream() {
        // The same messages compressed with the compressor lent to another
        // connection between each (dictionary) and without (unbroken): the
        // output may differ in detail but not in what it is worth.
        let msgs: Vec<Vec<u8>> = (0..40).map(|k| sample(3000 + 97 * k, k as u64)).collect();
        let (mut alone, mut shared, mut other) = (
            Deflater::new(&PLAIN, 6),
            Deflater::new(&PLAIN, 6),
            Deflater::new(&PLAIN, 6),
        );
        let (mut a, mut b) = (0, 0);
        let mut inflater = Inflater::new(&PLAIN);
        for m in &msgs {
            let mut z = Vec::new();
            assert!(alone.deflate(m, &mut z));
            a += z.len();
            assert!(other.deflate(&m[..1000], &mut Vec::new()));
            z.clear();
            assert!(shared.deflate(m, &mut z));
            b += z.len();
            let mut out = Vec::new();
            inflater.inflate(&z, m.len(), &mut out).unwrap();
            assert!(out == *m);
        }
        assert!(b * 100 <= a * 101, "{b} vs {a}");
    }

    #[test]
    fn a_connection_back_from_another_thread_is_primed_again() {
        // The first thread's compressor still holds this connection's
        // window as it was before the message compressed elsewhere.
        let (a, b) = (Rng(40).bytes(5000), Rng(41).bytes(5000));
        let msgs = [a.clone(), b, a];
        let mut d = Deflater::new(&PLAIN, 6);
        let mut inflater = Inflater::new(&PLAIN);
        for (k, m) in msgs.iter().enumerate() {
            let mut z = Vec::new();
            if k == 1 {
                std::thread::scope(|s| {
                    s.spawn(|| assert!(d.deflate(m, &mut z)));
                });
            } else {
                assert!(d.deflate(m, &mut z));
            }
            let mut out = Vec::new();
            inflater.inflate(&z, m.len(), &mut out).unwrap();
            assert!(out == *m, "message {k}");
        }
    }

    #[test]
    fn keep_last_edges() {
        let mut h = Vec::new();
        keep_last(&mut h, b"abc", 4);
        assert_eq!(h, b"abc");
        keep_last(&mut h, b"de", 4);
        assert_eq!(h, b"bcde");
        keep_last(&mut h, b"", 4);
        assert_eq!(h, b"bcde");
        keep_last(&mut h, b"wxyz", 4);
        assert_eq!(h, b"wxyz");
        keep_last(&mut h, b"0123456789", 4);
        assert_eq!(h, b"6789");
        assert_eq!(h.capacity(), 4);
        // Doubling, capped at the window.
        let mut h = Vec::new();
        keep_last(&mut h, &[1; 100], 1000);
        assert_eq!(h.capacity(), 100);
        keep_last(&mut h, &[2; 10], 1000);
        assert_eq!(h.capacity(), 200);
        keep_last(&mut h, &[3; 500], 1000);
        assert_eq!(h.capacity(), 610);
        keep_last(&mut h, &[4; 500], 1000);
        assert_eq!((h.len(), h.capacity()), (1000, 1000));
    }

    #[test]
    fn compressed_distances_fit_the_agreed_window() {
        // Repeats 300 to 480 bytes apart: a 9-bit window could use them,
        // an 8-bit one must not.
        let mut rng = Rng(42);
        let mut msg = Vec::new();
        while msg.len() < 200_000 {
            let n = 300 + (rng.next() % 180) as usize;
            let block = rng.bytes(n);
            msg.extend_from_slice(&block);
            msg.extend_from_slice(&block);
        }
        let mut widest = Vec::new();
        for bits in 8..=15u8 {
            let mut z = Vec::new();
            assert!(Deflater::new(&agreed(false, false, bits, 15), 9).deflate(&msg, &mut z));
            z.extend_from_slice(&TAIL);
            let (back, dist) = decode_raw(&z);
            assert!(back == msg, "bits {bits}");
            assert!(dist <= 1 << bits, "bits {bits}: distance {dist}");
            widest.push(dist);
        }
        // The data did tempt the compressor past 256 bytes when allowed.
        assert!(widest[2] > 256, "{widest:?}");
        // The RFC example decodes the same way.
        let (hello, _) = decode_raw(&[HELLO, &TAIL[..]].concat());
        assert_eq!(hello, b"Hello");
    }
}
