'use strict';
// The Redis backplane: topics across processes. A real redis-server on a
// loopback port (persistence off; installed by redis.js where missing, the
// tests skip with the reason where it cannot be), and two or three sack
// processes (`node`) sharing it. Clients are the `ws` package, in this
// process.
//
// Each sack process (NODE below) serves:
//   /sub/<topic>  a subscriber: subscribed at connect;
//   /ctl          a control connection: JSON commands (publish from this
//                 connection, a paced burst of sequenced server.publish
//                 calls, cluster queries).
// and prints `LISTENING <port>` and `BP <state> <json>` for every backplane
// event.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { ROOT, HOST, WebSocket, startNode, withTimeout, waitUntil, delay, Server } = require('./helpers.js');
const { startRedis } = require('./redis.js');

const NODE = `
const sack = require(${JSON.stringify(ROOT)});
const server = sack.Websocket.Server({ port: 0, address: '127.0.0.1', backplane: JSON.parse(process.env.BP) });
server.on('backplane', (state, info) => console.log('BP ' + state + ' ' + JSON.stringify(info)));
server.on('connect', (ws) => {
  const [, kind, topic] = ws.url.split('/');
  if (kind === 'sub') ws.subscribe(decodeURIComponent(topic));
  ws.on('message', async (m) => {
    const c = JSON.parse(m);
    if (c.op === 'publish') ws.send(JSON.stringify(ws.publish(c.topic, c.data)));
    if (c.op === 'burst') {
      // c.n messages "tag:i" to c.topic, c.per at a time every c.every ms.
      let i = 0;
      const next = () => {
        for (let k = 0; k < c.per && i < c.n; k++, i++) server.publish(c.topic, c.tag + ':' + i);
        if (i < c.n) setTimeout(next, c.every);
        else ws.send('DONE');
      };
      next();
    }
    if (c.op === 'count') {
      ws.send(JSON.stringify({
        local: server.subscriberCount(c.topic),
        cluster: await server.cluster.subscriberCount(c.topic),
        connections: await server.cluster.connectionCount(),
        nodes: await server.cluster.nodes(),
        nodeId: server.cluster.nodeId,
      }));
    }
  });
});
console.log('LISTENING ' + server.address().port);
process.on('SIGTERM', () => server.close(() => process.exit(0)));
`;

let redis = null;
let skip = null;

before(async () => {
  try {
    redis = await startRedis();
  } catch (e) {
    skip = `redis-server unavailable: ${e.message}`;
  }
});

after(async () => {
  if (redis) await redis.stop();
});

function needRedis(t) {
  if (skip) {
    t.skip(skip);
    return false;
  }
  return true;
}

let prefixes = 0;
/** A fresh key prefix per test, so tests share one Redis without meeting. */
function freshPrefix() {
  prefixes += 1;
  return `sacktest${process.pid}-${prefixes}:`;
}

/** Starts a sack process; resolves { port, h, lines(re) }. */
async function startSack(t, backplane) {
  const h = startNode(NODE, { env: { BP: JSON.stringify(backplane) } });
  t.after(() => h.kill());
  const m = await h.line(/LISTENING (\d+)/, 10000);
  return { port: Number(m[1]), h, events: (re) => h.stdout.split('\n').filter((l) => re.test(l)) };
}

function connect(t, port, path) {
  const c = new WebSocket(`ws://${HOST}:${port}${path}`);
  t.after(() => c.terminate());
  return withTimeout(new Promise((resolve, reject) => {
    c.once('open', () => resolve(c));
    c.once('error', reject);
  }), 5000, `connect ${path}`);
}

/** Collects text messages of `c` into an array. */
function collect(c) {
  const got = [];
  c.on('message', (d) => got.push(String(d)));
  return got;
}

async function ask(ctl, command) {
  const reply = new Promise((resolve) => ctl.once('message', (d) => resolve(String(d))));
  ctl.send(JSON.stringify(command));
  return withTimeout(reply, 10000, `reply to ${command.op}`);
}

