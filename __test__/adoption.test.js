'use strict';
// What users coming from `ws` and Node's web frameworks write: a noServer
// sack server taking the upgrades of an Express 5, Fastify 5 or Koa 3
// server on one port (handleUpgrade), Node-compatible request objects
// (req.url with the query; Koa's app.callback() as onrequest), the options
// of `ws` (accepted, refused with the sack way, or warned about),
// ws.send(data, cb) and server.close(cb), server.clients.
//
// Everything listens on 127.0.0.1, port 0; every wait has a timeout.

const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const net = require('node:net');

const express = require('express');
const Fastify = require('fastify');
const Koa = require('koa');

const {
  Server,
  readyStates,
  HOST,
  OP,
  GOOD_ACCEPT,
  delay,
  nextEvent,
  onceEE,
  waitUntil,
  withTimeout,
  scope,
  opened,
  clientClosed,
  clientMessage,
  unexpectedResponse,
  encodeFrame,
  upgradeRequest,
  request,
  runNode,
  compressibleText,
} = require('./helpers.js');

const MiB = 1024 * 1024;

/** A Node http.Server for `handler` on 127.0.0.1, port 0, closed when the test ends. */
async function nodeServer(t, handler) {
  const server = http.createServer(handler);
  server.listen(0, HOST);
  await onceEE(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    return withTimeout(new Promise((resolve) => server.close(() => resolve())), 3000, 'http.Server close');
  });
  return server;
}

/** The next `n` messages of a `ws` client, as strings, in arrival order. */
function clientMessages(client, n, ms = 5000) {
  const got = [];
  return withTimeout(
    new Promise((resolve) => {
      const onMessage = (data) => {
        got.push(data.toString());
        if (got.length === n) {
          client.off('message', onMessage);
          resolve(got);
        }
      };
      client.on('message', onMessage);
    }),
    ms,
    `${n} client messages (got ${got.length})`,
  );
}

/** Records the 'warning' events of this process while test `t` runs. */
function recordWarnings(t) {
  const warnings = [];
  const onWarning = (w) => warnings.push(w);
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  return warnings;
}

// ---------------------------------------------------------------------------

