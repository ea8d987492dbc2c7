'use strict';
// The Server: module exports, constructor forms, bind errors, address(),
// events and `this`, accept/reject (sync and async), subprotocols, refusals,
// server.close(), readyState, connections, ESM entry.

const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const http = require('node:http');
const path = require('node:path');
const { pathToFileURL } = require('node:url');
const { Worker } = require('node:worker_threads');

const {
  sack,
  Server,
  readyStates,
  ROOT,
  HOST,
  GOOD_ACCEPT,
  withTimeout,
  delay,
  nextEvent,
  onceEE,
  scope,
  opened,
  clientClosed,
  clientMessage,
  unexpectedResponse,
  closeServer,
  runNode,
  upgradeRequest,
  parseHead,
  WebSocket,
} = require('./helpers.js');

// A server made with any constructor form, closed after the test.
function tracked(t, make) {
  const s = make();
  t.after(() => closeServer(s));
  return s;
}

// Connects a ws client, sends 'ping?' and expects the echo — proves the
// server made by a constructor form really works.
async function roundTrip(t, server) {
  const $ = scope(t);
  server.on('connect', (ws) => ws.on('message', (m) => ws.send(`echo:${m}`)));
  const c = $.client(server, '/');
  await opened(c);
  const got = clientMessage(c);
  c.send('ping?');
  assert.equal((await got).data.toString(), 'echo:ping?');
  c.close();
  await clientClosed(c);
}

test.describe('module', () => {
  test.it('exports Websocket and WebSocket as the same object', () => {
    assert.equal(typeof sack.Websocket, 'object');
    assert.equal(sack.Websocket, sack.WebSocket);
    assert.equal(typeof sack.Websocket.Server, 'function');
  });

  test.it('exports readyStates with the contract values', () => {
    assert.deepEqual({ ...sack.Websocket.readyStates }, {
      INITIALIZING: -1,
      CONNECTING: 0,
      OPEN: 1,
      CLOSING: 2,
      CLOSED: 3,
      LISTENING: 4,
    });
  });

  test.it('exports Websocket.Thread with accept and post', () => {
    // INTERFACE.md "Module": sack.Websocket.Thread.
    assert.ok(sack.Websocket.Thread, 'sack.Websocket.Thread is missing');
    assert.equal(typeof sack.Websocket.Thread.accept, 'function');
    assert.equal(typeof sack.Websocket.Thread.post, 'function');
  });

  test.it('require("sack-ws") resolves to the package (self-reference by its npm name)', () => {
    assert.equal(require('sack-ws'), sack);
  });

  test.it('ESM: dynamic import of index.mjs gives the same objects', async () => {
    const esm = await import(pathToFileURL(path.join(ROOT, 'index.mjs')).href);
    assert.equal(esm.Websocket, sack.Websocket);
    assert.equal(esm.WebSocket, sack.WebSocket);
    assert.equal(esm.default.Websocket, sack.Websocket);
  });

  test.it('ESM: `import` in a child process runs a server', async () => {
    const code = `
      import sack, { Websocket, WebSocket } from 'sack-ws';
      if (Websocket !== WebSocket || sack.Websocket !== Websocket) throw new Error('exports differ');
      const s = new Websocket.Server({ address: '127.0.0.1', port: 0 });
      const { port, family } = s.address();
      s.on('close', () => console.log('closed ' + (port > 0) + ' ' + family));
      s.close();
    `;
    const r = await runNode(code, { args: ['--input-type=module'], ms: 8000 });
    assert.equal(r.timedOut, false, 'child hung');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'closed true IPv4');
  });

  test.it('works in a worker_threads Worker', async (t) => {
    const worker = new Worker(
      `
      const { parentPort } = require('node:worker_threads');
      const sack = require(${JSON.stringify(ROOT)});
      const s = new sack.Websocket.Server({ address: '127.0.0.1', port: 0 });
      s.on('connect', (ws) => ws.on('message', (m) => ws.send('worker:' + m)));
      s.on('close', () => parentPort.postMessage({ closed: true }));
      parentPort.on('message', (m) => { if (m === 'close') s.close(); });
      parentPort.postMessage({ port: s.address().port });
      `,
      { eval: true },
    );
    t.after(() => worker.terminate());
    const [{ port }] = await onceEE(worker, 'message', 5000);
    const $ = scope(t);
    const c = $.client({ address: () => ({ port }) }, '/');
    await opened(c);
    const got = clientMessage(c);
    c.send('hi');
    assert.equal((await got).data.toString(), 'worker:hi');
    const closed = clientClosed(c);
    worker.postMessage('close');
    const [msg] = await onceEE(worker, 'message', 5000);
    assert.deepEqual(msg, { closed: true });
    assert.equal((await closed).code, 1001);
  });
});

