//! Request heads (RFC 9112 §2–5), parsed with `httparse`.

/// Most header lines accepted in one request; more → 431.
pub const MAX_HEADERS: usize = 128;

/// A parsed request line and header section, kept as one string (one
/// allocation per request, however many headers): method, target, then each
/// header name and value, every item followed by `\n`. No parsed item can
/// hold a `\n` (httparse refuses control characters there), so the split is
/// exact; JS gets the target-and-headers part as it stands (see
/// `binding::request_group`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    text: String,
    method_len: u32,
    /// Where the header names and values begin in `text`.
    fields_at: u32,
    count: u32,
    /// Which of the [`KNOWN`] names occur: the server's own lookups skip
    /// the headers entirely for a name that is not there (the usual case).
    known: u8,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
}

/// The header fields the server itself reads: their presence is kept as a
/// bit per field while parsing, so a lookup of an absent one (the usual
/// case) costs a bit test, not a scan or a name comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    ContentLength,
    TransferEncoding,
    Connection,
    Expect,
    ContentType,
    Upgrade,
}

impl Field {
    /// The field name, lower-case.
    pub const fn name(self) -> &'static str {
        KNOWN[self as usize]
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// The names of [`Field`], in its order.
const KNOWN: [&str; 6] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "expect",
    "content-type",
    "upgrade",
];

/// The bit of `name` in [`KNOWN`] (any case), or 0.
fn known_bit(name: &str) -> u8 {
    let Some(c) = name.as_bytes().first() else {
        return 0;
    };
    // A cheap first cut on the first letter before any comparison.
    if !matches!(c | 0x20, b'c' | b't' | b'e' | b'u') {
        return 0;
    }
    KNOWN
        .iter()
        .position(|k| k.len() == name.len() && k.eq_ignore_ascii_case(name))
        .map_or(0, |i| 1 << i)
}

/// One request item as UTF-8: header values are decoded as Latin-1, as
/// Node does; everything else httparse passes is ASCII.
fn push_latin1(text: &mut String, bytes: &[u8]) {
    if bytes.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        text.push_str(unsafe { std::str::from_utf8_unchecked(bytes) });
    } else {
        text.extend(bytes.iter().map(|&b| b as char));
    }
}

impl RequestHead {
    /// A head from its parts (names as sent; values already text).
    pub fn new(method: &str, target: &str, minor: u8, headers: &[(&str, &str)]) -> Self {
        let mut b = Builder::new(method.as_bytes(), target.as_bytes(), minor, 64);
        for (n, v) in headers {
            b.push(n.as_bytes(), v.as_bytes());
        }
        b.finish()
    }

    pub fn method(&self) -> &str {
        &self.text[..self.method_len as usize]
    }

    /// The request-target as sent (path and query).
    pub fn target(&self) -> &str {
        &self.text[self.method_len as usize + 1..self.fields_at as usize - 1]
    }

    /// Number of header lines.
    pub fn header_count(&self) -> usize {
        self.count as usize
    }

    /// Header names (as sent) and values, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields(self.count)
    }

    /// The first `lines` headers.
    fn fields(&self, lines: u32) -> impl Iterator<Item = (&str, &str)> {
        let mut items = self.text[self.fields_at as usize..].split_terminator('\n');
        (0..lines).map(move |_| {
            let name = items.next().unwrap_or("");
            (name, items.next().unwrap_or(""))
        })
    }

    /// The target and the header names and values, each followed by `\n`
    /// except the last value (with no headers: the target and its `\n`):
    /// the form `binding::request_group` hands to JS.
    pub fn target_and_fields(&self) -> &str {
        let all = &self.text[self.method_len as usize + 1..];
        if self.count == 0 {
            all
        } else {
            &all[..all.len() - 1]
        }
    }

    /// Every value of a [`Field`], in order.
    pub fn field(&self, f: Field) -> impl Iterator<Item = &str> {
        self.named(self.has_field(f), f.name())
    }

    /// Whether a [`Field`] is present.
    pub fn has_field(&self, f: Field) -> bool {
        self.known & f.bit() != 0
    }

    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.values(name).next()
    }

    /// Every value of a header (case-insensitive name), in order.
    pub fn values<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + 'n
    where
        'a: 'n,
    {
        self.named(true, name)
    }

    /// The values of header `name` (any case); none without a scan when
    /// `present` is false.
    fn named<'a, 'n>(&'a self, present: bool, name: &'n str) -> impl Iterator<Item = &'a str> + 'n
    where
        'a: 'n,
    {
        let lines = if present { self.count } else { 0 };
        self.fields(lines)
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Names and values as byte slices, for `handshake::UpgradeHeaders::scan`.
    pub fn header_pairs(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers().map(|(n, v)| (n, v.as_bytes()))
    }

    /// The path without the query string.
    pub fn path(&self) -> &str {
        self.target().split('?').next().unwrap_or("")
    }

    /// The query string without `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.target().split_once('?').map(|(_, q)| q)
    }
}

