//! The engine: the process-wide tokio runtime, listeners, one task per
//! connection, write queues and timers. It knows nothing of N-API: events go
//! out through [`sink::EnvSink`], commands come in as method calls on
//! [`conn::Conn`] and [`server::Server`].

pub mod config;
pub mod conn;
pub mod connection;
pub mod exchange;
pub mod flush;
mod http;
pub mod idle;
mod inflating;
pub mod listener;
mod memory;
pub mod registry;
pub mod runtime;
pub mod server;
mod session;
pub mod sink;
pub(crate) mod sys;
mod transport;
mod unframed;
mod upgrade;
pub(crate) mod writer;

pub use config::ServerConfig;
