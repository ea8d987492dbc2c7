'use strict';
// The server-side connection (`ws`): fields, readyState, messages, send()
// of every data type, close() rules and the close event, ping/pong,
// block/resume, terminate, noDelay, masking, backpressure and drain,
// protocol errors (1002/1007/1009) and maxPayload.

const test = require('node:test');
const assert = require('node:assert/strict');

const {
  readyStates,
  HOST,
  OP,
  withTimeout,
  delay,
  nextEvent,
  waitUntil,
  scope,
  opened,
  clientClosed,
  clientMessage,
  closePayload,
  encodeFrame,
  upgradeRequest,
  record,
  background,
} = require('./helpers.js');

// Deliveries yield to the event loop through libuv, which sack reaches on
// Linux only; elsewhere a delivery runs to its end.
const FAIR = process.platform === 'linux';
const FAIR_SKIP = 'yielding to the event loop is Linux-only';

// A sack server with one `ws` client connected; returns both ends.
async function pair(t, options = {}, pathname = '/', protocols, clientOptions) {
  const $ = scope(t);
  const s = $.server(options);
  const conn = nextEvent(s, 'connect');
  const c = $.client(s, pathname, protocols, clientOptions);
  await opened(c);
  const ws = (await conn).args[0];
  return { $, s, c, ws };
}

// A sack server with one raw client past the handshake; returns both ends.
async function rawPair(t, options = {}) {
  const $ = scope(t);
  const s = $.server(options);
  const conn = nextEvent(s, 'connect');
  const r = await $.raw(s);
  const head = await r.handshake('/');
  assert.equal(head.statusCode, 101);
  const ws = (await conn).args[0];
  return { $, s, r, ws };
}


test.describe('fields', () => {
  test.it('url is the path without the query; CGI is the decoded query (key without value → null)', async (t) => {
    const { ws } = await pair(t, {}, '/a/b?x=1&name=J%C3%B6rg&flag&sp=a+b&enc=%26%3D');
    assert.equal(ws.url, '/a/b');
    assert.deepEqual({ ...ws.CGI }, { x: '1', name: 'Jörg', flag: null, sp: 'a b', enc: '&=' });
  });

  test.it('CGI is empty without a query', async (t) => {
    const { ws } = await pair(t, {}, '/plain');
    assert.equal(ws.url, '/plain');
    assert.deepEqual({ ...ws.CGI }, {});
  });

  test.it('headers have lower-case names; rawHeaders keeps names as sent', async (t) => {
    const { s, ws } = await pair(t, {}, '/', undefined, { headers: { 'X-Custom-Header': 'Some Value' } });
    assert.equal(ws.headers['x-custom-header'], 'Some Value');
    assert.equal(ws.headers.host, `${HOST}:${s.address().port}`);
    assert.equal(ws.headers.upgrade, 'websocket');
    assert.equal(ws.headers['sec-websocket-version'], '13');
    for (const name of Object.keys(ws.headers)) assert.equal(name, name.toLowerCase());
    assert.ok(Array.isArray(ws.rawHeaders));
    assert.equal(ws.rawHeaders.length % 2, 0);
    const i = ws.rawHeaders.indexOf('X-Custom-Header');
    assert.ok(i >= 0, `rawHeaders ${JSON.stringify(ws.rawHeaders)}`);
    assert.equal(ws.rawHeaders[i + 1], 'Some Value');
  });

  test.it('protocol is "" without a subprotocol; extensions is ""', async (t) => {
    const { ws } = await pair(t);
    assert.equal(ws.protocol, '');
    assert.equal(ws.extensions, '');
  });

  test.it('protocol is the accepted subprotocol', async (t) => {
    const $ = scope(t);
    const s = $.server();
    s.on('accept', () => s.accept('json'));
    const conn = nextEvent(s, 'connect');
    const c = $.client(s, '/', ['xml', 'json']);
    await opened(c);
    const ws = (await conn).args[0];
    assert.equal(ws.protocol, 'json');
    assert.equal(c.protocol, 'json');
  });

  test.it('connection: remote/local addresses, ports, families, hostname, headers', async (t) => {
    const { s, c, ws } = await pair(t);
    const k = ws.connection;
    assert.equal(k.remoteAddress, HOST);
    assert.equal(k.remotePort, c._socket.localPort);
    assert.equal(k.remoteFamily, 'IPv4');
    assert.equal(k.localAddress, HOST);
    assert.equal(k.localPort, s.address().port);
    assert.equal(k.localFamily, 'IPv4');
    assert.equal(k.hostname, null);
    assert.equal(k.headers.host, `${HOST}:${s.address().port}`);
  });
});