impl RequestHead {
    /// Gives the head's string back for a later head on this thread
    /// (`binding::request_group` does, once JS has the text): a request then
    /// costs no allocation for it.
    pub fn recycle(self) {
        let mut text = self.text;
        if text.capacity() > POOL_KEEP {
            return;
        }
        text.clear();
        let _ = POOL.try_with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < POOL_MAX {
                pool.push(text);
            }
        });
    }
}

/// Heads' strings given back on this thread ([`RequestHead::recycle`]).
const POOL_MAX: usize = 64;
/// Larger strings are not kept.
const POOL_KEEP: usize = 4096;

thread_local! {
    static POOL: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// An empty string with room for `cap` bytes, recycled when one is there.
fn pooled(cap: usize) -> String {
    match POOL.try_with(|pool| pool.borrow_mut().pop()) {
        Ok(Some(mut text)) => {
            text.reserve(cap);
            text
        }
        _ => String::with_capacity(cap),
    }
}

/// Lays a head out in its one string.
struct Builder {
    head: RequestHead,
    /// `Host` lines seen (saturating), and whether every value was valid.
    hosts: u8,
    hosts_valid: bool,
}

impl Builder {
    fn new(method: &[u8], target: &[u8], minor: u8, room: usize) -> Self {
        let mut text = pooled(method.len() + target.len() + 2 + room);
        push_latin1(&mut text, method);
        let method_len = text.len() as u32;
        text.push('\n');
        push_latin1(&mut text, target);
        text.push('\n');
        let fields_at = text.len() as u32;
        Builder {
            head: RequestHead {
                text,
                method_len,
                fields_at,
                count: 0,
                known: 0,
                minor,
            },
            hosts: 0,
            hosts_valid: true,
        }
    }

    fn push(&mut self, name: &[u8], value: &[u8]) {
        let text = &mut self.head.text;
        let at = text.len();
        push_latin1(text, name);
        self.head.known |= known_bit(&text[at..]);
        if name.len() == 4 && name.eq_ignore_ascii_case(b"host") {
            self.hosts = self.hosts.saturating_add(1);
            self.hosts_valid &= is_host_value(value);
        }
        text.push('\n');
        push_latin1(text, value);
        text.push('\n');
        self.head.count += 1;
    }

    fn finish(self) -> RequestHead {
        self.head
    }

    /// RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request
    /// without `Host`, and to any request with more than one `Host` line or
    /// an invalid one.
    fn host_ok(&self) -> bool {
        self.hosts_valid && self.hosts <= 1 && (self.hosts == 1 || self.head.minor == 0)
    }
}

/// Whether `v` can be a `Host` value, `uri-host [":" port]` (RFC 9110
/// §7.2, RFC 3986 §3.2.2): the characters of a reg-name, an IP literal in
/// brackets, or an IPv4 address, with the port's colon. Empty is allowed
/// (a target without an authority). No space, `/`, `?`, `#` or `@`.
fn is_host_value(v: &[u8]) -> bool {
    v.iter().all(|&b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'['
                    | b']'
            )
    })
}

/// Why a head was refused, with its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("malformed HTTP request")]
    Malformed,
    #[error("request header fields too large")]
    TooLarge,
    #[error("missing, repeated or invalid Host header")]
    Host,
}

impl HeadError {
    pub fn status(self) -> u16 {
        match self {
            HeadError::Malformed | HeadError::Host => 400,
            HeadError::TooLarge => 431,
        }
    }
}

