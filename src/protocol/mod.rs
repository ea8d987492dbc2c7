//! Sans-IO WebSocket protocol (RFC 6455): no sockets, no N-API; pure
//! functions and small state machines over byte slices.

pub mod close;
pub mod decoder;
pub mod deflate;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod utf8;
