//! Request bodies (RFC 9112 §6–7): which framing a request uses, whether the
//! connection persists, and an incremental decoder for the body. Sans-IO:
//! bytes in, body bytes out; what follows the body is the caller's to keep.

use super::framing::is_token;
use super::head::{Field, RequestHead};

/// Longest chunk-size line (size, extensions, CRLF) accepted. Clients send a
/// few bytes; the bound stops a line that never ends.
pub const MAX_CHUNK_LINE: usize = 4096;
/// Most bytes of chunk extensions in one body. They are read and dropped
/// (RFC 9112 §7.1.1), so without a cap a peer could stream them forever
/// inside a small body (the llhttp CVE-2024-22019 pattern).
pub const MAX_CHUNK_EXTENSIONS: usize = 16 * 1024;
/// Largest trailer section accepted (RFC 9112 §7.1.2), the default
/// `maxHeaderSize`.
pub const MAX_TRAILER_SIZE: usize = 16 * 1024;

/// How the request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// Neither Transfer-Encoding nor Content-Length: no body (§6.3, item 7).
    None,
    /// `Content-Length: n` (`Length(0)` is kept distinct from `None`).
    Length(u64),
    /// Transfer-Encoding with `chunked` as the final coding (§7.1).
    Chunked,
}

/// Why a body was refused, with its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Framing that cannot be trusted: 400, then close.
    #[error("malformed HTTP request body")]
    Malformed,
    /// More than the configured maximum: 413, then close.
    #[error("request body too large")]
    TooLarge,
    /// A transfer coding other than chunked: 501 (RFC 9112 §6.1).
    #[error("unsupported transfer coding")]
    Unsupported,
}

impl BodyError {
    pub fn status(&self) -> u16 {
        match self {
            BodyError::Malformed => 400,
            BodyError::TooLarge => 413,
            BodyError::Unsupported => 501,
        }
    }
}

/// OWS = *( SP / HTAB ) (RFC 9110 §5.6.3).
pub(crate) fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// The elements of a `#list` field value, trimmed, empty ones skipped
/// (RFC 9110 §5.6.1).
pub(crate) fn list_elements(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(trim_ows).filter(|e| !e.is_empty())
}

/// The body framing of a request (RFC 9112 §6.3).
///
/// - Transfer-Encoding wins over Content-Length (item 3); `keep_alive` then
///   returns false, because the server MUST close after such a request.
/// - Transfer-Encoding whose final coding is not `chunked` → 400 (item 4:
///   the length cannot be determined). An empty coding list, `chunked`
///   applied twice (§6.1) or a coding that is not a token → 400.
/// - `chunked` preceded by other codings (`gzip, chunked`) → 501: the
///   framing is sound but we decode no other coding (§6.1, "SHOULD respond
///   with 501").
/// - HTTP/1.0 with Transfer-Encoding → 400: §6.1 says to treat the framing
///   as faulty even when Content-Length is present; rejecting is the only
///   reading that cannot be smuggled through.
/// - Content-Length must be 1*DIGIT (RFC 9110 §8.6); several lines or a list
///   of identical values are one length, differing or invalid ones → 400
///   (item 5). A valid number beyond u64 → 413.
pub fn body_kind(head: &RequestHead) -> Result<BodyKind, BodyError> {
    if head.has_field(Field::TransferEncoding) {
        if head.minor == 0 {
            return Err(BodyError::Malformed);
        }
        let codings: Vec<&str> = head
            .field(Field::TransferEncoding)
            .flat_map(list_elements)
            .collect();
        // `chunked` takes no parameters: `chunked;x=1` is not it.
        match codings.last() {
            Some(last) if last.eq_ignore_ascii_case("chunked") => {}
            _ => return Err(BodyError::Malformed),
        }
        for coding in &codings[..codings.len() - 1] {
            let name = trim_ows(coding.split(';').next().unwrap_or(""));
            if !is_token(name) || name.eq_ignore_ascii_case("chunked") {
                return Err(BodyError::Malformed);
            }
        }
        if codings.len() > 1 {
            return Err(BodyError::Unsupported);
        }
        return Ok(BodyKind::Chunked);
    }
    let mut length: Option<u64> = None;
    for value in head.field(Field::ContentLength) {
        for element in value.split(',').map(trim_ows) {
            if element.is_empty() || !element.bytes().all(|b| b.is_ascii_digit()) {
                return Err(BodyError::Malformed);
            }
            let n: u64 = element.parse().map_err(|_| BodyError::TooLarge)?;
            match length {
                Some(m) if m != n => return Err(BodyError::Malformed),
                _ => length = Some(n),
            }
        }
    }
    Ok(length.map_or(BodyKind::None, BodyKind::Length))
}