test.describe('constructor forms', () => {
  test.it('Server(options) with and without new', async (t) => {
    const a = tracked(t, () => new Server({ address: HOST, port: 0 }));
    const b = tracked(t, () => Server({ address: HOST, port: 0 }));
    assert.ok(a instanceof Server);
    assert.ok(b instanceof Server);
    assert.notEqual(a.address().port, b.address().port);
    await roundTrip(t, b);
  });

  test.it('Server(url) takes host and port from the URL', async (t) => {
    const s = tracked(t, () => Server(`ws://${HOST}:0/`));
    assert.equal(s.address().address, HOST);
    assert.ok(s.address().port > 0);
    await roundTrip(t, s);
  });

  test.it('Server(options.url)', (t) => {
    const s = tracked(t, () => Server({ url: `ws://${HOST}:0/` }));
    assert.equal(s.address().address, HOST);
    assert.ok(s.address().port > 0);
  });

  test.it('Server("host:port") and Server(host, port)', (t) => {
    const a = tracked(t, () => Server(`${HOST}:0`));
    const b = tracked(t, () => Server(HOST, 0));
    assert.equal(a.address().address, HOST);
    assert.equal(b.address().address, HOST);
  });

  test.it('Server(url, port): the port argument beats the URL port', async (t) => {
    const blocker = net.createServer().listen(0, HOST);
    await onceEE(blocker, 'listening');
    t.after(() => blocker.close());
    const busy = blocker.address().port;
    const s = tracked(t, () => Server(`ws://${HOST}:${busy}/`, 0));
    assert.notEqual(s.address().port, busy);
    await roundTrip(t, s);
  });

  test.it('Server(url, options): options.port beats the URL port', async (t) => {
    const blocker = net.createServer().listen(0, HOST);
    await onceEE(blocker, 'listening');
    t.after(() => blocker.close());
    const busy = blocker.address().port;
    const s = tracked(t, () => Server(`ws://${HOST}:${busy}/`, { port: 0 }));
    assert.notEqual(s.address().port, busy);
    assert.equal(s.address().address, HOST);
  });

  test.it('Server(port, options): the port argument beats options.port', async (t) => {
    const blocker = net.createServer().listen(0, HOST);
    await onceEE(blocker, 'listening');
    t.after(() => blocker.close());
    const busy = blocker.address().port;
    const s = tracked(t, () => Server(0, { address: HOST, port: busy }));
    assert.notEqual(s.address().port, busy);
    assert.equal(s.address().address, HOST);
  });

  test.it('Server(url, port, options): the port argument wins, options.address beats the URL host', async (t) => {
    const blocker = net.createServer().listen(0, HOST);
    await onceEE(blocker, 'listening');
    t.after(() => blocker.close());
    const busy = blocker.address().port;
    const s = tracked(t, () => Server(`ws://localhost:${busy}/`, 0, { address: HOST, port: busy }));
    assert.notEqual(s.address().port, busy);
    assert.equal(s.address().address, HOST);
    await roundTrip(t, s);
  });

  test.it('Server(port) uses the port argument (shown by EADDRINUSE on a taken port)', async (t) => {
    // Server(port) binds the dual-stack wildcard; a port already taken on
    // 127.0.0.1 must make it throw, so no wildcard listener is ever opened.
    const blocker = net.createServer().listen(0, HOST);
    await onceEE(blocker, 'listening');
    t.after(() => blocker.close());
    const busy = blocker.address().port;
    assert.throws(() => Server(busy), { code: 'EADDRINUSE' });
    assert.throws(() => new Server(busy), { code: 'EADDRINUSE' });
  });

  test.it('a trailing function is the connect handler (this = ws)', async (t) => {
    const $ = scope(t);
    let seen;
    const connected = new Promise((resolve) => {
      const s = $.track(
        Server({ address: HOST, port: 0 }, function (ws) {
          seen = { self: this, ws, state: ws.readyState };
          resolve();
        }),
      );
      const c = $.client(s, '/x');
      c.on('error', () => {});
    });
    await withTimeout(connected, 3000, 'connect handler');
    assert.equal(seen.self, seen.ws);
    assert.equal(seen.state, readyStates.OPEN);
    assert.equal(seen.ws.url, '/x');
  });

  test.it('a trailing function works with Server(url, port, options, fn)', async (t) => {
    const $ = scope(t);
    let fired = false;
    const s = $.track(Server(`ws://${HOST}:1/`, 0, { address: HOST }, () => (fired = true)));
    const c = $.client(s);
    await opened(c);
    await withTimeout((async () => { while (!fired) await delay(5); })(), 3000, 'connect');
    assert.equal(fired, true);
  });
});

