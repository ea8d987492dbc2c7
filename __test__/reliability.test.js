'use strict';
// Reliability: keepalive pings keep healthy clients and end silent ones; a
// client that leaves while an (async) accept decision is pending crashes
// nothing and is noticed; an undecided or failing accept handler still gets
// the client an answer; server shutdown never throws from a handler and
// always finishes, even with HTTP requests nobody answers.

const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');

const {
  sack,
  readyStates,
  HOST,
  OP,
  nextEvent,
  waitUntil,
  scope,
  opened,
  clientClosed,
  clientMessage,
  encodeFrame,
  decodeFrame,
  upgradeRequest,
  closeServer,
  runNode,
} = require('./helpers.js');

/**
 * A server with `options` and `n` raw clients past the handshake, opened one
 * after the other (so each client's server-side ws is known). Returns
 * { s, pairs: [{ r, ws, openedAt }] }.
 */
async function rawClients(t, options, n = 1) {
  const $ = scope(t);
  const s = $.server(options);
  const pairs = [];
  for (let i = 0; i < n; i++) {
    const conn = nextEvent(s, 'connect');
    const r = await $.raw(s);
    const head = await r.handshake('/');
    assert.equal(head.statusCode, 101);
    const openedAt = Date.now();
    pairs.push({ r, ws: (await conn).args[0], openedAt });
  }
  return { s, pairs };
}

/**
 * Reads frames from raw client `r` until `until` (a Date.now() time),
 * answering each ping with a masked pong `lag` ms later (0: at once).
 * Resolves with the number of pings seen; rejects when the server sends a
 * close frame or ends the socket.
 */
async function answerPings(r, lag, until) {
  let pings = 0;
  for (let i = 0; i < 10000 && Date.now() < until; i++) {
    let f;
    try {
      f = await r.readFrame(Math.max(1, until - Date.now()));
    } catch (e) {
      if (r.ended || r.closed) throw new Error(`the server ended the socket after ${pings} pings (pong lag ${lag} ms)`);
      if (/timed out/.test(e.message)) break;
      throw e;
    }
    if (f.opcode === OP.CLOSE) {
      throw new Error(`the server closed (${f.code} "${f.reason}") after ${pings} pings (pong lag ${lag} ms)`);
    }
    if (f.opcode !== OP.PING) continue;
    pings++;
    const pong = encodeFrame(OP.PONG, f.payload);
    if (lag === 0) r.write(pong);
    else setTimeout(() => !r.socket.destroyed && r.write(pong), lag);
  }
  return pings;
}

// Every frame at the start of `buf` (whole ones only).
function framesIn(buf) {
  const frames = [];
  for (let i = 0; i < 1000; i++) {
    const f = decodeFrame(buf);
    if (!f) break;
    frames.push(f);
    buf = buf.subarray(f.length);
  }
  return frames;
}

const PING_INTERVAL = 300;