test.describe('ordering around close', () => {
  test.it('a message the client sends right before closing arrives before the close event', async (t) => {
    const { c, ws } = await pair(t);
    const log = record(ws);
    c.send('last words');
    c.close(1000, 'done');
    await waitUntil(() => log.some((e) => e[0] === 'close'), 3000, 'close');
    assert.deepEqual(log, [['message', 'last words'], ['close', 1000, 'done']]);
  });

  test.it('a message the server sends right before close() reaches the client before the close frame', async (t) => {
    const { c, ws } = await pair(t);
    const got = [];
    c.on('message', (m) => got.push(m.toString()));
    const cc = clientClosed(c);
    ws.send('bye soon');
    ws.close(1000, 'bye');
    assert.deepEqual(await cc, { code: 1000, reason: 'bye' });
    assert.deepEqual(got, ['bye soon']);
  });

  // RFC 6455 §5.5.1 lets the server finish its messages before it answers
  // a close frame; sack answers once the handlers of the messages before
  // the close have run, so their replies go out first, whether or not the
  // close frame came in the same read (it did not always, before).
  const shown = (frames) =>
    frames.map((f) => [f.opcode, f.opcode === OP.CLOSE ? `${f.code} ${f.reason}` : f.payload.toString()]);

  test.it('a reply to the message just before the client’s close frame (same packet) goes out before the answer', async (t) => {
    const { r, ws } = await rawPair(t);
    const states = [];
    ws.onmessage = (m) => {
      states.push(ws.readyState);
      assert.equal(ws.send(`echo ${m}`), true);
    };
    const closed = nextEvent(ws, 'close');
    r.write(Buffer.concat([encodeFrame(OP.TEXT, 'one'), encodeFrame(OP.TEXT, 'two'), encodeFrame(OP.CLOSE, closePayload(4001, 'bye'))]));
    const frames = [await r.readFrame(), await r.readFrame(), await r.readFrame()];
    assert.deepEqual(
      shown(frames),
      [
        [OP.TEXT, 'echo one'],
        [OP.TEXT, 'echo two'],
        [OP.CLOSE, '4001 bye'],
      ],
    );
    assert.deepEqual(states, [readyStates.OPEN, readyStates.OPEN]);
    assert.deepEqual((await closed).args, [4001, 'bye']);
    await r.waitEnd();
  });

  test.it('once the client’s close frame is seen, readyState is CLOSING and send() drops (false); closed, it throws', async (t) => {
    const { r, ws } = await rawPair(t);
    let later;
    ws.onmessage = () => {
      // After this read's events: the close frame has been seen by then.
      setImmediate(() => {
        later = { state: ws.readyState };
        try {
          later.sent = ws.send('too late');
        } catch (e) {
          later.code = e.code;
        }
      });
    };
    const closed = nextEvent(ws, 'close');
    r.write(Buffer.concat([encodeFrame(OP.TEXT, 'x'), encodeFrame(OP.CLOSE, closePayload(1000))]));
    const f = await r.readFrame();
    assert.equal(f.opcode, OP.CLOSE, 'nothing but the answer to the close');
    await closed;
    // CLOSING (dropped, false), or already CLOSED when the engine finished first (throws).
    if (later.state === readyStates.CLOSING) assert.equal(later.sent, false);
    else {
      assert.equal(later.state, readyStates.CLOSED, `readyState ${later.state}`);
      assert.equal(later.code, 'WS_ERR_NOT_OPEN');
    }
  });

  test.it('a client that half-closes after its close frame still gets the reply and the answer', async (t) => {
    const { r, ws } = await rawPair(t);
    ws.onmessage = (m) => ws.send(`echo ${m}`);
    const closed = nextEvent(ws, 'close');
    r.write(Buffer.concat([encodeFrame(OP.TEXT, 'hi'), encodeFrame(OP.CLOSE, closePayload(1000, 'bye'))]));
    r.socket.end(); // FIN right behind the close frame
    const frames = [await r.readFrame(), await r.readFrame()];
    assert.deepEqual(
      shown(frames),
      [
        [OP.TEXT, 'echo hi'],
        [OP.CLOSE, '1000 bye'],
      ],
    );
    assert.deepEqual((await closed).args, [1000, 'bye']);
  });

  test.it('a client that stops reading after its close frame: the flush is bounded by closeTimeout (close 1006)', async (t) => {
    const { s, r, ws } = await rawPair(t, { closeTimeout: 300 });
    ws.onmessage = () => ws.send(Buffer.alloc(8 << 20)); // more than the socket buffers hold
    const closed = nextEvent(ws, 'close', 5000);
    r.socket.pause();
    r.write(Buffer.concat([encodeFrame(OP.TEXT, 'x'), encodeFrame(OP.CLOSE, closePayload(1000))]));
    assert.deepEqual((await closed).args, [1006, '']);
    await waitUntil(() => s.connections === 0, 3000, 'the connection released');
  });

  test.it('a JS thread busy past closeTimeout: the engine answers the close itself, and a later send is dropped', async (t) => {
    const { r, ws } = await rawPair(t, { closeTimeout: 300 });
    let sent;
    ws.onmessage = () => {
      const until = Date.now() + 900;
      while (Date.now() < until); // busy: the close event waits behind this
      sent = ws.send('late'); // JS has not seen the close yet: accepted, then dropped
    };
    const closed = nextEvent(ws, 'close');
    r.write(Buffer.concat([encodeFrame(OP.TEXT, 'x'), encodeFrame(OP.CLOSE, closePayload(1000))]));
    const f = await r.readFrame();
    assert.equal(f.opcode, OP.CLOSE, `the answer, not ${f.payload}`);
    assert.equal(f.code, 1000);
    assert.equal(sent, false);
    assert.deepEqual((await closed).args, [1000, '']);
  });

  test.it('a ws client that sends and closes at once gets the reply to its last message', async (t) => {
    const { c, ws } = await pair(t);
    ws.onmessage = (m) => ws.send(`re: ${m}`);
    const got = [];
    c.on('message', (m) => got.push(m.toString()));
    const cc = clientClosed(c);
    c.send('last');
    c.close(1000, 'done');
    assert.deepEqual(await cc, { code: 1000, reason: 'done' });
    assert.deepEqual(got, ['re: last']);
  });

  test.it('bufferedAmount is 0 once closed', async (t) => {
    const { ws } = await pair(t);
    const closed = nextEvent(ws, 'close');
    ws.close();
    await closed;
    assert.equal(ws.bufferedAmount, 0);
  });

  test.it('repeated headers are joined with ", " in headers, kept apart in rawHeaders', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const conn = nextEvent(s, 'connect');
    const r = await $.raw(s);
    r.write(upgradeRequest('/').replace('\r\n\r\n', '\r\nX-Dup: a\r\nX-Dup: b\r\n\r\n'));
    assert.equal((await r.readHead()).statusCode, 101);
    const ws = (await conn).args[0];
    assert.equal(ws.headers['x-dup'], 'a, b');
    assert.deepEqual(ws.rawHeaders.filter((_, i) => i % 2 === 0 && ws.rawHeaders[i] === 'X-Dup').length, 2);
  });
});

