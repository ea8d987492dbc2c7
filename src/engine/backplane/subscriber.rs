//! The subscriber task: one Pub/Sub connection per backplane, one SUBSCRIBE
//! per topic with local subscribers; messages from other nodes are
//! published locally. In history mode each topic's `Sequencer` puts them
//! in order and the stream fills what the channel missed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::PubSubSink;
use tokio::sync::mpsc;

use super::wire::{self, Sequencer, Step};
use super::{error_json, what, Interest, Shared};
use crate::protocol::frame::OpCode;

/// First wait before reconnecting; doubled up to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The topics this node wants, with their position in history mode.
type Wanted = HashMap<Arc<str>, Sequencer>;

fn apply(wanted: &mut Wanted, i: Interest) -> bool {
    if i.on {
        wanted.insert(i.topic, Sequencer::default()).is_none()
    } else {
        wanted.remove(&i.topic).is_some()
    }
}

pub(super) async fn run(s: Arc<Shared>, mut interest: mpsc::UnboundedReceiver<Interest>) {
    let mut wanted = Wanted::new();
    let mut stop = s.stop.clone();
    let mut backoff = MIN_BACKOFF;
    // `None` until the first connection is tried; then whether the last
    // `up`/`down` event said up (so each is reported once).
    let mut was_up: Option<bool> = None;
    loop {
        if s.stopped() {
            return;
        }
        let conn = tokio::select! {
            c = s.client.get_async_pubsub() => c,
            _ = stop.changed() => return,
        };
        let pubsub = match conn {
            Ok(p) => p,
            Err(e) => {
                if was_up != Some(false) {
                    s.emit(what::DOWN, 0, error_json(&e.to_string()));
                    was_up = Some(false);
                }
                let until = tokio::time::sleep(backoff);
                tokio::pin!(until);
                loop {
                    tokio::select! {
                        _ = &mut until => break,
                        i = interest.recv() => match i {
                            Some(i) => { apply(&mut wanted, i); }
                            None => return,
                        },
                        _ = stop.changed() => return,
                    }
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        let mut ok = true;
        let topics: Vec<Arc<str>> = wanted.keys().cloned().collect();
        for t in &topics {
            if sink
                .subscribe(wire::channel(&s.cfg.prefix, t))
                .await
                .is_err()
            {
                ok = false;
                break;
            }
        }
        if !ok {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            continue;
        }
        backoff = MIN_BACKOFF;
        s.emit(what::UP, 0, "{}".into());
        if was_up.is_some() {
            // A reconnect: what was published meanwhile is lost (pubsub)
            // or fetched now (history).
            if s.cfg.history.is_some() {
                for t in &topics {
                    resume(&s, &mut wanted, t).await;
                }
            } else {
                s.gap(&topics, "reconnect");
            }
        } else {
            for t in &topics {
                start(&s, &mut wanted, t).await;
            }
        }
        loop {
            tokio::select! {
                m = stream.next() => match m {
                    Some(m) => on_message(&s, &mut wanted, m.get_channel_name(), m.get_payload_bytes()).await,
                    None => break,
                },
                i = interest.recv() => match i {
                    Some(i) => change(&s, &mut sink, &mut wanted, i).await,
                    None => return,
                },
                _ = stop.changed() => return,
            }
        }
        if s.stopped() {
            return;
        }
        s.emit(what::DOWN, 0, error_json("connection lost"));
        was_up = Some(false);
        // Loop: reconnect at once, then back off.
    }
}

async fn change(s: &Shared, sink: &mut PubSubSink, wanted: &mut Wanted, i: Interest) {
    let topic = i.topic.clone();
    let on = i.on;
    if !apply(wanted, i) {
        return;
    }
    let channel = wire::channel(&s.cfg.prefix, &topic);
    // A failure here means the connection is going: the reconnect
    // subscribes to everything in `wanted`.
    if on {
        if sink.subscribe(channel).await.is_ok() {
            start(s, wanted, &topic).await;
        }
    } else {
        let _ = sink.unsubscribe(channel).await;
    }
}

/// Runs `op` again on a fresh command connection if it fails once: the one
/// held may be a stale one from before a Redis restart.
async fn twice<T, F, Fut>(s: &Shared, op: F) -> redis::RedisResult<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<T>>,
{
    match op().await {
        Ok(v) => Ok(v),
        Err(_) => {
            s.drop_commands().await;
            op().await
        }
    }
}

/// The topic's meta (epoch, last offset) in history mode.
async fn meta(s: &Shared, topic: &str) -> redis::RedisResult<(Option<u64>, u64)> {
    twice(s, || meta_once(s, topic)).await
}

async fn meta_once(s: &Shared, topic: &str) -> redis::RedisResult<(Option<u64>, u64)> {
    let mut c = s.commands().await?;
    let (e, o): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
        .arg(wire::meta_key(&s.cfg.prefix, topic))
        .arg("e")
        .arg("o")
        .query_async(&mut c)
        .await?;
    Ok((e, o.unwrap_or(0)))
}

/// A new subscription in history mode starts after what Redis holds now.
async fn start(s: &Shared, wanted: &mut Wanted, topic: &Arc<str>) {
    if s.cfg.history.is_none() {
        return;
    }
    match meta(s, topic).await {
        Ok((e, o)) => {
            if let Some(seq) = wanted.get_mut(topic) {
                *seq = Sequencer::start(e, o);
            }
        }
        Err(_) => s.drop_commands().await,
    }
}

/// After a reconnect, in history mode: fetch what the channel missed.
async fn resume(s: &Shared, wanted: &mut Wanted, topic: &Arc<str>) {
    let (e, o) = match meta(s, topic).await {
        Ok(m) => m,
        Err(_) => {
            s.drop_commands().await;
            s.gap(std::slice::from_ref(topic), "fetch");
            return;
        }
    };
    let Some(seq) = wanted.get_mut(topic) else {
        return;
    };
    let (from, to, gap) = seq.resume(e, o);
    if gap {
        s.gap(std::slice::from_ref(topic), "epoch");
    }
    fill(s, topic, from, to).await;
}

async fn on_message(s: &Shared, wanted: &mut Wanted, channel: &str, bytes: &[u8]) {
    let Some(topic) = wire::topic_of(&s.cfg.prefix, channel) else {
        return;
    };
    let Some(m) = wire::decode(bytes) else {
        return;
    };
    let Some((epoch, offset)) = m.seq else {
        if m.node != s.node {
            s.deliver(topic, m.opcode, m.payload);
        }
        return;
    };
    let Some(seq) = wanted.get_mut(topic) else {
        return;
    };
    match seq.step(epoch, offset) {
        Step::Skip => return,
        Step::Deliver => {}
        Step::Fill { from, to } => fill(s, topic, from, to).await,
        Step::Gap { from, to } => {
            s.gap(&[Arc::from(topic)], "epoch");
            fill(s, topic, from, to).await;
        }
    }
    if m.node != s.node {
        s.deliver(topic, m.opcode, m.payload);
    }
}

/// Delivers offsets `from..=to` of `topic` from its stream, in order; a
/// hole the stream no longer covers is reported as a gap.
async fn fill(s: &Shared, topic: &str, from: u64, to: u64) {
    if from > to {
        return;
    }
    let reply = match twice(s, || xrange(s, topic, from, to)).await {
        Ok(r) => r,
        Err(_) => {
            s.drop_commands().await;
            s.gap(&[Arc::from(topic)], "fetch");
            return;
        }
    };
    let mut next = from;
    let mut holes = false;
    for entry in &reply.ids {
        let Some(offset) = wire::offset_of_id(&entry.id) else {
            continue;
        };
        if offset != next {
            holes = true;
        }
        next = offset + 1;
        let field = |k: &str| match entry.map.get(k) {
            Some(redis::Value::BulkString(b)) => Some(b.as_slice()),
            _ => None,
        };
        let (Some(kind), Some(node), Some(data)) = (field("k"), field("n"), field("d")) else {
            continue;
        };
        let opcode = if kind == b"t" {
            OpCode::Text
        } else {
            OpCode::Binary
        };
        let node: u64 = std::str::from_utf8(node)
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if node != s.node {
            s.deliver(topic, opcode, data);
        }
    }
    if holes || next != to + 1 {
        s.gap(&[Arc::from(topic)], "trimmed");
    }
}

async fn xrange(
    s: &Shared,
    topic: &str,
    from: u64,
    to: u64,
) -> redis::RedisResult<redis::streams::StreamRangeReply> {
    let mut c = s.commands().await?;
    redis::cmd("XRANGE")
        .arg(wire::stream_key(&s.cfg.prefix, topic))
        .arg(format!("0-{from}"))
        .arg(format!("0-{to}"))
        .query_async(&mut c)
        .await
}
