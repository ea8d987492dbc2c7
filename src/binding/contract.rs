//! The numbers the addon and `lib/` share, declared once, here, and
//! exported to JS as objects (`native.EventKind.Text`, …): `lib/` reads
//! them at load and never writes its own copies.

use napi_derive::napi;

/// What `dispatch(kind, …)` is called for (`dispatch.rs`, `lib/dispatch.js`).
#[napi]
pub enum EventKind {
    Text = 1,
    Binary = 2,
    Close = 3,
    Pong = 4,
    Drain = 5,
    Error = 6,
    Open = 7,
    Accept = 8,
    ServerError = 9,
    ServerClose = 10,
    Adopt = 11,
    /// A group of HTTP requests (`RequestField` gives its layout).
    Requests = 12,
    /// An HTTP response's queue fell back under `maxBackpressure`.
    ResponseDrain = 13,
    /// An HTTP response's connection went away before it ended.
    ResponseClose = 14,
    /// The peer's close frame came; our answer is queued.
    PeerClose = 15,
    /// Queued bytes reached the socket: send callbacks are due.
    Sent = 16,
    /// A failure before HTTP (`lowError`).
    LowError = 17,
    /// The backplane's state changed, or a `cluster` query's answer.
    Backplane = 18,
}

/// What the hot calls (`send`, `accept`, `respond`, …) return instead of
/// throwing; `lib/` turns the negative ones into errors with a `code`.
#[napi]
pub enum CallStatus {
    Ok = 1,
    /// Queued, but over `maxBackpressure`: wait for `drain`.
    Full = 0,
    NotOpen = -1,
    AlreadyDecided = -2,
    ProtocolNotOffered = -3,
    BadCloseCode = -4,
    /// An argument of the wrong type: JS makes the `TypeError`.
    BadType = -5,
    /// The client left before accept/reject.
    Gone = -6,
}

/// `respond(id, code, …)`: `code` is the status (below 1024) plus these
/// flags, so the native side asks no argument for its type.
#[napi]
pub enum ResponsePart {
    /// The bits of the HTTP status.
    Status = 1023,
    /// This part ends the response.
    Last = 1024,
    /// `head` is the header block (a string).
    NewHead = 2048,
    /// The head, with the header block last given again.
    SameHead = 4096,
    /// `reason` is a string.
    Reason = 8192,
    /// `body` is a string.
    TextBody = 16384,
    /// `body` is an ArrayBuffer or a view.
    BinaryBody = 32768,
}

/// A request group's numbers: `Stride` per request, at these offsets.
#[napi]
pub enum RequestField {
    Server = 0,
    Exchange = 1,
    /// `RequestFlag`s.
    Flags = 2,
    /// Index in `requestMethods()`; -1: the method is in the text.
    Method = 3,
    /// `ip * 65536 + port` for IPv4, `-(that) - 1` for IPv4-mapped IPv6;
    /// NaN: a string in `extra`.
    Remote = 4,
    Local = 5,
    /// Lengths and positions in UTF-16 units, so JS cuts the text without
    /// searching it.
    TargetLength = 6,
    /// Where `?` is in the target (-1: none).
    QueryAt = 7,
    HeadersLength = 8,
    Stride = 9,
}

/// The `Flags` field of a request.
#[napi]
pub enum RequestFlag {
    Http11 = 1,
    UrlencodedForm = 2,
    MethodInText = 4,
    /// Body or address strings in `extra`.
    HasExtra = 8,
    /// Plain HTTP on a TLS port, carried on by `disableSSL()`.
    Redirect = 16,
}

/// Methods that travel as a number (their index); others as text.
pub const METHODS: [&str; 7] = ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"];

/// [`METHODS`], for `lib/dispatch.js`.
#[napi]
pub fn request_methods() -> Vec<&'static str> {
    METHODS.to_vec()
}
