'use strict';
// Raw `net` handshakes: well-formed and malformed upgrade requests, the
// HTTP answers they get, the server's 'error' event and the handshake timeout.

const test = require('node:test');
const assert = require('node:assert/strict');

const {
  HOST,
  OP,
  GOOD_ACCEPT,
  GOOD_KEY,
  nextEvent,
  scope,
  delay,
  encodeFrame,
  parseHead,
  upgradeRequest,

} = require('./helpers.js');

// Sends `request` (string or Buffer) and reads until the server ends the
// stream; returns the parsed head, the body and the raw client.
async function exchange($, server, request) {
  const r = await $.raw(server);
  r.write(request);
  await r.waitEnd(3000);
  const head = parseHead(r.buf);
  assert.ok(head, `no complete HTTP response in ${JSON.stringify(r.buf.toString('latin1'))}`);
  return { head, body: r.buf.subarray(head.headLength), r };
}

// A refusal must be a complete response: one Content-Length that matches
// the body, Connection: close.
function assertComplete({ head, body }) {
  assert.equal(head.httpVersion, '1.1');
  assert.ok(head.statusMessage.length > 0, 'status line without a reason phrase');
  assert.equal(typeof head.headers['content-length'], 'string', 'exactly one Content-Length');
  assert.equal(Number(head.headers['content-length']), body.length, 'Content-Length matches the body');
  assert.match(String(head.headers.connection), /close/i);
}

test.describe('handshake', () => {
  test.it('a valid upgrade gets 101 with the RFC 6455 accept key', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const r = await $.raw(s);
    const head = await r.handshake('/');
    assert.equal(head.statusLine, 'HTTP/1.1 101 Switching Protocols');
    assert.equal(head.headers.upgrade.toLowerCase(), 'websocket');
    assert.equal(head.headers.connection.toLowerCase(), 'upgrade');
    assert.equal(head.headers['sec-websocket-accept'], GOOD_ACCEPT);
    assert.equal(head.headers['sec-websocket-extensions'], undefined);
  });

  test.it('header names and tokens are case-insensitive', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const r = await $.raw(s);
    r.write(
      'GET / HTTP/1.1\r\nhost: x\r\nupgrade: WebSocket\r\nconnection: keep-alive, UPGRADE\r\n' +
        `sec-websocket-key: ${GOOD_KEY}\r\nsec-websocket-version: 13\r\n\r\n`,
    );
    const head = await r.readHead();
    assert.equal(head.statusCode, 101);
  });

  test.it('a request sent one byte at a time is understood', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const conn = nextEvent(s, 'connect');
    const r = await $.raw(s);
    const req = Buffer.from(upgradeRequest('/slow?x=1'));
    for (const b of req) {
      r.write(Buffer.from([b]));
      await delay(1);
    }
    const head = await r.readHead();
    assert.equal(head.statusCode, 101);
    assert.equal((await conn).args[0].url, '/slow');
  });

  test.it('frames sent in the same packet as the request are delivered', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const msgs = [];
    s.on('connect', (ws) => ws.on('message', (m) => msgs.push(m)));
    const r = await $.raw(s);
    r.write(Buffer.concat([Buffer.from(upgradeRequest('/')), encodeFrame(OP.TEXT, 'early'), encodeFrame(OP.TEXT, 'bird')]));
    const head = await r.readHead();
    assert.equal(head.statusCode, 101);
    const start = Date.now();
    while (msgs.length < 2 && Date.now() - start < 3000) await delay(10);
    assert.deepEqual(msgs, ['early', 'bird']);
  });

  test.it('frames sent with the request reach a handler that accepts after an await', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const msgs = [];
    s.on('accept', async (ws) => {
      await delay(30);
      ws.accept();
    });
    s.on('connect', (ws) => ws.on('message', (m) => msgs.push(m)));
    const r = await $.raw(s);
    r.write(Buffer.concat([Buffer.from(upgradeRequest('/')), encodeFrame(OP.TEXT, 'early')]));
    assert.equal((await r.readHead()).statusCode, 101);
    const start = Date.now();
    while (msgs.length < 1 && Date.now() - start < 3000) await delay(10);
    assert.deepEqual(msgs, ['early']);
  });
});