test.describe('pingInterval keeps healthy clients', () => {
  test.it('a ws client (auto-pong) stays open over 10 intervals and sees the pings', async (t) => {
    const $ = scope(t);
    const s = $.server({ pingInterval: PING_INTERVAL });
    const conn = nextEvent(s, 'connect');
    const c = $.client(s);
    let pings = 0;
    c.on('ping', () => pings++);
    let clientClose = null;
    c.on('close', (code, reason) => (clientClose = { code, reason: reason.toString() }));
    await opened(c);
    const ws = (await conn).args[0];
    let serverClose = null;
    ws.on('close', (code, reason) => (serverClose = { code, reason }));
    ws.on('message', (m) => ws.send(`echo:${m}`));

    // 10 intervals, cut short if the client is closed
    const until = Date.now() + 10 * PING_INTERVAL + 300;
    await waitUntil(() => clientClose !== null || Date.now() >= until, 10 * PING_INTERVAL + 1000, 'the end of the window');
    assert.equal(clientClose, null, `the client was closed after ${pings} pings: ${JSON.stringify(clientClose)}; server side: ${JSON.stringify(serverClose)}`);
    assert.equal(serverClose, null, 'the server-side ws closed');
    assert.equal(ws.readyState, readyStates.OPEN);
    assert.ok(pings >= 3, `the client saw ${pings} pings in ${10 * PING_INTERVAL + 300} ms`);
    // still usable both ways
    const got = clientMessage(c);
    c.send('still here');
    assert.equal((await got).data.toString(), 'echo:still here');
  });

  test.it('raw clients that pong after 0, 5 and 50 ms stay open over 10 intervals', async (t) => {
    const lags = [0, 5, 50];
    const { pairs } = await rawClients(t, { pingInterval: PING_INTERVAL }, lags.length);
    const serverCloses = pairs.map(() => null);
    pairs.forEach(({ ws }, i) => ws.on('close', (code, reason) => (serverCloses[i] = { code, reason })));
    const until = Date.now() + 10 * PING_INTERVAL + 300;
    const results = await Promise.allSettled(pairs.map(({ r }, i) => answerPings(r, lags[i], until)));
    const failed = results
      .map((res, i) => res.status === 'rejected' && `lag ${lags[i]} ms: ${res.reason.message}; server-side close ${JSON.stringify(serverCloses[i])}`)
      .filter(Boolean);
    assert.deepEqual(failed, [], failed.join('\n'));
    results.forEach((res, i) => assert.ok(res.value >= 3, `lag ${lags[i]} ms: only ${res.value} pings`));
    pairs.forEach(({ ws }, i) => assert.equal(ws.readyState, readyStates.OPEN, `lag ${lags[i]} ms`));
    assert.deepEqual(serverCloses, [null, null, null]);
  });

  test.it('a silent raw client is closed after about two intervals (1.5 to 4)', async (t) => {
    const { pairs } = await rawClients(t, { pingInterval: PING_INTERVAL });
    const { r, ws, openedAt } = pairs[0];
    let serverClosedAt = 0;
    ws.on('close', () => (serverClosedAt = Date.now()));
    await r.waitEnd(4 * PING_INTERVAL + 1000);
    const ended = Date.now() - openedAt;
    assert.ok(r.ended || r.closed, `the socket is still open after ${ended} ms`);
    assert.ok(ended >= 1.5 * PING_INTERVAL, `ended after ${ended} ms, before 1.5 intervals`);
    assert.ok(ended <= 4 * PING_INTERVAL, `ended after ${ended} ms, after 4 intervals`);
    const frames = framesIn(r.buf);
    assert.ok(frames.some((f) => f.opcode === OP.PING), 'no ping before the end');
    for (const f of frames) assert.ok(f.opcode === OP.PING || f.opcode === OP.CLOSE, `unexpected frame, opcode ${f.opcode}`);
    const close = frames.find((f) => f.opcode === OP.CLOSE);
    if (close) assert.equal(close.code, 1001);
    await waitUntil(() => serverClosedAt !== 0, 1000, "the server-side ws's close event");
    assert.equal(ws.readyState, readyStates.CLOSED);
  });
});