test.describe('handleUpgrade with Express 5 on one port', () => {
  // Express answers HTTP on a Node http.Server; sack (noServer) takes its
  // upgrades and echoes. `upgraded` collects the handleUpgrade callbacks.
  async function expressWithSack(t) {
    const $ = scope(t);
    const app = express();
    app.get('/hello', (req, res) => res.send(`hi ${req.query.name}`));
    const server = await nodeServer(t, app);
    const wss = $.server({ noServer: true });
    const upgraded = [];
    const connected = [];
    wss.on('connect', (ws) => {
      connected.push(ws);
      ws.on('message', (m) => ws.send(typeof m === 'string' ? `echo: ${m}` : m));
    });
    server.on('upgrade', (req, socket, head) =>
      wss.handleUpgrade(req, socket, head, (ws, r) => upgraded.push({ ws, req: r, readyState: ws.readyState })),
    );
    return { $, server, port: server.address().port, wss, upgraded, connected };
  }

  test.it('Express answers GET /hello, sack echoes on /chat, and the callback gets (ws, req) once open', async (t) => {
    const { $, server, port, wss, upgraded, connected } = await expressWithSack(t);
    const r = await request(port, { path: '/hello?name=x' });
    assert.equal(r.status, 200);
    assert.equal(r.text, 'hi x');
    assert.match(r.headers['x-powered-by'], /Express/, 'the answer came from Express');

    const c = $.client(server, '/chat?x=1');
    await opened(c);
    const got = clientMessage(c);
    c.send('hello');
    assert.equal((await got).data.toString(), 'echo: hello');

    assert.equal(connected.length, 1);
    const ws = connected[0];
    assert.equal(ws.url, '/chat');
    assert.equal(ws.CGI.x, '1');
    assert.equal(ws.connection.remoteAddress, '127.0.0.1');
    assert.equal(ws.connection.localPort, port, 'the connection is the one made to the http.Server');
    await waitUntil(() => upgraded.length === 1, 2000, 'the handleUpgrade callback');
    assert.equal(upgraded[0].ws, ws, 'the callback gets the connection of the connect event');
    assert.equal(upgraded[0].readyState, readyStates.OPEN);
    assert.ok(upgraded[0].req instanceof http.IncomingMessage);
    assert.equal(upgraded[0].req.url, '/chat?x=1');
    assert.equal(wss.clients.has(ws), true);

    // HTTP still works on the port after the takeover.
    const again = await request(port, { path: '/hello?name=again' });
    assert.equal(again.text, 'hi again');
  });

  test.it('the client\'s real address: remotePort is the client socket\'s localPort', async (t) => {
    const { $, server, connected } = await expressWithSack(t);
    const r = await $.raw(server);
    const head = await r.handshake('/chat');
    assert.equal(head.statusCode, 101);
    await waitUntil(() => connected.length === 1, 2000, 'the connect event');
    assert.equal(connected[0].connection.remoteAddress, r.socket.localAddress);
    assert.equal(connected[0].connection.remotePort, r.socket.localPort);
  });

  test.it('frames sent in the same write as the upgrade request are delivered (no byte lost in the takeover)', async (t) => {
    const { $, server, port, connected } = await expressWithSack(t);
    const r = await $.raw(server);
    // Larger than one read of Node's: part of it stays in the kernel.
    const big = Buffer.alloc(256 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;
    r.write(
      Buffer.concat([
        Buffer.from(upgradeRequest('/chat?x=1', { Host: `${HOST}:${port}` })),
        encodeFrame(OP.TEXT, 'early bird'),
        encodeFrame(OP.BINARY, big),
        encodeFrame(OP.TEXT, 'last'),
      ]),
    );
    const head = await r.readHead();
    assert.equal(head.statusCode, 101);
    assert.equal(head.headers['sec-websocket-accept'], GOOD_ACCEPT);
    const a = await r.readFrame();
    assert.equal(a.opcode, OP.TEXT);
    assert.equal(a.payload.toString(), 'echo: early bird');
    const b = await r.readFrame(5000);
    assert.equal(b.opcode, OP.BINARY);
    assert.equal(b.payload.length, big.length);
    assert.ok(b.payload.equals(big), 'the binary message came back byte for byte');
    const c = await r.readFrame();
    assert.equal(c.payload.toString(), 'echo: last');
    assert.equal(connected[0].CGI.x, '1');
  });

  test.it('50 sequential messages come back in order', async (t) => {
    const { $, server } = await expressWithSack(t);
    const c = $.client(server, '/chat');
    await opened(c);
    const all = clientMessages(c, 50);
    for (let i = 0; i < 50; i++) c.send(`m${i}`);
    assert.deepEqual(await all, Array.from({ length: 50 }, (_, i) => `echo: m${i}`));
  });
});

test.describe('handleUpgrade with Fastify 5 and Koa 3', () => {
  test.it('Fastify: its routes and sack\'s WebSocket on the one port', async (t) => {
    const $ = scope(t);
    const fastify = Fastify({ logger: false });
    fastify.get('/f', async (req) => ({ from: 'fastify', q: req.query }));
    await fastify.listen({ port: 0, host: HOST });
    t.after(() => withTimeout(fastify.close(), 3000, 'fastify.close()'));
    const wss = $.server({ noServer: true });
    wss.on('connect', (ws) => ws.on('message', (m) => ws.send(`sack: ${m} on ${ws.url}`)));
    fastify.server.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head));
    const port = fastify.server.address().port;

    const r = await request(port, { path: '/f?a=1' });
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.text), { from: 'fastify', q: { a: '1' } });
    const c = $.client(fastify.server, '/live');
    await opened(c);
    const got = clientMessage(c);
    c.send('ping');
    assert.equal((await got).data.toString(), 'sack: ping on /live');
    const missing = await request(port, { path: '/nope' });
    assert.equal(missing.status, 404, 'Fastify still routes while a WebSocket is open');
  });

  test.it('Koa: http.createServer(app.callback()) with upgrades handed to sack', async (t) => {
    const $ = scope(t);
    const app = new Koa();
    app.use((ctx) => {
      ctx.body = { q: ctx.query, path: ctx.path };
    });
    const server = await nodeServer(t, app.callback());
    const wss = $.server({ noServer: true });
    wss.on('connect', (ws) => ws.on('message', (m) => ws.send(`koa+sack: ${m}`)));
    server.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head));

    const r = await request(server.address().port, { path: '/k?a=1' });
    assert.equal(r.text, '{"q":{"a":"1"},"path":"/k"}');
    const c = $.client(server, '/ws');
    await opened(c);
    const got = clientMessage(c);
    c.send('x');
    assert.equal((await got).data.toString(), 'koa+sack: x');
  });

  test.it('Koa: app.callback() as sack\'s onrequest sees the query', async (t) => {
    const app = new Koa();
    app.use((ctx) => {
      ctx.body = { q: ctx.query, path: ctx.path };
    });
    const s = scope(t).server();
    s.onrequest = app.callback();
    const r = await request(s.address().port, { path: '/k?a=1' });
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^application\/json/);
    assert.equal(r.text, '{"q":{"a":"1"},"path":"/k"}');
  });
});

