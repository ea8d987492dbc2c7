//! The publisher task: local publishes go to Redis in order, as pipelines
//! of whatever queued while the last one was out (one round trip for a
//! burst). In pubsub mode a failed pipeline is dropped with a `gap`
//! (at most once); in history mode it is sent again once Redis is back,
//! and the publish script applies each message once.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::wire;
use super::{Outgoing, Shared};

/// Messages per pipeline at most: bounds one round trip's size.
const BATCH: usize = 1024;
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// After `stop`, queued publishes get this long to go out.
const LINGER: Duration = Duration::from_secs(2);

struct Numbered {
    out: Outgoing,
    /// This node's publish number (history mode's once-only check).
    number: u64,
}

pub(super) async fn run(s: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Outgoing>) {
    let mut batch: Vec<Numbered> = Vec::new();
    let mut number = 0u64;
    let mut backoff = MIN_BACKOFF;
    let mut stop = s.stop.clone();
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        if batch.is_empty() {
            let next = tokio::select! {
                o = rx.recv() => o,
                _ = stop.changed(), if deadline.is_none() => {
                    deadline = Some(tokio::time::Instant::now() + LINGER);
                    continue;
                }
            };
            match next {
                Some(out) => {
                    number += 1;
                    batch.push(Numbered { out, number });
                }
                None => return,
            }
        }
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(out) => {
                    number += 1;
                    batch.push(Numbered { out, number });
                }
                Err(_) => break,
            }
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() > d) {
            return;
        }
        if s.stopped() && deadline.is_none() {
            deadline = Some(tokio::time::Instant::now() + LINGER);
        }
        match send(&s, &batch).await {
            Ok(()) => {
                backoff = MIN_BACKOFF;
                release(&s, &mut batch);
                if s.stopped() && rx.is_empty() {
                    return;
                }
            }
            Err(_) => {
                s.drop_commands().await;
                if s.cfg.history.is_none() {
                    let mut topics: Vec<Arc<str>> =
                        batch.iter().map(|n| n.out.topic.clone()).collect();
                    topics.sort();
                    topics.dedup();
                    s.gap(&topics, "publish");
                    release(&s, &mut batch);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// The publish script's SHA-1, as EVALSHA names it.
fn script_sha() -> &'static str {
    static SHA: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SHA.get_or_init(|| {
        redis::Script::new(wire::PUBLISH_SCRIPT)
            .get_hash()
            .to_string()
    })
}

fn release(s: &Shared, batch: &mut Vec<Numbered>) {
    let bytes: usize = batch
        .iter()
        .map(|n| n.out.payload.len() + n.out.topic.len() + 64)
        .sum();
    let left = s.pending.fetch_sub(bytes, Ordering::AcqRel) - bytes;
    if left < s.cfg.max_pending / 2 {
        s.overflowing.store(false, Ordering::Release);
    }
    batch.clear();
}

async fn send(s: &Shared, batch: &[Numbered]) -> redis::RedisResult<()> {
    let mut c = s.commands().await?;
    let prefix = &s.cfg.prefix;
    let mut pipe = redis::pipe();
    match s.cfg.history {
        None => {
            for n in batch {
                pipe.cmd("PUBLISH")
                    .arg(wire::channel(prefix, &n.out.topic))
                    .arg(wire::encode_pubsub(n.out.opcode, s.node, &n.out.payload))
                    .ignore();
            }
        }
        Some(h) => {
            let ttl = h.ttl.as_millis() as u64;
            // The epoch a topic whose meta is gone starts: fresh per
            // pipeline, so one lost to a restart is never set again.
            let epoch = super::random_u64().max(1);
            // One script call per topic: its messages in order (order
            // across topics is not promised, so grouping keeps it), the
            // topics in the order they first come.
            let mut at: HashMap<&str, usize> = HashMap::new();
            let mut groups: Vec<(&Arc<str>, Vec<&Numbered>)> = Vec::new();
            for n in batch {
                let i = *at.entry(&n.out.topic).or_insert_with(|| {
                    groups.push((&n.out.topic, Vec::new()));
                    groups.len() - 1
                });
                groups[i].1.push(n);
            }
            for (topic, list) in groups {
                let cmd = pipe
                    .cmd("EVALSHA")
                    .arg(script_sha())
                    .arg(3)
                    .arg(wire::stream_key(prefix, topic))
                    .arg(wire::meta_key(prefix, topic))
                    .arg(wire::channel(prefix, topic))
                    .arg(s.node)
                    .arg(h.size)
                    .arg(ttl)
                    .arg(epoch);
                for n in list {
                    cmd.arg(n.number)
                        .arg(&[wire::kind_byte(n.out.opcode)][..])
                        .arg(&n.out.payload[..]);
                }
                cmd.ignore();
            }
        }
    }
    pipe.query_async::<()>(&mut c).await
}