test.describe('bind errors and bad options', () => {
  test.it('a port in use throws an Error with code EADDRINUSE (net server holds it)', async (t) => {
    const blocker = net.createServer().listen(0, HOST);
    await onceEE(blocker, 'listening');
    t.after(() => blocker.close());
    const port = blocker.address().port;
    try {
      new Server({ address: HOST, port });
      assert.fail('did not throw');
    } catch (e) {
      assert.ok(e instanceof Error);
      assert.equal(e.code, 'EADDRINUSE');
      assert.match(e.message, /EADDRINUSE|in use/i);
    }
  });

  test.it('a port in use by another sack server throws EADDRINUSE', (t) => {
    const $ = scope(t);
    const a = $.server();
    assert.throws(() => new Server({ address: HOST, port: a.address().port }), (e) => e instanceof Error && e.code === 'EADDRINUSE');
  });

  test.it('an address not on this machine throws EADDRNOTAVAIL', () => {
    // 192.0.2.1 is TEST-NET-1: never a local address; the bind fails at once.
    assert.throws(() => new Server({ address: '192.0.2.1', port: 0 }), (e) => e instanceof Error && e.code === 'EADDRNOTAVAIL');
  });

  const badOptions = [
    [{ port: -1 }, 'port'],
    [{ port: 65536 }, 'port'],
    [{ port: 1.5 }, 'port'],
    [{ port: 'abc' }, 'port'],
    [{ address: '' }, 'address'],
    [{ address: 5 }, 'address'],
    [{ maxPayload: -1 }, 'maxPayload'],
    [{ maxPayload: 'big' }, 'maxPayload'],
    [{ handshakeTimeout: NaN }, 'handshakeTimeout'],
    [{ requestTimeout: -5 }, 'requestTimeout'],
    [{ maxBackpressure: Infinity }, 'maxBackpressure'],
    [{ masking: 'yes' }, 'masking'],
    [{ perMessageDeflate: 'x' }, 'perMessageDeflate'],
    [{ url: 42 }, 'url'],
  ];
  for (const [opts, name] of badOptions) {
    test.it(`bad option ${JSON.stringify(opts)} → TypeError naming "${name}"`, () => {
      assert.throws(
        () => new Server({ address: HOST, port: 0, ...opts }),
        (e) => e instanceof TypeError && e.message.includes(name),
      );
    });
  }

  test.it('an argument of the wrong type → TypeError', () => {
    assert.throws(() => new Server(true), TypeError);
    assert.throws(() => new Server(HOST, 0, {}, 'extra'), TypeError);
  });
});

test.describe('address, readyState, connections', () => {
  test.it('address() gives { address, family, port } with the real port when 0 was asked', (t) => {
    const $ = scope(t);
    const s = $.server();
    const a = s.address();
    assert.deepEqual(Object.keys(a).sort(), ['address', 'family', 'port']);
    assert.equal(a.address, HOST);
    assert.equal(a.family, 'IPv4');
    assert.equal(typeof a.port, 'number');
    assert.ok(a.port > 0 && a.port < 65536);
  });

  test.it('the port is really listening', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const sock = net.connect(s.address().port, HOST);
    $.socket(sock);
    await onceEE(sock, 'connect');
  });

  test.it('readyState: LISTENING, then CLOSING with open connections, then CLOSED; connections counts', async (t) => {
    const $ = scope(t);
    const s = $.server();
    assert.equal(s.readyState, readyStates.LISTENING);
    assert.equal(s.connections, 0);
    const conn = nextEvent(s, 'connect');
    const c = $.client(s);
    await opened(c);
    await conn;
    assert.equal(s.connections, 1);
    const closed = nextEvent(s, 'close');
    const cc = clientClosed(c);
    s.close();
    assert.equal(s.readyState, readyStates.CLOSING);
    await cc;
    await closed;
    assert.equal(s.readyState, readyStates.CLOSED);
    assert.equal(s.connections, 0);
  });
});

