'use strict';
// Topics in the engine, in one process: ws.subscribe / unsubscribe /
// isSubscribed / subscriptions / publish, server.publish / subscriberCount.
// What a subscriber gets (frame types, exact bytes, order), who does not
// (the publisher, other topics, other servers), what leaves a topic (close,
// terminate, a client that goes away), subscribers over maxBackpressure
// (skipped and counted, never holding the others back), permessage-deflate
// per connection, worker-thread handoff, and fan-out to many clients.
// Real sockets on 127.0.0.1, the `ws` package and raw `net` clients.
// The Redis backplane is not tested here.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const zlib = require('node:zlib');
const { Worker } = require('node:worker_threads');

const {
  OP,
  readyStates,
  withTimeout,
  delay,
  nextEvent,
  waitUntil,
  scope,
  opened,
  clientClosed,
  compressibleText,
  upgradeRequest,
} = require('./helpers.js');

const ROOT = path.join(__dirname, '..');
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

// ---------------------------------------------------------------- helpers

/**
 * A sack server on 127.0.0.1 whose connections are kept by the client's
 * path: `conn(path)` resolves with the server-side ws of that path once it
 * is open. `onConnect(ws)` runs first for each.
 */
function hub($, options = {}, onConnect) {
  const s = $.server(options);
  const byPath = new Map();
  const waiters = new Map();
  s.on('connect', (ws) => {
    if (onConnect) onConnect(ws);
    byPath.set(ws.url, ws);
    const w = waiters.get(ws.url);
    if (w) {
      waiters.delete(ws.url);
      w(ws);
    }
  });
  const conn = (p, ms = 5000) =>
    byPath.has(p)
      ? Promise.resolve(byPath.get(p))
      : withTimeout(new Promise((resolve) => waiters.set(p, resolve)), ms, `server connection ${p}`);
  return { s, conn, byPath };
}

/** A `ws` client on `p`, open, with its server-side ws: { c, ws }. */
async function join($, h, p, clientOptions) {
  const c = $.client(h.s, p, undefined, clientOptions);
  const ws = h.conn(p);
  await opened(c, 5000);
  return { c, ws: await ws };
}

/** Every message a `ws` client gets, as { data (string | Buffer), isBinary }. */
function collect(c) {
  const got = [];
  c.on('message', (data, isBinary) => got.push({ data: isBinary ? Buffer.from(data) : String(data), isBinary }));
  return got;
}

/** Waits for `got` to hold at least `n` entries. */
function until(got, n, ms = 5000, label = `${n} messages`) {
  return waitUntil(() => got.length >= n, ms, label);
}

/** A raw client past the handshake (101 asserted); `extensions` offered if given. */
async function rawJoin($, h, p, extensions) {
  const r = await $.raw(h.s);
  const head = await r.handshake(p, extensions ? { 'Sec-WebSocket-Extensions': extensions } : {});
  assert.equal(head.statusCode, 101);
  return { r, head, ws: await h.conn(p) };
}

/** Text frames and binary frames the raw client reads, in order (n of them). */
async function rawFrames(r, n, ms = 5000) {
  const out = [];
  const end = Date.now() + ms;
  while (out.length < n) out.push(await r.readFrame(Math.max(1, end - Date.now())));
  return out;
}

function assertTypeError(fn, what) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof TypeError, `${what}: ${e && e.name} is not a TypeError`);
    assert.equal(e.code, 'ERR_INVALID_ARG_TYPE', what);
    return true;
  });
}

// ---------------------------------------------------------------- subscribe

