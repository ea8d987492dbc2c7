//! What the backplane writes to Redis and reads back, sans-IO: key names,
//! the message format on a topic's channel, the publish script, and the
//! per-topic sequencer that decides, for history mode, what to deliver,
//! skip or fetch.
//!
//! Keys (all under the `prefix` option, default `sack:`):
//! - `{prefix}t:{topic}`: the topic's Pub/Sub channel.
//! - `{prefix}s:{topic}`: history mode: the topic's Redis Stream, entry ids
//!   `0-{offset}`, trimmed to `history.size` entries.
//! - `{prefix}m:{topic}`: history mode: a hash of the topic's epoch (`e`),
//!   last offset (`o`) and, per publishing node, its last publish number
//!   (`p{node}`), so a publish retried after a lost reply is not applied
//!   twice.
//! - `{prefix}nodes`: a sorted set of node ids by last heartbeat (ms).
//! - `{prefix}n:{node}`: a node's facts; `{prefix}n:{node}:topics`: its
//!   subscriber count per topic. Both expire when heartbeats stop.
//!
//! A channel message is a short ASCII head, one space, then the payload:
//! `P{kind} {node}` (pubsub mode) or `H{kind} {node} {epoch} {offset}`
//! (history mode); `kind` is `t` (text) or `b` (binary).

use crate::protocol::frame::OpCode;

pub fn channel(prefix: &str, topic: &str) -> String {
    format!("{prefix}t:{topic}")
}

pub fn stream_key(prefix: &str, topic: &str) -> String {
    format!("{prefix}s:{topic}")
}

pub fn meta_key(prefix: &str, topic: &str) -> String {
    format!("{prefix}m:{topic}")
}

pub fn nodes_key(prefix: &str) -> String {
    format!("{prefix}nodes")
}

pub fn node_key(prefix: &str, node: u64) -> String {
    format!("{prefix}n:{node}")
}

pub fn node_topics_key(prefix: &str, node: u64) -> String {
    format!("{prefix}n:{node}:topics")
}

/// The topic a channel name stands for.
pub fn topic_of<'a>(prefix: &str, channel: &'a str) -> Option<&'a str> {
    channel.strip_prefix(prefix)?.strip_prefix("t:")
}

pub fn kind_byte(opcode: OpCode) -> u8 {
    if opcode == OpCode::Text {
        b't'
    } else {
        b'b'
    }
}

fn opcode_of(kind: u8) -> Option<OpCode> {
    match kind {
        b't' => Some(OpCode::Text),
        b'b' => Some(OpCode::Binary),
        _ => None,
    }
}

/// A pubsub-mode channel message.
pub fn encode_pubsub(opcode: OpCode, node: u64, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(payload.len() + 24);
    m.push(b'P');
    m.push(kind_byte(opcode));
    m.push(b' ');
    m.extend_from_slice(node.to_string().as_bytes());
    m.push(b' ');
    m.extend_from_slice(payload);
    m
}

/// A channel message, decoded.
#[derive(Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub opcode: OpCode,
    pub node: u64,
    /// History mode: the topic's epoch and this message's offset.
    pub seq: Option<(u64, u64)>,
    pub payload: &'a [u8],
}

/// Splits the next space-ended decimal off `rest`.
fn number(rest: &mut &[u8]) -> Option<u64> {
    let end = rest.iter().position(|&b| b == b' ')?;
    let n = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    *rest = &rest[end + 1..];
    Some(n)
}

/// Reads a channel message; `None` for anything else (another program
/// publishing on our channel is ignored, not trusted).
pub fn decode(m: &[u8]) -> Option<Message<'_>> {
    let (&mode, rest) = m.split_first()?;
    let (&kind, rest) = rest.split_first()?;
    let opcode = opcode_of(kind)?;
    let mut rest = rest.strip_prefix(b" ")?;
    let node = number(&mut rest)?;
    let seq = match mode {
        b'P' => None,
        b'H' => {
            let epoch = number(&mut rest)?;
            let offset = number(&mut rest)?;
            Some((epoch, offset))
        }
        _ => return None,
    };
    Some(Message {
        opcode,
        node,
        seq,
        payload: rest,
    })
}