test.describe('default keepalive', () => {
  test.it('Websocket.defaults is a frozen object of the option defaults; pingInterval is 30000', () => {
    const { defaults } = sack.Websocket;
    assert.equal(typeof defaults, 'object', 'Websocket.defaults is missing');
    assert.ok(defaults !== null);
    assert.ok(Object.isFrozen(defaults), 'Websocket.defaults is not frozen');
    assert.equal(defaults.pingInterval, 30000);
    // the others as documented (README, index.d.ts)
    assert.equal(defaults.maxPayload, 100 * 1024 * 1024);
    assert.equal(defaults.maxHeaderSize, 16 * 1024);
    assert.equal(defaults.maxBodySize, 10 * 1024 * 1024);
    assert.equal(defaults.handshakeTimeout, 10000);
    assert.equal(defaults.requestTimeout, 300000);
    assert.equal(defaults.maxBackpressure, 16 * 1024 * 1024);
    assert.equal(defaults.maxConnections, 0);
    assert.equal(defaults.closeTimeout, 10000);
    assert.throws(() => {
      defaults.pingInterval = 1;
    }, TypeError);
    assert.equal(defaults.pingInterval, 30000);
  });

  test.it('pingInterval: 0 sends no ping within 1 s; pingInterval: 200 does', async (t) => {
    const off = (await rawClients(t, { pingInterval: 0 })).pairs[0].r;
    const on = (await rawClients(t, { pingInterval: 200 })).pairs[0].r;
    const [none, ping] = await Promise.allSettled([off.readFrame(1000), on.readFrameOf(OP.PING, 1000)]);
    assert.equal(none.status, 'rejected', `pingInterval 0 sent a frame: opcode ${none.value?.opcode}`);
    assert.match(none.reason.message, /timed out/);
    assert.equal(off.ended || off.closed, false, 'pingInterval 0: the socket ended');
    assert.equal(ping.status, 'fulfilled', `pingInterval 200: ${ping.reason?.message}`);
    assert.equal(ping.value.opcode, OP.PING);
  });
});