test.describe('subscribe, unsubscribe, isSubscribed, subscriptions', () => {
  test.it('subscribe is true when new and false when already subscribed; subscriptions keep the order; counts follow', async (t) => {
    const $ = scope(t);
    const h = hub($);
    const a = await join($, h, '/a');
    const b = await join($, h, '/b');
    const ws = a.ws;

    assert.deepEqual(ws.subscriptions, []);
    assert.equal(ws.isSubscribed('news'), false);
    assert.equal(h.s.subscriberCount('news'), 0);

    assert.equal(ws.subscribe('news'), true);
    assert.equal(ws.subscribe('news'), false, 'subscribing twice');
    assert.equal(ws.subscribe('sports'), true);
    assert.equal(ws.subscribe('weather'), true);
    assert.deepEqual(ws.subscriptions, ['news', 'sports', 'weather']);
    assert.ok(Array.isArray(ws.subscriptions));
    assert.equal(ws.isSubscribed('news'), true);
    assert.equal(ws.isSubscribed('News'), false, 'topics are case-sensitive');
    assert.equal(ws.isSubscribed('news '), false);
    assert.equal(h.s.subscriberCount('news'), 1);

    assert.equal(b.ws.subscribe('news'), true);
    assert.equal(h.s.subscriberCount('news'), 2);
    assert.equal(h.s.subscriberCount('sports'), 1);
    assert.deepEqual(b.ws.subscriptions, ['news']);

    assert.equal(ws.unsubscribe('sports'), true);
    assert.equal(ws.unsubscribe('sports'), false, 'unsubscribing twice');
    assert.equal(ws.unsubscribe('never'), false);
    assert.equal(ws.isSubscribed('sports'), false);
    assert.equal(h.s.subscriberCount('sports'), 0);
    assert.deepEqual(ws.subscriptions, ['news', 'weather']);

    // Subscribing again puts the topic last.
    assert.equal(ws.subscribe('sports'), true);
    assert.deepEqual(ws.subscriptions, ['news', 'weather', 'sports']);

    // The returned array is a copy: changing it changes nothing.
    const list = ws.subscriptions;
    list.push('injected');
    assert.deepEqual(ws.subscriptions, ['news', 'weather', 'sports']);
  });

  test.it('any string is a topic: empty, Unicode, long; distinct strings are distinct topics', async (t) => {
    const $ = scope(t);
    const h = hub($);
    const { c, ws } = await join($, h, '/x');
    const long = 'L'.repeat(4096);
    const topics = ['', 'jörg/€/😀', long, 'a', 'a\u0000b'];
    for (const topic of topics) assert.equal(ws.subscribe(topic), true, JSON.stringify(topic.slice(0, 20)));
    assert.deepEqual(ws.subscriptions, topics);
    for (const topic of topics) assert.equal(h.s.subscriberCount(topic), 1);
    assert.equal(h.s.subscriberCount('a\u0000'), 0);
    assert.equal(h.s.subscriberCount('L'.repeat(4095)), 0);

    const got = collect(c);
    for (const [i, topic] of topics.entries()) {
      assert.deepEqual(h.s.publish(topic, `m${i}`), { sent: 1, dropped: 0 });
    }
    assert.deepEqual(h.s.publish('a\u0000', 'nobody'), { sent: 0, dropped: 0 });
    await until(got, topics.length);
    await delay(50);
    assert.deepEqual(got.map((m) => m.data), topics.map((_, i) => `m${i}`));
  });

  test.it('a topic that is not a string: TypeError ERR_INVALID_ARG_TYPE from every method', async (t) => {
    const $ = scope(t);
    const h = hub($);
    const { ws } = await join($, h, '/x');
    for (const bad of [1, null, undefined, {}, ['a'], Symbol('s'), true, 10n, Buffer.from('a')]) {
      const what = typeof bad === 'symbol' ? 'symbol' : `${typeof bad} ${Array.isArray(bad) ? 'array' : ''}`;
      assertTypeError(() => ws.subscribe(bad), `subscribe(${what})`);
      assertTypeError(() => ws.unsubscribe(bad), `unsubscribe(${what})`);
      assertTypeError(() => ws.isSubscribed(bad), `isSubscribed(${what})`);
      assertTypeError(() => ws.publish(bad, 'x'), `ws.publish(${what})`);
      assertTypeError(() => h.s.publish(bad, 'x'), `server.publish(${what})`);
      assertTypeError(() => h.s.subscriberCount(bad), `subscriberCount(${what})`);
    }
    assert.deepEqual(ws.subscriptions, [], 'nothing was subscribed by a failed call');
  });

  test.it('subscribing during accept (readyState 0) counts once open; a rejected client leaves the topic', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const seen = [];
    s.onaccept = (ws) => {
      seen.push({ url: ws.url, readyState: ws.readyState, first: ws.subscribe('lobby'), again: ws.subscribe('lobby'), subs: ws.subscriptions });
      if (ws.url === '/no') s.reject(403);
      else s.accept();
    };
    const conn = nextEvent(s, 'connect');
    const c = $.client(s, '/yes');
    const got = collect(c);
    await opened(c);
    const ws = (await conn).args[0];
    assert.deepEqual(seen[0], { url: '/yes', readyState: readyStates.CONNECTING, first: true, again: false, subs: ['lobby'] });
    assert.deepEqual(ws.subscriptions, ['lobby']);
    assert.equal(ws.isSubscribed('lobby'), true);
    assert.equal(s.subscriberCount('lobby'), 1);
    assert.deepEqual(s.publish('lobby', 'welcome'), { sent: 1, dropped: 0 });
    await until(got, 1);
    assert.deepEqual(got, [{ data: 'welcome', isBinary: false }]);

    const refused = $.client(s, '/no');
    const status = await withTimeout(
      new Promise((resolve) => refused.once('unexpected-response', (req, res) => resolve(res.statusCode))),
      3000,
      'the 403',
    );
    assert.equal(status, 403);
    assert.equal(seen[1].readyState, readyStates.CONNECTING);
    assert.equal(seen[1].first, true);
    await waitUntil(() => s.subscriberCount('lobby') === 1, 3000, 'the rejected client to leave the topic');
    assert.deepEqual(s.publish('lobby', 'again'), { sent: 1, dropped: 0 });
  });

  test.it('a connection whose accept is still pending gets nothing before its 101; once accepted it gets publishes', async (t) => {
    const $ = scope(t);
    const s = $.server();
    let pending;
    s.onaccept = (ws) => {
      ws.subscribe('t');
      pending = ws; // decided later
    };
    const r = await $.raw(s);
    r.write(upgradeRequest('/later'));
    await waitUntil(() => pending !== undefined, 3000, 'the accept event');
    assert.equal(pending.readyState, readyStates.CONNECTING);
    const early = s.publish('t', 'too early');
    assert.equal(early.dropped, 0);
    await delay(50);
    assert.equal(r.buf.length, 0, 'nothing is sent before the decision');
    assert.equal(pending.accept(), true);
    assert.deepEqual(s.publish('t', 'after'), { sent: 1, dropped: 0 });
    const head = await r.readHead();
    assert.equal(head.statusCode, 101);
    // Whether a publish to a pending subscriber is held for it or skipped
    // is open; either way it follows the 101, and `sent` says which.
    const expected = [...(early.sent === 1 ? ['too early'] : []), 'after'];
    const frames = await rawFrames(r, expected.length);
    assert.deepEqual(frames.map((f) => [f.opcode, f.payload.toString()]), expected.map((x) => [OP.TEXT, x]));
  });

  test.it('a pending subscriber whose client leaves before the decision leaves the topic', async (t) => {
    const $ = scope(t);
    const s = $.server();
    let pending;
    s.onaccept = (ws) => {
      assert.equal(ws.subscribe('p'), true);
      pending = ws;
    };
    const r = await $.raw(s);
    r.write(upgradeRequest('/'));
    await waitUntil(() => pending !== undefined, 3000, 'the accept event');
    const closed = nextEvent(pending, 'close', 5000);
    r.destroy();
    await closed;
    assert.equal(s.subscriberCount('p'), 0);
    assert.equal(pending.accept(), false, 'nothing left to accept');
    assert.throws(() => pending.subscribe('p'), (e) => e.code === 'WS_ERR_NOT_OPEN');
  });

  test.it('CLOSING: subscribe returns false and adds nothing; CLOSED: subscribe throws WS_ERR_NOT_OPEN, the rest report nothing', async (t) => {
    const $ = scope(t);
    const h = hub($);
    const { c, ws } = await join($, h, '/x');
    assert.equal(ws.subscribe('a'), true);
    assert.equal(ws.subscribe('b'), true);
    const closedEvent = nextEvent(ws, 'close', 5000);
    ws.close(1000, 'bye');
    assert.equal(ws.readyState, readyStates.CLOSING);
    assert.equal(ws.subscribe('c'), false, 'subscribe while CLOSING');
    assert.equal(ws.isSubscribed('c'), false);
    assert.equal(ws.subscribe('a'), false, 'already subscribed, and CLOSING');
    assert.equal(h.s.subscriberCount('c'), 0);
    assert.equal(ws.unsubscribe('b'), true, 'unsubscribe works while CLOSING');
    await closedEvent;
    await clientClosed(c).catch(() => {});
    assert.equal(ws.readyState, readyStates.CLOSED);
    assert.throws(() => ws.subscribe('d'), (e) => e instanceof Error && e.code === 'WS_ERR_NOT_OPEN');
    assert.throws(() => ws.subscribe('a'), (e) => e.code === 'WS_ERR_NOT_OPEN');
    assertTypeError(() => ws.subscribe(42), 'subscribe(42) on a closed connection');
    assert.deepEqual(ws.subscriptions, []);
    assert.equal(ws.isSubscribed('a'), false);
    assert.equal(ws.unsubscribe('a'), false);
    assert.equal(h.s.subscriberCount('a'), 0);
    assert.equal(h.s.subscriberCount('d'), 0);
  });

  // BUG (src/binding/topics.rs, NativeConnection::subscribe): a refused
  // subscribe returns `-status::NOT_OPEN`, and NOT_OPEN is already -1, so
  // JS sees 1 ("newly subscribed"). Seen when the engine has closed the
  // connection (here a protocol error) before JS heard of it.
  test.it('engine closed the connection, JS not told yet (readyState still OPEN): subscribe returns false and subscribes nothing', async (t) => {
    const $ = scope(t);
    const h = hub($);
    const { r, ws } = await rawJoin($, h, '/x');
    ws.on('error', () => {});
    r.sendFrame(OP.TEXT, 'unmasked', { mask: false }); // the engine closes with 1002
    // Keep the JS thread busy so the close event cannot be delivered yet,
    // while the engine (its own thread) fails and closes the connection.
    const end = Date.now() + 300;
    while (Date.now() < end);
    assert.equal(ws.readyState, readyStates.OPEN, 'JS has not seen the close yet');
    const closed = nextEvent(ws, 'close', 5000);
    const result = ws.subscribe('late');
    const subscribed = ws.isSubscribed('late');
    const count = h.s.subscriberCount('late');
    await closed;
    assert.equal(subscribed, false);
    assert.equal(count, 0);
    assert.equal(result, false, 'subscribe said "newly subscribed" on a connection the engine had closed');
  });
});