/// Whether the connection persists after this request (RFC 9112 §9.3):
/// `close` among the `Connection` options → no; else HTTP/1.1 → yes; else
/// HTTP/1.0 → only with the `keep-alive` option (§C.2.2). Tokens are
/// case-insensitive, several `Connection` lines are one list.
///
/// Also no when the framing is suspect: Transfer-Encoding together with
/// Content-Length (§6.3, item 3: "MUST close the connection after
/// responding") or Transfer-Encoding in HTTP/1.0 (§6.1). And no after
/// CONNECT: a 2xx answer turns the connection into a tunnel (§6.3, item
/// 2), which sack does not make, so the bytes after it are not HTTP.
pub fn keep_alive(head: &RequestHead) -> bool {
    if head.method() == "CONNECT" {
        return false;
    }
    let (mut close, mut keep) = (false, false);
    for token in head.field(Field::Connection).flat_map(list_elements) {
        if token.eq_ignore_ascii_case("close") {
            close = true;
        } else if token.eq_ignore_ascii_case("keep-alive") {
            keep = true;
        }
    }
    let te = head.has_field(Field::TransferEncoding);
    if close || (te && (head.minor == 0 || head.has_field(Field::ContentLength))) {
        return false;
    }
    head.minor >= 1 || keep
}

/// `Expect: 100-continue` (RFC 9110 §10.1.1), case-insensitive, in an
/// HTTP/1.1 request; "A server that receives a 100-continue expectation in
/// an HTTP/1.0 request MUST ignore that expectation." The caller sends
/// `framing::CONTINUE_100` only if it still wants the body and has not
/// received any of it yet (it MAY skip the 100 otherwise).
pub fn expects_continue(head: &RequestHead) -> bool {
    head.minor >= 1
        && head
            .field(Field::Expect)
            .flat_map(list_elements)
            .any(|e| e.eq_ignore_ascii_case("100-continue"))
}

/// An `Expect` the server cannot meet: any but `100-continue`, in an
/// HTTP/1.1 request (RFC 9110 §10.1.1: a server MAY answer 417; Node does).
pub fn unmet_expectation(head: &RequestHead) -> bool {
    head.minor >= 1 && head.has_field(Field::Expect) && !expects_continue(head)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length {
        remaining: u64,
    },
    /// Reading `chunk-size [ chunk-ext ] CRLF` into `line`.
    SizeLine,
    Data {
        remaining: u64,
    },
    /// The CRLF after chunk-data.
    DataCr,
    DataLf,
    /// Reading trailer field lines into `line` until the empty one.
    Trailer,
    Done,
    Failed(BodyError),
}

/// Incremental body decoder. Feed it whatever bytes follow the head; it
/// appends body bytes to `out` and takes input up to the end of the body,
/// never beyond: until `done`, `consumed == input.len()` (partial lines are
/// held inside); once done, `input[consumed..]` is the next pipelined
/// request. Errors are sticky; the connection should answer with
/// `status()` and close.
#[derive(Debug)]
pub struct BodyDecoder {
    state: State,
    max: u64,
    received: u64,
    line: Vec<u8>,
    extensions: usize,
    trailers: usize,
}