test.describe('a client leaving during an accept decision', () => {
  test.it('async accept: accept()/reject() return false for a client gone during the await, true otherwise; nothing is thrown', async () => {
    // The README's pattern, in a child process, where an unhandled
    // rejection or uncaught exception can be seen.
    const code = `
      const net = require('node:net');
      const sack = require('.');
      const { upgradeRequest } = require('./__test__/helpers.js');
      const out = { results: {}, connected: [], heads: {}, uncaught: [], unhandled: [] };
      process.on('uncaughtException', (e) => out.uncaught.push(String(e && e.message)));
      process.on('unhandledRejection', (e) => out.unhandled.push((e && e.code) + ' ' + (e && e.message)));
      const server = sack.Websocket.Server({ address: '127.0.0.1', port: 0 });
      const urls = ['/leave-accept', '/leave-reject', '/stay-accept', '/stay-reject'];
      const clients = {};
      server.onaccept = async (ws) => {
        const url = ws.url;
        if (url.startsWith('/leave')) clients[url].destroy();
        await new Promise((r) => setTimeout(r, 300));
        try {
          out.results[url] = url.endsWith('accept') ? ws.accept() : ws.reject();
        } catch (e) {
          out.results[url] = 'threw ' + e.code + ': ' + e.message;
          throw e;
        } finally {
          if (Object.keys(out.results).length === urls.length) setTimeout(finish, 200);
        }
      };
      server.onconnect = (ws) => out.connected.push(ws.url);
      for (const url of urls) {
        const c = net.connect(server.address().port, '127.0.0.1');
        clients[url] = c;
        let buf = '';
        c.on('error', () => {});
        c.on('data', (d) => { buf += d; out.heads[url] = buf.split('\\r\\n')[0]; });
        c.write(upgradeRequest(url));
      }
      function finish() {
        for (const c of Object.values(clients)) c.destroy();
        server.onclose = () => process.stdout.write(JSON.stringify(out));
        server.close();
      }
      setTimeout(() => { process.stdout.write(JSON.stringify({ ...out, stuck: true })); process.exit(3); }, 5000).unref();
    `;
    const r = await runNode(code, { ms: 8000 });
    assert.equal(r.code, 0, `child exit ${r.code} ${r.signal}; stderr: ${r.stderr}; stdout: ${r.stdout}`);
    const out = JSON.parse(r.stdout);
    assert.deepEqual(out.unhandled, [], 'unhandled rejections');
    assert.deepEqual(out.uncaught, [], 'uncaught exceptions');
    assert.deepEqual(out.results, {
      '/leave-accept': false,
      '/leave-reject': false,
      '/stay-accept': true,
      '/stay-reject': true,
    });
    assert.deepEqual(out.connected, ['/stay-accept']);
    assert.match(out.heads['/stay-accept'] || '', /^HTTP\/1\.1 101 /);
    assert.match(out.heads['/stay-reject'] || '', /^HTTP\/1\.1 403 /);
  });

  test.it('200 pending clients that sent frame bytes after their request head, then left: every ws gets close within 2 s', async (t) => {
    const N = 200;
    const $ = scope(t);
    const s = $.server();
    const pending = [];
    let closes = 0;
    s.on('accept', (ws) => {
      // never decides
      pending.push(ws);
      ws.on('close', () => closes++);
    });
    const port = s.address().port;
    const frame = encodeFrame(OP.TEXT, 'hello, are you there?');
    const socks = [];
    for (let i = 0; i < N; i++) {
      const sock = $.socket(net.connect(port, HOST));
      sock.on('error', () => {});
      // the head and the first bytes of a frame together
      sock.write(Buffer.concat([Buffer.from(upgradeRequest(`/p${i}`)), frame.subarray(0, 2)]));
      socks.push(sock);
    }
    await waitUntil(() => pending.length === N, 5000, `${N} accept events (have ${pending.length})`);
    // More of the frame once the server has read the head (so the bytes
    // wait in the socket, not in the server's buffer), then leave.
    for (const sock of socks) sock.write(frame.subarray(2, 8));
    for (const sock of socks) sock.destroy();
    await waitUntil(() => closes === N, 2000, 'the close events of the pending connections').catch((e) => {
      throw new Error(`${e.message}: ${closes} of ${N} closed`);
    });
    for (const ws of pending) assert.equal(ws.readyState, readyStates.CLOSED);
  });

  // In a child: an upgrade to a server whose accept handler is `handler`
  // (source); returns what the client received and the messages of the
  // errors the process heard as `processEvent`.
  async function failingAccept(handler, processEvent) {
    const code = `
      const net = require('node:net');
      const sack = require('.');
      const { upgradeRequest } = require('./__test__/helpers.js');
      const out = { heard: [], response: '' };
      process.on(${JSON.stringify(processEvent)}, (e) => out.heard.push(String(e && e.message)));
      const server = sack.Websocket.Server({ address: '127.0.0.1', port: 0 });
      server.onaccept = ${handler};
      const c = net.connect(server.address().port, '127.0.0.1');
      c.on('error', (e) => (out.clientError = e.code));
      c.on('data', (d) => (out.response += d));
      c.on('close', finish);
      c.write(upgradeRequest('/'));
      const timer = setTimeout(() => { out.noEnd = true; finish(); }, 2000);
      function finish() {
        clearTimeout(timer);
        c.destroy();
        server.onclose = () => process.stdout.write(JSON.stringify(out));
        server.close();
      }
      setTimeout(() => { process.stdout.write(JSON.stringify({ ...out, stuck: true })); process.exit(3); }, 6000).unref();
    `;
    const r = await runNode(code, { ms: 9000 });
    assert.equal(r.code, 0, `child exit ${r.code} ${r.signal}; stderr: ${r.stderr}; stdout: ${r.stdout}`);
    const out = JSON.parse(r.stdout);
    assert.match(out.response, /^HTTP\/1\.1 500 /, `the client got ${JSON.stringify(out.response.slice(0, 200))}${out.noEnd ? ' (and the socket stayed open 2 s)' : ''}`);
    return out.heard;
  }

  test.it('an accept handler that throws: the client gets HTTP 500 and the exception reaches the process', async () => {
    const heard = await failingAccept("() => { throw new Error('boom in accept'); }", 'uncaughtException');
    assert.deepEqual(heard, ['boom in accept']);
  });

  test.it('an async accept handler that rejects before deciding: the client gets HTTP 500 and the rejection reaches the process', async () => {
    const heard = await failingAccept(
      "async () => { await new Promise((r) => setTimeout(r, 50)); throw new Error('boom after await'); }",
      'unhandledRejection',
    );
    assert.deepEqual(heard, ['boom after await']);
  });

  test.it('an undecided upgrade is bounded by handshakeTimeout: 503, the ws closes, an ETIMEDOUT error event', async (t) => {
    const $ = scope(t);
    const s = $.server({ handshakeTimeout: 300 });
    const errors = [];
    s.on('error', (info) => errors.push(info));
    let ws = null;
    let wsClosed = false;
    s.on('accept', (w) => {
      // never decides
      ws = w;
      w.on('close', () => (wsClosed = true));
    });
    const r = await $.raw(s);
    const started = Date.now();
    r.write(upgradeRequest('/'));
    const head = await r.readHead(1500);
    const took = Date.now() - started;
    assert.equal(head.statusLine.slice(0, 12), 'HTTP/1.1 503', head.statusLine);
    assert.ok(took >= 250, `answered after ${took} ms, before handshakeTimeout`);
    assert.ok(ws, 'no accept event');
    await waitUntil(() => wsClosed, 1000, "the pending ws's close event");
    assert.equal(ws.readyState, readyStates.CLOSED);
    await waitUntil(() => errors.length > 0, 1000, 'an error event');
    assert.equal(errors[0].error.code, 'ETIMEDOUT');
  });
});