test.describe('readyState and close', () => {
  test.it('readyState: OPEN at connect, CLOSING after close(), CLOSED at the close event', async (t) => {
    const { c, ws } = await pair(t);
    assert.equal(ws.readyState, readyStates.OPEN);
    assert.equal(ws.OPEN, 1);
    assert.equal(ws.CLOSED, 3);
    const closed = nextEvent(ws, 'close');
    const cc = clientClosed(c);
    ws.close();
    assert.equal(ws.readyState, readyStates.CLOSING);
    const { self, args } = await closed;
    assert.equal(self, ws);
    assert.equal(ws.readyState, readyStates.CLOSED);
    assert.deepEqual(args, [1000, '']);
    assert.deepEqual(await cc, { code: 1000, reason: '' });
  });

  test.it('close() with no code sends 1000', async (t) => {
    const { c, ws } = await pair(t);
    const cc = clientClosed(c);
    ws.close();
    assert.equal((await cc).code, 1000);
  });

  test.it('server closes with code and reason: client sees them, close fires once with them', async (t) => {
    const { c, ws } = await pair(t);
    const calls = [];
    ws.on('close', (...a) => calls.push(a));
    const cc = clientClosed(c);
    ws.close(4003, 'server bye');
    assert.deepEqual(await cc, { code: 4003, reason: 'server bye' });
    await waitUntil(() => calls.length > 0, 3000, 'server close event');
    await delay(200);
    assert.deepEqual(calls, [[4003, 'server bye']]);
  });

  test.it('client closes with code and reason: close fires once with them, the code is echoed', async (t) => {
    const { c, ws } = await pair(t);
    const calls = [];
    ws.on('close', (...a) => calls.push(a));
    const cc = clientClosed(c);
    c.close(4002, 'client bye');
    assert.equal((await cc).code, 4002);
    await waitUntil(() => calls.length > 0, 3000, 'server close event');
    await delay(200);
    assert.deepEqual(calls, [[4002, 'client bye']]);
    assert.equal(ws.readyState, readyStates.CLOSED);
  });

  test.it('onclose = fn / onclose(fn) set the property handler', async (t) => {
    const { c, ws } = await pair(t);
    const calls = [];
    ws.onclose = () => calls.push('replaced');
    ws.onclose((code) => calls.push(code));
    c.close(1000);
    await waitUntil(() => calls.length > 0, 3000, 'close');
    await delay(50);
    assert.deepEqual(calls, [1000]);
  });

  const badCodes = [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 1000.5, -1000, NaN];
  test.it(`close(code) with an invalid code → RangeError (${badCodes.join(', ')}); not a number → TypeError`, async (t) => {
    const { ws } = await pair(t);
    for (const code of badCodes) {
      assert.throws(() => ws.close(code), RangeError, `code ${code}`);
    }
    for (const code of ['1000', '1000x', {}, true]) {
      assert.throws(() => ws.close(code), (e) => e instanceof TypeError && /must be a number/.test(e.message), `code ${String(code)}`);
    }
    assert.equal(ws.readyState, readyStates.OPEN);
  });

  test.it('close(code, reason) with a reason over 123 UTF-8 bytes → RangeError; 123 bytes work', async (t) => {
    const { c, ws } = await pair(t);
    assert.throws(() => ws.close(1000, 'x'.repeat(124)), RangeError);
    assert.throws(() => ws.close(1000, 'é'.repeat(62)), RangeError); // 124 bytes, 62 characters
    assert.equal(ws.readyState, readyStates.OPEN);
    const reason = 'é'.repeat(61) + 'x'; // 123 bytes
    const cc = clientClosed(c);
    ws.close(3000, reason);
    assert.deepEqual(await cc, { code: 3000, reason });
  });

  test.it('send() and ping() while closing drop and return false; once closed they throw WS_ERR_NOT_OPEN', async (t) => {
    const { ws } = await pair(t);
    const closed = nextEvent(ws, 'close');
    ws.close();
    assert.equal(ws.send('x'), false);
    assert.equal(ws.ping(), false);
    assert.throws(() => ws.send(42), (e) => e instanceof TypeError);
    await closed;
    assert.throws(() => ws.send('x'), (e) => e instanceof Error && e.code === 'WS_ERR_NOT_OPEN');
    assert.throws(() => ws.send(new Uint8Array(2)), (e) => e.code === 'WS_ERR_NOT_OPEN');
    assert.throws(() => ws.ping(), (e) => e.code === 'WS_ERR_NOT_OPEN');
    // closing again is harmless
    ws.close();
  });

  test.it('terminate(): the client sees 1006, the close event fires once with 1006', async (t) => {
    const { c, ws } = await pair(t);
    const calls = [];
    ws.on('close', (...a) => calls.push(a));
    const cc = clientClosed(c);
    ws.terminate();
    assert.equal((await cc).code, 1006);
    await waitUntil(() => calls.length > 0, 3000, 'server close event');
    await delay(100);
    assert.equal(calls.length, 1);
    assert.equal(calls[0][0], 1006);
    assert.equal(ws.readyState, readyStates.CLOSED);
  });

  test.it('a client that drops the TCP connection gives close 1006', async (t) => {
    const { c, ws } = await pair(t);
    const closed = nextEvent(ws, 'close');
    c.terminate();
    assert.equal((await closed).args[0], 1006);
  });

  test.it('a client close frame without a code gives close 1005 and an empty close frame back', async (t) => {
    const { r, ws } = await rawPair(t);
    const closed = nextEvent(ws, 'close');
    r.sendFrame(OP.CLOSE, Buffer.alloc(0));
    const f = await r.readFrameOf(OP.CLOSE);
    assert.equal(f.payload.length, 0);
    assert.deepEqual((await closed).args, [1005, '']);
  });
});