test.describe('refused requests', () => {
  test.it('a bad Sec-WebSocket-Version → 426 with Sec-WebSocket-Version: 13', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const res = await exchange($, s, upgradeRequest('/', { 'Sec-WebSocket-Version': '8' }));
    assert.equal(res.head.statusCode, 426);
    assert.equal(res.head.headers['sec-websocket-version'], '13');
    assertComplete(res);
  });

  test.it('a missing Sec-WebSocket-Version → 426 with Sec-WebSocket-Version: 13', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const res = await exchange($, s, upgradeRequest('/', { 'Sec-WebSocket-Version': null }));
    assert.equal(res.head.statusCode, 426);
    assert.equal(res.head.headers['sec-websocket-version'], '13');
  });

  test.it('a missing Sec-WebSocket-Key → 400', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const res = await exchange($, s, upgradeRequest('/', { 'Sec-WebSocket-Key': null }));
    assert.equal(res.head.statusCode, 400);
    assertComplete(res);
  });

  test.it('a Sec-WebSocket-Key that is not 16 bytes of base64 → 400', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const res = await exchange($, s, upgradeRequest('/', { 'Sec-WebSocket-Key': 'c2hvcnQ=' }));
    assert.equal(res.head.statusCode, 400);
  });

  for (const [name, headers, opts] of [
    ['a POST upgrade', {}, { method: 'POST' }],
    ['an HTTP/1.0 upgrade', {}, { version: '1.0' }],
    ['a missing Host', { Host: null }, {}],
    ['Connection without "upgrade"', { Connection: 'keep-alive' }, {}],
  ]) {
    test.it(`${name} → 400`, async (t) => {
      const $ = scope(t);
      const s = $.server();
      const res = await exchange($, s, upgradeRequest('/', headers, opts));
      assert.equal(res.head.statusCode, 400);
      assertComplete(res);
    });
  }

  test.it('a plain GET (no upgrade, no request handler) → 426 Upgrade Required', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const res = await exchange($, s, `GET /index.html HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
    assert.equal(res.head.statusCode, 426);
    assert.equal(res.head.statusMessage, 'Upgrade Required');
    assertComplete(res);
  });

  test.it('a refused handshake fires the server error event', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const errored = nextEvent(s, 'error');
    await exchange($, s, upgradeRequest('/', { 'Sec-WebSocket-Key': null }));
    const { self, args } = await errored;
    assert.equal(self, s);
    assert.equal(typeof args[0].error.code, 'string');
    assert.ok(args[0].error.code.length > 0);
  });

  test.it('garbage bytes → 400 and the error event with socketInfo (addresses, ports, error.code)', async (t) => {
    const $ = scope(t);
    const s = $.server();
    let connected = false;
    s.on('connect', () => (connected = true));
    const errored = nextEvent(s, 'error');
    const r = await $.raw(s);
    const localPort = r.socket.localPort;
    r.write(Buffer.from('\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03garbage\r\n\r\n', 'latin1'));
    await r.waitEnd();
    const head = parseHead(r.buf);
    assert.ok(head, `no HTTP response to garbage: ${JSON.stringify(r.buf.toString('latin1'))}`);
    assert.equal(head.statusCode, 400);
    assertComplete({ head, body: r.buf.subarray(head.headLength) });
    const { self, args } = await errored;
    assert.equal(self, s);
    const info = args[0];
    assert.equal(info.remoteAddress, HOST);
    assert.equal(info.remotePort, localPort);
    assert.equal(info.localAddress, HOST);
    assert.equal(info.localPort, s.address().port);
    assert.equal(typeof info.error.code, 'string');
    assert.ok(info.error.code.length > 0);
    assert.equal(typeof info.error.message, 'string');
    assert.equal(connected, false);
  });

  test.it('a head over maxHeaderSize → 431', async (t) => {
    const $ = scope(t);
    const s = $.server({ maxHeaderSize: 1024 });
    const res = await exchange($, s, upgradeRequest('/', { 'X-Big': 'a'.repeat(2048) }));
    assert.equal(res.head.statusCode, 431);
    assertComplete(res);
  });

  test.it('a client that hangs up mid-head fires the error event', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const errored = nextEvent(s, 'error');
    const r = await $.raw(s);
    r.write('GET / HTTP/1.1\r\nHost: x\r\n');
    await delay(50);
    r.socket.end();
    const { args } = await errored;
    assert.equal(typeof args[0].error.code, 'string');
  });
});

test.describe('handshake timeout', () => {
  test.it('handshakeTimeout: 300 → the error event with code ETIMEDOUT, and the socket is closed', async (t) => {
    const $ = scope(t);
    const s = $.server({ handshakeTimeout: 300 });
    const started = Date.now();
    const errored = nextEvent(s, 'error', 3000);
    const r = await $.raw(s);
    r.write('GET / HTTP/1.1\r\n'); // never finished
    const { self, args } = await errored;
    const elapsed = Date.now() - started;
    assert.equal(self, s);
    assert.equal(args[0].error.code, 'ETIMEDOUT');
    assert.ok(elapsed >= 250, `timed out after only ${elapsed} ms`);
    assert.ok(elapsed < 2500, `timed out after ${elapsed} ms`);
    await r.waitEnd(3000);
  });

  test.it('a silent connection also times out', async (t) => {
    const $ = scope(t);
    const s = $.server({ handshakeTimeout: 300 });
    const errored = nextEvent(s, 'error', 3000);
    const r = await $.raw(s);
    assert.equal((await errored).args[0].error.code, 'ETIMEDOUT');
    await r.waitEnd(3000);
  });

  test.it('a complete handshake before the timeout is not affected by it', async (t) => {
    const $ = scope(t);
    const s = $.server({ handshakeTimeout: 300 });
    let errors = 0;
    s.on('error', () => errors++);
    const conn = nextEvent(s, 'connect');
    const r = await $.raw(s);
    assert.equal((await r.handshake('/')).statusCode, 101);
    const ws = (await conn).args[0];
    await delay(500);
    assert.equal(errors, 0);
    ws.send('still here');
    const f = await r.readFrame();
    assert.equal(f.payload.toString(), 'still here');
  });
});