// ---------------------------------------------------------------- publish

test.describe('publish', () => {
  test.it('server.publish: a text frame to every subscriber of the topic and to no one else; { sent, dropped }', async (t) => {
    const $ = scope(t);
    const h = hub($);
    const subs = [];
    for (let i = 0; i < 5; i++) subs.push(await join($, h, `/s${i}`));
    const other = await join($, h, '/other');
    const none = await join($, h, '/none');
    for (const { ws } of subs) ws.subscribe('room');
    other.ws.subscribe('elsewhere');
    const got = subs.map(({ c }) => collect(c));
    const gotOther = collect(other.c);
    const gotNone = collect(none.c);

    assert.deepEqual(h.s.publish('room', 'hello room'), { sent: 5, dropped: 0 });
    assert.deepEqual(h.s.publish('nobody-here', 'lost'), { sent: 0, dropped: 0 });
    assert.deepEqual(h.s.publish('elsewhere', 'for other'), { sent: 1, dropped: 0 });
    for (const g of got) await until(g, 1);
    await until(gotOther, 1);
    await delay(100);
    for (const g of got) assert.deepEqual(g, [{ data: 'hello room', isBinary: false }]);
    assert.deepEqual(gotOther, [{ data: 'for other', isBinary: false }]);
    assert.deepEqual(gotNone, []);

    // After unsubscribing, a connection no longer gets the topic.
    assert.equal(subs[0].ws.unsubscribe('room'), true);
    assert.deepEqual(h.s.publish('room', 'second'), { sent: 4, dropped: 0 });
    subs[0].ws.send('marker');
    for (const g of got.slice(1)) await until(g, 2);
    await until(got[0], 2);
    assert.deepEqual(got[0].map((m) => m.data), ['hello room', 'marker']);
    for (const g of got.slice(1)) assert.deepEqual(g.map((m) => m.data), ['hello room', 'second']);
  });

  test.it('ws.publish: to every other subscriber, never to the publisher (subscribed or not)', async (t) => {
    const $ = scope(t);
    const h = hub($);
    const a = await join($, h, '/a');
    const b = await join($, h, '/b');
    const d = await join($, h, '/d');
    const outsider = await join($, h, '/outsider');
    for (const { ws } of [a, b, d]) ws.subscribe('chat');
    const got = Object.fromEntries([a, b, d, outsider].map((x) => [x.ws.url, collect(x.c)]));

    assert.deepEqual(a.ws.publish('chat', 'from a'), { sent: 2, dropped: 0 });
    assert.equal(outsider.ws.isSubscribed('chat'), false);
    assert.deepEqual(outsider.ws.publish('chat', 'from outsider'), { sent: 3, dropped: 0 });
    // Markers: the last message each client gets, so the absence of the
    // others is seen in order.
    for (const x of [a, b, d, outsider]) x.ws.send('end');
    for (const g of Object.values(got)) await waitUntil(() => g.some((m) => m.data === 'end'), 3000, 'the end marker');
    const texts = (p) => got[p].map((m) => m.data);
    assert.deepEqual(texts('/a'), ['from outsider', 'end']);
    assert.deepEqual(texts('/b'), ['from a', 'from outsider', 'end']);
    assert.deepEqual(texts('/d'), ['from a', 'from outsider', 'end']);
    assert.deepEqual(texts('/outsider'), ['end']);

    // A connection alone on its topic publishes to nobody.
    a.ws.subscribe('solo');
    assert.deepEqual(a.ws.publish('solo', 'echo?'), { sent: 0, dropped: 0 });
    assert.deepEqual(a.ws.publish('nobody', 'x'), { sent: 0, dropped: 0 });
  });

  test.it('a publish from a message handler (a chat room) reaches everyone in the room but the sender', async (t) => {
    const $ = scope(t);
    const h = hub($, {}, (ws) => {
      ws.subscribe('room');
      ws.onmessage = (m) => ws.publish('room', `${ws.url}: ${m}`);
    });
    const users = [];
    for (let i = 0; i < 4; i++) users.push(await join($, h, `/u${i}`));
    const got = users.map(({ c }) => collect(c));
    for (let i = 0; i < 4; i++) users[i].c.send(`hi from ${i}`);
    for (const g of got) await until(g, 3);
    await delay(100);
    for (let i = 0; i < 4; i++) {
      const expected = [0, 1, 2, 3].filter((k) => k !== i).map((k) => `/u${k}: hi from ${k}`);
      assert.deepEqual(got[i].map((m) => m.data).sort(), expected.sort(), `user ${i}`);
    }
  });

  test.it('binary: ArrayBuffer and every view go as binary frames of exactly the view\'s bytes (server and ws)', async (t) => {
    const $ = scope(t);
    const h = hub($);
    const sub = await join($, h, '/sub');
    const pub = await join($, h, '/pub');
    sub.ws.subscribe('bin');
    const got = collect(sub.c);

    const backing = new ArrayBuffer(64);
    new Uint8Array(backing).forEach((_, i, a) => (a[i] = i));
    const cases = [
      ['ArrayBuffer', new Uint8Array([1, 2, 3, 250]).buffer, Buffer.from([1, 2, 3, 250])],
      ['Buffer', Buffer.from('binary ünïcode'), Buffer.from('binary ünïcode')],
      ['Uint8Array subarray', new Uint8Array(backing).subarray(10, 20), Buffer.from(backing, 10, 10)],
      ['Uint16Array at an offset', new Uint16Array(backing, 4, 3), Buffer.from(backing, 4, 6)],
      ['Float64Array', new Float64Array([Math.PI, -0]), Buffer.from(new Float64Array([Math.PI, -0]).buffer)],
      ['DataView at an offset', new DataView(backing, 33, 7), Buffer.from(backing, 33, 7)],
      ['Int32Array', new Int32Array([-1, 0x12345678]), Buffer.from(new Int32Array([-1, 0x12345678]).buffer)],
      ['empty Uint8Array', new Uint8Array(0), Buffer.alloc(0)],
      ['Buffer slice of a pooled Buffer', Buffer.from('0123456789').subarray(3, 6), Buffer.from('345')],
    ];
    for (const [name, data] of cases) {
      assert.deepEqual(h.s.publish('bin', data), { sent: 1, dropped: 0 }, `server.publish ${name}`);
      assert.deepEqual(pub.ws.publish('bin', data), { sent: 1, dropped: 0 }, `ws.publish ${name}`);
    }
    await until(got, cases.length * 2);
    await delay(50);
    assert.equal(got.length, cases.length * 2);
    for (const [i, [name, , bytes]] of cases.entries()) {
      for (const k of [0, 1]) {
        const m = got[i * 2 + k];
        assert.equal(m.isBinary, true, `${name} is binary`);
        assert.ok(m.data.equals(bytes), `${name}: ${m.data.toString('hex')} != ${bytes.toString('hex')}`);
      }
    }
  });

  test.it('text: multi-byte UTF-8, the empty string and 1 MiB arrive intact as text', async (t) => {
    const $ = scope(t);
    const h = hub($);
    const subs = [await join($, h, '/1'), await join($, h, '/2'), await join($, h, '/3')];
    for (const { ws } of subs) ws.subscribe('t');
    const got = subs.map(({ c }) => collect(c));
    const big = compressibleText(1 << 20, 7);
    const texts = ['', 'jörg € 😀 日本語', big, '\u0000nul'];
    for (const text of texts) assert.deepEqual(h.s.publish('t', text), { sent: 3, dropped: 0 });
    for (const g of got) await until(g, texts.length, 10000);
    for (const g of got) {
      assert.equal(g.length, texts.length);
      for (const [i, text] of texts.entries()) {
        assert.equal(g[i].isBinary, false);
        assert.equal(g[i].data.length, text.length, `message ${i}`);
        assert.ok(g[i].data === text, `message ${i} differs`);
      }
    }
  });

  test.it('data that is neither a string nor bytes: TypeError ERR_INVALID_ARG_TYPE, and nothing is sent', async (t) => {
    const $ = scope(t);
    const h = hub($);
    const sub = await join($, h, '/sub');
    const pub = await join($, h, '/pub');
    sub.ws.subscribe('t');
    const got = collect(sub.c);
    for (const bad of [42, null, undefined, {}, [1, 2, 3], true, Symbol('x'), () => 'x', new Date(0), 5n]) {
      const what = typeof bad === 'symbol' ? 'symbol' : String(Array.isArray(bad) ? 'array' : typeof bad);
      assertTypeError(() => h.s.publish('t', bad), `server.publish(${what})`);
      assertTypeError(() => pub.ws.publish('t', bad), `ws.publish(${what})`);
    }
    assert.deepEqual(h.s.publish('t', 'only this'), { sent: 1, dropped: 0 });
    await until(got, 1);
    await delay(100);
    assert.deepEqual(got, [{ data: 'only this', isBinary: false }]);
  });

  test.it('server.publish options: an object (local boolean) or nothing; anything else is a TypeError', async (t) => {
    const $ = scope(t);
    const h = hub($);
    const sub = await join($, h, '/sub');
    sub.ws.subscribe('t');
    const got = collect(sub.c);
    for (const bad of [1, 'local', true, Symbol('o')]) {
      assertTypeError(() => h.s.publish('t', 'x', bad), `options ${typeof bad}`);
    }
    for (const bad of [1, 'yes', null, {}]) {
      assertTypeError(() => h.s.publish('t', 'x', { local: bad }), `options.local ${bad === null ? 'null' : typeof bad}`);
    }
    const ok = [undefined, null, {}, { local: true }, { local: false }, { local: undefined }];
    for (const [i, options] of ok.entries()) {
      assert.deepEqual(h.s.publish('t', `m${i}`, options), { sent: 1, dropped: 0 }, JSON.stringify(options));
    }
    await until(got, ok.length);
    await delay(50);
    assert.deepEqual(got.map((m) => m.data), ok.map((_, i) => `m${i}`));
  });

  test.it('topics belong to their server: a publish on one server does not reach the other\'s subscribers', async (t) => {
    const $ = scope(t);
    const h1 = hub($);
    const h2 = hub($);
    const one = await join($, h1, '/one');
    const two = await join($, h2, '/two');
    one.ws.subscribe('shared');
    two.ws.subscribe('shared');
    assert.equal(h1.s.subscriberCount('shared'), 1);
    assert.equal(h2.s.subscriberCount('shared'), 1);
    const g1 = collect(one.c);
    const g2 = collect(two.c);
    assert.deepEqual(h1.s.publish('shared', 'via 1'), { sent: 1, dropped: 0 });
    assert.deepEqual(two.ws.publish('shared', 'via ws 2'), { sent: 0, dropped: 0 });
    assert.deepEqual(h2.s.publish('shared', 'via 2'), { sent: 1, dropped: 0 });
    await until(g1, 1);
    await until(g2, 1);
    await delay(100);
    assert.deepEqual(g1.map((m) => m.data), ['via 1']);
    assert.deepEqual(g2.map((m) => m.data), ['via 2']);
  });
});