/// History mode's publish of one or more messages of one topic, atomic in
/// Redis: skip those already applied (same node, number not above the last
/// seen, so a pipeline sent again after a lost reply applies nothing
/// twice), give each the next offset, append it to the stream (trimmed to
/// about `size`), publish it with its head, then refresh the TTLs once.
/// The epoch is set by the first publish after the meta hash is lost (a
/// new random one from the caller), so subscribers see a data loss as an
/// epoch change. Returns the last offset.
///
/// KEYS: stream, meta, channel. ARGV: node, history size, ttl ms (0:
/// none), a fresh epoch, then per message: number, kind, payload.
pub const PUBLISH_SCRIPT: &str = r#"
local e = redis.call('HGET', KEYS[2], 'e')
if not e then
  e = ARGV[4]
  redis.call('HSET', KEYS[2], 'e', e)
end
local pf = 'p' .. ARGV[1]
local seen = tonumber(redis.call('HGET', KEYS[2], pf) or '0')
local o = tonumber(redis.call('HGET', KEYS[2], 'o') or '0')
local last = seen
for i = 5, #ARGV, 3 do
  local number = tonumber(ARGV[i])
  if number > last then
    o = o + 1
    local kind, data = ARGV[i + 1], ARGV[i + 2]
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '0-' .. o, 'k', kind, 'n', ARGV[1], 'd', data)
    redis.call('PUBLISH', KEYS[3], 'H' .. kind .. ' ' .. ARGV[1] .. ' ' .. e .. ' ' .. o .. ' ' .. data)
    last = number
  end
end
redis.call('HSET', KEYS[2], 'o', o, pf, last)
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return o
"#;

/// The offset in a stream entry id `0-{offset}`.
pub fn offset_of_id(id: &str) -> Option<u64> {
    id.strip_prefix("0-")?.parse().ok()
}

/// What to do with a history-mode message for one topic.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Deliver it; it is the next one.
    Deliver,
    /// Already delivered (or published before we subscribed): drop it.
    Skip,
    /// Offsets `from..=to` are missing before it: fetch them from the
    /// stream (`Sequencer::filled` each), then deliver it.
    Fill { from: u64, to: u64 },
    /// The epoch changed (Redis lost the topic's data): what came between
    /// is unknowable. Report a gap, then fill the new epoch's start
    /// (`from..=to`, empty when `from > to`) and deliver.
    Gap { from: u64, to: u64 },
}

/// One topic's position in history mode.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sequencer {
    /// `None` until the topic's meta or a message names one.
    pub epoch: Option<u64>,
    /// The last offset delivered (or known to precede our subscription).
    pub last: u64,
    /// The subscription's start was read from Redis (`start`); until then
    /// a resume starts afresh rather than fetching history.
    pub started: bool,
}

impl Sequencer {
    /// Starts from the topic's meta as read after subscribing: messages
    /// up to `offset` came before us.
    pub fn start(epoch: Option<u64>, offset: u64) -> Self {
        Sequencer {
            epoch,
            last: if epoch.is_some() { offset } else { 0 },
            started: true,
        }
    }

    /// Decides for a message of `epoch` at `offset`, and moves on as if it
    /// (and any fill it asks for) were delivered.
    pub fn step(&mut self, epoch: u64, offset: u64) -> Step {
        if !self.started {
            // The start could not be read: begin here.
            *self = Sequencer::start(Some(epoch), offset);
            return Step::Deliver;
        }
        match self.epoch {
            Some(e) if e != epoch => {
                self.epoch = Some(epoch);
                self.last = offset;
                return Step::Gap {
                    from: 1,
                    to: offset.saturating_sub(1),
                };
            }
            None => self.epoch = Some(epoch),
            _ => {}
        }
        if offset <= self.last {
            return Step::Skip;
        }
        let from = self.last + 1;
        self.last = offset;
        if offset == from {
            Step::Deliver
        } else {
            Step::Fill {
                from,
                to: offset - 1,
            }
        }
    }