test.describe('shutdown never crashes and always finishes', () => {
  test.it("server.close() amid traffic to the README's echo handler: no uncaught exception, close fires", async () => {
    const code = `
      const WebSocket = require('ws');
      const sack = require('.');
      const out = { uncaught: [], received: 0, echoed: 0, wsCloses: 0, clientCloses: [], clientErrors: [], serverClosed: false };
      process.on('uncaughtException', (e) => out.uncaught.length < 5 && out.uncaught.push((e && e.code) + ': ' + (e && e.message)));
      process.on('exit', () => process.stdout.write(JSON.stringify(out)));
      const server = sack.Websocket.Server({ address: '127.0.0.1', port: 0 });
      const CLIENTS = 4;
      const MESSAGES = 2000;
      server.onconnect = (ws) => {
        ws.onmessage = (m) => ws.send(m);
        ws.on('message', () => { if (++out.received === 1000) server.close(); });
        ws.on('close', () => out.wsCloses++);
      };
      server.onclose = () => (out.serverClosed = true);
      for (let i = 0; i < CLIENTS; i++) {
        const c = new WebSocket('ws://127.0.0.1:' + server.address().port + '/');
        c.on('open', () => { for (let j = 0; j < MESSAGES; j++) c.send('client ' + i + ' message ' + j); });
        c.on('message', () => out.echoed++);
        c.on('close', (code) => out.clientCloses.push(code));
        c.on('error', (e) => out.clientErrors.push(e.message));
      }
      setTimeout(() => { out.stuck = true; process.exit(3); }, 6000).unref();
    `;
    const r = await runNode(code, { ms: 9000 });
    const out = JSON.parse(r.stdout || '{}');
    assert.deepEqual(out.uncaught, [], `uncaught exceptions; stdout: ${r.stdout}`);
    assert.equal(r.code, 0, `child exit ${r.code} ${r.signal}; stderr: ${r.stderr}; stdout: ${r.stdout}`);
    assert.equal(out.serverClosed, true);
    assert.ok(out.received >= 1000, `${out.received} messages received`);
    assert.equal(out.wsCloses, 4);
    assert.equal(out.clientCloses.length, 4);
  });

  test.it('send() while CLOSING returns false without throwing; when CLOSED it throws WS_ERR_NOT_OPEN', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const conns = [];
    s.on('connect', (ws) => conns.push(ws));
    const a = $.client(s, '/a');
    const b = $.client(s, '/b');
    const got = [];
    a.on('message', (m) => got.push(`a:${m}`));
    b.on('message', (m) => got.push(`b:${m}`));
    await Promise.all([opened(a), opened(b)]);
    await waitUntil(() => conns.length === 2, 3000, 'two connections');
    const [wa, wb] = conns.sort((x, y) => (x.url < y.url ? -1 : 1));
    const ca = clientClosed(a);

    // ws.close(): CLOSING until the client answers
    wa.close(1000, 'bye');
    assert.equal(wa.readyState, readyStates.CLOSING);
    let r;
    assert.doesNotThrow(() => (r = wa.send('x')));
    assert.equal(r, false);
    assert.equal(wa.send(Buffer.from('y')), false);
    assert.deepEqual(await ca, { code: 1000, reason: 'bye' });
    await waitUntil(() => wa.readyState === readyStates.CLOSED, 2000, 'CLOSED');
    assert.throws(() => wa.send('z'), (e) => e instanceof Error && e.code === 'WS_ERR_NOT_OPEN');

    // server.close(): every connection CLOSING at once
    const cb = clientClosed(b);
    const sc = nextEvent(s, 'close', 3000);
    s.close();
    assert.equal(wb.readyState, readyStates.CLOSING);
    assert.doesNotThrow(() => (r = wb.send('x')));
    assert.equal(r, false);
    assert.equal((await cb).code, 1001);
    await sc;
    assert.throws(() => wb.send('z'), (e) => e instanceof Error && e.code === 'WS_ERR_NOT_OPEN');
    assert.deepEqual(got, [], 'a message sent while CLOSING reached the client');
  });

  // `answerFirst`: the connection had a keep-alive response first, so the
  // unanswered request is the second one on it.
  for (const answerFirst of [false, true]) {
    const which = answerFirst ? 'a second request on a keep-alive connection' : 'a first request';
    test.it(`a request nobody answers (${which}) whose client leaves: req/res 'close' within 1 s; server.close() then completes`, async (t) => {
      // A server stuck closing fails the test (scope's close times out) and
      // must not keep the test process alive: unref()ed first.
      let s;
      t.after(() => s.unref());
      const $ = scope(t);
      s = $.server();
      const seen = [];
      let unanswered = null;
      s.onrequest = (req, res) => {
        if (req.url === '/answered') return res.end('ok');
        unanswered = { req, res };
        req.on('close', () => seen.push('req'));
        res.on('close', () => seen.push('res'));
      };
      const r = await $.raw(s);
      if (answerFirst) {
        r.write('GET /answered HTTP/1.1\r\nHost: h\r\n\r\n');
        const head = await r.readHead();
        assert.equal(head.statusCode, 200);
        assert.equal(head.headers.connection === 'close', false);
      }
      r.write('GET /never HTTP/1.1\r\nHost: h\r\n\r\n');
      await waitUntil(() => unanswered !== null, 3000, 'the request');
      r.destroy();
      await waitUntil(() => seen.length === 2, 1000, "req's and res's close events").catch((e) => {
        throw new Error(`${e.message} (seen: ${JSON.stringify(seen)})`);
      });
      assert.deepEqual(seen.sort(), ['req', 'res']);
      assert.equal(s.readyState, readyStates.LISTENING);
      assert.equal(unanswered.res.destroyed, true);
      const started = Date.now();
      await closeServer(s, 2000);
      assert.ok(Date.now() - started <= 2000);
    });
  }

  test.it('a request nobody answers, client still connected: server.close() completes within closeTimeout and ends the socket', async (t) => {
    let s;
    t.after(() => s.unref()); // as above
    const $ = scope(t);
    s = $.server({ closeTimeout: 500 });
    let got = false;
    s.onrequest = () => {
      got = true; // never answers
    };
    const r = await $.raw(s);
    r.write('GET /never HTTP/1.1\r\nHost: h\r\n\r\n');
    await waitUntil(() => got, 3000, 'the request');
    const started = Date.now();
    await closeServer(s, 2000);
    const took = Date.now() - started;
    assert.ok(took <= 2000, `close took ${took} ms`);
    await r.waitEnd(1000);
    assert.ok(r.ended || r.closed, "the client's socket was not ended");
  });
});