test.describe('noServer', () => {
  test.it('holds no port: address() is null and the port given is left free', async (t) => {
    const $ = scope(t);
    const blocker = net.createServer().listen(0, HOST);
    await onceEE(blocker, 'listening');
    t.after(() => blocker.close());
    const busy = blocker.address().port;
    // Both would fail with EADDRINUSE if they bound.
    const a = $.track(Server({ noServer: true, address: HOST, port: busy }));
    const b = $.track(Server({ noServer: true, address: HOST, port: busy }));
    assert.equal(a.address(), null);
    assert.equal(b.address(), null);
    assert.equal(a.readyState, readyStates.LISTENING);
  });

  test.it('does not keep a process alive by itself', async () => {
    const r = await runNode(
      `const { Websocket } = require('sack-ws');
       const wss = Websocket.Server({ noServer: true });
       wss.on('connect', () => {});
       console.log('made ' + wss.address());`,
      { ms: 8000 },
    );
    assert.equal(r.timedOut, false, 'the child did not exit by itself');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'made null');
  });

  test.it('close() closes adopted connections and emits close; a later handleUpgrade destroys the socket', async (t) => {
    const $ = scope(t);
    const wss = $.server({ noServer: true });
    const server = await nodeServer(t, (req, res) => res.end('http'));
    server.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head));
    const c = $.client(server, '/');
    await opened(c);
    const clientGone = clientClosed(c);
    const closed = nextEvent(wss, 'close');
    wss.close();
    await closed;
    assert.equal((await clientGone).code, 1001);
    assert.equal(wss.readyState, readyStates.CLOSED);
    assert.equal(wss.clients.size, 0);

    const r = await $.raw(server);
    r.write(upgradeRequest('/', { Host: `${HOST}:${server.address().port}` }));
    await r.waitEnd();
    assert.equal(r.buf.length, 0, `no answer expected; got ${JSON.stringify(r.buf.toString('latin1'))}`);
    // The http.Server itself goes on.
    assert.equal((await request(server.address().port)).text, 'http');
  });

  test.it('an accept handler decides adopted connections (reject(401) → HTTP 401)', async (t) => {
    const $ = scope(t);
    const wss = $.server({ noServer: true });
    const seen = [];
    wss.onaccept = (ws) => {
      seen.push([ws.url, ws.headers.authorization]);
      if (ws.headers.authorization === 'Bearer good') wss.accept();
      else wss.reject(401);
    };
    const server = await nodeServer(t);
    server.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head));

    const bad = $.client(server, '/private', undefined, { headers: { Authorization: 'Bearer bad' } });
    const refusal = await unexpectedResponse(bad);
    assert.equal(refusal.statusCode, 401);
    const good = $.client(server, '/private', undefined, { headers: { Authorization: 'Bearer good' } });
    await opened(good);
    assert.deepEqual(seen, [
      ['/private', 'Bearer bad'],
      ['/private', 'Bearer good'],
    ]);
  });
});

test.describe('Node-compatible requests', () => {
  test.it('req.url is the target with the query, req.path the path, req.CGI the decoded query', async (t) => {
    const s = scope(t).server();
    s.onrequest = (req, res) => res.end(JSON.stringify({ url: req.url, path: req.path, CGI: req.CGI }));
    const r = await request(s.address().port, { path: '/a/b?x=1&y=%C3%A9+z&flag' });
    assert.deepEqual(JSON.parse(r.text), {
      url: '/a/b?x=1&y=%C3%A9+z&flag',
      path: '/a/b',
      CGI: { x: '1', y: 'é z', flag: null },
    });
    const plain = await request(s.address().port, { path: '/plain' });
    assert.deepEqual(JSON.parse(plain.text), { url: '/plain', path: '/plain', CGI: {} });
  });

  test.it('an Express app as the request handler is a TypeError pointing to handleUpgrade', async (t) => {
    const s = scope(t).server();
    const app = express();
    app.get('/', (req, res) => res.send('express'));
    const pointsToHandleUpgrade = (e) => e instanceof TypeError && /handleUpgrade/.test(e.message);
    assert.throws(() => {
      s.onrequest = app;
    }, pointsToHandleUpgrade);
    assert.throws(() => s.onrequest(app), pointsToHandleUpgrade);
    assert.throws(() => s.on('request', app), pointsToHandleUpgrade);
    // None of them was installed: without a request handler the answer is 426.
    const r = await request(s.address().port);
    assert.equal(r.status, 426);
  });
});