test.describe('messages', () => {
  test.it('text arrives as a string, binary as an ArrayBuffer (this = ws)', async (t) => {
    const { c, ws } = await pair(t);
    const got = [];
    ws.on('message', function (m) {
      got.push({ self: this, m });
    });
    c.send('héllo 🌍');
    c.send(Buffer.from([0, 1, 2, 255]));
    c.send('');
    c.send(Buffer.alloc(0));
    await waitUntil(() => got.length === 4, 3000, '4 messages');
    for (const g of got) assert.equal(g.self, ws);
    assert.equal(got[0].m, 'héllo 🌍');
    assert.ok(got[1].m instanceof ArrayBuffer, `binary came as ${Object.prototype.toString.call(got[1].m)}`);
    assert.deepEqual([...new Uint8Array(got[1].m)], [0, 1, 2, 255]);
    assert.equal(got[2].m, '');
    assert.ok(got[3].m instanceof ArrayBuffer);
    assert.equal(got[3].m.byteLength, 0);
  });

  test.it('a 1 MiB binary message arrives intact', async (t) => {
    const { c, ws } = await pair(t);
    const data = Buffer.alloc(1 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 255;
    const got = nextEvent(ws, 'message', 5000);
    c.send(data);
    const m = (await got).args[0];
    assert.ok(m instanceof ArrayBuffer);
    assert.ok(Buffer.from(m).equals(data));
  });

  test.it('a fragmented text message is reassembled, a ping between fragments is answered', async (t) => {
    const { r, ws } = await rawPair(t);
    const got = nextEvent(ws, 'message');
    r.sendFrame(OP.TEXT, 'frag', { fin: false });
    r.sendFrame(OP.PING, 'mid');
    r.sendFrame(OP.CONT, 'men', { fin: false });
    r.sendFrame(OP.CONT, 'ted');
    assert.equal((await got).args[0], 'fragmented');
    const pong = await r.readFrameOf(OP.PONG);
    assert.equal(pong.payload.toString(), 'mid');
  });

  test.it('1000 messages arrive in order', async (t) => {
    const { c, ws } = await pair(t);
    const got = [];
    ws.on('message', (m) => got.push(m));
    for (let i = 0; i < 1000; i++) c.send(String(i));
    await waitUntil(() => got.length === 1000, 5000, '1000 messages');
    assert.deepEqual(got, Array.from({ length: 1000 }, (_, i) => String(i)));
  });

  test.it('a flood of messages for a slow handler leaves the event loop its turns: timers run, in order', { skip: !FAIR && FAIR_SKIP }, async (t) => {
    // 300 messages × 2 ms of handler = 0.6 s of JS. Node's own sockets give
    // the loop a turn after every read; sack's delivery yields after about
    // 10 ms, so a 5 ms interval keeps ticking (without the yield: 0 ticks).
    const { c, ws } = await pair(t);
    const N = 300;
    const got = [];
    let ticks = 0;
    let ticksAtFirst = -1;
    let immediates = 0;
    const interval = setInterval(() => ticks++, 5);
    t.after(() => clearInterval(interval));
    ws.onmessage = (m) => {
      if (got.length === 0) {
        ticksAtFirst = ticks;
        // A setImmediate chain counts loop turns.
        (function spin() {
          if (got.length < N) {
            immediates++;
            setImmediate(spin);
          }
        })();
      }
      got.push(m);
      const until = Date.now() + 2;
      while (Date.now() < until);
    };
    for (let i = 0; i < N; i++) c.send(`m${i}`);
    await waitUntil(() => got.length === N, 10000, `${N} messages`);
    const during = ticks - ticksAtFirst;
    assert.deepEqual(got, Array.from({ length: N }, (_, i) => `m${i}`));
    assert.ok(during >= 10, `interval ticks while the messages were handled: ${during}`);
    assert.ok(immediates >= 10, `loop turns while the messages were handled: ${immediates}`);
  });

  test.it('clients that answer during the handler do not make the turn endless: the budget is per loop turn', { skip: !FAIR && FAIR_SKIP }, async (t) => {
    // Clients in another process answer each reply at once, while the
    // handler (which replies first) still works: the engine queues the next
    // message during every delivery, and Node's threadsafe function calls
    // again in the same loop turn. Each call is short; their sum is not.
    // Without a budget per turn: about 1 tick in 0.5 s.
    const $ = scope(t);
    const s = $.server();
    const CLIENTS = 3;
    const ROUNDS = 60;
    let got = 0;
    let ticks = 0;
    let ticksAtFirst = -1;
    const interval = setInterval(() => ticks++, 5);
    t.after(() => clearInterval(interval));
    s.onconnect = (ws) => {
      ws.onmessage = (m) => {
        if (got++ === 0) ticksAtFirst = ticks;
        ws.send(`r${m}`);
        const until = Date.now() + 3;
        while (Date.now() < until);
      };
    };
    const script = `
      const WebSocket = require(${JSON.stringify(require.resolve('ws'))});
      for (let k = 0; k < ${CLIENTS}; k++) {
        const c = new WebSocket('ws://${HOST}:${s.address().port}');
        let i = 0;
        c.on('open', () => c.send('0'));
        c.on('message', () => (++i < ${ROUNDS} ? c.send(String(i)) : c.close()));
      }`;
    const clients = background(t, script);
    await clients.explain(waitUntil(() => got === CLIENTS * ROUNDS, 15000, `${CLIENTS * ROUNDS} messages`));
    const during = ticks - ticksAtFirst;
    assert.ok(during >= 10, `interval ticks while the messages were handled: ${during}`);
  });

  test.it('onmessage = fn / onmessage(fn) set the single property handler', async (t) => {
    const { c, ws } = await pair(t);
    const calls = [];
    ws.onmessage = () => calls.push('old');
    ws.onmessage((m) => calls.push(`new:${m}`));
    ws.on('message', (m) => calls.push(`on:${m}`));
    c.send('x');
    await waitUntil(() => calls.length >= 2, 3000, 'message');
    await delay(20);
    assert.deepEqual(calls.sort(), ['new:x', 'on:x']);
  });
});

test.describe('send()', () => {
  async function received(c, n) {
    const out = [];
    await withTimeout(
      new Promise((resolve) => {
        c.on('message', (data, isBinary) => {
          out.push({ data: Buffer.from(data), isBinary });
          if (out.length === n) resolve();
        });
      }),
      3000,
      `${n} client messages`,
    );
    return out;
  }

  test.it('string → text; ArrayBuffer, Buffer, TypedArray subrange, DataView → binary of exactly the view bytes', async (t) => {
    const { c, ws } = await pair(t);
    const bytes = new Uint8Array(32).map((_, i) => i);
    const ab = bytes.buffer;
    const pooled = Buffer.from('abc'); // a small Buffer lives inside a larger pool
    const sends = [
      'text ✓',
      ab,
      pooled,
      Buffer.from(ab).subarray(5, 9),
      new Uint16Array(ab, 4, 3), // bytes 4..9
      new Float64Array(ab, 8, 2), // bytes 8..23
      new DataView(ab, 3, 5), // bytes 3..7
      new Uint8Array(0),
    ];
    const p = received(c, sends.length);
    for (const d of sends) assert.equal(ws.send(d), true);
    const got = await p;
    assert.equal(got[0].isBinary, false);
    assert.equal(got[0].data.toString(), 'text ✓');
    const expect = [
      [...bytes],
      [...Buffer.from('abc')],
      [5, 6, 7, 8],
      [4, 5, 6, 7, 8, 9],
      [...bytes.subarray(8, 24)],
      [3, 4, 5, 6, 7],
      [],
    ];
    for (let i = 0; i < expect.length; i++) {
      assert.equal(got[i + 1].isBinary, true, `message ${i + 1} is binary`);
      assert.deepEqual([...got[i + 1].data], expect[i], `message ${i + 1} (${Object.prototype.toString.call(sends[i + 1])})`);
    }
  });

  test.it('send() of any other type → TypeError, nothing is sent', async (t) => {
    const { c, ws } = await pair(t);
    let got = 0;
    c.on('message', () => got++);
    for (const bad of [123, true, null, undefined, {}, [1, 2], Symbol('s'), () => {}, 10n]) {
      assert.throws(() => ws.send(bad), TypeError, `send(${typeof bad})`);
    }
    await delay(100);
    assert.equal(got, 0);
    assert.equal(ws.readyState, readyStates.OPEN);
  });

  test.it('a message sent by the server arrives exactly once, in order with others', async (t) => {
    const { c, ws } = await pair(t);
    const p = received(c, 3);
    ws.send('1');
    ws.send(Buffer.from('2'));
    ws.send('3');
    const got = await p;
    assert.deepEqual(got.map((g) => g.data.toString()), ['1', '2', '3']);
  });
});

test.describe('frame sizes and volume', () => {
  const sizes = [0, 1, 125, 126, 127, 65535, 65536, 70000];

  test.it(`server frames use the right length encoding (${sizes.join(', ')} bytes)`, async (t) => {
    const { r, ws } = await rawPair(t);
    for (const n of sizes) {
      const data = Buffer.alloc(n);
      for (let i = 0; i < n; i++) data[i] = (i * 31 + n) & 255;
      ws.send(data);
      const f = await r.readFrame();
      assert.equal(f.opcode, OP.BINARY);
      assert.equal(f.fin, true);
      assert.equal(f.rsv, 0);
      assert.equal(f.masked, false);
      assert.equal(f.payload.length, n, `size ${n}`);
      assert.ok(f.payload.equals(data), `content of size ${n}`);
      // shortest form (§5.2): 7-bit, then 16-bit, then 64-bit length
      assert.equal(f.lenCode, n < 126 ? n : n < 65536 ? 126 : 127, `length encoding of size ${n}`);
    }
  });

  test.it(`client frames of every length class are received (${sizes.join(', ')} bytes)`, async (t) => {
    const { r, ws } = await rawPair(t);
    const got = [];
    ws.on('message', (m) => got.push(Buffer.from(m)));
    const sent = sizes.map((n) => Buffer.alloc(n, n & 255));
    for (const d of sent) r.sendFrame(OP.BINARY, d);
    await waitUntil(() => got.length === sent.length, 3000, 'all sizes');
    for (let i = 0; i < sent.length; i++) assert.ok(got[i].equals(sent[i]), `size ${sizes[i]}`);
  });

  test.it('a 5 MiB message from the server reaches a ws client intact', async (t) => {
    const { c, ws } = await pair(t);
    const data = Buffer.alloc(5 << 20);
    for (let i = 0; i < data.length; i += 4096) data[i] = (i >> 12) & 255;
    const got = clientMessage(c, 10000);
    ws.send(data);
    const m = (await got).data;
    assert.equal(m.length, data.length);
    assert.ok(Buffer.from(m).equals(data));
  });

  test.it('30 concurrent clients × 30 messages are echoed to the right client, in order', async (t) => {
    const $ = scope(t);
    const s = $.server();
    s.on('connect', (ws) => ws.on('message', (m) => ws.send(`${ws.url}:${m}`)));
    const clients = Array.from({ length: 30 }, (_, i) => $.client(s, `/c${i}`));
    await Promise.all(clients.map((c) => opened(c, 5000)));
    const results = await Promise.all(
      clients.map(
        (c, i) =>
          new Promise((resolve) => {
            const got = [];
            c.on('message', (m) => {
              got.push(m.toString());
              if (got.length === 30) resolve(got);
            });
            for (let k = 0; k < 30; k++) c.send(String(k));
          }),
      ).map((p) => withTimeout(p, 8000, 'echoes')),
    );
    results.forEach((got, i) => {
      assert.deepEqual(got, Array.from({ length: 30 }, (_, k) => `/c${i}:${k}`));
    });
    assert.equal(s.connections, 30);
  });
});

test.describe('ping and pong', () => {
  test.it('ws.ping(data): the client receives the ping, its pong fires the pong event', async (t) => {
    const { c, ws } = await pair(t);
    const clientPing = withTimeout(new Promise((resolve) => c.once('ping', resolve)), 3000, 'client ping');
    const pong = nextEvent(ws, 'pong');
    ws.ping('hello');
    assert.equal((await clientPing).toString(), 'hello');
    const { self, args } = await pong;
    assert.equal(self, ws);
    const data = args[0];
    assert.ok(data instanceof ArrayBuffer, 'pong data is an ArrayBuffer');
    assert.equal(Buffer.from(data).toString(), 'hello');
  });

  test.it('ws.ping() without data sends an empty ping', async (t) => {
    const { c, ws } = await pair(t);
    const clientPing = withTimeout(new Promise((resolve) => c.once('ping', resolve)), 3000, 'client ping');
    ws.ping();
    assert.equal((await clientPing).length, 0);
  });

  test.it('ws.ping() with more than 125 bytes → RangeError', async (t) => {
    const { ws } = await pair(t);
    assert.throws(() => ws.ping(Buffer.alloc(126)), RangeError);
  });

  test.it('a client ping is answered with a pong automatically', async (t) => {
    const { c } = await pair(t);
    const pong = withTimeout(new Promise((resolve) => c.once('pong', resolve)), 3000, 'client pong');
    c.ping('abc');
    assert.equal((await pong).toString(), 'abc');
  });

  test.it('pingInterval: the server pings an idle connection and closes it when no pong comes', async (t) => {
    const { r, ws } = await rawPair(t, { pingInterval: 200 });
    const closed = nextEvent(ws, 'close', 3000);
    const ping = await r.readFrameOf(OP.PING, 2000);
    assert.equal(ping.opcode, OP.PING);
    // never answer: the server gives up after the next interval
    await closed;
  });
});

test.describe('block, resume, noDelay', () => {
  test.it('no message is delivered while blocked; all arrive, in order, after resume()', async (t) => {
    const { c, ws } = await pair(t);
    const got = [];
    ws.on('message', (m) => got.push(m));
    ws.block();
    const ready = clientMessage(c);
    ws.send('blocked');
    await ready;
    c.send('1');
    c.send('2');
    c.send('3');
    await delay(300);
    assert.deepEqual(got, [], 'messages delivered while blocked');
    ws.resume();
    await waitUntil(() => got.length === 3, 3000, 'messages after resume');
    assert.deepEqual(got, ['1', '2', '3']);
  });

  test.it('noDelay can be turned off and on; the connection keeps working', async (t) => {
    const { c, ws } = await pair(t);
    ws.noDelay = false;
    assert.equal(ws.noDelay, false);
    let got = clientMessage(c);
    ws.send('a');
    assert.equal((await got).data.toString(), 'a');
    ws.noDelay = true;
    assert.equal(ws.noDelay, true);
    got = clientMessage(c);
    ws.send('b');
    assert.equal((await got).data.toString(), 'b');
  });
});

test.describe('masking option', () => {
  test.it('masking: true → server frames carry the mask bit and unmask to the data', async (t) => {
    const { r, ws } = await rawPair(t, { masking: true });
    ws.send('hello masked');
    const f = await r.readFrame();
    assert.equal(f.opcode, OP.TEXT);
    assert.equal(f.masked, true);
    assert.equal(f.payload.toString(), 'hello masked');
    ws.send(Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9]));
    const g = await r.readFrame();
    assert.equal(g.opcode, OP.BINARY);
    assert.equal(g.masked, true);
    assert.deepEqual([...g.payload], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    ws.ping('pp');
    const p = await r.readFrame();
    assert.equal(p.opcode, OP.PING);
    assert.equal(p.masked, true);
    assert.equal(p.payload.toString(), 'pp');
    ws.close(4000, 'masked close');
    const cl = await r.readFrame();
    assert.equal(cl.opcode, OP.CLOSE);
    assert.equal(cl.masked, true);
    assert.equal(cl.code, 4000);
    assert.equal(cl.reason, 'masked close');
  });

  test.it('default (masking off) → server frames are not masked', async (t) => {
    const { r, ws } = await rawPair(t);
    ws.send('plain');
    const f = await r.readFrame();
    assert.equal(f.masked, false);
    assert.equal(f.payload.toString(), 'plain');
  });
});