/** Waits until Redis reports `n` subscribers (processes) on `topic`'s channel. */
async function numsub(prefix, topic, n) {
  await waitUntil(async () => {
    const out = await redis.cli('PUBSUB', 'NUMSUB', `${prefix}t:${topic}`);
    return Number(out.split('\n')[1]) === n;
  }, 10000, `${n} Redis subscriber(s) on ${topic}`);
}

/** Checks "tag:i" messages: strictly increasing i (no duplicate, no reorder); returns the set of i seen. */
function sequence(got, tag) {
  const seen = [];
  for (const m of got) {
    const [t, i] = m.split(':');
    if (t !== tag) continue;
    const n = Number(i);
    if (seen.length) assert.ok(n > seen[seen.length - 1], `reordered or duplicated: ${n} after ${seen[seen.length - 1]}`);
    seen.push(n);
  }
  return seen;
}

for (const mode of ['pubsub', 'history']) {
  test(`${mode}: a message published on one process reaches subscribers on the others, not its sender`, async (t) => {
    if (!needRedis(t)) return;
    const bp = { url: redis.url, prefix: freshPrefix(), mode };
    const [a, b, c] = await Promise.all([startSack(t, bp), startSack(t, bp), startSack(t, bp)]);
    const sender = await connect(t, a.port, '/sub/room');
    const onA = collect(await connect(t, a.port, '/sub/room'));
    const onB = collect(await connect(t, b.port, '/sub/room'));
    const onC = collect(await connect(t, c.port, '/sub/room'));
    const other = collect(await connect(t, c.port, '/sub/elsewhere'));
    const fromSender = collect(sender);
    await numsub(bp.prefix, 'room', 3);
    const ctl = await connect(t, a.port, '/ctl');
    // ctl is not subscribed: `ws.publish` from it reaches all three rooms.
    const local = JSON.parse(await ask(ctl, { op: 'publish', topic: 'room', data: 'hello' }));
    assert.deepEqual(local, { sent: 2, dropped: 0 }, 'both subscribers on A');
    await waitUntil(() => onB.length === 1 && onC.length === 1, 5000, 'delivery to B and C');
    assert.deepEqual([onA, onB, onC], [['hello'], ['hello'], ['hello']]);
    // The sender's own publish: everyone else, not the sender.
    sender.send(JSON.stringify({ op: 'publish', topic: 'room', data: 'from sender' }));
    await waitUntil(() => onB.length === 2 && onC.length === 2 && onA.length === 2, 5000, 'delivery of the sender\'s message');
    assert.deepEqual(onC, ['hello', 'from sender']);
    await delay(200);
    assert.deepEqual(fromSender.filter((m) => m === 'from sender' || m === 'hello'), ['hello'], 'the sender did not get its own message');
    assert.deepEqual(other, [], 'another topic got nothing');
  });

  test(`${mode}: 100,000 sequenced messages cross processes with no loss, duplicate or reorder`, async (t) => {
    if (!needRedis(t)) return;
    const bp = { url: redis.url, prefix: freshPrefix(), mode };
    if (mode === 'history') bp.history = { size: 200000, ttl: 60000 };
    const [a, b] = await Promise.all([startSack(t, bp), startSack(t, bp)]);
    const got = collect(await connect(t, b.port, '/sub/seq'));
    await numsub(bp.prefix, 'seq', 1);
    const ctl = await connect(t, a.port, '/ctl');
    const n = 100000;
    assert.equal(await ask(ctl, { op: 'burst', topic: 'seq', tag: 's', n, per: 2000, every: 1 }), 'DONE');
    await waitUntil(() => got.length >= n, 60000, `${n} messages on B (have ${got.length})`);
    const seen = sequence(got, 's');
    assert.equal(seen.length, n);
    assert.equal(seen[0], 0);
    assert.equal(seen[n - 1], n - 1);
    assert.deepEqual(b.events(/^BP gap/), [], 'no gap reported');
  });
}

