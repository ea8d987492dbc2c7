//! Request heads (RFC 9112 §2–5), parsed with `httparse`.

/// Most header lines accepted in one request; more → 431.
pub const MAX_HEADERS: usize = 128;

/// A parsed request line and header section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// The request-target as sent (path and query).
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// Names as sent; values decoded as Latin-1, as Node does.
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Names and values as byte slices, for `handshake::UpgradeHeaders::scan`.
    pub fn header_pairs(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes()))
    }

    /// The path without the query string.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The query string without `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }
}

/// Why a head was refused, with its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("malformed HTTP request")]
    Malformed,
    #[error("request header fields too large")]
    TooLarge,
}

impl HeadError {
    pub fn status(self) -> u16 {
        match self {
            HeadError::Malformed => 400,
            HeadError::TooLarge => 431,
        }
    }
}

fn latin1(bytes: &[u8]) -> String {
    if bytes.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        unsafe { String::from_utf8_unchecked(bytes.to_vec()) }
    } else {
        bytes.iter().map(|&b| b as char).collect()
    }
}

/// Parses the head at the start of `buf`. `Ok(None)`: incomplete (and still
/// under `max_size`). `Ok(Some((head, n)))`: the head took `n` bytes.
pub fn parse_request_head(
    buf: &[u8],
    max_size: usize,
) -> Result<Option<(RequestHead, usize)>, HeadError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => {
            if n > max_size {
                return Err(HeadError::TooLarge);
            }
            let head = RequestHead {
                method: req.method.unwrap_or_default().to_string(),
                target: req.path.unwrap_or_default().to_string(),
                minor: req.version.unwrap_or(1),
                headers: req
                    .headers
                    .iter()
                    .map(|h| (h.name.to_string(), latin1(h.value)))
                    .collect(),
            };
            Ok(Some((head, n)))
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
        assert_eq!(h.method, "GET");
        assert_eq!(h.path(), "/chat");
        assert_eq!(h.query(), Some("room=1&x"));
        assert_eq!(h.minor, 1);
        assert_eq!(h.header("x-name"), Some("café"));
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
}
