//! HTTP/1.1 for the server: request heads and responses. Sans-IO, like
//! `protocol`: byte slices in, values and bytes out.

pub mod head;
pub mod response;
