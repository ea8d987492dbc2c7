//! The cluster view: each node writes its facts to Redis every heartbeat
//! (a sorted set of live nodes, a hash of facts, a hash of subscriber
//! counts per topic, both expiring after three beats), and `server.cluster`
//! queries read them. This node's own figures are read live, not from
//! Redis, so a query right after a subscribe counts it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{error_json, what, wire, Query, Shared};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// A node's connections, pid, start and last beat (ms), as HMGET reads them.
type Facts = (Option<u64>, Option<u64>, Option<u64>, Option<u64>);

/// Milliseconds after its last beat that a node counts as gone.
fn expiry(s: &Shared) -> u64 {
    (s.cfg.heartbeat.as_millis() as u64 * 3).max(1)
}

pub(super) async fn heartbeat(s: Arc<Shared>) {
    let started = now_ms();
    let mut stop = s.stop.clone();
    let mut tick = tokio::time::interval(s.cfg.heartbeat.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        if beat(&s, started).await.is_err() {
            s.drop_commands().await;
        }
    }
    // Leave the cluster at once rather than after three beats.
    let prefix = &s.cfg.prefix;
    if let Ok(mut c) = s.commands().await {
        let _ = redis::pipe()
            .cmd("ZREM")
            .arg(wire::nodes_key(prefix))
            .arg(s.node)
            .ignore()
            .cmd("DEL")
            .arg(wire::node_key(prefix, s.node))
            .arg(wire::node_topics_key(prefix, s.node))
            .ignore()
            .query_async::<()>(&mut c)
            .await;
    }
}

async fn beat(s: &Shared, started: u64) -> redis::RedisResult<()> {
    let Some(server) = s.server.upgrade() else {
        return Ok(());
    };
    let connections = server.connection_count();
    let counts = server.topics.counts();
    drop(server);
    let prefix = &s.cfg.prefix;
    let now = now_ms();
    let ttl = expiry(s);
    let node_key = wire::node_key(prefix, s.node);
    let topics_key = wire::node_topics_key(prefix, s.node);
    let mut pipe = redis::pipe();
    pipe.cmd("ZADD")
        .arg(wire::nodes_key(prefix))
        .arg(now)
        .arg(s.node)
        .ignore()
        .cmd("ZREMRANGEBYSCORE")
        .arg(wire::nodes_key(prefix))
        .arg("-inf")
        .arg(now.saturating_sub(ttl * 10))
        .ignore()
        .cmd("HSET")
        .arg(&node_key)
        .arg("connections")
        .arg(connections)
        .arg("pid")
        .arg(std::process::id())
        .arg("started")
        .arg(started)
        .arg("seen")
        .arg(now)
        .ignore()
        .cmd("PEXPIRE")
        .arg(&node_key)
        .arg(ttl)
        .ignore()
        .cmd("DEL")
        .arg(&topics_key)
        .ignore();
    if !counts.is_empty() {
        let mut hset = redis::cmd("HSET");
        hset.arg(&topics_key);
        for (t, n) in &counts {
            hset.arg(&**t).arg(*n);
        }
        pipe.add_command(hset)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&topics_key)
            .arg(ttl)
            .ignore();
    }
    let mut c = s.commands().await?;
    pipe.query_async::<()>(&mut c).await
}

/// Ids of the nodes seen within the expiry.
async fn live_nodes(
    s: &Shared,
    c: &mut redis::aio::MultiplexedConnection,
) -> redis::RedisResult<Vec<u64>> {
    let mut ids: Vec<u64> = redis::cmd("ZRANGEBYSCORE")
        .arg(wire::nodes_key(&s.cfg.prefix))
        .arg(now_ms().saturating_sub(expiry(s)))
        .arg("+inf")
        .query_async(c)
        .await?;
    if !ids.contains(&s.node) {
        // Not beaten yet (just started): we are alive all the same.
        ids.push(s.node);
    }
    Ok(ids)
}

/// Answers a `cluster` query with a `REPLY` event (JSON).
pub(super) async fn answer(s: Arc<Shared>, id: u64, q: Query) {
    let text = match query(&s, &q).await {
        Ok(t) => t,
        Err(e) => {
            s.drop_commands().await;
            error_json(&e.to_string())
        }
    };
    s.emit(what::REPLY, id, text);
}

async fn query(s: &Shared, q: &Query) -> redis::RedisResult<String> {
    let mut c = s.commands().await?;
    let ids = live_nodes(s, &mut c).await?;
    let server = s.server.upgrade();
    let local_conns = server.as_ref().map_or(0, |v| v.connection_count());
    let prefix = &s.cfg.prefix;
    match q {
        Query::SubscriberCount(topic) => {
            let mut pipe = redis::pipe();
            for n in &ids {
                pipe.cmd("HGET")
                    .arg(wire::node_topics_key(prefix, *n))
                    .arg(topic);
            }
            let counts: Vec<Option<u64>> = pipe.query_async(&mut c).await?;
            let mut total = 0u64;
            for (n, count) in ids.iter().zip(counts) {
                total += if *n == s.node {
                    server
                        .as_ref()
                        .map_or(0, |v| v.topics.subscriber_count(topic) as u64)
                } else {
                    count.unwrap_or(0)
                };
            }
            Ok(format!("{{\"value\":{total}}}"))
        }
        Query::ConnectionCount | Query::Nodes => {
            let mut pipe = redis::pipe();
            for n in &ids {
                pipe.cmd("HMGET")
                    .arg(wire::node_key(prefix, *n))
                    .arg("connections")
                    .arg("pid")
                    .arg("started")
                    .arg("seen");
            }
            let facts: Vec<Facts> = pipe.query_async(&mut c).await?;
            let mut total = 0u64;
            let mut nodes = Vec::new();
            for (n, (conns, pid, started, seen)) in ids.iter().zip(facts) {
                let me = *n == s.node;
                let conns = if me {
                    local_conns as u64
                } else {
                    conns.unwrap_or(0)
                };
                total += conns;
                let pid = if me {
                    Some(u64::from(std::process::id()))
                } else {
                    pid
                };
                let opt = |v: Option<u64>| v.map_or("null".to_string(), |v| v.to_string());
                nodes.push(format!(
                    "{{\"id\":\"{n}\",\"self\":{me},\"connections\":{conns},\"pid\":{},\"started\":{},\"lastSeen\":{}}}",
                    opt(pid),
                    opt(started),
                    opt(if me { Some(now_ms()) } else { seen }),
                ));
            }
            Ok(match q {
                Query::Nodes => format!("{{\"value\":[{}]}}", nodes.join(",")),
                _ => format!("{{\"value\":{total}}}"),
            })
        }
    }
}