// ---------------------------------------------------------------- leaving

test.describe('a closed connection leaves its topics', () => {
  const TOPICS = ['a', 'b', 'c', 'd'];

  async function subscribedPair(t) {
    const $ = scope(t);
    const h = hub($);
    const stay = await join($, h, '/stay');
    const go = await join($, h, '/go');
    for (const topic of TOPICS) {
      stay.ws.subscribe(topic);
      go.ws.subscribe(topic);
    }
    for (const topic of TOPICS) assert.equal(h.s.subscriberCount(topic), 2);
    return { $, h, stay, go };
  }

  async function assertLeft(h, stay, go) {
    for (const topic of TOPICS) assert.equal(h.s.subscriberCount(topic), 1, `subscriberCount(${topic}) at the close event`);
    assert.deepEqual(go.ws.subscriptions, []);
    const got = collect(stay.c);
    assert.deepEqual(h.s.publish('a', 'still here'), { sent: 1, dropped: 0 });
    assert.deepEqual(stay.ws.publish('b', 'nobody else'), { sent: 0, dropped: 0 });
    await until(got, 1);
    assert.equal(got[0].data, 'still here');
  }

  test.it('ws.close()', async (t) => {
    const { h, stay, go } = await subscribedPair(t);
    const closed = nextEvent(go.ws, 'close', 5000);
    go.ws.close();
    await closed;
    await assertLeft(h, stay, go);
  });

  test.it('ws.terminate()', async (t) => {
    const { h, stay, go } = await subscribedPair(t);
    const closed = nextEvent(go.ws, 'close', 5000);
    go.ws.terminate();
    await closed;
    await assertLeft(h, stay, go);
  });

  test.it('the client closes (close frame)', async (t) => {
    const { h, stay, go } = await subscribedPair(t);
    const closed = nextEvent(go.ws, 'close', 5000);
    go.c.close(1000);
    const { args } = await closed;
    assert.equal(args[0], 1000);
    await assertLeft(h, stay, go);
  });

  test.it('the client drops the TCP connection', async (t) => {
    const { h, stay, go } = await subscribedPair(t);
    const closed = nextEvent(go.ws, 'close', 5000);
    go.c.terminate();
    const { args } = await closed;
    assert.equal(args[0], 1006);
    await assertLeft(h, stay, go);
  });

  test.it('a raw client that resets, and a protocol error, leave too', async (t) => {
    const $ = scope(t);
    const h = hub($, {}, (ws) => ws.subscribe('t'));
    const one = await rawJoin($, h, '/one');
    const two = await rawJoin($, h, '/two');
    assert.equal(h.s.subscriberCount('t'), 2);
    const closedOne = nextEvent(one.ws, 'close', 5000);
    one.r.socket.resetAndDestroy();
    await closedOne;
    assert.equal(h.s.subscriberCount('t'), 1);
    const closedTwo = nextEvent(two.ws, 'close', 5000);
    two.ws.on('error', () => {});
    two.r.sendFrame(OP.TEXT, 'unmasked', { mask: false }); // 1002
    const { args } = await closedTwo;
    assert.equal(args[0], 1002);
    assert.equal(h.s.subscriberCount('t'), 0);
    assert.deepEqual(h.s.publish('t', 'x'), { sent: 0, dropped: 0 });
  });

  test.it('many topics on many connections: all counts back to 0 after they close; server.close() empties every topic', async (t) => {
    const $ = scope(t);
    const h = hub($);
    const N = 20;
    const M = 200;
    const conns = [];
    for (let i = 0; i < N; i++) conns.push(await join($, h, `/c${i}`));
    for (const { ws } of conns) for (let k = 0; k < M; k++) ws.subscribe(`topic-${k}`);
    for (let k = 0; k < M; k += 37) assert.equal(h.s.subscriberCount(`topic-${k}`), N);
    // Half close from the client, half terminate on the server.
    const closes = conns.map(({ ws }) => nextEvent(ws, 'close', 5000));
    for (let i = 0; i < N / 2; i++) conns[i].c.close();
    for (let i = N / 2; i < N; i++) conns[i].ws.terminate();
    await Promise.all(closes);
    for (let k = 0; k < M; k++) assert.equal(h.s.subscriberCount(`topic-${k}`), 0, `topic-${k}`);

    // A fresh subscriber, then server.close(): nothing left subscribed.
    const late = await join($, h, '/late');
    late.ws.subscribe('topic-0');
    assert.equal(h.s.subscriberCount('topic-0'), 1);
    const serverClosed = nextEvent(h.s, 'close', 5000);
    h.s.close();
    await serverClosed;
    assert.equal(h.s.subscriberCount('topic-0'), 0);
    assert.deepEqual(late.ws.subscriptions, []);
  });
});