test.describe('backpressure', () => {
  test.it('send() returns true under maxBackpressure; bufferedAmount is 0 when idle', async (t) => {
    const { c, ws } = await pair(t, { maxBackpressure: 64 * 1024 });
    assert.equal(ws.bufferedAmount, 0);
    const got = clientMessage(c);
    assert.equal(ws.send('small'), true);
    await got;
    await waitUntil(() => ws.bufferedAmount === 0, 3000, 'bufferedAmount back to 0');
  });

  test.it('send() returns false above maxBackpressure, bufferedAmount grows, drain fires when it falls back', async (t) => {
    const limit = 64 * 1024;
    const { r, ws } = await rawPair(t, { maxBackpressure: limit });
    r.countOnly();
    r.socket.pause(); // the client stops reading: the server's queue fills
    const chunk = Buffer.alloc(256 * 1024, 0x61);
    const frameSize = chunk.length + 10; // 64-bit length header, unmasked
    let sent = 0;
    let full = false;
    for (let i = 0; i < 400 && !full; i++) {
      full = ws.send(chunk) === false;
      sent++;
    }
    assert.equal(full, true, 'send() never returned false');
    assert.ok(ws.bufferedAmount >= limit, `bufferedAmount ${ws.bufferedAmount} < ${limit}`);
    const drained = nextEvent(ws, 'drain', 10000);
    r.socket.resume();
    const { self } = await drained;
    assert.equal(self, ws);
    assert.ok(ws.bufferedAmount < limit, `bufferedAmount ${ws.bufferedAmount} after drain`);
    // everything queued reaches the client
    await r.waitFor((x) => (x.count >= sent * frameSize ? true : undefined), 10000, 'all queued bytes');
    assert.equal(r.count, sent * frameSize);
  });

  test.it('maxBackpressure 0: a send() that leaves bytes queued returns false, and drain fires once the queue is empty', async (t) => {
    const { r, ws } = await rawPair(t, { maxBackpressure: 0 });
    r.countOnly();
    r.socket.pause(); // the client stops reading: sends start to queue
    const chunk = Buffer.alloc(256 * 1024, 0x61);
    let full = false;
    for (let i = 0; i < 400 && !full; i++) full = ws.send(chunk) === false;
    assert.equal(full, true, 'send() never returned false');
    const drained = nextEvent(ws, 'drain', 10000);
    r.socket.resume();
    await drained;
    assert.equal(ws.bufferedAmount, 0);
  });
});

