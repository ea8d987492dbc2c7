//! Response framing.

/// The standard reason phrase for a status, or "Unknown": RFC 9110 §15
/// and the other codes of IANA's HTTP Status Code Registry (WebDAV's,
/// RFC 6585's, 103 Early Hints of RFC 8297, …), as Node's `STATUS_CODES`.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a Teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        _ => "Unknown",
    }
}

/// A complete response that closes the connection: status line,
/// `Content-Length`, `Connection: close`, the extra headers, then `body`.
/// Used for refusals (reject, 400, 426, 431) where nothing follows.
pub fn closing_response(
    status: u16,
    reason: Option<&str>,
    extra_headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let reason = reason
        .filter(|r| !r.is_empty() && !r.contains(['\r', '\n']))
        .unwrap_or_else(|| reason_phrase(status));
    let mut out = Vec::with_capacity(128 + body.len());
    out.extend_from_slice(format!("HTTP/1.1 {status} {reason}\r\n").as_bytes());
    for (name, value) in extra_headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_codes_have_their_phrases() {
        for (code, phrase) in [
            (103, "Early Hints"),
            (207, "Multi-Status"),
            (413, "Content Too Large"),
            (422, "Unprocessable Content"),
            (511, "Network Authentication Required"),
            (299, "Unknown"),
        ] {
            assert_eq!(reason_phrase(code), phrase, "{code}");
        }
    }

    #[test]
    fn closing_response_is_complete() {
        let r = closing_response(426, None, &[("Sec-WebSocket-Version", "13")], b"upgrade");
        let r = String::from_utf8(r).unwrap();
        assert!(r.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(r.contains("Sec-WebSocket-Version: 13\r\n"));
        assert!(r.contains("Content-Length: 7\r\n"));
        assert!(r.contains("Connection: close\r\n"));
        assert!(r.ends_with("\r\n\r\nupgrade"));
        // A reason with a line break would split the head: not used.
        let r = closing_response(403, Some("no\r\nX: y"), &[], b"");
        assert!(String::from_utf8(r)
            .unwrap()
            .starts_with("HTTP/1.1 403 Forbidden\r\n"));
    }
}
