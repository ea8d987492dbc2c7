//! Topics from JS: `ws.subscribe` … `ws.publish` and `server.publish`.
//! Each publish crosses into the engine once, whatever the subscriber
//! count; the result is `[sent, dropped]` (see `topics::Published`).

use napi::bindgen_prelude::*;
use napi_derive::napi;

use super::connection::{status, NativeConnection};
use super::server::NativeServer;
use crate::engine::backplane::Query;
use crate::engine::topics::Published;
use crate::protocol::frame::OpCode;

fn counts(p: Published) -> Vec<u32> {
    vec![p.sent, p.dropped]
}

#[napi]
impl NativeConnection {
    /// Subscribes: 1 when newly added, 0 when it already was, `NOT_OPEN`
    /// (negative) when the connection is closing or gone.
    #[napi]
    pub fn subscribe(&self, topic: String) -> i32 {
        match self.conn.topics.subscribe(&self.conn, &topic) {
            Some(added) => added as i32,
            None => status::NOT_OPEN,
        }
    }

    #[napi]
    pub fn unsubscribe(&self, topic: String) -> bool {
        self.conn.topics.unsubscribe(&self.conn, &topic)
    }

    #[napi]
    pub fn is_subscribed(&self, topic: String) -> bool {
        self.conn.is_subscribed(&topic)
    }

    #[napi]
    pub fn subscriptions(&self) -> Vec<String> {
        self.conn.subscriptions()
    }

    /// Publishes a text message to the other subscribers of `topic`.
    #[napi]
    pub fn publish_text(&self, topic: String, text: String) -> Vec<u32> {
        counts(self.publish(&topic, OpCode::Text, text.as_bytes()))
    }

    /// Publishes exactly the view's bytes as a binary message.
    #[napi]
    pub fn publish_binary(&self, topic: String, data: Uint8ArraySlice) -> Vec<u32> {
        counts(self.publish(&topic, OpCode::Binary, &data))
    }
}

impl NativeConnection {
    /// To every subscriber but this connection, here and (with a
    /// backplane) in the other processes.
    fn publish(&self, topic: &str, opcode: OpCode, payload: &[u8]) -> Published {
        self.conn
            .topics
            .publish_out(topic, opcode, payload, Some(self.conn.id), false)
    }
}

#[napi]
impl NativeServer {
    /// Publishes to every subscriber of `topic` (`local`: in this process
    /// only, not through the backplane).
    #[napi]
    pub fn publish_text(&self, topic: String, text: String, local: Option<bool>) -> Vec<u32> {
        counts(self.server.topics.publish_out(
            &topic,
            OpCode::Text,
            text.as_bytes(),
            None,
            local.unwrap_or(false),
        ))
    }

    #[napi]
    pub fn publish_binary(
        &self,
        topic: String,
        data: Uint8ArraySlice,
        local: Option<bool>,
    ) -> Vec<u32> {
        counts(self.server.topics.publish_out(
            &topic,
            OpCode::Binary,
            &data,
            None,
            local.unwrap_or(false),
        ))
    }

    /// Starts a `cluster` query (`kind`: 0 nodes, 1 connection count,
    /// 2 subscriber count of `topic`); the answer comes as a backplane
    /// event with the returned id. -1: no backplane.
    #[napi]
    pub fn cluster_query(&self, kind: u32, topic: Option<String>) -> f64 {
        let Some(bp) = self.backplane.as_ref() else {
            return -1.0;
        };
        let q = match kind {
            0 => Query::Nodes,
            1 => Query::ConnectionCount,
            _ => Query::SubscriberCount(topic.unwrap_or_default()),
        };
        bp.query(q) as f64
    }

    /// This server's node id in the cluster ("" without a backplane).
    #[napi(getter)]
    pub fn node_id(&self) -> String {
        self.backplane
            .as_ref()
            .map_or(String::new(), |bp| bp.node().to_string())
    }

    #[napi]
    pub fn subscriber_count(&self, topic: String) -> u32 {
        self.server.topics.subscriber_count(&topic) as u32
    }
}
