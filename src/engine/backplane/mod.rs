//! The Redis backplane: topics across processes and hosts.
//!
//! Each server with a `backplane` option runs three tasks on the engine's
//! runtime (the `redis` crate, async over tokio):
//! - the subscriber (`subscriber.rs`): one Pub/Sub connection, one
//!   SUBSCRIBE per topic with a local subscriber (taken at the first, dropped
//!   after the last), restored after a reconnect; incoming messages are
//!   published locally;
//! - the publisher (`publisher.rs`): local publishes go out pipelined, in
//!   order, over one command connection;
//! - the heartbeat (`cluster.rs`): this node's facts and subscriber counts,
//!   for `server.cluster`.
//!
//! Two modes. `pubsub`: at most once, ordered per publisher and topic; a
//! lost connection may lose messages, so every reconnect raises `gap` for
//! the topics it touched. `history`: every topic has an offset and a
//! bounded Redis Stream; holes (a reconnect, a slow read) are filled from
//! the stream, publishes are retried until Redis confirms them (and applied
//! once, see `wire::PUBLISH_SCRIPT`), and only an epoch change (Redis lost
//! the data) or a hole older than the stream raises `gap`.
//!
//! A process's own messages reach its own subscribers at publish time, not
//! through Redis; coming back from Redis they are recognised by node id.

mod cluster;
mod publisher;
mod subscriber;
pub mod wire;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::events::Event;
use super::server::Server;
use crate::protocol::frame::OpCode;

/// The `backplane` option, checked.
#[derive(Debug, Clone)]
pub struct BackplaneConfig {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Put before every key and channel. Default `sack:`, so several apps
    /// can share one Redis.
    pub prefix: String,
    /// `Some`: history mode.
    pub history: Option<History>,
    /// How often this node tells Redis it is alive. Default 1 s; a node
    /// silent for three beats leaves `cluster.nodes()`.
    pub heartbeat: Duration,
    /// Bytes of publishes waiting for Redis (while it is away) before more
    /// are dropped with a `gap`. Default 64 MiB: minutes of a busy app's
    /// traffic, a bound on memory when Redis does not come back.
    pub max_pending: usize,
}

#[derive(Debug, Clone, Copy)]
pub struct History {
    /// Entries kept per topic (at least: Redis trims whole stream nodes).
    /// Default 1,000.
    pub size: u64,
    /// A topic's history (and its offset) expires this long after its last
    /// publish; zero keeps it. Default 5 minutes.
    pub ttl: Duration,
}

/// What the `backplane` event reports (`Event::Backplane::what`).
pub mod what {
    pub const UP: u32 = 1;
    pub const DOWN: u32 = 2;
    pub const GAP: u32 = 3;
    /// The answer to a `cluster` query (`id` names it).
    pub const REPLY: u32 = 4;
}

/// A publish on its way to Redis.
pub(super) struct Outgoing {
    topic: Arc<str>,
    opcode: OpCode,
    payload: Vec<u8>,
}

/// A change of local interest, for the subscriber task.
pub(super) struct Interest {
    topic: Arc<str>,
    on: bool,
}

/// A `server.cluster` question.
#[derive(Debug, Clone)]
pub enum Query {
    Nodes,
    ConnectionCount,
    SubscriberCount(String),
}

/// What the tasks share.
pub(super) struct Shared {
    cfg: BackplaneConfig,
    client: redis::Client,
    /// This process's (server's) id in the cluster: random per start.
    node: u64,
    server: Weak<Server>,
    /// Bytes queued for the publisher.
    pending: AtomicUsize,
    /// Publishes were dropped over `max_pending`; cleared once it drains.
    overflowing: AtomicBool,
    stop: watch::Receiver<bool>,
    commands: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
}

impl Shared {
    /// Emits a `backplane` event on the server's thread.
    fn emit(&self, what: u32, id: u64, text: String) {
        if let Some(server) = self.server.upgrade() {
            server.queue().push(Event::Backplane {
                server: server.id,
                what,
                id,
                text,
            });
        }
    }

    fn gap(&self, topics: &[Arc<str>], reason: &str) {
        if topics.is_empty() {
            return;
        }
        let list: Vec<String> = topics.iter().map(|t| json_string(t)).collect();
        self.emit(
            what::GAP,
            0,
            format!(
                "{{\"topics\":[{}],\"reason\":{}}}",
                list.join(","),
                json_string(reason)
            ),
        );
    }