test.describe('events and this', () => {
  test.it('accept: this = server, ws in CONNECTING with url, CGI, headers, protocols, connection', async (t) => {
    const $ = scope(t);
    const s = $.server();
    let seen;
    s.on('accept', function (ws) {
      seen = {
        self: this,
        state: ws.readyState,
        url: ws.url,
        CGI: { ...ws.CGI },
        headers: ws.headers,
        protocols: [...ws.protocols],
        remoteAddress: ws.connection.remoteAddress,
      };
      this.accept('two');
    });
    const c = $.client(s, '/room/1?user=ann&x', ['one', 'two'], { headers: { 'X-Test': 'yes' } });
    await opened(c);
    assert.equal(seen.self, s);
    assert.equal(seen.state, readyStates.CONNECTING);
    assert.equal(seen.url, '/room/1');
    assert.deepEqual(seen.CGI, { user: 'ann', x: null });
    assert.equal(seen.headers['x-test'], 'yes');
    assert.deepEqual(seen.protocols, ['one', 'two']);
    assert.equal(seen.remoteAddress, HOST);
    assert.equal(c.protocol, 'two');
  });

  test.it('connect: this = ws, readyState OPEN', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const ev = nextEvent(s, 'connect');
    const c = $.client(s);
    await opened(c);
    const { self, args } = await ev;
    assert.equal(self, args[0]);
    assert.equal(args[0].readyState, readyStates.OPEN);
  });

  test.it('close: fires once with no arguments when the listener closes', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const calls = [];
    s.on('close', (...args) => calls.push(args));
    const ev = nextEvent(s, 'close');
    s.close();
    await ev;
    await delay(50);
    assert.equal(calls.length, 1);
    // no arguments (undefined placeholders are tolerated)
    assert.ok(calls[0].every((a) => a === undefined), `close got arguments ${JSON.stringify(calls[0])}`);
  });

  test.it('onaccept = fn and onaccept(fn) set the single property handler; on() adds', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const calls = [];
    s.onaccept = () => calls.push('first');
    s.onaccept(() => {
      calls.push('second');
      s.accept();
    });
    s.on('accept', () => calls.push('listener'));
    const c = $.client(s);
    await opened(c);
    assert.deepEqual(calls.sort(), ['listener', 'second']);
  });

  test.it('onconnect = fn replaces the previous property handler; on("connect") adds', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const calls = [];
    s.onconnect = () => calls.push('a');
    s.onconnect = () => calls.push('b');
    s.on('connect', () => calls.push('c'));
    const done = nextEvent(s, 'connect');
    const c = $.client(s);
    await opened(c);
    await done;
    assert.deepEqual(calls.sort(), ['b', 'c']);
  });

  test.it('onclose(fn) on the server fires when it closes', async (t) => {
    const s = new Server({ address: HOST, port: 0 });
    t.after(() => closeServer(s));
    const fired = new Promise((resolve) => s.onclose(resolve));
    s.close();
    await withTimeout(fired, 3000, 'onclose');
    assert.equal(s.readyState, readyStates.CLOSED);
  });
});

