//! The engine: the process-wide tokio runtime, listeners, one task per
//! connection, write queues and timers. It knows nothing of N-API: events go
//! out through [`events::EventQueue`], commands come in as method calls on
//! [`conn::Conn`] and [`server::Server`].

pub mod backplane;
pub mod config;
pub mod conn;
pub mod connection;
pub mod events;
pub mod exchange;
pub mod handoff;
mod http;
pub mod idle;
mod inflating;
pub mod listener;
mod memory;
pub mod runtime;
pub mod server;
mod session;
pub(crate) mod sys;
pub mod tls;
pub mod topics;
mod transport;
mod unframed;
mod upgrade;
pub mod wakeups;
pub(crate) mod writer;

pub use config::ServerConfig;
