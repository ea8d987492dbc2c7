//! sack: a WebSocket server engine for Node.js.
//!
//! `protocol` and `http` are sans-IO; `engine` runs sockets on tokio;
//! `binding` (feature `node`) is the only part that knows N-API.

#![deny(unsafe_op_in_unsafe_fn)]

// Invariants for the fuzz targets in `fuzz/` and seeded tests.
#[cfg(any(test, feature = "fuzzing"))]
pub mod checks;
pub mod clock;
pub mod engine;
pub mod http;
pub mod protocol;

// Left out of `cargo test` builds: napi-derive compiles its registration
// away under cfg(test), and the binding has nothing to unit-test without a
// Node environment (the JS tests cover it).
#[cfg(all(feature = "node", not(test)))]
pub mod binding;