// ---------------------------------------------------------------- backpressure

test.describe('maxBackpressure', () => {
  test.it('a subscriber that stops reading is skipped and counted in dropped; the others get everything, in order', async (t) => {
    const $ = scope(t);
    const LIMIT = 1024;
    const SIZE = 64 * 1024;
    const h = hub($, { maxBackpressure: LIMIT }, (ws) => ws.subscribe('feed'));
    const healthy = [await join($, h, '/h1'), await join($, h, '/h2')];
    const stalled = await rawJoin($, h, '/stalled');
    stalled.r.socket.pause(); // reads nothing from now on
    const got = healthy.map(({ c }) => collect(c));

    const results = [];
    let stalledDrops = 0;
    const payload = (i) => `${String(i).padStart(6, '0')}:${'x'.repeat(SIZE - 7)}`;
    const started = Date.now();
    for (let i = 0; i < 2000 && stalledDrops < 20; i++) {
      const r = h.s.publish('feed', payload(i));
      results.push(r);
      assert.equal(r.sent + r.dropped, 3, `publish ${i}: ${JSON.stringify(r)}`);
      if (r.dropped > 0) stalledDrops++;
      // The healthy clients read: wait until they have this message, so
      // their queues are empty at the next publish.
      for (const g of got) await until(g, i + 1, 5000, `healthy client message ${i}`);
    }
    assert.ok(stalledDrops >= 20, `the stalled subscriber was dropped only ${stalledDrops} times in ${results.length} publishes`);
    assert.ok(Date.now() - started < 60000);
    for (const [i, r] of results.entries()) {
      assert.ok(r.dropped === 0 || r.dropped === 1, `publish ${i}: only the stalled one is dropped: ${JSON.stringify(r)}`);
    }
    // Skipping means its queue did not grow past the limit by more than one message.
    assert.ok(stalled.ws.bufferedAmount <= LIMIT + SIZE + 14, `stalled queue ${stalled.ws.bufferedAmount}`);
    assert.equal(stalled.ws.readyState, readyStates.OPEN, 'dropping does not close the subscriber');

    for (const g of got) {
      assert.equal(g.length, results.length);
      g.forEach((m, i) => assert.ok(m.data === payload(i), `healthy message ${i}`));
    }

    // Once it reads again, the stalled client gets exactly the messages it
    // was not dropped from, whole and in order.
    const expected = results.flatMap((r, i) => (r.dropped === 0 ? [i] : []));
    stalled.r.socket.resume();
    const frames = await rawFrames(stalled.r, expected.length, 20000);
    const seqs = frames.map((f) => {
      assert.equal(f.opcode, OP.TEXT);
      assert.equal(f.fin, true);
      const text = f.payload.toString();
      assert.equal(text.length, SIZE);
      return Number(text.slice(0, 6));
    });
    assert.deepEqual(seqs, expected);
    // And nothing else arrives: the next message is the next publish.
    assert.deepEqual(h.s.publish('feed', 'after'), { sent: 3, dropped: 0 });
    const next = await stalled.r.readFrame(5000);
    assert.equal(next.payload.toString(), 'after');
  });

  test.it('a paused `ws` client does not hold back a burst to the others, and publish never blocks', async (t) => {
    const $ = scope(t);
    const LIMIT = 64 * 1024;
    const h = hub($, { maxBackpressure: LIMIT }, (ws) => ws.subscribe('burst'));
    const paused = await join($, h, '/paused');
    const readers = [];
    for (let i = 0; i < 4; i++) readers.push(await join($, h, `/r${i}`));
    paused.c._socket.pause();
    const got = readers.map(({ c }) => collect(c));
    const chunk = Buffer.alloc(32 * 1024, 0x61);
    let pausedDrops = 0;
    let published = 0;
    const t0 = Date.now();
    // Pace by the readers: each message is read by them before the next.
    for (let i = 0; i < 1000 && pausedDrops < 10; i++) {
      chunk.writeUInt32BE(i, 0);
      const r = h.s.publish('burst', chunk);
      published++;
      assert.equal(r.sent + r.dropped, 5);
      assert.ok(r.dropped <= 1, `only the paused client is dropped: ${JSON.stringify(r)}`);
      pausedDrops += r.dropped;
      for (const g of got) await until(g, i + 1, 5000, `reader message ${i}`);
    }
    assert.ok(pausedDrops >= 10, `paused client dropped ${pausedDrops} times`);
    assert.ok(Date.now() - t0 < 60000);
    assert.ok(paused.ws.bufferedAmount <= LIMIT + chunk.length + 14, `paused queue ${paused.ws.bufferedAmount}`);
    for (const g of got) {
      assert.equal(g.length, published);
      g.forEach((m, i) => {
        assert.equal(m.isBinary, true);
        assert.equal(m.data.length, chunk.length);
        assert.equal(m.data.readUInt32BE(0), i);
      });
    }
    // A burst without pacing: publish returns at once even with the paused
    // client far over its limit.
    const t1 = Date.now();
    for (let i = 0; i < 200; i++) h.s.publish('burst', 'small');
    assert.ok(Date.now() - t1 < 2000, `200 publishes took ${Date.now() - t1} ms`);
  });
});