test.describe('options that ws users write', () => {
  test.it('host: "127.0.0.1" binds there only', async (t) => {
    const $ = scope(t);
    const s = $.track(Server({ host: '127.0.0.1', port: 0 }));
    assert.deepEqual(s.address(), { address: '127.0.0.1', family: 'IPv4', port: s.address().port });
    const c = $.client(s, '/');
    await opened(c);
    const v6 = net.connect({ host: '::1', port: s.address().port });
    $.socket(v6);
    v6.once('connect', () => v6.emit('error', new Error('connected on ::1')));
    const [err] = await onceEE(v6, 'error');
    assert.match(err.code, /^(ECONNREFUSED|EADDRNOTAVAIL|ENETUNREACH|EAFNOSUPPORT)$/);
  });

  test.it('path: "/ws" accepts upgrades to /ws (query allowed) and answers 400 elsewhere', async (t) => {
    const $ = scope(t);
    const s = $.server({ path: '/ws' });
    const urls = [];
    s.on('connect', (ws) => urls.push(ws.url));
    await opened($.client(s, '/ws'));
    await opened($.client(s, '/ws?room=1'));
    const other = await unexpectedResponse($.client(s, '/other'));
    assert.equal(other.statusCode, 400);
    const prefix = await unexpectedResponse($.client(s, '/ws/deeper'));
    assert.equal(prefix.statusCode, 400);
    await waitUntil(() => urls.length === 2, 2000, 'two connect events');
    assert.deepEqual(urls, ['/ws', '/ws']);
  });

  test.it('ws options whose sack way differs throw a TypeError that names the option and the way', (t) => {
    const $ = scope(t);
    const cases = [
      ['verifyClient', (info, cb) => cb(true), /accept/],
      ['handleProtocols', () => 'chat', /accept/],
      ['server', http.createServer(), /noServer[\s\S]*handleUpgrade/],
      ['WebSocket', class Custom {}, /connect/],
      ['skipUTF8Validation', true, /UTF-8/],
      ['autoPong', false, /ping/],
    ];
    for (const [name, value, way] of cases) {
      assert.throws(
        () => $.server({ [name]: value }),
        (e) => e instanceof TypeError && e.message.includes(`"${name}"`) && way.test(e.message),
        `${name}: ${String(value)}`,
      );
    }
    // The values that ask for what sack does anyway are taken.
    $.server({ skipUTF8Validation: false, autoPong: true });
  });

  test.it('clientTracking, allowSynchronousEvents and backlog are accepted (no warning), clients still tracked', async (t) => {
    const $ = scope(t);
    const warnings = recordWarnings(t);
    const servers = [
      $.server({ clientTracking: true }),
      $.server({ clientTracking: false }),
      $.server({ allowSynchronousEvents: true }),
      $.server({ allowSynchronousEvents: false }),
      $.server({ backlog: 16 }),
    ];
    for (const s of servers) {
      const c = $.client(s, '/');
      await opened(c);
      await waitUntil(() => s.clients.size === 1, 2000, 'server.clients to hold the client');
    }
    await delay(20); // warnings are emitted on a later tick
    assert.deepEqual(
      warnings.filter((w) => w.code === 'SACK_UNKNOWN_OPTION').map((w) => w.message),
      [],
    );
  });

  test.it('an unknown option warns with SACK_UNKNOWN_OPTION and suggests the known one', async (t) => {
    const warnings = recordWarnings(t);
    scope(t).server({ maxpayload: 1024 });
    await waitUntil(() => warnings.some((w) => w.code === 'SACK_UNKNOWN_OPTION'), 2000, 'the warning');
    const w = warnings.find((x) => x.code === 'SACK_UNKNOWN_OPTION');
    assert.match(w.message, /"maxpayload"/);
    assert.match(w.message, /"maxPayload"/);
  });

  test.it('an http:// URL is a TypeError; an unresolvable address is ENOTFOUND', (t) => {
    const $ = scope(t);
    assert.throws(() => $.track(Server('http://127.0.0.1:0/')), (e) => e instanceof TypeError && /ws:\/\//.test(e.message));
    assert.throws(
      () => $.track(Server({ address: 'no-such-host.invalid', port: 0 })),
      (e) => e instanceof Error && e.code === 'ENOTFOUND',
    );
  });
});

test.describe('ws.send(data, cb)', () => {
  test.it('callbacks run in send order, with no error, once written (text, binary, 4 MiB)', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const calls = [];
    let syncCalls = -1;
    const big = Buffer.alloc(4 * MiB, 0x5a);
    s.on('connect', (ws) => {
      ws.send('text', (...args) => calls.push(['text', args]));
      ws.send(new Uint8Array([1, 2, 3]), (...args) => calls.push(['binary', args]));
      ws.send(big, (...args) => calls.push(['big', args, ws.bufferedAmount]));
      syncCalls = calls.length;
    });
    const c = $.client(s, '/');
    const got = [];
    c.on('message', (data, isBinary) => got.push([isBinary, data.length]));
    await opened(c);
    await waitUntil(() => calls.length === 3 && got.length === 3, 5000, 'three callbacks and three messages');
    assert.equal(syncCalls, 0, 'no callback runs inside send()');
    assert.deepEqual(
      calls.map(([name, args]) => [name, args]),
      [
        ['text', []],
        ['binary', []],
        ['big', []],
      ],
    );
    assert.equal(calls[2][2], 0, 'nothing is left queued when the last callback runs');
    assert.deepEqual(got, [
      [false, 4],
      [true, 3],
      [true, 4 * MiB],
    ]);
  });

  test.it('with permessage-deflate negotiated by a ws client', async (t) => {
    const $ = scope(t);
    const s = $.server({ perMessageDeflate: true });
    const texts = Array.from({ length: 20 }, (_, i) => (i % 2 ? `short ${i}` : compressibleText(64 * 1024, i + 1)));
    const done = [];
    let extensions;
    s.on('connect', (ws) => {
      extensions = ws.extensions;
      texts.forEach((text, i) => ws.send(text, (...args) => done.push([i, args.length])));
    });
    const connected = nextEvent(s, 'connect');
    const c = $.client(s, '/', undefined, { perMessageDeflate: true });
    const all = clientMessages(c, texts.length);
    await opened(c);
    await connected;
    assert.match(c.extensions, /permessage-deflate/);
    assert.match(extensions, /permessage-deflate/);
    assert.deepEqual(await all, texts);
    await waitUntil(() => done.length === texts.length, 3000, 'every callback');
    assert.deepEqual(done, texts.map((_, i) => [i, 0]));
  });

  test.it('while CLOSING: send returns false and cb gets WS_ERR_NOT_OPEN', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const result = {};
    s.on('connect', (ws) => {
      ws.close(1000, 'done');
      result.readyState = ws.readyState;
      result.returned = ws.send('too late', (err) => {
        result.err = err;
      });
      result.sync = 'err' in result;
    });
    const c = $.client(s, '/');
    const messages = [];
    c.on('message', (m) => messages.push(m.toString()));
    const closed = clientClosed(c);
    await opened(c);
    assert.deepEqual(await closed, { code: 1000, reason: 'done' });
    await waitUntil(() => 'err' in result, 2000, 'the callback');
    assert.equal(result.readyState, readyStates.CLOSING);
    assert.equal(result.returned, false);
    assert.equal(result.sync, false, 'the callback is not called inside send()');
    assert.ok(result.err instanceof Error);
    assert.equal(result.err.code, 'WS_ERR_NOT_OPEN');
    assert.deepEqual(messages, []);
  });

  test.it('a client that never reads: no callback while queued, WS_ERR_NOT_OPEN after terminate()', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const connected = nextEvent(s, 'connect');
    const r = await $.raw(s);
    const head = await r.handshake('/');
    assert.equal(head.statusCode, 101);
    r.socket.pause();
    const ws = (await connected).args[0];
    const cbArgs = [];
    ws.send(Buffer.alloc(32 * MiB, 1), (...args) => cbArgs.push(args));
    await delay(500);
    assert.deepEqual(cbArgs, [], 'the callback ran while the data was queued');
    assert.ok(ws.bufferedAmount > 0, `bufferedAmount ${ws.bufferedAmount}`);
    const closeEvent = nextEvent(ws, 'close');
    ws.terminate();
    await waitUntil(() => cbArgs.length === 1, 3000, 'the callback after terminate()');
    const [err] = cbArgs[0];
    assert.ok(err instanceof Error, `callback argument: ${err}`);
    assert.equal(err.code, 'WS_ERR_NOT_OPEN');
    await closeEvent;
    await delay(50);
    assert.equal(cbArgs.length, 1, 'called once');
  });

  test.it('a callback that is not a function is a TypeError, and nothing is sent', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const thrown = [];
    s.on('connect', (ws) => {
      for (const bad of ['cb', 42, {}]) {
        try {
          ws.send('must not go', bad);
        } catch (e) {
          thrown.push(e instanceof TypeError);
        }
      }
      ws.send('after');
    });
    const c = $.client(s, '/');
    const first = clientMessage(c);
    await opened(c);
    assert.equal((await first).data.toString(), 'after');
    assert.deepEqual(thrown, [true, true, true]);
  });
});