test('exactly one Redis subscription per process and topic, taken at the first subscriber and dropped after the last', async (t) => {
  if (!needRedis(t)) return;
  // Other nodes' counts are as of their last heartbeat: a short one here.
  const bp = { url: redis.url, prefix: freshPrefix(), heartbeat: 100 };
  const [a, b] = await Promise.all([startSack(t, bp), startSack(t, bp)]);
  const onA = await Promise.all([1, 2, 3].map(() => connect(t, a.port, '/sub/room')));
  const onB = await Promise.all([1, 2].map(() => connect(t, b.port, '/sub/room')));
  await numsub(bp.prefix, 'room', 2);
  const ctl = await connect(t, a.port, '/ctl');
  let seen;
  const until = Date.now() + 5000;
  do {
    seen = JSON.parse(await ask(ctl, { op: 'count', topic: 'room' }));
  } while ((seen.cluster !== 5 || seen.connections !== 6) && Date.now() < until && (await delay(50), true));
  assert.equal(seen.local, 3);
  assert.equal(seen.cluster, 5, 'subscribers on both processes');
  assert.equal(seen.connections, 6, 'connections on both processes (ctl included)');
  assert.equal(seen.nodes.length, 2);
  assert.equal(seen.nodes.filter((n) => n.self).length, 1);
  assert.equal(seen.nodes.find((n) => n.self).id, seen.nodeId);
  for (const c of onA) c.close();
  await numsub(bp.prefix, 'room', 1);
  for (const c of onB) c.close();
  await numsub(bp.prefix, 'room', 0);
  assert.equal(await redis.cli('PUBSUB', 'NUMSUB', `${bp.prefix}t:room`), `${bp.prefix}t:room\n0`);
});

test('history: CLIENT KILL TYPE pubsub loses nothing: the hole is filled from the stream', async (t) => {
  if (!needRedis(t)) return;
  const bp = { url: redis.url, prefix: freshPrefix(), mode: 'history', history: { size: 100000, ttl: 60000 } };
  const [a, b] = await Promise.all([startSack(t, bp), startSack(t, bp)]);
  const got = collect(await connect(t, b.port, '/sub/k'));
  await numsub(bp.prefix, 'k', 1);
  const ctl = await connect(t, a.port, '/ctl');
  const n = 20000;
  const done = ask(ctl, { op: 'burst', topic: 'k', tag: 'k', n, per: 100, every: 2 });
  await waitUntil(() => got.length >= 2000, 10000, 'the stream under way');
  await redis.cli('CLIENT', 'KILL', 'TYPE', 'pubsub');
  assert.equal(await done, 'DONE');
  await waitUntil(() => got.length >= n, 30000, `${n} messages (have ${got.length})`);
  const seen = sequence(got, 'k');
  assert.equal(seen.length, n, 'nothing lost');
  await b.h.line(/BP down/, 5000);
  await b.h.line(/BP up[^\n]*\n[\s\S]*BP up/, 5000).catch(() => {});
  assert.deepEqual(b.events(/^BP gap/), [], 'no gap: history covered the hole');
});

test('pubsub: CLIENT KILL TYPE pubsub raises gap for the topics it affected, then delivery goes on', async (t) => {
  if (!needRedis(t)) return;
  const bp = { url: redis.url, prefix: freshPrefix(), mode: 'pubsub' };
  const [a, b] = await Promise.all([startSack(t, bp), startSack(t, bp)]);
  const got = collect(await connect(t, b.port, '/sub/k'));
  await connect(t, b.port, '/sub/k2');
  await numsub(bp.prefix, 'k', 1);
  await numsub(bp.prefix, 'k2', 1);
  await redis.cli('CLIENT', 'KILL', 'TYPE', 'pubsub');
  const gap = await b.h.line(/BP gap (.*)/, 5000);
  const info = JSON.parse(gap[1]);
  assert.equal(info.reason, 'reconnect');
  assert.deepEqual(info.topics.sort(), ['k', 'k2']);
  assert.ok(b.events(/^BP down/).length >= 1, 'down before');
  await numsub(bp.prefix, 'k', 1);
  const ctl = await connect(t, a.port, '/ctl');
  assert.equal(await ask(ctl, { op: 'burst', topic: 'k', tag: 'p', n: 100, per: 100, every: 1 }), 'DONE');
  await waitUntil(() => got.length >= 100, 5000, 'delivery after the reconnect');
  assert.equal(sequence(got, 'p').length, 100);
});