test.describe('accept and reject', () => {
  test.it('server.accept() synchronously: connect fires, client opens', async (t) => {
    const $ = scope(t);
    const s = $.server();
    s.on('accept', () => s.accept());
    const conn = nextEvent(s, 'connect');
    const c = $.client(s);
    await opened(c);
    const { args } = await conn;
    assert.equal(args[0].readyState, readyStates.OPEN);
    assert.equal(args[0].protocol, '');
  });

  test.it('send() right after server.accept() in the accept handler reaches the client first', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const order = [];
    s.on('accept', (ws) => {
      assert.throws(() => ws.send('too early'), (e) => e.code === 'WS_ERR_NOT_OPEN');
      s.accept();
      assert.equal(ws.readyState, readyStates.OPEN);
      ws.send('welcome');
      order.push('accept');
    });
    s.on('connect', () => order.push('connect'));
    const c = $.client(s);
    const got = clientMessage(c);
    await opened(c);
    assert.equal((await got).data.toString(), 'welcome');
    assert.deepEqual(order, ['accept', 'connect']);
  });

  test.it('server.reject(status, reason) synchronously: the client gets that status', async (t) => {
    const $ = scope(t);
    const s = $.server();
    let connected = false;
    s.on('connect', () => (connected = true));
    s.on('accept', () => s.reject(401, 'Nope'));
    const c = $.client(s);
    const res = await unexpectedResponse(c);
    assert.equal(res.statusCode, 401);
    assert.equal(res.headers.connection, 'close');
    assert.equal(connected, false);
  });

  test.it('server.reject() defaults to 403', async (t) => {
    const $ = scope(t);
    const s = $.server();
    s.on('accept', () => s.reject());
    const res = await unexpectedResponse($.client(s));
    assert.equal(res.statusCode, 403);
  });

  test.it('ws.accept() after an await', async (t) => {
    const $ = scope(t);
    const s = $.server();
    s.on('accept', async (ws) => {
      await delay(50);
      assert.equal(ws.readyState, readyStates.CONNECTING);
      ws.accept('b');
    });
    const conn = nextEvent(s, 'connect');
    const c = $.client(s, '/', ['a', 'b']);
    await opened(c);
    const { self, args } = await conn;
    assert.equal(self, args[0]);
    assert.equal(args[0].protocol, 'b');
    assert.equal(c.protocol, 'b');
    // the connection works
    const got = clientMessage(c);
    args[0].send('late hello');
    assert.equal((await got).data.toString(), 'late hello');
  });

  test.it('ws.reject(status) after an await', async (t) => {
    const $ = scope(t);
    const s = $.server();
    s.on('accept', async (ws) => {
      await delay(50);
      ws.reject(404, 'Not here');
    });
    const res = await unexpectedResponse($.client(s));
    assert.equal(res.statusCode, 404);
  });

  test.it('server.accept()/reject() outside the accept event throw', async (t) => {
    const $ = scope(t);
    const s = $.server();
    assert.throws(() => s.accept(), (e) => e instanceof Error && /accept/.test(e.message));
    assert.throws(() => s.reject(), (e) => e instanceof Error && /reject/.test(e.message));
    // also after an await inside the handler
    let later;
    s.on('accept', async (ws) => {
      await delay(10);
      try {
        s.accept();
        later = 'no throw';
      } catch (e) {
        later = e;
      }
      ws.accept();
    });
    const c = $.client(s);
    await opened(c);
    assert.ok(later instanceof Error, 'server.accept() after an await did not throw');
  });

  test.it('accept(protocol) with a protocol the client did not offer → TypeError', async (t) => {
    const $ = scope(t);
    const s = $.server();
    let err;
    s.on('accept', () => {
      try {
        s.accept('nope');
      } catch (e) {
        err = e;
      }
      s.accept('chat');
    });
    const c = $.client(s, '/', ['chat']);
    await opened(c);
    assert.ok(err instanceof TypeError);
    assert.equal(c.protocol, 'chat');
  });

  test.it('a second decision throws', async (t) => {
    const $ = scope(t);
    const s = $.server();
    let err;
    s.on('accept', (ws) => {
      s.accept();
      try {
        ws.reject(400);
      } catch (e) {
        err = e;
      }
    });
    const c = $.client(s);
    await opened(c);
    assert.ok(err instanceof Error);
  });

  test.it('no accept handler: accepted with no subprotocol even when some are offered', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const conn = nextEvent(s, 'connect');
    const r = await $.raw(s);
    const head = await r.handshake('/', { 'Sec-WebSocket-Protocol': 'a, b' });
    assert.equal(head.statusCode, 101);
    assert.equal(head.headers['sec-websocket-accept'], GOOD_ACCEPT);
    assert.equal(head.headers['sec-websocket-protocol'], undefined);
    const { args } = await conn;
    assert.equal(args[0].protocol, '');
    assert.deepEqual([...args[0].protocols], ['a', 'b']);
  });

  test.it('protocol negotiation: the accepted subprotocol is on both sides and in the 101', async (t) => {
    const $ = scope(t);
    const s = $.server();
    s.on('accept', (ws) => {
      assert.deepEqual([...ws.protocols], ['v1.chat', 'v2.chat']);
      s.accept('v2.chat');
    });
    const conn = nextEvent(s, 'connect');
    const r = await $.raw(s);
    const head = await r.handshake('/', { 'Sec-WebSocket-Protocol': 'v1.chat, v2.chat' });
    assert.equal(head.statusCode, 101);
    assert.equal(head.headers['sec-websocket-protocol'], 'v2.chat');
    assert.equal((await conn).args[0].protocol, 'v2.chat');
  });

  test.it('a rejected client gets a complete HTTP response (status line, Content-Length, Connection: close), then EOF', async (t) => {
    const $ = scope(t);
    const s = $.server();
    s.on('accept', () => s.reject(403, 'Go away'));
    const r = await $.raw(s);
    r.write(upgradeRequest('/'));
    await r.waitEnd();
    const head = parseHead(r.buf);
    assert.ok(head, `no complete response head in ${JSON.stringify(r.buf.toString())}`);
    assert.match(head.statusLine, /^HTTP\/1\.1 403 /);
    assert.equal(head.headers.connection, 'close');
    assert.ok('content-length' in head.headers, 'no Content-Length');
    const body = r.buf.subarray(head.headLength);
    assert.equal(Number(head.headers['content-length']), body.length);
  });

  test.it('a reject reason with CR/LF cannot inject headers', async (t) => {
    const $ = scope(t);
    const s = $.server();
    s.on('accept', () => s.reject(400, 'Bad\r\nX-Injected: yes'));
    const r = await $.raw(s);
    r.write(upgradeRequest('/'));
    await r.waitEnd();
    const head = parseHead(r.buf);
    assert.ok(head);
    assert.equal(head.statusCode, 400);
    assert.equal(head.headers['x-injected'], undefined);
    assert.equal(Number(head.headers['content-length']), r.buf.length - head.headLength);
  });

  test.it('ws.terminate() on a pending connection drops it; close fires with 1006', async (t) => {
    const $ = scope(t);
    const s = $.server();
    let connected = false;
    s.on('connect', () => (connected = true));
    const closed = new Promise((resolve) => {
      s.on('accept', (ws) => {
        ws.on('close', (code) => resolve(code));
        ws.terminate();
      });
    });
    const r = await $.raw(s);
    r.write(upgradeRequest('/'));
    await r.waitEnd();
    assert.equal(parseHead(r.buf)?.statusCode === 101, false, 'a terminated connection got a 101');
    assert.equal(await withTimeout(closed, 3000, 'close after terminate'), 1006);
    assert.equal(connected, false);
  });

  test.it('ws.close() on a pending connection refuses it', async (t) => {
    const $ = scope(t);
    const s = $.server();
    s.on('accept', (ws) => ws.close());
    const res = await unexpectedResponse($.client(s));
    assert.ok(res.statusCode >= 400 && res.statusCode < 600);
  });
});