// ---------------------------------------------------------------- deflate

test.describe('permessage-deflate', () => {
  test.it('each subscriber gets the publish as its connection agreed: compressed (RSV1) or plain, both intact', async (t) => {
    const $ = scope(t);
    const h = hub($, { perMessageDeflate: true }, (ws) => ws.subscribe('z'));
    const deflated = await rawJoin($, h, '/deflate', 'permessage-deflate');
    assert.match(String(deflated.head.headers['sec-websocket-extensions']), /permessage-deflate/);
    const plain = await rawJoin($, h, '/plain');
    assert.equal(plain.head.headers['sec-websocket-extensions'], undefined);
    const text = compressibleText(16 * 1024, 3);
    assert.deepEqual(h.s.publish('z', text), { sent: 2, dropped: 0 });
    const bin = Buffer.from(compressibleText(8 * 1024, 9));
    assert.deepEqual(h.s.publish('z', bin), { sent: 2, dropped: 0 });

    const [fd1, fd2] = await rawFrames(deflated.r, 2);
    assert.equal(fd1.opcode, OP.TEXT);
    assert.equal(fd1.rsv, 4, 'RSV1 on the deflate connection');
    assert.ok(fd1.payload.length < text.length / 2, `compressed to ${fd1.payload.length}`);
    // Context takeover: the second message may refer back to the first.
    const inflate = zlib.createInflateRaw();
    const out = [];
    inflate.on('data', (d) => out.push(d));
    const flush = (payload) =>
      new Promise((resolve, reject) => {
        inflate.once('error', reject);
        inflate.write(Buffer.concat([payload, TAIL]), () => inflate.flush(zlib.constants.Z_SYNC_FLUSH, resolve));
      });
    await flush(fd1.payload);
    assert.equal(Buffer.concat(out.splice(0)).toString(), text);
    assert.equal(fd2.opcode, OP.BINARY);
    assert.equal(fd2.rsv, 4);
    await flush(fd2.payload);
    assert.ok(Buffer.concat(out.splice(0)).equals(bin));
    inflate.close();

    const [fp1, fp2] = await rawFrames(plain.r, 2);
    assert.equal(fp1.rsv, 0, 'no RSV1 without the extension');
    assert.equal(fp1.opcode, OP.TEXT);
    assert.equal(fp1.payload.toString(), text);
    assert.equal(fp2.rsv, 0);
    assert.equal(fp2.opcode, OP.BINARY);
    assert.ok(fp2.payload.equals(bin));
  });

  test.it('`ws` clients with and without deflate on one topic both get every message intact, many in a row', async (t) => {
    const $ = scope(t);
    const h = hub($, { perMessageDeflate: true }, (ws) => ws.subscribe('mix'));
    const withZ = [await join($, h, '/z1'), await join($, h, '/z2')];
    const without = [await join($, h, '/p1', { perMessageDeflate: false }), await join($, h, '/p2', { perMessageDeflate: false })];
    for (const { c, ws } of withZ) {
      assert.match(c.extensions, /permessage-deflate/);
      assert.match(ws.extensions, /permessage-deflate/);
    }
    for (const { c, ws } of without) {
      assert.equal(c.extensions, '');
      assert.equal(ws.extensions, '');
    }
    const all = [...withZ, ...without];
    const got = all.map(({ c }) => collect(c));
    const messages = [];
    for (let i = 0; i < 200; i++) {
      // Above and below the 1024-byte threshold, text and binary.
      const text = `${i}:` + compressibleText(i % 3 === 0 ? 100 : 3000 + i * 7, i + 1);
      messages.push(i % 4 === 3 ? Buffer.from(text) : text);
    }
    for (const [i, m] of messages.entries()) {
      const r = i % 2 === 0 ? h.s.publish('mix', m) : all[0].ws.publish('mix', m);
      assert.deepEqual(r, i % 2 === 0 ? { sent: 4, dropped: 0 } : { sent: 3, dropped: 0 }, `publish ${i}`);
    }
    await until(got[1], messages.length, 10000);
    for (const g of got.slice(2)) await until(g, messages.length, 10000);
    await until(got[0], messages.length / 2, 10000);
    for (const [k, g] of got.entries()) {
      const expected = k === 0 ? messages.filter((_, i) => i % 2 === 0) : messages;
      assert.equal(g.length, expected.length, `client ${k}`);
      g.forEach((m, i) => {
        const e = expected[i];
        if (typeof e === 'string') {
          assert.equal(m.isBinary, false);
          assert.ok(m.data === e, `client ${k} message ${i}`);
        } else {
          assert.equal(m.isBinary, true);
          assert.ok(m.data.equals(e), `client ${k} message ${i}`);
        }
      });
    }
  });
});