/// Whether a line of `head` ends in LF alone. RFC 9112 §2.2 lets a server
/// take that as a line end, and httparse does; Node's parser refuses it, and
/// a proxy that splits lines only at CRLF would see other headers, or
/// other requests, in the same bytes (§11.2). So sack refuses it (400).
fn has_bare_lf(head: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', head).any(|i| i == 0 || head[i - 1] != b'\r')
}

/// Parses the head at the start of `buf`. `Ok(None)`: incomplete (and still
/// under `max_size`). `Ok(Some((head, n)))`: the head took `n` bytes.
pub fn parse_request_head(
    buf: &[u8],
    max_size: usize,
) -> Result<Option<(RequestHead, usize)>, HeadError> {
    // Uninitialized slots: filling 128 empty headers (4 KiB) for every
    // request would cost more than parsing a typical head.
    let mut slots = [const { std::mem::MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(n)) => {
            if n > max_size {
                return Err(HeadError::TooLarge);
            }
            if has_bare_lf(&buf[..n]) {
                return Err(HeadError::Malformed);
            }
            let method = req.method.unwrap_or_default().as_bytes();
            let target = req.path.unwrap_or_default().as_bytes();
            // The head's own bytes bound its text (request line and CRLFs
            // included), unless Latin-1 values widen.
            let mut b = Builder::new(method, target, req.version.unwrap_or(1), n);
            for h in req.headers.iter() {
                b.push(h.name.as_bytes(), h.value);
            }
            if !b.host_ok() {
                return Err(HeadError::Host);
            }
            Ok(Some((b.finish(), n)))
        }
        Ok(httparse::Status::Partial) => {
            if buf.len() > max_size {
                Err(HeadError::TooLarge)
            } else {
                Ok(None)
            }
        }
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooLarge),
        Err(_) => Err(HeadError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &[u8] = b"GET /chat?room=1&x HTTP/1.1\r\nHost: a\r\nX-Name: caf\xe9\r\n\r\nrest";

    #[test]
    fn fields_are_found_in_any_case_and_only_when_present() {
        let h = RequestHead::new(
            "POST",
            "/",
            1,
            &[
                ("CONTENT-length", "3"),
                ("Host", "a"),
                ("connection", "a"),
                ("Connection", "b"),
            ],
        );
        assert!(h.has_field(Field::ContentLength));
        assert_eq!(h.field(Field::ContentLength).collect::<Vec<_>>(), ["3"]);
        assert_eq!(h.field(Field::Connection).collect::<Vec<_>>(), ["a", "b"]);
        for absent in [
            Field::TransferEncoding,
            Field::Expect,
            Field::ContentType,
            Field::Upgrade,
        ] {
            assert!(!h.has_field(absent), "{absent:?}");
            assert_eq!(h.field(absent).count(), 0, "{absent:?}");
            assert_eq!(h.header(absent.name()), None);
        }
        assert_eq!(h.header("host"), Some("a"));
    }

    #[test]
    fn a_recycled_string_carries_nothing_into_the_next_head() {
        let (long, _) = parse_request_head(REQ, 1 << 14).unwrap().unwrap();
        let had = long.text.capacity();
        long.recycle();
        let (h, _) = parse_request_head(b"PUT /x HTTP/1.0\r\n\r\n", 1 << 14)
            .unwrap()
            .unwrap();
        assert!(h.text.capacity() >= had, "the recycled string is used");
        assert_eq!(h.method(), "PUT");
        assert_eq!(h.target(), "/x");
        assert_eq!(h.header_count(), 0);
        assert_eq!(h.header("host"), None);
        assert_eq!(h.target_and_fields(), "/x\n");
    }

    #[test]
    fn complete_at_end_and_partial_before_at_every_split() {
        let head_len = REQ.len() - 4;
        for cut in 0..head_len {
            assert_eq!(
                parse_request_head(&REQ[..cut], 1 << 14),
                Ok(None),
                "cut {cut}"
            );
        }
        let (h, n) = parse_request_head(REQ, 1 << 14).unwrap().unwrap();
        assert_eq!(n, head_len);
        assert_eq!(h.method(), "GET");
        assert_eq!(h.target(), "/chat?room=1&x");
        assert_eq!(h.path(), "/chat");
        assert_eq!(h.query(), Some("room=1&x"));
        assert_eq!(h.minor, 1);
        assert_eq!(h.header("x-name"), Some("café"));
    }

    #[test]
    fn one_string_layout() {
        let h = RequestHead::new("PUT", "/a?b", 0, &[("X", ""), ("Y", "2"), ("x", "3")]);
        assert_eq!(h.method(), "PUT");
        assert_eq!(h.target(), "/a?b");
        assert_eq!(h.header_count(), 3);
        let all: Vec<_> = h.headers().collect();
        assert_eq!(all, [("X", ""), ("Y", "2"), ("x", "3")]);
        assert_eq!(h.values("X").collect::<Vec<_>>(), ["", "3"]);
        assert!(h.header("content-length").is_none() && h.header("Upgrade").is_none());
        let k = RequestHead::new("GET", "/", 1, &[("UPGRADE", "ws"), ("Content-Length", "0")]);
        assert_eq!(k.header("upgrade"), Some("ws"));
        assert_eq!(k.header("content-LENGTH"), Some("0"));
        assert!(k.header("connection").is_none() && k.header("expect").is_none());
        assert_eq!(h.target_and_fields(), "/a?b\nX\n\nY\n2\nx\n3");
        let bare = RequestHead::new("GET", "/", 1, &[]);
        assert_eq!(bare.headers().count(), 0);
        assert_eq!(bare.header("host"), None);
        assert_eq!(bare.target_and_fields(), "/\n");
    }

    #[test]
    fn limits_and_garbage() {
        assert_eq!(parse_request_head(REQ, 20), Err(HeadError::TooLarge));
        assert_eq!(
            parse_request_head(&[b'a'; 100], 50),
            Err(HeadError::Malformed).or(Err(HeadError::TooLarge))
        );
        assert_eq!(
            parse_request_head(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 1000),
            Err(HeadError::Malformed)
        );
        assert_eq!(
            parse_request_head(b"\x16\x03\x01\x02\x00\x01\x00", 1000),
            Err(HeadError::Malformed)
        );
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..(MAX_HEADERS + 1) {
            many.extend_from_slice(format!("h{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse_request_head(&many, 1 << 20), Err(HeadError::TooLarge));
    }

    #[test]
    fn a_line_ending_in_lf_alone_is_refused() {
        for bad in [
            &b"GET / HTTP/1.1\nHost: h\n\n"[..],
            b"GET / HTTP/1.1\r\nHost: h\r\n\n",
            // A lone LF inside the head: a CRLF-only reader would take
            // `Content-Length` as part of `X-Note` and frame the body apart.
            b"GET /a HTTP/1.1\r\nHost: h\r\nX-Note: x\nContent-Length: 3\r\n\r\nabc",
        ] {
            assert_eq!(
                parse_request_head(bad, 1 << 14),
                Err(HeadError::Malformed),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // An LF after the head is the body's business.
        let ok = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n\n";
        assert_eq!(
            parse_request_head(ok, 1 << 14).unwrap().unwrap().1,
            ok.len() - 1
        );
    }

    #[test]
    fn host_is_required_once_in_http_1_1_and_valid() {
        let parse = |text: &str| parse_request_head(text.as_bytes(), 1 << 14).map(|h| h.is_some());
        for ok in [
            "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nhOsT: example.com:8080\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            // Whitespace around the value is not part of it (RFC 9112 §5).
            "GET / HTTP/1.1\r\nHost: \ta \t\r\n\r\n",
            // An empty value: a target without an authority (RFC 9112 §3.2).
            "GET / HTTP/1.1\r\nHost:\r\n\r\n",
            // HTTP/1.0 clients may leave it out.
            "GET / HTTP/1.0\r\n\r\n",
        ] {
            assert_eq!(parse(ok), Ok(true), "{ok:?}");
        }
        for bad in [
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nX-Host: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.0\r\nHost: a\r\nHOST: b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: user@a\r\n\r\n",
        ] {
            assert_eq!(parse(bad), Err(HeadError::Host), "{bad:?}");
        }
        assert_eq!(HeadError::Host.status(), 400);
        // Incomplete is still incomplete, whatever the lines so far hold.
        assert_eq!(parse("GET / HTTP/1.1\r\nX: 1\r\n"), Ok(false));
    }
}
