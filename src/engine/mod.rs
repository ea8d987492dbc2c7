//! The engine: the process-wide tokio runtime, listeners, one task per
//! connection, write queues and timers. It knows nothing of N-API: events go
//! out through [`sink::EnvSink`], commands come in as method calls on
//! [`conn::Conn`] and [`server::Server`].

pub mod config;
pub mod conn;
pub mod exchange;
pub mod flush;
mod http;
mod inflating;
pub mod lane;
mod memory;
pub mod registry;
pub mod runtime;
pub mod server;
pub mod sink;
mod sys;
mod task;

pub use config::ServerConfig;