test.describe('protocol errors', () => {
  // Sends `bytes` after the handshake; returns the error event, the close
  // frame the server sent, and the close event.
  async function violate(t, bytes, options) {
    const { r, ws } = await rawPair(t, options);
    const log = record(ws);
    const closed = nextEvent(ws, 'close');
    r.write(bytes);
    const frame = await r.readFrameOf(OP.CLOSE);
    const close = await closed;
    await r.waitEnd(3000); // the server ends the TCP connection
    const errors = log.filter((e) => e[0] === 'error');
    return { ws, log, frame, close: close.args, errors };
  }

  const cases = [
    ['an unmasked client frame', encodeFrame(OP.TEXT, 'hi', { mask: false }), 'WS_ERR_PROTOCOL', 1002],
    ['invalid UTF-8 in a text message', encodeFrame(OP.TEXT, Buffer.from([0x68, 0xc3, 0x28])), 'WS_ERR_INVALID_UTF8', 1007],
    [
      'invalid UTF-8 split across fragments',
      Buffer.concat([encodeFrame(OP.TEXT, Buffer.from([0x61, 0xf0, 0x9f]), { fin: false }), encodeFrame(OP.CONT, Buffer.from([0x41]))]),
      'WS_ERR_INVALID_UTF8',
      1007,
    ],
    ['a reserved opcode (3)', encodeFrame(3, 'x'), 'WS_ERR_PROTOCOL', 1002],
    ['a reserved control opcode (0xB)', encodeFrame(0xb, 'x'), 'WS_ERR_PROTOCOL', 1002],
    ['RSV1 without an extension', encodeFrame(OP.TEXT, 'x', { rsv: 4 }), 'WS_ERR_PROTOCOL', 1002],
    ['RSV2', encodeFrame(OP.TEXT, 'x', { rsv: 2 }), 'WS_ERR_PROTOCOL', 1002],
    ['a fragmented ping', encodeFrame(OP.PING, 'x', { fin: false }), 'WS_ERR_PROTOCOL', 1002],
    ['a ping over 125 bytes', encodeFrame(OP.PING, Buffer.alloc(126)), 'WS_ERR_PROTOCOL', 1002],
    ['a continuation without a message', encodeFrame(OP.CONT, 'x'), 'WS_ERR_PROTOCOL', 1002],
    [
      'a new message inside a fragmented one',
      Buffer.concat([encodeFrame(OP.TEXT, 'a', { fin: false }), encodeFrame(OP.TEXT, 'b')]),
      'WS_ERR_PROTOCOL',
      1002,
    ],
    ['a close frame with a 1-byte payload', encodeFrame(OP.CLOSE, Buffer.from([3])), 'WS_ERR_PROTOCOL', 1002],
    ['a close frame with code 999', encodeFrame(OP.CLOSE, closePayload(999)), 'WS_ERR_PROTOCOL', 1002],
    ['a close frame with code 1005', encodeFrame(OP.CLOSE, closePayload(1005)), 'WS_ERR_PROTOCOL', 1002],
    ['a close reason that is not UTF-8', encodeFrame(OP.CLOSE, closePayload(1000, Buffer.from([0xff, 0xfe]))), 'WS_ERR_INVALID_UTF8', 1007],
    ['a close frame with code 1004', encodeFrame(OP.CLOSE, closePayload(1004)), 'WS_ERR_PROTOCOL', 1002],
    ['a close frame with code 1006', encodeFrame(OP.CLOSE, closePayload(1006)), 'WS_ERR_PROTOCOL', 1002],
    ['a close frame with code 1015', encodeFrame(OP.CLOSE, closePayload(1015)), 'WS_ERR_PROTOCOL', 1002],
    ['a close frame with code 2000', encodeFrame(OP.CLOSE, closePayload(2000)), 'WS_ERR_PROTOCOL', 1002],
    ['a close frame with code 5000', encodeFrame(OP.CLOSE, closePayload(5000)), 'WS_ERR_PROTOCOL', 1002],
    ['a UTF-16 surrogate in text (ED A0 80)', encodeFrame(OP.TEXT, Buffer.from([0xed, 0xa0, 0x80])), 'WS_ERR_INVALID_UTF8', 1007],
    ['an overlong UTF-8 encoding (C0 AF)', encodeFrame(OP.TEXT, Buffer.from([0xc0, 0xaf])), 'WS_ERR_INVALID_UTF8', 1007],
    ['a code point above U+10FFFF (F4 90 80 80)', encodeFrame(OP.TEXT, Buffer.from([0xf4, 0x90, 0x80, 0x80])), 'WS_ERR_INVALID_UTF8', 1007],
    ['a text message ending inside a character', encodeFrame(OP.TEXT, Buffer.from([0x61, 0xe2, 0x82])), 'WS_ERR_INVALID_UTF8', 1007],
    [
      'a 64-bit length with the top bit set',
      Buffer.from([0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4]),
      'WS_ERR_PROTOCOL',
      1002,
    ],
  ];
  for (const [name, bytes, code, closeCode] of cases) {
    test.it(`${name} → error ${code}, close ${closeCode}`, async (t) => {
      const { ws, log, frame, close, errors } = await violate(t, bytes);
      assert.equal(errors.length, 1, `error events: ${JSON.stringify(log.map((e) => e[0]))}`);
      const err = errors[0][1];
      assert.ok(err instanceof Error);
      assert.equal(err.code, code);
      assert.equal(frame.code, closeCode, 'close frame code on the wire');
      assert.equal(close[0], closeCode, 'close event code');
      assert.equal(ws.readyState, readyStates.CLOSED);
      assert.equal(typeof err.message, 'string');
      // the error comes before the close, no message was delivered
      assert.deepEqual(log.map((e) => e[0]), ['error', 'close']);
    });
  }

  test.it('valid close codes from the client are accepted and reported (1000–1003, 1007–1014, 3000, 4999)', async (t) => {
    for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999]) {
      const { r, ws } = await rawPair(t);
      const log = record(ws);
      const closed = nextEvent(ws, 'close');
      r.sendFrame(OP.CLOSE, closePayload(code, 'why'));
      const f = await r.readFrameOf(OP.CLOSE);
      assert.equal(f.code, code, `echo of ${code}`);
      assert.deepEqual((await closed).args, [code, 'why']);
      assert.deepEqual(log.map((e) => e[0]), ['close'], `events for ${code}`);
      r.destroy();
    }
  });

  test.it('valid UTF-8 split inside a character across fragments is accepted', async (t) => {
    const { r, ws } = await rawPair(t);
    const got = nextEvent(ws, 'message');
    const bytes = Buffer.from('a🌍é');
    r.sendFrame(OP.TEXT, bytes.subarray(0, 3), { fin: false }); // 'a' + 2 of 4 bytes
    r.sendFrame(OP.CONT, bytes.subarray(3, 6), { fin: false }); // rest of 🌍 + first byte of é
    r.sendFrame(OP.CONT, bytes.subarray(6));
    assert.equal((await got).args[0], 'a🌍é');
  });

  test.it('a ping of exactly 125 bytes is answered', async (t) => {
    const { r } = await rawPair(t);
    r.sendFrame(OP.PING, Buffer.alloc(125, 0x2a));
    const f = await r.readFrameOf(OP.PONG);
    assert.ok(f.payload.equals(Buffer.alloc(125, 0x2a)));
  });

  test.it('maxPayload: a message of exactly maxPayload bytes passes, one byte more → WS_ERR_MESSAGE_TOO_BIG, 1009', async (t) => {
    const { r, ws } = await rawPair(t, { maxPayload: 100 });
    const log = record(ws);
    const closed = nextEvent(ws, 'close');
    r.sendFrame(OP.BINARY, Buffer.alloc(100, 1));
    await waitUntil(() => log.length > 0, 3000, 'the 100-byte message');
    assert.equal(log[0][0], 'message');
    assert.equal(log[0][1].byteLength, 100);
    r.sendFrame(OP.BINARY, Buffer.alloc(101, 1));
    const frame = await r.readFrameOf(OP.CLOSE);
    assert.equal(frame.code, 1009);
    assert.equal((await closed).args[0], 1009);
    const kinds = log.map((e) => e[0]);
    assert.deepEqual(kinds, ['message', 'error', 'close']);
    assert.equal(log[1][1].code, 'WS_ERR_MESSAGE_TOO_BIG');
  });

  test.it('maxPayload counts a fragmented message as a whole', async (t) => {
    const { r, ws } = await rawPair(t, { maxPayload: 100 });
    const log = record(ws);
    const closed = nextEvent(ws, 'close');
    r.sendFrame(OP.TEXT, 'a'.repeat(60), { fin: false });
    r.sendFrame(OP.CONT, 'b'.repeat(60));
    const frame = await r.readFrameOf(OP.CLOSE);
    assert.equal(frame.code, 1009);
    assert.equal((await closed).args[0], 1009);
    assert.deepEqual(log.map((e) => e[0]), ['error', 'close']);
    assert.equal(log[0][1].code, 'WS_ERR_MESSAGE_TOO_BIG');
  });

  test.it('maxPayload with a ws client: the client is closed with 1009', async (t) => {
    const { c, ws } = await pair(t, { maxPayload: 1024 });
    const errored = nextEvent(ws, 'error');
    const cc = clientClosed(c);
    c.send(Buffer.alloc(2048));
    assert.equal((await errored).args[0].code, 'WS_ERR_MESSAGE_TOO_BIG');
    assert.equal((await cc).code, 1009);
  });
});