    /// The command connection, made (again) when there is none.
    async fn commands(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let mut slot = self.commands.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let mut c = self.client.get_multiplexed_async_connection().await?;
        if self.cfg.history.is_some() {
            redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(wire::PUBLISH_SCRIPT)
                .query_async::<String>(&mut c)
                .await?;
        }
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Forgets the command connection after an error, so the next use
    /// connects afresh (Redis may have restarted and lost the script).
    async fn drop_commands(&self) {
        *self.commands.lock().await = None;
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Publishes `payload` to this server's local subscribers.
    fn deliver(&self, topic: &str, opcode: OpCode, payload: &[u8]) {
        if let Some(server) = self.server.upgrade() {
            server.topics.publish(topic, opcode, payload, None);
        }
    }
}

/// `{"error": …}`, as the `down` event and failed queries report.
pub(super) fn error_json(e: &str) -> String {
    format!("{{\"error\":{}}}", json_string(e))
}

/// A JSON string literal.
pub(super) fn json_string(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// One server's backplane.
pub struct Backplane {
    shared: Arc<Shared>,
    publish: mpsc::UnboundedSender<Outgoing>,
    interest: mpsc::UnboundedSender<Interest>,
    stop: watch::Sender<bool>,
    next_query: AtomicU64,
}

impl std::fmt::Debug for Backplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backplane")
            .field("node", &self.shared.node)
            .finish_non_exhaustive()
    }
}

/// Checks a Redis URL as the `redis` crate reads it.
pub fn check_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("redis://") || url.starts_with("redis+unix://")) {
        return Err("must start with redis:// (rediss:// is not supported)".into());
    }
    redis::Client::open(url)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // A failing system RNG leaves a time-based id: unique enough for a node.
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        return t.as_nanos() as u64 ^ u64::from(std::process::id());
    }
    // Kept below 2^53 so JS reads node ids and epochs exactly.
    u64::from_le_bytes(b) & ((1 << 53) - 1)
}

impl Backplane {
    /// Starts the tasks for `server`, and hooks its topics up to them.
    pub fn start(server: &Arc<Server>, cfg: BackplaneConfig) -> std::io::Result<Arc<Backplane>> {
        let client = redis::Client::open(cfg.url.as_str())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let handle = super::runtime::handle()?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let (pub_tx, pub_rx) = mpsc::unbounded_channel();
        let (int_tx, int_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            cfg,
            client,
            node: random_u64().max(1),
            server: Arc::downgrade(server),
            pending: AtomicUsize::new(0),
            overflowing: AtomicBool::new(false),
            stop: stop_rx,
            commands: tokio::sync::Mutex::new(None),
        });
        handle.spawn(subscriber::run(shared.clone(), int_rx));
        handle.spawn(publisher::run(shared.clone(), pub_rx));
        handle.spawn(cluster::heartbeat(shared.clone()));
        let bp = Arc::new(Backplane {
            shared,
            publish: pub_tx,
            interest: int_tx,
            stop: stop_tx,
            next_query: AtomicU64::new(1),
        });
        let weak = Arc::downgrade(&bp);
        server.topics.set_interest(Box::new(move |topic, on| {
            if let Some(bp) = weak.upgrade() {
                let _ = bp.interest.send(Interest {
                    topic: topic.clone(),
                    on,
                });
            }
        }));
        let weak = Arc::downgrade(&bp);
        server
            .topics
            .set_relay(Box::new(move |topic, opcode, payload| {
                if let Some(bp) = weak.upgrade() {
                    bp.publish(topic, opcode, payload);
                }
            }));
        Ok(bp)
    }

    /// This node's id in the cluster.
    pub fn node(&self) -> u64 {
        self.shared.node
    }

    /// Queues a publish for the other processes; past `max_pending` it is
    /// dropped and a `gap` raised for its topic.
    pub fn publish(&self, topic: &str, opcode: OpCode, payload: &[u8]) {
        let s = &self.shared;
        if s.stopped() {
            return;
        }
        let size = payload.len() + topic.len() + 64;
        let pending = s.pending.fetch_add(size, Ordering::AcqRel) + size;
        if pending > s.cfg.max_pending {
            s.pending.fetch_sub(size, Ordering::AcqRel);
            if !s.overflowing.swap(true, Ordering::AcqRel) {
                s.gap(&[Arc::from(topic)], "overflow");
            }
            return;
        }
        let _ = self.publish.send(Outgoing {
            topic: Arc::from(topic),
            opcode,
            payload: payload.to_vec(),
        });
    }

    /// Starts a `cluster` query; its answer comes as a `REPLY` event with
    /// the returned id.
    pub fn query(&self, q: Query) -> u64 {
        let id = self.next_query.fetch_add(1, Ordering::Relaxed);
        let shared = self.shared.clone();
        match super::runtime::handle() {
            Ok(h) => {
                h.spawn(cluster::answer(shared, id, q));
            }
            Err(e) => shared.emit(what::REPLY, id, error_json(&e.to_string())),
        }
        id
    }

    /// Stops the tasks: queued publishes still go out (for a while), then
    /// this node leaves the cluster and its connections close.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}
