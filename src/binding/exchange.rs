//! `NativeExchange`: the JS handle of one HTTP response (`res`).

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;

use super::connection::status;
use crate::engine::exchange::{Exchange, ExchangeError};

fn done(r: std::result::Result<(), ExchangeError>) -> i32 {
    match r {
        Ok(()) => status::OK,
        Err(ExchangeError::HeadSent) => status::ALREADY_DECIDED,
        Err(_) => status::NOT_OPEN,
    }
}

/// The response half of an HTTP request, owned by the engine. index.js
/// wraps it in the user-facing `res` object.
#[napi]
pub struct NativeExchange {
    ex: Arc<Exchange>,
}

impl NativeExchange {
    pub(crate) fn new(ex: Arc<Exchange>) -> Self {
        NativeExchange { ex }
    }
}

#[napi]
impl NativeExchange {
    /// Sends the status line and headers (`headers` flat: name, value, …).
    /// `body_len` < 0: unknown (chunked on HTTP/1.1).
    #[napi]
    pub fn write_head(
        &self,
        status: u32,
        reason: Option<String>,
        headers: Vec<String>,
        body_len: f64,
    ) -> i32 {
        let pairs: Vec<(String, String)> = headers
            .chunks_exact(2)
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect();
        let len = (body_len >= 0.0).then_some(body_len as u64);
        done(
            self.ex
                .write_head(status.min(999) as u16, reason.as_deref(), &pairs, len),
        )
    }

    /// Sends part of the body.
    #[napi]
    pub fn write(&self, data: Uint8ArraySlice) -> i32 {
        done(self.ex.write(&data))
    }

    /// Sends the last part of the body and ends the response.
    #[napi]
    pub fn end(&self, data: Option<Uint8ArraySlice>) -> i32 {
        done(self.ex.end(data.as_deref().unwrap_or(&[])))
    }

    /// Drops the connection.
    #[napi]
    pub fn abort(&self) {
        self.ex.abort()
    }

    /// Whether the request was HEAD (the body is not sent).
    #[napi(getter)]
    pub fn head_request(&self) -> bool {
        self.ex.is_head_request()
    }
}