for (const mode of ['pubsub', 'history']) {
  test(`${mode}: a Redis restart: down, up, resubscribed, delivery resumes in order`, async (t) => {
    if (!needRedis(t)) return;
    const bp = { url: redis.url, prefix: freshPrefix(), mode };
    // A window that covers the outage: what is published while the
    // subscriber is away must still be in the stream when it is back.
    if (mode === 'history') bp.history = { size: 100000, ttl: 60000 };
    const [a, b] = await Promise.all([startSack(t, bp), startSack(t, bp)]);
    const got = collect(await connect(t, b.port, '/sub/r'));
    await numsub(bp.prefix, 'r', 1);
    const ctl = await connect(t, a.port, '/ctl');
    const n = 6000;
    const done = ask(ctl, { op: 'burst', topic: 'r', tag: 'r', n, per: 20, every: 2 });
    await waitUntil(() => got.length >= 500, 10000, 'the stream under way');
    await redis.stop();
    await delay(300);
    await redis.start();
    assert.equal(await done, 'DONE');
    await b.h.line(/BP down[\s\S]*BP up/, 10000);
    await numsub(bp.prefix, 'r', 1);
    await waitUntil(() => sequence(got, 'r').at(-1) === n - 1, 20000, `the last message (have ${got.length})`);
    const seen = sequence(got, 'r');
    const gaps = b.events(/^BP gap/).map((l) => JSON.parse(l.slice('BP gap '.length)));
    assert.ok(gaps.length >= 1, 'the restart is reported as a gap');
    assert.ok(gaps.every((g) => g.topics.includes('r')));
    t.diagnostic(`${mode}: ${n - seen.length} of ${n} lost across the restart; gaps: ${JSON.stringify(gaps)}`);
    if (mode === 'history') assert.equal(seen.length, n, 'history: publishes waited for Redis and were delivered');
  });
}

test('the backplane option is checked; an unreachable Redis is reported as down and local topics still work', async (t) => {
  const bad = [
    [{ url: 'http://x' }, /backplane\.url/],
    [{ url: 'redis://127.0.0.1:1', mode: 'lossy' }, /backplane\.mode/],
    [{ url: 'redis://127.0.0.1:1', history: { size: 0 } }, /backplane\.history\.size/],
    [{ url: 'redis://127.0.0.1:1', mode: 'pubsub', history: {} }, /backplane\.history/],
    [{ url: 'redis://127.0.0.1:1', nope: 1 }, /backplane\.nope/],
    [42, /backplane/],
  ];
  for (const [backplane, re] of bad) {
    assert.throws(() => Server({ port: 0, address: HOST, backplane }), (e) => e instanceof TypeError && re.test(e.message), JSON.stringify(backplane));
  }
  // Port 1 on loopback: nothing listens, the connection is refused.
  const server = Server({ port: 0, address: HOST, backplane: { url: 'redis://127.0.0.1:1', prefix: freshPrefix() } });
  t.after(() => server.close());
  const down = new Promise((resolve) => server.on('backplane', (state, info) => state === 'down' && resolve(info)));
  const info = await withTimeout(down, 5000, 'the down event');
  assert.equal(typeof info.error, 'string');
  server.on('connect', (ws) => ws.subscribe('local'));
  const c = await connect(t, server.address().port, '/');
  await waitUntil(() => server.subscriberCount('local') === 1, 3000, 'subscribed');
  const got = new Promise((resolve) => c.once('message', (d) => resolve(String(d))));
  assert.deepEqual(server.publish('local', 'still here'), { sent: 1, dropped: 0 });
  assert.equal(await withTimeout(got, 3000, 'local delivery'), 'still here');
  await assert.rejects(server.cluster.nodes(), /Redis/);
});