test.describe('server.close()', () => {
  test.it('close(code, reason) closes every open connection with that code, then emits close', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const serverSide = [];
    s.on('connect', (ws) => {
      ws.on('close', (code, reason) => serverSide.push([code, reason]));
    });
    const a = $.client(s, '/a');
    const b = $.client(s, '/b');
    await Promise.all([opened(a), opened(b)]);
    await withTimeout((async () => { while (s.connections < 2) await delay(5); })(), 3000, 'two connections');
    const ca = clientClosed(a);
    const cb = clientClosed(b);
    const sc = nextEvent(s, 'close', 5000);
    s.close(4000, 'shutdown');
    assert.deepEqual(await ca, { code: 4000, reason: 'shutdown' });
    assert.deepEqual(await cb, { code: 4000, reason: 'shutdown' });
    // every connection's close event comes before the server's
    const atServerClose = (await sc, serverSide.length);
    assert.equal(atServerClose, 2);
    for (const [code, reason] of serverSide) {
      assert.equal(code, 4000);
      assert.equal(reason, 'shutdown');
    }
    assert.equal(s.connections, 0);
  });

  test.it('close() puts open connections in CLOSING at once', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const conn = nextEvent(s, 'connect');
    const c = $.client(s);
    await opened(c);
    const ws = (await conn).args[0];
    const sc = nextEvent(s, 'close', 5000);
    s.close();
    assert.equal(ws.readyState, readyStates.CLOSING);
    // A handler still answering what was read before the close: dropped, no throw.
    assert.equal(ws.send('late'), false);
    await sc;
    assert.equal(ws.readyState, readyStates.CLOSED);
  });

  test.it('close() defaults to 1001', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const c = $.client(s);
    await opened(c);
    const cc = clientClosed(c);
    const sc = nextEvent(s, 'close', 5000);
    s.close();
    assert.equal((await cc).code, 1001);
    await sc;
  });

  test.it('after close the port refuses connections', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const port = s.address().port;
    await closeServer(s);
    const sock = net.connect(port, HOST);
    $.socket(sock);
    const [err] = await withTimeout(
      new Promise((resolve) => {
        sock.once('error', (e) => resolve([e]));
        sock.once('connect', () => resolve([null]));
      }),
      3000,
      'connect result',
    );
    assert.ok(err, 'the port still accepted a connection after server.close()');
    assert.equal(err.code, 'ECONNREFUSED');
  });

  test.it('close() with an invalid code → RangeError; a second close() is harmless', async (t) => {
    const $ = scope(t);
    const s = $.server();
    assert.throws(() => s.close(1005), RangeError);
    assert.throws(() => s.close(1000, 'x'.repeat(124)), RangeError);
    assert.equal(s.readyState, readyStates.LISTENING);
    const sc = nextEvent(s, 'close');
    s.close();
    s.close();
    await sc;
  });

  test.it('close() with an undecided connection still completes; the client gets an answer', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const pending = nextEvent(s, 'accept');
    s.on('accept', () => {}); // never decides
    const c = $.client(s);
    const answered = withTimeout(
      new Promise((resolve) => {
        c.once('unexpected-response', (req, res) => resolve(res.statusCode));
        c.once('open', () => resolve('open'));
        c.once('close', () => resolve('closed'));
      }),
      5000,
      'an answer to the pending client',
    );
    await pending;
    const sc = nextEvent(s, 'close', 5000);
    s.close();
    await sc;
    const a = await answered;
    assert.notEqual(a, 'open');
  });
});

