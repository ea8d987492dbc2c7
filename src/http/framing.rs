//! Response heads and chunked output (RFC 9112 §4, §6–7, §9; RFC 9110 §6.6,
//! §8.6, §15). The framing headers — Content-Length, Transfer-Encoding,
//! Connection — are decided here from the request and the status; the
//! user's other headers pass through as given.

use std::cell::RefCell;
use std::io::Write;

use super::body::{keep_alive, list_elements, trim_ows};
use super::head::RequestHead;
use super::response::reason_phrase;

/// The interim response to `Expect: 100-continue` (RFC 9110 §15.2.1).
pub const CONTINUE_100: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// What the response head needs to know about its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestInfo {
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// The method was HEAD: no body goes out (RFC 9110 §9.3.2).
    pub head_method: bool,
    /// `body::keep_alive` of the request.
    pub keep_alive: bool,
}

impl RequestInfo {
    pub fn from_head(head: &RequestHead) -> Self {
        RequestInfo {
            minor: head.minor,
            // Methods are case-sensitive (RFC 9110 §9.1).
            head_method: head.method() == "HEAD",
            keep_alive: keep_alive(head),
        }
    }
}

/// How a response body must go out, decided with its head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    /// Send the body with `write_chunk` and end with `write_last_chunk`.
    pub chunked: bool,
    /// Read the next request after this response; otherwise close once the
    /// response is written (for a close-delimited body, closing ends it).
    pub keep_alive: bool,
    /// Whether a body may follow at all (not for HEAD, 1xx, 204, 205, 304):
    /// when false, whatever the handler writes is dropped.
    pub send_body: bool,
    /// When `send_body` and framed by Content-Length: exactly this many
    /// bytes must follow. Extra bytes must be dropped (they would be read as
    /// the next response); if the handler ends short, the connection must
    /// be closed (the client cannot otherwise tell).
    pub content_length: Option<u64>,
}

/// A response head on its own: its bytes and framing (for tests; the
/// engine writes heads straight into its queue with `write_response_head`).
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// Status line, headers, the empty line.
    pub bytes: Vec<u8>,
    pub chunked: bool,
    pub keep_alive: bool,
    pub send_body: bool,
    pub content_length: Option<u64>,
}

#[cfg(test)]
impl ResponseHead {
    fn new(bytes: Vec<u8>, f: Framing) -> Self {
        ResponseHead {
            bytes,
            chunked: f.chunked,
            keep_alive: f.keep_alive,
            send_body: f.send_body,
            content_length: f.content_length,
        }
    }
}

/// A user's header list: names and values as given (`&str` or `String`).
pub type Pairs<'a, N, V> = &'a [(N, V)];

/// tchar (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// token = 1*tchar (RFC 9110 §5.6.2): what a field name must be.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// A field value we can send (RFC 9110 §5.5): HTAB, SP, VCHAR and obs-text,
/// the characters U+0080–U+00FF being written as single Latin-1 bytes, as
/// Node does. CR, LF, NUL, other controls and characters past U+00FF are
/// refused (Node's `ERR_INVALID_CHAR`); the same rule fits a reason phrase
/// (RFC 9112 §4). The binding can use this to throw at `setHeader` time.
pub fn is_field_value(s: &str) -> bool {
    s.chars()
        .all(|c| matches!(c, '\t' | ' '..='~' | '\u{80}'..='\u{ff}'))
}

/// The reason phrase a head carries (RFC 9112 §4): the user's when it is
/// non-empty and a field value we can send, else the standard one.
pub fn status_reason(status: u16, reason: Option<&str>) -> &str {
    reason
        .filter(|r| !r.is_empty() && is_field_value(r))
        .unwrap_or_else(|| reason_phrase(status))
}

/// Writes text checked by `is_field_value` as Latin-1.
fn put_latin1(out: &mut Vec<u8>, s: &str) {
    if s.is_ascii() {
        out.extend_from_slice(s.as_bytes());
    } else {
        out.extend(s.chars().map(|c| c as u32 as u8));
    }
}