test.describe('permessage-deflate options', () => {
  const zlib = require('node:zlib');
  const PMD = 'permessage-deflate; client_max_window_bits';

  // Compressed payload of one message, as a client sends it (§7.2.1).
  function deflate(data) {
    const out = zlib.deflateRawSync(Buffer.from(data), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    return out.subarray(0, out.length - 4); // drop 00 00 ff ff
  }
  const inflate = (payload) =>
    zlib.inflateRawSync(Buffer.concat([payload, Buffer.from([0, 0, 0xff, 0xff])]), { finishFlush: zlib.constants.Z_SYNC_FLUSH });

  async function rawDeflatePair(t, options) {
    const $ = scope(t);
    const s = $.server(options);
    const conn = nextEvent(s, 'connect');
    const r = await $.raw(s);
    const head = await r.handshake('/', { 'Sec-WebSocket-Extensions': PMD });
    assert.equal(head.statusCode, 101);
    const ws = (await conn).args[0];
    return { s, r, ws, head };
  }

  test.it('default: an offered permessage-deflate is not negotiated', async (t) => {
    const { r, ws, head } = await rawDeflatePair(t, {});
    assert.equal(head.headers['sec-websocket-extensions'], undefined);
    assert.equal(ws.extensions, '');
    ws.send('x'.repeat(5000));
    const f = await r.readFrame();
    assert.equal(f.rsv, 0);
    assert.equal(f.payload.toString(), 'x'.repeat(5000));
  });

  test.it('perMessageDeflate: true with a ws client: negotiated, messages round-trip both ways', async (t) => {
    const { c, ws } = await pair(t, { perMessageDeflate: true });
    assert.match(c.extensions, /permessage-deflate/);
    assert.match(ws.extensions, /permessage-deflate/);
    const text = 'compress me please '.repeat(5000);
    const got = nextEvent(ws, 'message');
    c.send(text);
    assert.equal((await got).args[0], text);
    const back = clientMessage(c);
    ws.send(text);
    assert.equal((await back).data.toString(), text);
  });

  test.it('perMessageDeflate: true → large server messages go out compressed (RSV1) and inflate to the data', async (t) => {
    const { r, ws, head } = await rawDeflatePair(t, { perMessageDeflate: true });
    assert.match(head.headers['sec-websocket-extensions'], /^permessage-deflate/);
    const text = 'abcabcabc'.repeat(2000);
    ws.send(text);
    const f = await r.readFrame();
    assert.equal(f.opcode, OP.TEXT);
    assert.equal(f.rsv, 4, 'RSV1 set on a compressed message');
    assert.ok(f.payload.length < text.length);
    assert.equal(inflate(f.payload).toString(), text);
    // and a compressed client message is inflated
    const got = nextEvent(ws, 'message');
    r.sendFrame(OP.TEXT, deflate('hello deflate'), { rsv: 4 });
    assert.equal((await got).args[0], 'hello deflate');
  });

  test.it('perMessageDeflateAllow: negotiated, incoming inflated, outgoing never compressed', async (t) => {
    const { r, ws, head } = await rawDeflatePair(t, { perMessageDeflateAllow: true });
    assert.match(head.headers['sec-websocket-extensions'], /^permessage-deflate/);
    const got = nextEvent(ws, 'message');
    r.sendFrame(OP.TEXT, deflate('z'.repeat(3000)), { rsv: 4 });
    assert.equal((await got).args[0], 'z'.repeat(3000));
    const text = 'abcabcabc'.repeat(2000);
    ws.send(text);
    const f = await r.readFrame();
    assert.equal(f.rsv, 0, 'an outgoing frame was compressed');
    assert.equal(f.payload.toString(), text);
  });

  test.it('inflating past maxPayload closes with 1009 (no decompression bomb)', async (t) => {
    const { r, ws } = await rawDeflatePair(t, { perMessageDeflate: true, maxPayload: 1000 });
    const log = record(ws);
    const closed = nextEvent(ws, 'close');
    const bomb = deflate(Buffer.alloc(1 << 20)); // 1 MiB of zeros, ~1 KiB compressed
    r.sendFrame(OP.BINARY, bomb, { rsv: 4 });
    const f = await r.readFrameOf(OP.CLOSE);
    assert.equal(f.code, 1009);
    assert.equal((await closed).args[0], 1009);
    assert.equal(log[0][0], 'error');
    assert.equal(log[0][1].code, 'WS_ERR_MESSAGE_TOO_BIG');
  });
});