test.describe('other server events', () => {
  test.it('onerror = fn and on("error") both receive socket errors', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const calls = [];
    s.onerror = function (info) {
      calls.push(['prop', this === s, info.error.code]);
    };
    s.on('error', (info) => calls.push(['on', info.error.code]));
    const r = await $.raw(s);
    r.write('BLAH\r\n\r\n');
    await r.waitEnd();
    const start = Date.now();
    while (calls.length < 2 && Date.now() - start < 3000) await delay(10);
    assert.equal(calls.length, 2);
    assert.deepEqual(calls[0].slice(0, 2), ['prop', true]);
    assert.equal(calls[0][2], calls[1][1]);
  });

  test.it('request: (req, res) with this = server for a plain HTTP request; onrequest works too', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const seen = [];
    s.on('request', function (req, res) {
      seen.push({ self: this, method: req.method, url: req.url, path: req.path, host: req.headers.host });
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('hello http');
    });
    const get = (p) =>
      withTimeout(
        new Promise((resolve, reject) => {
          const req = http.get({ host: HOST, port: s.address().port, path: p, agent: false }, (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (d) => (body += d));
            res.on('end', () => resolve({ status: res.statusCode, body }));
          });
          req.on('error', reject);
        }),
        3000,
        'HTTP response',
      );
    const res = await get('/page?x=1');
    assert.equal(res.status, 200);
    assert.equal(res.body, 'hello http');
    assert.equal(seen.length, 1);
    assert.equal(seen[0].self, s);
    assert.equal(seen[0].method, 'GET');
    assert.equal(seen[0].url, '/page?x=1');
    assert.equal(seen[0].path, '/page');
    assert.equal(seen[0].host, `${HOST}:${s.address().port}`);
  });

  test.it('lowError handlers can be registered (on, onerrorlow, onlowerror)', (t) => {
    const $ = scope(t);
    const s = $.server();
    s.on('lowError', () => {});
    s.onerrorlow = () => {};
    s.onlowerror(() => {});
    assert.throws(() => s.on('nonsense', () => {}), TypeError);
  });
});

