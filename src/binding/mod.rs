//! The N-API layer: the only code that knows JS. It converts arguments to
//! engine calls (with `TypeError`/`RangeError` for bad ones) and engine
//! events to calls of the per-environment JS dispatcher.

mod connection;
mod contract;
mod delivery;
mod dispatch;
mod env;
mod facts;
mod id_map;
mod js;
mod keepalive;
mod lifecycle;
mod pacing;
mod raw_calls;
mod request_group;
mod response;
mod server;
mod topics;
mod uv;

pub use connection::NativeConnection;
pub use server::{NativeServer, ServerOptions};