impl BodyDecoder {
    /// `max`: most body bytes accepted (`maxBodySize`). A declared
    /// Content-Length over it fails at once: `feed(&[], …)` reports
    /// `TooLarge` before any body byte arrives (before sending a 100).
    pub fn new(kind: BodyKind, max: usize) -> Self {
        let max = max as u64;
        let state = match kind {
            BodyKind::None | BodyKind::Length(0) => State::Done,
            BodyKind::Length(n) if n > max => State::Failed(BodyError::TooLarge),
            BodyKind::Length(n) => State::Length { remaining: n },
            BodyKind::Chunked => State::SizeLine,
        };
        BodyDecoder {
            state,
            max,
            received: 0,
            line: Vec::new(),
            extensions: 0,
            trailers: 0,
        }
    }

    /// Whether the whole body (with trailers) has been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Body bytes produced so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Decodes from `input`; returns the bytes consumed and whether the
    /// body is complete.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(usize, bool), BodyError> {
        let result = self.run(input, out);
        if let Err(e) = result {
            self.state = State::Failed(e);
            self.line = Vec::new();
        }
        result
    }

    fn run(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(usize, bool), BodyError> {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            match self.state {
                State::Done => return Ok((pos, true)),
                State::Failed(e) => return Err(e),
                State::Length { remaining } | State::Data { remaining } => {
                    let n = remaining.min(rest.len() as u64) as usize;
                    out.extend_from_slice(&rest[..n]);
                    pos += n;
                    self.received += n as u64;
                    let remaining = remaining - n as u64;
                    self.state = match (self.state, remaining) {
                        (State::Length { .. }, 0) => State::Done,
                        (State::Length { .. }, _) => State::Length { remaining },
                        (_, 0) => State::DataCr,
                        _ => State::Data { remaining },
                    };
                    if remaining > 0 {
                        return Ok((pos, false));
                    }
                }
                // chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF;
                // CRLF is required (§7.1): bare LF/CR are §2.2 leniencies
                // for the head only, and a smuggling vector here.
                State::DataCr | State::DataLf => {
                    let Some(&b) = rest.first() else {
                        return Ok((pos, false));
                    };
                    let (want, next) = match self.state {
                        State::DataCr => (b'\r', State::DataLf),
                        _ => (b'\n', State::SizeLine),
                    };
                    if b != want {
                        return Err(BodyError::Malformed);
                    }
                    pos += 1;
                    self.state = next;
                }
                State::SizeLine | State::Trailer => {
                    let (limit, used) = match self.state {
                        State::SizeLine => (MAX_CHUNK_LINE, 0),
                        _ => (MAX_TRAILER_SIZE, self.trailers),
                    };
                    let Some(i) = rest.iter().position(|&b| b == b'\n') else {
                        if used + self.line.len() + rest.len() + 1 > limit {
                            return Err(BodyError::Malformed);
                        }
                        self.line.extend_from_slice(rest);
                        return Ok((input.len(), false));
                    };
                    if used + self.line.len() + i + 1 > limit {
                        return Err(BodyError::Malformed);
                    }
                    self.line.extend_from_slice(&rest[..i]);
                    pos += i + 1;
                    let line = strip_cr(&self.line)?;
                    if self.state == State::SizeLine {
                        let (size, ext_len) = parse_size_line(line)?;
                        self.extensions += ext_len;
                        if self.extensions > MAX_CHUNK_EXTENSIONS {
                            return Err(BodyError::Malformed);
                        }
                        self.state = if size == 0 {
                            // last-chunk; then trailer-section CRLF (§7.1).
                            State::Trailer
                        } else if size > self.max - self.received {
                            return Err(BodyError::TooLarge);
                        } else {
                            State::Data { remaining: size }
                        };
                    } else {
                        self.trailers += self.line.len() + 1;
                        if line.is_empty() {
                            self.state = State::Done;
                        } else {
                            check_field_line(line)?;
                        }
                    }
                    self.line.clear();
                }
            }
        }
    }
}