test.describe('limits', () => {
  test.it('maxConnections: 1 → a second client is refused with 503; a slot frees when the first closes', async (t) => {
    const $ = scope(t);
    const s = $.server({ maxConnections: 1 });
    const a = $.client(s);
    await opened(a);
    const res = await unexpectedResponse($.client(s));
    assert.equal(res.statusCode, 503);
    const ac = clientClosed(a);
    a.close();
    await ac;
    // the slot is free once the server has let go of the first connection
    let ok = false;
    for (let i = 0; i < 30 && !ok; i++) {
      const b = $.client(s);
      ok = await withTimeout(
        new Promise((resolve) => {
          b.once('open', () => resolve(true));
          b.once('unexpected-response', () => resolve(false));
          b.once('error', () => resolve(false));
        }),
        3000,
        'third client',
      );
      if (!ok) await delay(100);
    }
    assert.equal(ok, true, 'no connection accepted after the first one closed');
  });

  test.it('0 turns a limit off: maxPayload 0 takes a message that maxPayload 10 refuses; handshakeTimeout 0 waits for a slow head', async (t) => {
    const $ = scope(t);
    for (const [maxPayload, code] of [[10, 1009], [0, 1000]]) {
      const s = $.server({ maxPayload });
      s.onconnect = (ws) => (ws.onmessage = (m) => ws.close(1000));
      const c = $.client(s);
      await opened(c);
      const closed = clientClosed(c);
      c.send('x'.repeat(64 * 1024));
      assert.equal((await closed).code, code, `maxPayload ${maxPayload}`);
    }
    const s = $.server({ handshakeTimeout: 0 });
    const r = await $.raw(s);
    r.write('GET / HTTP/1.1\r\n');
    await delay(300);
    r.write('Host: h\r\n\r\n');
    const h = await r.readHead(3000);
    assert.equal(h.statusCode, 426, 'answered after the pause, not dropped');
  });
});

test.describe('TLS options', () => {
  const fs = require('node:fs');
  const os = require('node:os');
  const { execFileSync } = require('node:child_process');

  // A throwaway self-signed certificate for 127.0.0.1 (null when openssl is missing).
  function selfSigned() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sack-test-'));
    try {
      execFileSync('openssl', [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'),
        '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1',
      ], { stdio: 'ignore' });
      return { key: fs.readFileSync(path.join(dir, 'key.pem')), cert: fs.readFileSync(path.join(dir, 'cert.pem')) };
    } catch {
      return null;
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  test.it('TLS options that would make no TLS server are refused, not served as plain text', () => {
    for (const opts of [{ hosts: [] }, { ticketKeys: Buffer.alloc(48) }, { passphrase: 'x' }, { ca: 'x' }]) {
      assert.throws(() => sack.Websocket.Server({ address: HOST, port: 0, ...opts }), TypeError);
    }
    // A wss:// URL without a certificate, or a certificate that is no PEM: a TypeError.
    assert.throws(() => sack.Websocket.Server({ url: 'wss://127.0.0.1:0/' }), TypeError);
    assert.throws(() => sack.Websocket.Server({ address: HOST, port: 0, cert: 'x', key: 'y' }), { name: 'TypeError', code: 'ERR_SACK_TLS_MATERIAL' });
    // Likewise a backplane URL that is no Redis URL.
    assert.throws(() => sack.Websocket.Server({ address: HOST, port: 0, backplane: { url: 'https://127.0.0.1:1' } }), TypeError);
  });

  test.it('cert + key → a wss:// server a TLS client can talk to', async (t) => {
    const pem = selfSigned();
    if (!pem) return t.skip('openssl is not available');
    const $ = scope(t);
    const s = $.server({ cert: pem.cert, key: pem.key });
    s.on('connect', (ws) => ws.on('message', (m) => ws.send(`tls:${m}`)));
    const c = new WebSocket(`wss://${HOST}:${s.address().port}/`, { ca: pem.cert, servername: 'localhost' });
    t.after(() => c.terminate());
    await opened(c);
    const got = clientMessage(c);
    c.send('secure');
    assert.equal((await got).data.toString(), 'tls:secure');
  });
});
