//! HTML form bodies: only detection. The JS side decodes an
//! `application/x-www-form-urlencoded` body and merges it into `req.CGI`.

use super::body::trim_ows;
use super::head::{Field, RequestHead};

const URLENCODED: &str = "application/x-www-form-urlencoded";

/// The media type of a Content-Type value, parameters dropped:
/// `media-type = type "/" subtype parameters`, parameters after OWS ";"
/// (RFC 9110 §8.3.1).
fn media_type(value: &str) -> &str {
    trim_ows(value.split(';').next().unwrap_or(""))
}

/// Whether the request body is an urlencoded form (RFC 9110 §8.3; the type
/// is registered by the WHATWG URL standard). Type and subtype are
/// case-insensitive (§8.3.1). Content-Type is a singleton field: when it is
/// sent more than once, every line must name the form type.
pub fn is_urlencoded(head: &RequestHead) -> bool {
    let mut values = head.field(Field::ContentType).map(media_type).peekable();
    values.peek().is_some() && values.all(|t| t.eq_ignore_ascii_case(URLENCODED))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(types: &[&str]) -> RequestHead {
        let headers: Vec<_> = types.iter().map(|t| ("Content-Type", *t)).collect();
        RequestHead::new("POST", "/", 1, &headers)
    }

    #[test]
    fn detection_table() {
        let cases: &[(&[&str], bool)] = &[
            (&[], false),
            (&["application/x-www-form-urlencoded"], true),
            (&["Application/X-WWW-Form-URLEncoded"], true),
            (&["application/x-www-form-urlencoded; charset=UTF-8"], true),
            (&["application/x-www-form-urlencoded ;charset=utf-8"], true),
            (&[" application/x-www-form-urlencoded\t"], true),
            (
                &[
                    "application/x-www-form-urlencoded",
                    "application/x-www-form-urlencoded;a=b",
                ],
                true,
            ),
            (&["application/x-www-form-urlencoded", "text/plain"], false),
            (&["multipart/form-data; boundary=x"], false),
            (&["application/json"], false),
            (&["text/plain; x=application/x-www-form-urlencoded"], false),
            (&["application/x-www-form-urlencoded-extra"], false),
            (&["application/x-www-form"], false),
            (&[""], false),
        ];
        for (types, want) in cases {
            assert_eq!(is_urlencoded(&head(types)), *want, "{types:?}");
        }
        // Any case of the header name.
        let h = RequestHead::new(
            "POST",
            "/",
            1,
            &[("content-TYPE", "application/x-www-form-urlencoded")],
        );
        assert!(is_urlencoded(&h));
    }
}