/// A line read up to LF must end in CR (§7.1 uses CRLF throughout).
fn strip_cr(line: &[u8]) -> Result<&[u8], BodyError> {
    match line.split_last() {
        Some((b'\r', line)) => Ok(line),
        _ => Err(BodyError::Malformed),
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn token_len(s: &[u8]) -> usize {
    s.iter().take_while(|&&b| is_tchar(b)).count()
}

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while matches!(s.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    i
}

/// `chunk-size [ chunk-ext ]` (CR already stripped): the size, and how many
/// bytes of extensions followed it. chunk-size = 1*HEXDIG; a size beyond
/// u64 is a valid number that no limit admits → 413.
fn parse_size_line(line: &[u8]) -> Result<(u64, usize), BodyError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(BodyError::Malformed);
    }
    let mut size: u64 = 0;
    for &b in &line[..digits] {
        let d = (b as char).to_digit(16).unwrap_or(0) as u64;
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(d))
            .ok_or(BodyError::TooLarge)?;
    }
    let ext = &line[digits..];
    check_extensions(ext)?;
    Ok((size, ext.len()))
}

/// chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ),
/// chunk-ext-val = token / quoted-string (RFC 9112 §7.1.1). Checked, then
/// ignored. Whitespace is allowed only where BWS is: `5 \r\n` is refused.
fn check_extensions(ext: &[u8]) -> Result<(), BodyError> {
    let bad = Err(BodyError::Malformed);
    let mut i = 0;
    while i < ext.len() {
        i = skip_ws(ext, i);
        if ext.get(i) != Some(&b';') {
            return bad;
        }
        i = skip_ws(ext, i + 1);
        let n = token_len(&ext[i..]);
        if n == 0 {
            return bad;
        }
        i += n;
        let j = skip_ws(ext, i);
        if ext.get(j) == Some(&b'=') {
            i = skip_ws(ext, j + 1);
            if ext.get(i) == Some(&b'"') {
                i = quoted_string_end(ext, i)?;
            } else {
                let n = token_len(&ext[i..]);
                if n == 0 {
                    return bad;
                }
                i += n;
            }
        }
    }
    Ok(())
}

/// quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE (RFC 9110
/// §5.6.4), starting at `s[start] == '"'`; returns the index after it.
fn quoted_string_end(s: &[u8], start: usize) -> Result<usize, BodyError> {
    let mut i = start + 1;
    while let Some(&b) = s.get(i) {
        match b {
            b'"' => return Ok(i + 1),
            b'\\' => match s.get(i + 1) {
                Some(&c) if c == b'\t' || c >= b' ' && c != 0x7f => i += 2,
                _ => return Err(BodyError::Malformed),
            },
            b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff => i += 1,
            _ => return Err(BodyError::Malformed),
        }
    }
    Err(BodyError::Malformed)
}