/// A user's Content-Length: 1*DIGIT (RFC 9110 §8.6).
fn parse_length(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Builds a response head.
///
/// - Status line `HTTP/1.1 {status} {reason}` (RFC 9112 §4): the user's
///   reason if non-empty and `is_field_value`, else the standard phrase. A
///   status outside 100–999 (RFC 9110 §15: three digits) is a handler bug
///   and goes out as 500.
/// - User headers whose name is not a token or whose value fails
///   `is_field_value` (CR/LF injection, NUL, …) are dropped, not an error:
///   a head is always produced and nothing the user passes can split it.
///   Values are trimmed of surrounding whitespace (RFC 9110 §5.5).
/// - Content-Length (RFC 9110 §8.6): at most one is written. The user's is
///   kept when valid (several identical ones count as one; invalid or
///   differing ones are dropped), else `body_len`. None for 1xx and 204
///   (MUST NOT); `0` for 205 (§15.3.6); for 304 only the user's (it must be
///   the 200's length, which only the user knows); for HEAD the user's, or
///   `body_len` when non-zero (a HEAD handler that ends with no body is not
///   announcing an empty resource).
/// - User Transfer-Encoding is dropped: the framing is ours. With a body and
///   no length, HTTP/1.1 gets `Transfer-Encoding: chunked`; HTTP/1.0 gets
///   neither and the body ends when the connection closes (RFC 9112 §6.3).
///   Never chunked for HEAD/1xx/204/205/304 (§6.1: MUST NOT for 1xx/204).
/// - `Connection: keep-alive` or `close` (RFC 9112 §9.3, §9.6): keep-alive
///   only when the request allows it, the user did not set `close`, and the
///   body is delimited. Other user connection options are kept after it.
/// - `Date` (RFC 9110 §6.6.1), cached per second, unless the user set one;
///   not on 1xx.
#[cfg(test)]
pub fn response_head<N: AsRef<str>, V: AsRef<str>>(
    req: &RequestInfo,
    status: u16,
    reason: Option<&str>,
    headers: Pairs<'_, N, V>,
    body_len: Option<u64>,
) -> ResponseHead {
    let mut out = Vec::with_capacity(192);
    let f = write_response_head(&mut out, req, status, reason, headers, body_len);
    ResponseHead::new(out, f)
}

/// [`response_head`], appended to `out` (a connection's output queue).
pub fn write_response_head<N: AsRef<str>, V: AsRef<str>>(
    out: &mut Vec<u8>,
    req: &RequestInfo,
    status: u16,
    reason: Option<&str>,
    headers: Pairs<'_, N, V>,
    body_len: Option<u64>,
) -> Framing {
    CACHE.with(|cell| {
        let mut cache = cell.borrow_mut();
        let cache = &mut *cache;
        let now = crate::clock::unix_secs();
        if cache.date_secs != now || cache.date.is_empty() {
            cache.date_secs = now;
            cache.date = http_date(now);
            cache.last.valid = false; // its Date line is stale
        }
        // The common response (a body of known length, no framing header
        // from the user): the head before its Content-Length is the last
        // one's when status, reason, headers and keep-alive are.
        let plain = plain_response(req, status, body_len);
        if let (true, Some(len)) = (plain, body_len) {
            if cache.last.matches(req, status, reason, headers) {
                out.extend_from_slice(&cache.last.prefix);
                return content_length_tail(out, len, cache.last.keep_alive);
            }
        }
        let start = out.len();
        let (f, length_at) = build(
            out,
            req,
            status,
            reason,
            headers,
            body_len,
            Some(&cache.date),
        );
        if let (true, Some(at)) = (plain, length_at) {
            cache
                .last
                .keep(req, status, reason, headers, &out[start..at], f.keep_alive);
        }
        f
    })
}

/// Whether a response takes the common path of [`build`]: a body of known
/// length that is sent (so Content-Length is `body_len` unless the user
/// set one).
fn plain_response(req: &RequestInfo, status: u16, body_len: Option<u64>) -> bool {
    body_len.is_some()
        && !req.head_method
        && (200..=999).contains(&status)
        && !matches!(status, 204 | 205 | 304)
}

/// The `Content-Length` line.
fn put_content_length(out: &mut Vec<u8>, len: u64) {
    out.extend_from_slice(b"Content-Length: ");
    put_decimal(out, len);
    out.extend_from_slice(b"\r\n");
}

/// `Content-Length: {len}` and the empty line; the framing that goes with it.
fn content_length_tail(out: &mut Vec<u8>, len: u64, keep_alive: bool) -> Framing {
    put_content_length(out, len);
    out.extend_from_slice(b"\r\n");
    Framing {
        chunked: false,
        keep_alive,
        send_body: true,
        content_length: Some(len),
    }
}

/// The per-thread state of [`write_response_head`].
struct HeadCache {
    /// The `Date` value, and the second it is for.
    date_secs: u64,
    date: String,
    last: LastHead,
}

/// The last common head built: its inputs and its bytes up to the
/// Content-Length line. Handlers send the same headers again and again.
struct LastHead {
    valid: bool,
    status: u16,
    reason: Option<String>,
    req_keep_alive: bool,
    /// Each header name and value, length first.
    headers: Vec<u8>,
    prefix: Vec<u8>,
    keep_alive: bool,
}

/// Larger heads are not kept.
const LAST_HEAD_MAX: usize = 2048;

impl LastHead {
    fn matches<N: AsRef<str>, V: AsRef<str>>(
        &self,
        req: &RequestInfo,
        status: u16,
        reason: Option<&str>,
        headers: Pairs<'_, N, V>,
    ) -> bool {
        if !self.valid
            || self.status != status
            || self.req_keep_alive != req.keep_alive
            || self.reason.as_deref() != reason
        {
            return false;
        }
        let mut rest = &self.headers[..];
        for (n, v) in headers {
            for item in [n.as_ref().as_bytes(), v.as_ref().as_bytes()] {
                let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                    return false;
                };
                let len = u32::from_le_bytes(*len) as usize;
                if len != item.len() || tail.get(..len) != Some(item) {
                    return false;
                }
                rest = &tail[len..];
            }
        }
        rest.is_empty()
    }

    fn keep<N: AsRef<str>, V: AsRef<str>>(
        &mut self,
        req: &RequestInfo,
        status: u16,
        reason: Option<&str>,
        headers: Pairs<'_, N, V>,
        prefix: &[u8],
        keep_alive: bool,
    ) {
        self.valid = false;
        if prefix.len() > LAST_HEAD_MAX {
            return;
        }
        self.headers.clear();
        for (n, v) in headers {
            for item in [n.as_ref().as_bytes(), v.as_ref().as_bytes()] {
                self.headers
                    .extend_from_slice(&(item.len() as u32).to_le_bytes());
                self.headers.extend_from_slice(item);
            }
        }
        if self.headers.len() > LAST_HEAD_MAX {
            return;
        }
        self.prefix.clear();
        self.prefix.extend_from_slice(prefix);
        self.status = status;
        self.reason = reason.map(str::to_owned);
        self.req_keep_alive = req.keep_alive;
        self.keep_alive = keep_alive;
        self.valid = true;
    }
}