    /// After a reconnect: the topic's meta now. Returns the range to fetch
    /// (possibly empty), and whether the epoch changed (a gap).
    pub fn resume(&mut self, epoch: Option<u64>, offset: u64) -> (u64, u64, bool) {
        if !self.started {
            *self = Sequencer::start(epoch, offset);
            return (1, 0, false);
        }
        match (self.epoch, epoch) {
            (_, None) => {
                // Nothing published since the data went (or ever): a gap if
                // we had seen an epoch, as its messages are gone.
                let gap = self.epoch.is_some() && self.last > 0;
                *self = Sequencer::start(None, 0);
                (1, 0, gap)
            }
            (Some(old), Some(new)) if old == new => {
                let from = self.last + 1;
                self.last = self.last.max(offset);
                (from, offset, false)
            }
            (old, Some(new)) => {
                let gap = old.is_some();
                self.epoch = Some(new);
                self.last = offset;
                (1, offset, gap)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_junk_is_refused() {
        let m = encode_pubsub(OpCode::Binary, 42, b"a b\0c");
        let d = decode(&m).unwrap();
        assert_eq!(d.opcode, OpCode::Binary);
        assert_eq!(d.node, 42);
        assert_eq!(d.seq, None);
        assert_eq!(d.payload, b"a b\0c");
        let h = b"Ht 7 99 12 hello world";
        let d = decode(h).unwrap();
        assert_eq!(d.opcode, OpCode::Text);
        assert_eq!((d.node, d.seq), (7, Some((99, 12))));
        assert_eq!(d.payload, b"hello world");
        assert_eq!(decode(b"Pt 7 ").unwrap().payload, b"");
        for junk in [
            &b""[..],
            b"P",
            b"Px 1 a",
            b"Pt1 a",
            b"Pt x a",
            b"Ht 1 2 a",
            b"Qt 1 a",
        ] {
            assert_eq!(decode(junk), None, "{junk:?}");
        }
        assert_eq!(topic_of("sack:", "sack:t:room/1"), Some("room/1"));
        assert_eq!(topic_of("sack:", "other:t:x"), None);
        assert_eq!(offset_of_id("0-17"), Some(17));
        assert_eq!(offset_of_id("5-1"), None);
    }

    #[test]
    fn the_sequencer_delivers_in_order_skips_repeats_and_fills_holes() {
        let mut s = Sequencer::start(Some(5), 10);
        assert_eq!(s.step(5, 9), Step::Skip, "published before we came");
        assert_eq!(s.step(5, 11), Step::Deliver);
        assert_eq!(s.step(5, 11), Step::Skip);
        assert_eq!(s.step(5, 14), Step::Fill { from: 12, to: 13 });
        assert_eq!(s.last, 14);
        assert_eq!(s.step(5, 13), Step::Skip, "already filled");
        assert_eq!(s.step(6, 3), Step::Gap { from: 1, to: 2 });
        assert_eq!(s.step(6, 4), Step::Deliver);
    }

    #[test]
    fn a_topic_without_history_takes_the_first_epoch_it_sees_from_the_start() {
        let mut s = Sequencer::start(None, 0);
        assert_eq!(s.step(8, 3), Step::Fill { from: 1, to: 2 });
        assert_eq!(s.step(8, 4), Step::Deliver);
    }

    #[test]
    fn resuming_fills_from_the_last_offset_or_reports_a_lost_epoch() {
        let mut s = Sequencer::start(Some(1), 4);
        assert_eq!(s.resume(Some(1), 9), (5, 9, false));
        assert_eq!(s.last, 9);
        assert_eq!(s.resume(Some(1), 9), (10, 9, false), "nothing missed");
        assert_eq!(s.resume(Some(2), 3), (1, 3, true));
        assert_eq!(s.resume(None, 0), (1, 0, true), "Redis lost it all");
        assert_eq!(s, Sequencer::start(None, 0));
        assert_eq!(s.resume(None, 0), (1, 0, false));
        assert_eq!(
            s.resume(Some(3), 2),
            (1, 2, false),
            "all of the first epoch came after us"
        );
    }

    #[test]
    fn a_subscription_never_started_resumes_at_the_present() {
        let mut s = Sequencer::default();
        assert_eq!(s.resume(Some(4), 50), (1, 0, false), "no history replayed");
        assert_eq!(s.step(4, 51), Step::Deliver);
        let mut s = Sequencer::default();
        assert_eq!(s.step(4, 9), Step::Deliver, "begins at the first message");
        assert_eq!(s.step(4, 10), Step::Deliver);
    }
}
