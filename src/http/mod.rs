//! HTTP/1.1 for the server: request heads and bodies, responses. Sans-IO,
//! like `protocol`: byte slices in, values and bytes out.

pub mod body;
pub mod form;
pub mod framing;
pub mod head;
pub mod response;
pub mod route;