test.describe('server.close(cb), server.clients', () => {
  test.it('close(cb): cb once, when the close event fires; address() is null after', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const c = $.client(s, '/');
    await opened(c);
    const order = [];
    s.on('close', () => order.push('close event'));
    s.close((...args) => order.push(['cb', args]));
    assert.deepEqual(order, []);
    assert.equal((await clientClosed(c)).code, 1001);
    await waitUntil(() => order.length === 2, 3000, 'the close event and the callback');
    await delay(50);
    assert.deepEqual(order, ['close event', ['cb', []]]);
    assert.equal(s.readyState, readyStates.CLOSED);
    assert.equal(s.address(), null);
  });

  test.it('close(1000, "bye", cb)', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const c = $.client(s, '/');
    await opened(c);
    let calls = 0;
    const called = new Promise((resolve) =>
      s.close(1000, 'bye', () => {
        calls++;
        resolve();
      }),
    );
    assert.deepEqual(await clientClosed(c), { code: 1000, reason: 'bye' });
    await withTimeout(called, 3000, 'the close callback');
    await delay(50);
    assert.equal(calls, 1);
  });

  test.it('close(cb) on a closed server: cb gets ERR_SERVER_NOT_RUNNING', async (t) => {
    const s = scope(t).server();
    const closed = nextEvent(s, 'close');
    s.close();
    await closed;
    const results = [];
    s.close((...args) => results.push(args));
    assert.deepEqual(results, [], 'not called inside close()');
    await waitUntil(() => results.length === 1, 2000, 'the callback');
    const [err] = results[0];
    assert.ok(err instanceof Error);
    assert.equal(err.code, 'ERR_SERVER_NOT_RUNNING');
  });

  test.it('server.clients is the Set of open connections', async (t) => {
    const $ = scope(t);
    const s = $.server();
    assert.ok(s.clients instanceof Set);
    assert.equal(s.clients.size, 0);
    const conns = [];
    s.on('connect', (ws) => conns.push(ws));
    const a = $.client(s, '/a');
    await opened(a);
    const b = $.client(s, '/b');
    await opened(b);
    await waitUntil(() => conns.length === 2, 2000, 'two connect events');
    assert.deepEqual([...s.clients].map((ws) => ws.url).sort(), ['/a', '/b']);
    assert.ok(conns.every((ws) => s.clients.has(ws)));
    const aClosed = nextEvent(conns[0], 'close');
    a.close();
    await aClosed;
    assert.equal(s.clients.has(conns[0]), false);
    assert.equal(s.clients.has(conns[1]), true);
    assert.equal(s.clients.size, 1);
    assert.equal(s.connections, 1);
  });

  test.it('ws.close("1000") is a TypeError mentioning "number"; the connection stays open', async (t) => {
    const $ = scope(t);
    const s = $.server();
    let error;
    s.on('connect', (ws) => {
      try {
        ws.close('1000');
      } catch (e) {
        error = e;
      }
      ws.on('message', (m) => ws.send(`still open: ${m}`));
    });
    const c = $.client(s, '/');
    await opened(c);
    const got = clientMessage(c);
    c.send('x');
    assert.equal((await got).data.toString(), 'still open: x');
    assert.ok(error instanceof TypeError);
    assert.match(error.message, /number/);
  });
});