/// field-line = field-name ":" OWS field-value OWS (RFC 9112 §5), for a
/// trailer we read and drop (§7.1.2). obs-fold (a line starting with
/// whitespace) is refused (§5.2), as are CTLs in the value (RFC 9110 §5.5).
fn check_field_line(line: &[u8]) -> Result<(), BodyError> {
    let name_len = token_len(line);
    if name_len == 0 || line.get(name_len) != Some(&b':') {
        return Err(BodyError::Malformed);
    }
    let value_ok = line[name_len + 1..]
        .iter()
        .all(|&b| b == b'\t' || (b >= b' ' && b != 0x7f));
    if value_ok {
        Ok(())
    } else {
        Err(BodyError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(minor: u8, headers: &[(&str, &str)]) -> RequestHead {
        RequestHead::new("POST", "/", minor, headers)
    }

    type Headers<'a> = &'a [(&'a str, &'a str)];

    fn kind(headers: Headers) -> Result<BodyKind, BodyError> {
        body_kind(&head(1, headers))
    }

    #[test]
    fn body_kind_table() {
        use BodyError::*;
        use BodyKind::*;
        let cases: &[(Headers, Result<BodyKind, BodyError>)] = &[
            (&[], Ok(None)),
            (&[("Host", "a")], Ok(None)),
            (&[("Content-Length", "0")], Ok(Length(0))),
            (&[("content-length", " 42 ")], Ok(Length(42))),
            (&[("Content-Length", "007")], Ok(Length(7))),
            (
                &[("Content-Length", "5"), ("CONTENT-LENGTH", "5")],
                Ok(Length(5)),
            ),
            (&[("Content-Length", "5, 5")], Ok(Length(5))),
            (
                &[("Content-Length", "5"), ("Content-Length", "6")],
                Err(Malformed),
            ),
            (&[("Content-Length", "5, 6")], Err(Malformed)),
            (&[("Content-Length", "")], Err(Malformed)),
            (&[("Content-Length", "+5")], Err(Malformed)),
            (&[("Content-Length", "-1")], Err(Malformed)),
            (&[("Content-Length", "0x10")], Err(Malformed)),
            (&[("Content-Length", "1 2")], Err(Malformed)),
            (&[("Content-Length", "5,")], Err(Malformed)),
            (
                &[("Content-Length", "18446744073709551615")],
                Ok(Length(u64::MAX)),
            ),
            (&[("Content-Length", "18446744073709551616")], Err(TooLarge)),
            (&[("Transfer-Encoding", "chunked")], Ok(Chunked)),
            (&[("transfer-encoding", "CHUNKED")], Ok(Chunked)),
            (&[("Transfer-Encoding", " chunked , ")], Ok(Chunked)),
            // TE wins over CL, even an invalid CL (§6.3 item 3).
            (
                &[("Content-Length", "5"), ("Transfer-Encoding", "chunked")],
                Ok(Chunked),
            ),
            (
                &[("Transfer-Encoding", "chunked"), ("Content-Length", "x")],
                Ok(Chunked),
            ),
            (&[("Transfer-Encoding", "gzip, chunked")], Err(Unsupported)),
            (
                &[
                    ("Transfer-Encoding", "gzip"),
                    ("Transfer-Encoding", "chunked"),
                ],
                Err(Unsupported),
            ),
            (&[("Transfer-Encoding", "gzip")], Err(Malformed)),
            (&[("Transfer-Encoding", "chunked, gzip")], Err(Malformed)),
            (&[("Transfer-Encoding", "identity")], Err(Malformed)),
            (&[("Transfer-Encoding", "chunked, chunked")], Err(Malformed)),
            (&[("Transfer-Encoding", "chunked;q=1")], Err(Malformed)),
            (&[("Transfer-Encoding", "")], Err(Malformed)),
            (&[("Transfer-Encoding", ",")], Err(Malformed)),
            (&[("Transfer-Encoding", "g@zip, chunked")], Err(Malformed)),
            (&[("Transfer-Encoding", "chunked\u{b}")], Err(Malformed)),
        ];
        for (headers, want) in cases {
            assert_eq!(kind(headers), *want, "{headers:?}");
        }
        // HTTP/1.0 with Transfer-Encoding: faulty framing (§6.1).
        let h = head(0, &[("Transfer-Encoding", "chunked")]);
        assert_eq!(body_kind(&h), Err(Malformed));
        let h = head(
            0,
            &[("Transfer-Encoding", "chunked"), ("Content-Length", "3")],
        );
        assert_eq!(body_kind(&h), Err(Malformed));
        assert_eq!(
            body_kind(&head(0, &[("Content-Length", "3")])),
            Ok(Length(3))
        );
        assert_eq!(Malformed.status(), 400);
        assert_eq!(TooLarge.status(), 413);
        assert_eq!(Unsupported.status(), 501);
    }

    #[test]
    fn keep_alive_table() {
        let cases: &[(u8, Headers, bool)] = &[
            (1, &[], true),
            (1, &[("Connection", "close")], false),
            (1, &[("connection", "CLOSE")], false),
            (1, &[("Connection", "keep-alive")], true),
            (1, &[("Connection", "Upgrade, close")], false),
            (
                1,
                &[("Connection", "keep-alive"), ("Connection", "close")],
                false,
            ),
            (1, &[("Connection", "closed")], true),
            (1, &[("Connection", "Keep-Alive, TE")], true),
            (0, &[], false),
            (0, &[("Connection", "keep-alive")], true),
            (0, &[("Connection", "Keep-Alive")], true),
            (0, &[("Connection", "foo,  keep-alive ")], true),
            (0, &[("Connection", "keep-alive, close")], false),
            (0, &[("Keep-Alive", "timeout=5")], false),
            // Suspect framing: close after responding.
            (
                1,
                &[("Transfer-Encoding", "chunked"), ("Content-Length", "3")],
                false,
            ),
            (1, &[("Transfer-Encoding", "chunked")], true),
            (
                0,
                &[
                    ("Connection", "keep-alive"),
                    ("Transfer-Encoding", "chunked"),
                ],
                false,
            ),
        ];
        for (minor, headers, want) in cases {
            assert_eq!(
                keep_alive(&head(*minor, headers)),
                *want,
                "1.{minor} {headers:?}"
            );
        }
        // CONNECT: a 2xx answer would make the connection a tunnel.
        let connect = |m: &str| keep_alive(&RequestHead::new(m, "a:443", 1, &[("Host", "a:443")]));
        assert!(!connect("CONNECT"));
        // Methods are case-sensitive: `connect` is some other method.
        assert!(connect("connect"));
    }

    #[test]
    fn expects_continue_table() {
        let cases: &[(u8, Headers, bool)] = &[
            (1, &[], false),
            (1, &[("Expect", "100-continue")], true),
            (1, &[("expect", "100-Continue")], true),
            (1, &[("Expect", " 100-continue ")], true),
            (1, &[("Expect", "foo, 100-continue")], true),
            (1, &[("Expect", "100-continued")], false),
            (1, &[("Expect", "200-ok")], false),
            (0, &[("Expect", "100-continue")], false),
        ];
        for (minor, headers, want) in cases {
            let got = expects_continue(&head(*minor, headers));
            assert_eq!(got, *want, "1.{minor} {headers:?}");
        }
        let unmet = |minor, headers: Headers| unmet_expectation(&head(minor, headers));
        assert!(unmet(1, &[("Expect", "200-ok")]));
        assert!(unmet(1, &[("Expect", "")]));
        assert!(!unmet(1, &[]));
        assert!(!unmet(1, &[("Expect", "100-continue")]));
        assert!(!unmet(1, &[("Expect", "foo, 100-continue")]));
        // HTTP/1.0 expectations are ignored, as Node ignores them.
        assert!(!unmet(0, &[("Expect", "200-ok")]));
    }

    /// Feeds `wire` in two pieces cut at `cut` (the decoder keeps no input
    /// of its own beyond what it consumed); returns body, consumed, done.
    fn split(
        kind: BodyKind,
        max: usize,
        wire: &[u8],
        cut: usize,
    ) -> Result<(Vec<u8>, usize, bool), BodyError> {
        let mut d = BodyDecoder::new(kind, max);
        let mut out = Vec::new();
        let (n1, done) = d.feed(&wire[..cut], &mut out)?;
        if done {
            return Ok((out, n1, true));
        }
        assert_eq!(n1, cut, "not done yet: everything consumed");
        let (n2, done) = d.feed(&wire[cut..], &mut out)?;
        assert_eq!(d.is_done(), done);
        assert_eq!(d.received(), out.len() as u64);
        Ok((out, n1 + n2, done))
    }

    fn byte_by_byte(
        kind: BodyKind,
        max: usize,
        wire: &[u8],
    ) -> Result<(Vec<u8>, usize, bool), BodyError> {
        let mut d = BodyDecoder::new(kind, max);
        let mut out = Vec::new();
        let mut used = 0;
        for &b in wire {
            let (n, done) = d.feed(&[b], &mut out)?;
            used += n;
            if done {
                return Ok((out, used, true));
            }
        }
        Ok((out, used, false))
    }

    /// `wire` = a body in `kind`'s framing followed by the next request:
    /// at every split, the body comes out whole and the rest stays.
    fn every_split(kind: BodyKind, wire: &[u8], body: &[u8], body_wire_len: usize) {
        for cut in 0..=wire.len() {
            let got = split(kind, 1 << 20, wire, cut).unwrap();
            assert_eq!(got, (body.to_vec(), body_wire_len, true), "cut {cut}");
        }
        let got = byte_by_byte(kind, 1 << 20, wire).unwrap();
        assert_eq!(got, (body.to_vec(), body_wire_len, true));
        // Stopping short of the end at every point: not done, all consumed.
        for cut in 0..body_wire_len {
            let mut d = BodyDecoder::new(kind, 1 << 20);
            let mut out = Vec::new();
            assert_eq!(
                d.feed(&wire[..cut], &mut out),
                Ok((cut, false)),
                "cut {cut}"
            );
        }
    }

    const NEXT: &[u8] = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n";

    #[test]
    fn content_length_at_every_split() {
        let mut wire = b"hello world".to_vec();
        wire.extend_from_slice(NEXT);
        every_split(BodyKind::Length(11), &wire, b"hello world", 11);
    }

    #[test]
    fn no_body_consumes_nothing() {
        for kind in [BodyKind::None, BodyKind::Length(0)] {
            let mut d = BodyDecoder::new(kind, 0);
            let mut out = Vec::new();
            assert!(d.is_done());
            assert_eq!(d.feed(NEXT, &mut out), Ok((0, true)));
            assert!(out.is_empty());
        }
    }

    #[test]
    fn chunked_at_every_split() {
        let body_wire: &[u8] = b"5;name=value;q=\"a \\\"b\\\" ;c\"\r\nhello\r\n\
            1 ; x\r\n \r\n\
            00A\r\n0123456789\r\n\
            0;last\r\nExpires: never\r\nX-Empty:\r\n\r\n";
        let mut wire = body_wire.to_vec();
        wire.extend_from_slice(NEXT);
        every_split(
            BodyKind::Chunked,
            &wire,
            b"hello 0123456789",
            body_wire.len(),
        );
        // The shortest: a last-chunk and no trailers.
        let mut wire = b"0\r\n\r\n".to_vec();
        wire.extend_from_slice(NEXT);
        every_split(BodyKind::Chunked, &wire, b"", 5);
        // Uppercase and lowercase hex, leading zeros.
        let mut wire = b"0000b\r\nhello world\r\n1A\r\n".to_vec();
        wire.extend_from_slice(&[b'z'; 26]);
        wire.extend_from_slice(b"\r\n0\r\n\r\n");
        let mut body = b"hello world".to_vec();
        body.extend_from_slice(&[b'z'; 26]);
        let len = wire.len();
        wire.extend_from_slice(NEXT);
        every_split(BodyKind::Chunked, &wire, &body, len);
    }

    fn chunked(wire: &[u8], max: usize) -> Result<(Vec<u8>, usize, bool), BodyError> {
        let first = split(BodyKind::Chunked, max, wire, wire.len());
        for cut in 0..wire.len() {
            assert_eq!(split(BodyKind::Chunked, max, wire, cut), first, "cut {cut}");
        }
        assert_eq!(byte_by_byte(BodyKind::Chunked, max, wire), first);
        first
    }

    #[test]
    fn malformed_chunked_is_400() {
        let bad: &[&[u8]] = &[
            b"\r\n",
            b"x\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\r\nhello\r\n0\r\n\r\n",
            b"5\rhello\r\n0\r\n\r\n\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"5\r\nhello world\r\n0\r\n\r\n",
            b"5;\r\nhello\r\n0\r\n\r\n",
            b"5;=x\r\nhello\r\n0\r\n\r\n",
            b"5;a=\r\nhello\r\n0\r\n\r\n",
            b"5;a b\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"open\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"x\"y\r\nhello\r\n0\r\n\r\n",
            b"5;a=b\0\r\nhello\r\n0\r\n\r\n",
            b"0\r\n\n",
            b"0\r\nBad Trailer\r\n\r\n",
            b"0\r\nX: a\r\n folded\r\n\r\n",
            b"0\r\n: v\r\n\r\n",
            b"0\r\nX: a\rb\r\n\r\n",
            b"0\r\nX: a\n\r\n",
        ];
        for wire in bad {
            assert_eq!(
                chunked(wire, 1 << 20),
                Err(BodyError::Malformed),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
        // Well-formed near misses.
        for wire in [
            &b"5 ;a\r\nhello\r\n0\r\n\r\n"[..],
            b"5;a = b ;c= \"d\"\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\r\n0\r\nX:\t v \t\r\n\r\n",
        ] {
            assert_eq!(
                chunked(wire, 1 << 20),
                Ok((b"hello".to_vec(), wire.len(), true))
            );
        }
    }

    #[test]
    fn errors_are_sticky() {
        let mut d = BodyDecoder::new(BodyKind::Chunked, 100);
        let mut out = Vec::new();
        assert_eq!(d.feed(b"zz\r\n", &mut out), Err(BodyError::Malformed));
        assert_eq!(d.feed(b"0\r\n\r\n", &mut out), Err(BodyError::Malformed));
        assert!(!d.is_done());
    }

    #[test]
    fn line_limits() {
        // A size line that never ends.
        let mut wire = b"5;a=".to_vec();
        wire.extend(std::iter::repeat_n(b'x', MAX_CHUNK_LINE));
        assert_eq!(chunked(&wire, 1 << 20), Err(BodyError::Malformed));
        // Exactly at the limit (with CRLF) is fine.
        let mut wire = b"5;a=".to_vec();
        wire.extend(std::iter::repeat_n(b'x', MAX_CHUNK_LINE - 6));
        wire.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
        assert_eq!(
            chunked(&wire, 1 << 20),
            Ok((b"hello".to_vec(), wire.len(), true))
        );
        // Extensions add up across chunks.
        let ext = format!("1;{}\r\nx\r\n", "e".repeat(1000));
        let wire = ext.repeat(MAX_CHUNK_EXTENSIONS / 1000 + 1);
        let mut d = BodyDecoder::new(BodyKind::Chunked, 1 << 20);
        assert_eq!(
            d.feed(wire.as_bytes(), &mut Vec::new()),
            Err(BodyError::Malformed)
        );
        // Trailers are bounded as a section.
        let line = format!("X-T: {}\r\n", "v".repeat(1000));
        let wire = format!(
            "0\r\n{}\r\n",
            line.repeat(MAX_TRAILER_SIZE / line.len() + 1)
        );
        let mut d = BodyDecoder::new(BodyKind::Chunked, 1 << 20);
        assert_eq!(
            d.feed(wire.as_bytes(), &mut Vec::new()),
            Err(BodyError::Malformed)
        );
        let wire = format!(
            "0\r\n{}\r\n",
            line.repeat(MAX_TRAILER_SIZE / line.len() - 1)
        );
        let mut d = BodyDecoder::new(BodyKind::Chunked, 1 << 20);
        assert_eq!(
            d.feed(wire.as_bytes(), &mut Vec::new()),
            Ok((wire.len(), true))
        );
    }

    #[test]
    fn oversized_bodies_are_413() {
        // Declared too large: refused before any byte (no 100 Continue).
        let mut d = BodyDecoder::new(BodyKind::Length(11), 10);
        assert_eq!(d.feed(&[], &mut Vec::new()), Err(BodyError::TooLarge));
        // At the limit: fine.
        assert_eq!(
            split(BodyKind::Length(10), 10, b"0123456789", 4),
            Ok((b"0123456789".to_vec(), 10, true))
        );
        // Chunked: refused at the size line that goes over, before its data.
        let wire = b"6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n";
        assert_eq!(
            chunked(wire, 11),
            Ok((b"hello world".to_vec(), wire.len(), true))
        );
        assert_eq!(chunked(wire, 10), Err(BodyError::TooLarge));
        let mut d = BodyDecoder::new(BodyKind::Chunked, 10);
        let mut out = Vec::new();
        assert_eq!(
            d.feed(b"6\r\nhello \r\n5\r\n", &mut out),
            Err(BodyError::TooLarge)
        );
        assert_eq!(out, b"hello ");
        // A chunk size beyond u64.
        assert_eq!(
            chunked(b"10000000000000000\r\n", usize::MAX),
            Err(BodyError::TooLarge)
        );
        assert_eq!(
            chunked(b"ffffffffffffffff\r\n", 1 << 20),
            Err(BodyError::TooLarge)
        );
    }
}