test.describe('permessage-deflate without context takeover', () => {
  test.it('subscribers that agreed to serverNoContextTakeover get one shared compressed frame, intact, mixed with others', async (t) => {
    const $ = scope(t);
    const h = hub($, { perMessageDeflate: { serverNoContextTakeover: true, threshold: 64 } }, (ws) => ws.subscribe('nt'));
    const a = await rawJoin($, h, '/a', 'permessage-deflate');
    const b = await rawJoin($, h, '/b', 'permessage-deflate');
    assert.match(String(a.head.headers['sec-websocket-extensions']), /server_no_context_takeover/);
    const plain = await rawJoin($, h, '/plain');
    const big = compressibleText(6 * 1024, 5);
    assert.deepEqual(h.s.publish('nt', big), { sent: 3, dropped: 0 });
    assert.deepEqual(h.s.publish('nt', 'tiny'), { sent: 3, dropped: 0 }, 'below the threshold');
    const bin = Buffer.from(compressibleText(3000, 8));
    assert.deepEqual(h.s.publish('nt', bin), { sent: 3, dropped: 0 });
    const [a1, a2, a3] = await rawFrames(a.r, 3);
    const [b1, b2, b3] = await rawFrames(b.r, 3);
    assert.equal(a1.rsv, 4);
    assert.ok(a1.payload.equals(b1.payload), 'the same compressed bytes for both');
    assert.ok(a1.payload.length < big.length / 2);
    // No context: each message inflates on its own.
    for (const [f, want] of [[a1, big], [b3, bin]]) {
      const out = zlib.inflateRawSync(Buffer.concat([f.payload, TAIL]), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
      assert.ok(out.equals(Buffer.from(want)));
    }
    assert.equal(a2.rsv, 0, 'tiny goes uncompressed');
    assert.equal(a2.payload.toString(), 'tiny');
    assert.equal(b2.payload.toString(), 'tiny');
    assert.equal(a3.opcode, OP.BINARY);
    assert.equal(a3.rsv, 4);
    const [p1, , p3] = await rawFrames(plain.r, 3);
    assert.equal(p1.rsv, 0);
    assert.equal(p1.payload.toString(), big);
    assert.ok(p3.payload.equals(bin));
  });

  test.it('`ws` clients that agreed to no context takeover get many shared frames intact and in order', async (t) => {
    const $ = scope(t);
    const h = hub($, { perMessageDeflate: { serverNoContextTakeover: true, threshold: 0 } }, (ws) => ws.subscribe('nt2'));
    const clients = [await join($, h, '/1'), await join($, h, '/2'), await join($, h, '/3', { perMessageDeflate: false })];
    const got = clients.map(({ c }) => collect(c));
    const messages = Array.from({ length: 100 }, (_, i) => `${i}:` + compressibleText(200 + i * 37, i + 2));
    for (const m of messages) assert.deepEqual(h.s.publish('nt2', m), { sent: 3, dropped: 0 });
    for (const g of got) await until(g, messages.length, 10000);
    for (const g of got) assert.deepEqual(g.map((m) => m.data), messages);
  });
});

// ---------------------------------------------------------------- order

test.describe('ordering', () => {
  test.it('10,000 sequenced publishes reach each of 50 subscribers complete and in order', async (t) => {
    const $ = scope(t);
    const h = hub($, {}, (ws) => ws.subscribe('seq'));
    const N = 50;
    const COUNT = 10000;
    const clients = await Promise.all(Array.from({ length: N }, (_, i) => join($, h, `/s${i}`)));
    assert.equal(h.s.subscriberCount('seq'), N);
    const counts = new Array(N).fill(0);
    const errors = [];
    clients.forEach(({ c }, k) =>
      c.on('message', (d) => {
        const n = Number(String(d));
        if (n !== counts[k] && errors.length < 5) errors.push(`client ${k}: got ${n}, expected ${counts[k]}`);
        counts[k]++;
      }),
    );
    let sent = 0;
    let dropped = 0;
    for (let i = 0; i < COUNT; i++) {
      const r = h.s.publish('seq', String(i));
      sent += r.sent;
      dropped += r.dropped;
    }
    assert.equal(sent, N * COUNT);
    assert.equal(dropped, 0);
    await waitUntil(() => counts.every((n) => n >= COUNT), 30000, 'every message at every subscriber');
    await delay(100);
    assert.deepEqual(errors, []);
    assert.deepEqual(counts, new Array(N).fill(COUNT));
  });

  test.it('publishes interleaved with ws.send to the same connection keep the call order', async (t) => {
    const $ = scope(t);
    const h = hub($, {}, (ws) => ws.subscribe('mixed'));
    const target = await join($, h, '/target');
    const other = await join($, h, '/other');
    const got = collect(target.c);
    const expected = [];
    const COUNT = 3000;
    for (let i = 0; i < COUNT; i++) {
      switch (i % 4) {
        case 0:
          target.ws.send(`send ${i}`);
          expected.push(`send ${i}`);
          break;
        case 1:
          h.s.publish('mixed', `server ${i}`);
          expected.push(`server ${i}`);
          break;
        case 2:
          other.ws.publish('mixed', `other ${i}`);
          expected.push(`other ${i}`);
          break;
        default:
          target.ws.send(Buffer.from(`binary ${i}`));
          h.s.publish('mixed', Buffer.from(`pbin ${i}`));
          expected.push(`binary ${i}`, `pbin ${i}`);
      }
    }
    await until(got, expected.length, 15000);
    await delay(50);
    assert.equal(got.length, expected.length);
    const texts = got.map((m) => String(m.data));
    for (let i = 0; i < expected.length; i++) {
      if (texts[i] !== expected[i]) assert.fail(`message ${i}: ${texts[i]} where ${expected[i]} was expected`);
    }
  });

  test.it('a send callback given after a publish fires after the publish was written', async (t) => {
    const $ = scope(t);
    const h = hub($, {}, (ws) => ws.subscribe('cb'));
    const { c, ws } = await join($, h, '/x');
    const got = collect(c);
    h.s.publish('cb', 'published first');
    const err = await withTimeout(new Promise((resolve) => ws.send('sent second', resolve)), 3000, 'the send callback');
    assert.equal(err, undefined);
    await until(got, 2);
    assert.deepEqual(got.map((m) => m.data), ['published first', 'sent second']);
  });
});

// ---------------------------------------------------------------- workers

// A worker that takes connections posted to `destination`, reports what
// its socket object says about topics, and subscribes / publishes on
// command from its client.
function topicWorker(destination) {
  const code = `
    const { parentPort } = require('node:worker_threads');
    const sack = require(${JSON.stringify(ROOT)});
    sack.Websocket.Thread.accept(${JSON.stringify(destination)}, (destination, ws, data) => {
      parentPort.postMessage({ type: 'arrived', data, readyState: ws.readyState, subscriptions: ws.subscriptions,
        isRoom: ws.isSubscribed('room'), isOther: ws.isSubscribed('other') });
      ws.onmessage = (m) => {
        if (m.startsWith('sub ')) ws.send('subscribed ' + ws.subscribe(m.slice(4)) + ' ' + ws.subscriptions.join(','));
        else if (m.startsWith('unsub ')) ws.send('unsubscribed ' + ws.unsubscribe(m.slice(6)) + ' ' + ws.subscriptions.join(','));
        else if (m.startsWith('pub ')) { const r = ws.publish('room', m.slice(4)); ws.send('published ' + r.sent + ' ' + r.dropped); }
      };
    }, { persistent: true });
    parentPort.postMessage({ type: 'ready' });
  `;
  const worker = new Worker(code, { eval: true });
  const messages = [];
  const waiters = new Set();
  worker.on('message', (m) => {
    messages.push(m);
    for (const w of waiters) w();
  });
  const next = (type, ms = 10000) => {
    let check;
    return withTimeout(
      new Promise((resolve) => {
        check = () => {
          const i = messages.findIndex((m) => m.type === type);
          if (i >= 0) {
            waiters.delete(check);
            resolve(messages.splice(i, 1)[0]);
          }
        };
        waiters.add(check);
        check();
      }),
      ms,
      `worker message ${type}`,
    ).finally(() => waiters.delete(check));
  };
  return { worker, next };
}

test.describe('worker threads', () => {
  test.it('subscriptions survive ws.post(): the receiver sees them, and server.publish on the main thread still reaches the client', async (t) => {
    const $ = scope(t);
    const { worker, next } = topicWorker('topics-open');
    t.after(() => worker.terminate());
    await next('ready');
    const h = hub($);
    const moved = await join($, h, '/moved');
    const stay = await join($, h, '/stay');
    stay.ws.subscribe('room');
    assert.equal(moved.ws.subscribe('room'), true);
    assert.equal(moved.ws.subscribe('other'), true);
    assert.equal(h.s.subscriberCount('room'), 2);
    const got = collect(moved.c);
    const gotStay = collect(stay.c);

    assert.equal(moved.ws.post('topics-open', { user: 'ann' }), true);
    const arrived = await next('arrived');
    assert.deepEqual(arrived.data, { user: 'ann' });
    assert.equal(arrived.readyState, readyStates.OPEN);
    assert.deepEqual(arrived.subscriptions, ['room', 'other']);
    assert.equal(arrived.isRoom, true);
    assert.equal(arrived.isOther, true);

    // The old object: closed here.
    assert.equal(moved.ws.readyState, readyStates.CLOSED);
    assert.throws(() => moved.ws.subscribe('x'), (e) => e.code === 'WS_ERR_NOT_OPEN');
    assert.deepEqual(moved.ws.subscriptions, []);

    // The socket is still subscribed: counted, and published to.
    assert.equal(h.s.subscriberCount('room'), 2);
    assert.equal(h.s.subscriberCount('other'), 1);
    assert.deepEqual(h.s.publish('room', 'after the move'), { sent: 2, dropped: 0 });
    assert.deepEqual(h.s.publish('other', Buffer.from([7, 7])), { sent: 1, dropped: 0 });
    assert.deepEqual(stay.ws.publish('room', 'from stay'), { sent: 1, dropped: 0 });
    await until(got, 3);
    assert.deepEqual(got, [
      { data: 'after the move', isBinary: false },
      { data: Buffer.from([7, 7]), isBinary: true },
      { data: 'from stay', isBinary: false },
    ]);

    // The receiver subscribes, unsubscribes and publishes on its thread.
    moved.c.send('sub worker-topic');
    await until(got, 4);
    assert.equal(got[3].data, 'subscribed true room,other,worker-topic');
    assert.equal(h.s.subscriberCount('worker-topic'), 1);
    assert.deepEqual(h.s.publish('worker-topic', 'to the worker\'s topic'), { sent: 1, dropped: 0 });
    await until(got, 5);
    assert.equal(got[4].data, 'to the worker\'s topic');
    moved.c.send('unsub other');
    await until(got, 6);
    assert.equal(got[5].data, 'unsubscribed true room,worker-topic');
    assert.equal(h.s.subscriberCount('other'), 0);
    moved.c.send('pub hello from the worker');
    await until(got, 7);
    assert.equal(got[6].data, 'published 1 0');
    await until(gotStay, 2);
    assert.deepEqual(gotStay.map((m) => m.data), ['after the move', 'hello from the worker']);

    // When the client goes, the moved socket leaves its topics.
    moved.c.close();
    await clientClosed(moved.c, 5000);
    await waitUntil(() => h.s.subscriberCount('room') === 1, 5000, 'the moved socket to leave "room"');
    assert.equal(h.s.subscriberCount('worker-topic'), 0);
  });

  test.it('subscribed during accept and posted during accept: the receiver has the topic and gets publishes', async (t) => {
    const $ = scope(t);
    const { worker, next } = topicWorker('topics-accept');
    t.after(() => worker.terminate());
    await next('ready');
    const s = $.server();
    let posted;
    s.onaccept = (ws) => {
      ws.subscribe('room');
      posted = ws.post('topics-accept');
    };
    let mainConnect = 0;
    s.on('connect', () => mainConnect++);
    const c = $.client(s, '/accept');
    const got = collect(c);
    await opened(c, 5000);
    const arrived = await next('arrived');
    assert.equal(posted, true);
    assert.deepEqual(arrived.subscriptions, ['room']);
    assert.equal(s.subscriberCount('room'), 1);
    assert.deepEqual(s.publish('room', 'hello'), { sent: 1, dropped: 0 });
    await until(got, 1);
    assert.deepEqual(got, [{ data: 'hello', isBinary: false }]);
    assert.equal(mainConnect, 0);
    // The worker's terminate closes the socket; it leaves the topic.
    const closed = clientClosed(c, 5000);
    await worker.terminate();
    assert.equal((await closed).code, 1001);
    await waitUntil(() => s.subscriberCount('room') === 0, 5000, 'the socket to leave "room"');
  });
});

// ---------------------------------------------------------------- fan-out

test.describe('fan-out', () => {
  test.it('one publish reaches 500 subscribers; ws.publish reaches the 499 others', async (t) => {
    const $ = scope(t);
    const h = hub($, {}, (ws) => ws.subscribe('all'));
    const N = 500;
    const clients = [];
    for (let i = 0; i < N; i += 50) {
      clients.push(...(await Promise.all(Array.from({ length: Math.min(50, N - i) }, (_, k) => join($, h, `/f${i + k}`)))));
    }
    assert.equal(h.s.subscriberCount('all'), N);
    const got = clients.map(({ c }) => collect(c));
    const big = Buffer.from(compressibleText(4096, 5));
    assert.deepEqual(h.s.publish('all', 'to everyone'), { sent: N, dropped: 0 });
    assert.deepEqual(h.s.publish('all', big), { sent: N, dropped: 0 });
    assert.deepEqual(clients[123].ws.publish('all', 'from 123'), { sent: N - 1, dropped: 0 });
    clients[123].ws.send('end');
    assert.deepEqual(h.s.publish('all', 'end'), { sent: N, dropped: 0 });
    await waitUntil(
      () => got.every((g, k) => g.filter((m) => m.data === 'end').length === (k === 123 ? 2 : 1)),
      20000,
      'every subscriber to get the end',
    );
    got.forEach((g, k) => {
      const texts = g.map((m) => (m.isBinary ? 'BIN' : m.data));
      if (k === 123) assert.deepEqual(texts, ['to everyone', 'BIN', 'end', 'end'], `client ${k}`);
      else assert.deepEqual(texts, ['to everyone', 'BIN', 'from 123', 'end'], `client ${k}`);
      assert.ok(g[1].data.equals(big), `client ${k} binary`);
    });
  });
});