thread_local! {
    static CACHE: RefCell<HeadCache> = const {
        RefCell::new(HeadCache {
            date_secs: 0,
            date: String::new(),
            last: LastHead {
                valid: false,
                status: 0,
                reason: None,
                req_keep_alive: false,
                headers: Vec::new(),
                prefix: Vec::new(),
                keep_alive: false,
            },
        })
    };
}

enum UserLength {
    Unset,
    Valid(u64),
    Invalid,
}

fn build<N: AsRef<str>, V: AsRef<str>>(
    out: &mut Vec<u8>,
    req: &RequestInfo,
    status: u16,
    reason: Option<&str>,
    headers: Pairs<'_, N, V>,
    body_len: Option<u64>,
    date: Option<&str>,
) -> (Framing, Option<usize>) {
    let mut length_at = None;
    let status = if (100..=999).contains(&status) {
        status
    } else {
        500
    };
    out.extend_from_slice(b"HTTP/1.1 ");
    put_decimal(out, status as u64);
    out.push(b' ');
    put_latin1(out, status_reason(status, reason));
    out.extend_from_slice(b"\r\n");

    let informational = status < 200;
    let send_body = !req.head_method && !informational && !matches!(status, 204 | 205 | 304);

    let mut user_length = UserLength::Unset;
    let mut user_close = false;
    let mut has_date = false;
    let mut options: Vec<&str> = Vec::new();
    for (name, value) in headers {
        let (name, value) = (name.as_ref(), trim_ows(value.as_ref()));
        if !is_token(name) || !is_field_value(value) {
            continue;
        }
        if name.eq_ignore_ascii_case("content-length") {
            user_length = match (user_length, parse_length(value)) {
                (UserLength::Unset, Some(n)) => UserLength::Valid(n),
                (UserLength::Valid(m), Some(n)) if m == n => UserLength::Valid(m),
                _ => UserLength::Invalid,
            };
            continue;
        }
        if name.eq_ignore_ascii_case("transfer-encoding") {
            continue;
        }
        if name.eq_ignore_ascii_case("connection") {
            for option in list_elements(value) {
                if option.eq_ignore_ascii_case("close") {
                    user_close = true;
                } else if !option.eq_ignore_ascii_case("keep-alive")
                    && !options.iter().any(|o| o.eq_ignore_ascii_case(option))
                {
                    options.push(option);
                }
            }
            continue;
        }
        has_date |= name.eq_ignore_ascii_case("date");
        put_latin1(out, name);
        out.extend_from_slice(b": ");
        put_latin1(out, value);
        out.extend_from_slice(b"\r\n");
    }
    let user_length = match user_length {
        UserLength::Valid(n) => Some(n),
        _ => None,
    };

    let length = match status {
        _ if informational || status == 204 => None,
        205 => Some(0),
        304 => user_length,
        _ if req.head_method => user_length.or(body_len.filter(|&n| n > 0)),
        _ => user_length.or(body_len),
    };
    let chunked = send_body && length.is_none() && req.minor >= 1;
    let delimited = !send_body || length.is_some() || chunked;
    // A 1xx given as the final answer leaves the client waiting for one:
    // the next response on the connection would be taken for it.
    let keep_alive = req.keep_alive && !user_close && delimited && !informational;

    if let (false, false, Some(date)) = (has_date, informational, date) {
        out.extend_from_slice(b"Date: ");
        out.extend_from_slice(date.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(if keep_alive {
        b"Connection: keep-alive"
    } else {
        b"Connection: close"
    });
    for option in options {
        out.extend_from_slice(b", ");
        put_latin1(out, option);
    }
    out.extend_from_slice(b"\r\n");
    if let Some(n) = length {
        // Where a head of the common path stops being the same (see
        // `write_response_head`): only when the length is `body_len`.
        if user_length.is_none() {
            length_at = Some(out.len());
        }
        put_content_length(out, n);
    } else if chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");

    let framing = Framing {
        chunked,
        keep_alive,
        send_body,
        content_length: if send_body { length } else { None },
    };
    (framing, length_at)
}

/// `n` in decimal, without going through `core::fmt` (on every response).
fn put_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// One chunk (RFC 9112 §7.1): hex size, CRLF, data, CRLF. Empty data writes
/// nothing, since a zero-size chunk would end the body.
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    write_chunk_header(out, data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The size line of a chunk of `len` (> 0) bytes; the data and a CRLF follow.
pub fn write_chunk_header(out: &mut Vec<u8>, len: usize) {
    write!(out, "{len:x}\r\n").expect("write to Vec");
}

/// The last chunk and an empty trailer section (RFC 9112 §7.1).
pub fn write_last_chunk(out: &mut Vec<u8>) {
    out.extend_from_slice(b"0\r\n\r\n");
}

/// IMF-fixdate (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const V11: RequestInfo = RequestInfo {
        minor: 1,
        head_method: false,
        keep_alive: true,
    };

    /// `build` into a fresh head (the tests' view of it).
    fn head_of(
        rq: &RequestInfo,
        status: u16,
        reason: Option<&str>,
        headers: &[(String, String)],
        body_len: Option<u64>,
        date: Option<&str>,
    ) -> ResponseHead {
        let mut out = Vec::new();
        let (f, _) = build(&mut out, rq, status, reason, headers, body_len, date);
        ResponseHead::new(out, f)
    }

    #[test]
    fn the_reason_sent_is_the_users_only_when_non_empty_and_sendable() {
        assert_eq!(status_reason(200, None), "OK");
        assert_eq!(status_reason(200, Some("")), "OK");
        assert_eq!(status_reason(404, Some("a\r\nb")), "Not Found");
        assert_eq!(status_reason(201, Some("\u{100}")), "Created");
        assert_eq!(status_reason(599, None), "Unknown");
        assert_eq!(status_reason(202, Some("Caf\u{e9} ok")), "Caf\u{e9} ok");
        let mut out = Vec::new();
        build(&mut out, &V11, 404, Some("a\nb"), &hdrs(&[]), Some(0), None);
        assert!(out.starts_with(b"HTTP/1.1 404 Not Found\r\n"));
    }

    #[test]
    fn a_head_from_the_last_head_kept_is_the_head_built_afresh() {
        let header_sets = [
            hdrs(&[]),
            hdrs(&[("Content-Type", "text/plain")]),
            hdrs(&[("Content-Type", "text/html")]),
            hdrs(&[("Content-Type", "text/plain"), ("X-A", "1")]),
            hdrs(&[("Content-Type", "text/plain"), ("X-A", "")]),
            hdrs(&[("Content-Typ", "etext/plain")]),
            hdrs(&[("Connection", "close")]),
            hdrs(&[("Content-Length", "3")]),
            hdrs(&[("Date", "yesterday")]),
        ];
        let mut cases = Vec::new();
        for headers in &header_sets {
            for (status, reason) in [
                (200, None),
                (200, Some("Fine")),
                (404, None),
                (204, None),
                (304, None),
            ] {
                for (minor, keep_alive) in [(1, true), (1, false), (0, true), (0, false)] {
                    for head_method in [false, true] {
                        for body_len in [Some(5), Some(0), None] {
                            let rq = RequestInfo {
                                minor,
                                head_method,
                                keep_alive,
                            };
                            cases.push((rq, status, reason, headers, body_len));
                        }
                    }
                }
            }
        }
        // Every case after every other kind of case, and twice in a row.
        let order: Vec<usize> = (0..cases.len())
            .chain((0..cases.len()).rev())
            .flat_map(|i| [i, i])
            .collect();
        for i in order {
            let (rq, status, reason, headers, body_len) = &cases[i];
            let mut out = b"queued".to_vec();
            let f = write_response_head(&mut out, rq, *status, *reason, headers, *body_len);
            let date = CACHE.with(|c| c.borrow().date.clone());
            let mut fresh = b"queued".to_vec();
            let (g, _) = build(
                &mut fresh,
                rq,
                *status,
                *reason,
                headers,
                *body_len,
                Some(&date),
            );
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&fresh),
                "case {i}: {:?}",
                cases[i]
            );
            assert_eq!(f, g, "case {i}");
        }
    }

    fn hdrs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// Parses the head back with httparse: (status, reason, headers).
    fn parsed(r: &ResponseHead) -> (u16, String, Vec<(String, String)>) {
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut slots);
        let n = match resp.parse(&r.bytes) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!(
                "bad head {other:?}: {:?}",
                String::from_utf8_lossy(&r.bytes)
            ),
        };
        assert_eq!(n, r.bytes.len(), "exactly one head");
        assert_eq!(resp.version, Some(1));
        let headers = resp
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    h.value.iter().map(|&b| b as char).collect(),
                )
            })
            .collect();
        (
            resp.code.unwrap(),
            resp.reason.unwrap().to_string(),
            headers,
        )
    }

    fn get<'a>(h: &'a [(String, String)], name: &str) -> Vec<&'a str> {
        h.iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn req(minor: u8, head_method: bool, keep_alive: bool) -> RequestInfo {
        RequestInfo {
            minor,
            head_method,
            keep_alive,
        }
    }

    #[test]
    fn framing_table() {
        // (request, status, user Content-Length, body_len) →
        // (Content-Length header, chunked, keep_alive, send_body)
        type Row = (
            RequestInfo,
            u16,
            Option<&'static str>,
            Option<u64>,
            (Option<&'static str>, bool, bool, bool),
        );
        let rows: &[Row] = &[
            // HTTP/1.1: length when known, else chunked; keep-alive either way.
            (
                req(1, false, true),
                200,
                None,
                Some(5),
                (Some("5"), false, true, true),
            ),
            (
                req(1, false, true),
                200,
                None,
                Some(0),
                (Some("0"), false, true, true),
            ),
            (
                req(1, false, true),
                200,
                None,
                None,
                (None, true, true, true),
            ),
            (
                req(1, false, true),
                200,
                Some("7"),
                None,
                (Some("7"), false, true, true),
            ),
            (
                req(1, false, true),
                200,
                Some("7"),
                Some(5),
                (Some("7"), false, true, true),
            ),
            (
                req(1, false, true),
                200,
                Some("x7"),
                Some(5),
                (Some("5"), false, true, true),
            ),
            (
                req(1, false, true),
                200,
                Some("x7"),
                None,
                (None, true, true, true),
            ),
            (
                req(1, false, false),
                200,
                None,
                Some(5),
                (Some("5"), false, false, true),
            ),
            (
                req(1, false, false),
                200,
                None,
                None,
                (None, true, false, true),
            ),
            // HTTP/1.0: never chunked; no length → close-delimited.
            (
                req(0, false, true),
                200,
                None,
                Some(5),
                (Some("5"), false, true, true),
            ),
            (
                req(0, false, true),
                200,
                None,
                None,
                (None, false, false, true),
            ),
            (
                req(0, false, false),
                200,
                None,
                Some(5),
                (Some("5"), false, false, true),
            ),
            (
                req(0, false, false),
                200,
                None,
                None,
                (None, false, false, true),
            ),
            (
                req(0, false, true),
                200,
                Some("3"),
                None,
                (Some("3"), false, true, true),
            ),
            // HEAD: no body, no chunking; a known length is announced.
            (
                req(1, true, true),
                200,
                None,
                Some(5),
                (Some("5"), false, true, false),
            ),
            (
                req(1, true, true),
                200,
                None,
                Some(0),
                (None, false, true, false),
            ),
            (
                req(1, true, true),
                200,
                None,
                None,
                (None, false, true, false),
            ),
            (
                req(1, true, true),
                200,
                Some("99"),
                Some(0),
                (Some("99"), false, true, false),
            ),
            (
                req(0, true, true),
                200,
                None,
                None,
                (None, false, true, false),
            ),
            // 204 / 1xx: no Content-Length at all, not even the user's.
            (
                req(1, false, true),
                204,
                Some("5"),
                Some(5),
                (None, false, true, false),
            ),
            (
                req(1, false, true),
                204,
                None,
                None,
                (None, false, true, false),
            ),
            (
                req(0, false, true),
                204,
                None,
                None,
                (None, false, true, false),
            ),
            // A 1xx as the final answer: no body, and the connection closes
            // (the client still waits for a final response).
            (
                req(1, false, true),
                103,
                Some("5"),
                Some(0),
                (None, false, false, false),
            ),
            // 205: Content-Length: 0.
            (
                req(1, false, true),
                205,
                Some("5"),
                Some(5),
                (Some("0"), false, true, false),
            ),
            // 304: only the user's length (that of the 200).
            (
                req(1, false, true),
                304,
                None,
                Some(0),
                (None, false, true, false),
            ),
            (
                req(1, false, true),
                304,
                Some("1234"),
                Some(0),
                (Some("1234"), false, true, false),
            ),
            (
                req(0, false, true),
                304,
                None,
                None,
                (None, false, true, false),
            ),
            // Errors frame like any response.
            (
                req(1, false, true),
                404,
                None,
                Some(9),
                (Some("9"), false, true, true),
            ),
            (
                req(1, false, true),
                500,
                None,
                None,
                (None, true, true, true),
            ),
        ];
        for (i, (rq, status, user_len, body_len, want)) in rows.iter().enumerate() {
            let user: Vec<(String, String)> = user_len
                .map(|v| hdrs(&[("Content-Length", v)]))
                .unwrap_or_default();
            let r = head_of(rq, *status, None, &user, *body_len, None);
            let (code, _, h) = parsed(&r);
            assert_eq!(code, *status, "row {i}");
            let cl = get(&h, "content-length");
            assert!(cl.len() <= 1, "row {i}: one Content-Length");
            let te = get(&h, "transfer-encoding");
            assert_eq!(
                (cl.first().copied(), r.chunked, r.keep_alive, r.send_body),
                *want,
                "row {i}"
            );
            assert_eq!(
                te,
                if r.chunked { vec!["chunked"] } else { vec![] },
                "row {i}"
            );
            assert!(cl.is_empty() || te.is_empty(), "row {i}");
            let conn = get(&h, "connection");
            let want_conn = if r.keep_alive { "keep-alive" } else { "close" };
            assert_eq!(conn, vec![want_conn], "row {i}");
            let expect_len = cl
                .first()
                .filter(|_| r.send_body)
                .map(|v| v.parse().unwrap());
            assert_eq!(r.content_length, expect_len, "row {i}");
        }
    }

    #[test]
    fn status_line_and_reason() {
        let line = |status, reason| {
            let r = head_of(&V11, status, reason, &[], Some(0), None);
            let text = String::from_utf8_lossy(&r.bytes).into_owned();
            text.split("\r\n").next().unwrap().to_string()
        };
        assert_eq!(line(200, None), "HTTP/1.1 200 OK");
        assert_eq!(line(404, Some("Nope")), "HTTP/1.1 404 Nope");
        assert_eq!(line(404, Some("")), "HTTP/1.1 404 Not Found");
        assert_eq!(line(404, Some("a\r\nX: y")), "HTTP/1.1 404 Not Found");
        assert_eq!(line(404, Some("a\nb")), "HTTP/1.1 404 Not Found");
        assert_eq!(line(404, Some("a\0")), "HTTP/1.1 404 Not Found");
        assert_eq!(line(599, None), "HTTP/1.1 599 Unknown");
        assert_eq!(line(42, None), "HTTP/1.1 500 Internal Server Error");
        assert_eq!(line(1000, None), "HTTP/1.1 500 Internal Server Error");
        let r = head_of(&V11, 200, Some("Très bien"), &[], Some(0), None);
        assert!(r.bytes.starts_with(b"HTTP/1.1 200 Tr\xe8s bien\r\n"));
        let r = head_of(&V11, 200, Some("€"), &[], Some(0), None);
        assert!(r.bytes.starts_with(b"HTTP/1.1 200 OK\r\n"));
    }

    #[test]
    fn user_content_length_never_duplicated() {
        for (user, want) in [
            (&[("content-length", "5")][..], Some("5")),
            (&[("CONTENT-LENGTH", " 5 ")], Some("5")),
            (
                &[("Content-Length", "5"), ("content-length", "5")],
                Some("5"),
            ),
            // Conflicting or invalid: dropped, body_len used.
            (
                &[("Content-Length", "5"), ("content-length", "6")],
                Some("3"),
            ),
            (
                &[("Content-Length", "5"), ("content-length", "x")],
                Some("3"),
            ),
            (&[("Content-Length", "5, 5")], Some("3")),
            (&[("Content-Length", "-5")], Some("3")),
            (&[("Content-Length", "")], Some("3")),
        ] {
            let r = head_of(&V11, 200, None, &hdrs(user), Some(3), None);
            let (_, _, h) = parsed(&r);
            assert_eq!(
                get(&h, "content-length"),
                want.into_iter().collect::<Vec<_>>(),
                "{user:?}"
            );
            assert!(!r.chunked);
        }
    }

    #[test]
    fn user_headers_pass_and_injection_is_refused() {
        let user = hdrs(&[
            ("Content-Type", "text/plain"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
            ("X-Latin", "café"),
            ("X-Evil", "a\r\nSet-Cookie: pwned=1"),
            ("X-Evil2", "a\nb"),
            ("X-Evil3", "a\rb"),
            ("X-Nul", "a\0b"),
            ("X-Wide", "€"),
            ("Bad Name", "v"),
            ("Bad\r\nName", "v"),
            ("", "v"),
            ("X-Empty", ""),
            ("Transfer-Encoding", "gzip"),
            ("Connection", "keep-alive, Upgrade"),
        ]);
        let r = head_of(&V11, 200, None, &user, None, None);
        let (_, _, h) = parsed(&r);
        assert_eq!(get(&h, "set-cookie"), vec!["a=1", "b=2"]);
        assert_eq!(get(&h, "content-type"), vec!["text/plain"]);
        assert_eq!(get(&h, "x-latin"), vec!["café"]);
        assert_eq!(get(&h, "x-empty"), vec![""]);
        assert_eq!(get(&h, "transfer-encoding"), vec!["chunked"]);
        assert_eq!(get(&h, "connection"), vec!["keep-alive, Upgrade"]);
        for gone in [
            "x-evil", "x-evil2", "x-evil3", "x-nul", "x-wide", "bad name",
        ] {
            assert!(get(&h, gone).is_empty(), "{gone}");
        }
        assert!(!r.bytes.windows(5).any(|w| w == b"pwned"));
        // Exact bytes: order kept, names as given, framing last.
        let r = head_of(
            &V11,
            201,
            None,
            &hdrs(&[("x-A", "1"), ("Date", "mine")]),
            Some(2),
            Some("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(
            r.bytes,
            b"HTTP/1.1 201 Created\r\nx-A: 1\r\nDate: mine\r\n\
              Connection: keep-alive\r\nContent-Length: 2\r\n\r\n"
        );
    }

    #[test]
    fn user_connection_close_wins() {
        for value in ["close", "Close", "keep-alive, close"] {
            let r = head_of(
                &V11,
                200,
                None,
                &hdrs(&[("Connection", value)]),
                Some(1),
                None,
            );
            assert!(!r.keep_alive, "{value}");
            let (_, _, h) = parsed(&r);
            assert_eq!(get(&h, "connection"), vec!["close"]);
        }
        // The user cannot keep alive what the request did not allow.
        let r = head_of(
            &req(0, false, false),
            200,
            None,
            &hdrs(&[("Connection", "keep-alive")]),
            Some(1),
            None,
        );
        assert!(!r.keep_alive);
    }

    #[test]
    fn date_header() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 GMT");
        let r = response_head(&V11, 200, None, &hdrs(&[]), Some(0));
        let (_, _, h) = parsed(&r);
        let date = get(&h, "date");
        assert_eq!(date.len(), 1);
        assert!(date[0].ends_with(" GMT") && date[0].len() == 29, "{date:?}");
        // Not on 1xx; not twice when the user set one.
        let r = response_head(&V11, 103, None, &hdrs(&[]), None);
        assert!(get(&parsed(&r).2, "date").is_empty());
        let r = response_head(&V11, 200, None, &hdrs(&[("date", "x")]), Some(0));
        assert_eq!(get(&parsed(&r).2, "date"), vec!["x"]);
    }

    #[test]
    fn chunks() {
        let mut out = Vec::new();
        write_chunk(&mut out, b"hello");
        write_chunk(&mut out, b"");
        write_chunk(&mut out, &[b'x'; 26]);
        write_last_chunk(&mut out);
        let mut want = b"5\r\nhello\r\n1a\r\n".to_vec();
        want.extend_from_slice(&[b'x'; 26]);
        want.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(out, want);
        // Round trip through the request-side decoder.
        let mut d =
            super::super::body::BodyDecoder::new(super::super::body::BodyKind::Chunked, 100);
        let mut body = Vec::new();
        assert_eq!(d.feed(&out, &mut body), Ok((out.len(), true)));
        assert_eq!(body.len(), 31);
        assert_eq!(CONTINUE_100, b"HTTP/1.1 100 Continue\r\n\r\n");
    }

    #[test]
    fn request_info_from_head() {
        let head = |method: &str, minor, conn: Option<&str>| {
            let fields: Vec<_> = conn.map(|c| ("Connection", c)).into_iter().collect();
            RequestHead::new(method, "/", minor, &fields)
        };
        assert_eq!(
            RequestInfo::from_head(&head("GET", 1, None)),
            req(1, false, true)
        );
        assert_eq!(
            RequestInfo::from_head(&head("HEAD", 1, Some("close"))),
            req(1, true, false)
        );
        assert_eq!(
            RequestInfo::from_head(&head("HEAD", 0, Some("keep-alive"))),
            req(0, true, true)
        );
        assert_eq!(
            RequestInfo::from_head(&head("head", 0, None)),
            req(0, false, false)
        );
    }
}
