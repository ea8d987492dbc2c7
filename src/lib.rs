//! sack: a WebSocket server engine for Node.js.
//!
//! `protocol` and `http` are sans-IO; `engine` runs sockets on tokio;
//! `binding` (feature `node`) is the only part that knows N-API.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod engine;
pub mod http;
pub mod protocol;

#[cfg(feature = "node")]
pub mod binding;
