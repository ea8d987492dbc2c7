'use strict';
// Handlers written for Node's `http`: real middleware packages (dev
// dependencies, pinned) used as they are inside `onrequest`: body-parser
// 2 (Express 5's), on-finished (what morgan, send and finalhandler use to
// learn that a response is over), finalhandler and serve-static. They read
// more of `req`/`res` than the contract names (req.readable, req.unpipe(),
// res.socket and its 'close'), and failed silently where sack lacked it.
//
// Everything listens on 127.0.0.1, port 0; every wait has a timeout.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const bodyParser = require('body-parser');
const onFinished = require('on-finished');
const finalhandler = require('finalhandler');
const serveStatic = require('serve-static');

const { scope, request, waitUntil, withTimeout, delay } = require('./helpers.js');

/** The port of a sack server whose requests go to `handler` (closed when the test ends). */
function serve(t, handler) {
  const server = scope(t).server();
  server.onrequest = handler;
  return server.address().port;
}

test.describe('body-parser 2', () => {
  test.it('parses JSON and urlencoded bodies; bad JSON is a 400', async (t) => {
    const json = bodyParser.json();
    const form = bodyParser.urlencoded({ extended: false });
    const port = serve(t, (req, res) => {
      const parse = req.url === '/json' ? json : form;
      parse(req, res, (err) => {
        res.statusCode = err ? err.status : 200;
        res.end(err ? `error ${err.type}` : JSON.stringify(req.body));
      });
    });
    const headers = (type) => ({ 'Content-Type': type });
    const a = await request(port, { method: 'POST', path: '/json', headers: headers('application/json'), body: '{"a":[1,2],"b":"é"}' });
    assert.equal(a.status, 200);
    assert.deepEqual(JSON.parse(a.text), { a: [1, 2], b: 'é' });
    const b = await request(port, { method: 'POST', path: '/form', headers: headers('application/x-www-form-urlencoded'), body: 'x=1&y=two+words' });
    assert.deepEqual(JSON.parse(b.text), { x: '1', y: 'two words' });
    const c = await request(port, { method: 'POST', path: '/json', headers: headers('application/json'), body: '{nope' });
    assert.equal(c.status, 400);
    assert.equal(c.text, 'error entity.parse.failed');
  });
});

test.describe('on-finished', () => {
  test.it('fires for res after end(), and for req once the response has ended (its unread body is read out)', async (t) => {
    const seen = [];
    const port = serve(t, (req, res) => {
      seen.push(`finished before: ${onFinished.isFinished(req)} ${onFinished.isFinished(res)}`);
      onFinished(res, (err) => seen.push(`res ${err}`));
      onFinished(req, (err) => seen.push(`req ${err}`));
      setTimeout(() => res.end('ok'), 10);
    });
    assert.equal((await request(port, { method: 'POST', body: 'never read' })).text, 'ok');
    await waitUntil(() => seen.length === 3, 3000, 'both callbacks');
    assert.equal(seen[0], 'finished before: false false');
    assert.deepEqual(seen.slice(1).sort(), ['req null', 'res null']);
  });

  test.it('fires for res when the response is destroyed or the client leaves mid-response', async (t) => {
    const seen = [];
    const port = serve(t, (req, res) => {
      onFinished(res, (err) => seen.push(`${req.url} ${err}`));
      if (req.url === '/destroy') {
        setTimeout(() => res.destroy(), 10);
      } else {
        // Streams until the client leaves; the write that fails tells sack.
        res.write('x'.repeat(1 << 16));
        const timer = setInterval(() => res.write('x'.repeat(1 << 16)), 5);
        res.on('close', () => clearInterval(timer));
      }
    });
    await assert.rejects(request(port, { path: '/destroy' }), /socket hang up|ECONNRESET/);
    const s = net.connect(port, '127.0.0.1');
    t.after(() => s.destroy());
    s.write('GET /leave HTTP/1.1\r\nHost: h\r\n\r\n');
    await new Promise((resolve) => s.once('data', resolve));
    s.destroy();
    await waitUntil(() => seen.length === 2, 5000, 'both callbacks');
    assert.deepEqual(seen, ['/destroy null', '/leave null']);
  });
});

test.describe('finalhandler', () => {
  test.it('answers 404 and an error page, also when the request body was not read', async (t) => {
    const port = serve(t, (req, res) => {
      const done = finalhandler(req, res, { onerror: () => {} });
      if (req.url === '/boom') done(Object.assign(new Error('boom'), { status: 503 }));
      else done();
    });
    const a = await request(port, { path: '/nothing?x=1' });
    assert.equal(a.status, 404);
    assert.match(a.text, /Cannot GET \/nothing/);
    const b = await request(port, { method: 'POST', path: '/nothing', body: 'a body nobody reads' });
    assert.equal(b.status, 404);
    assert.match(b.text, /Cannot POST \/nothing/);
    const c = await request(port, { path: '/boom' });
    assert.equal(c.status, 503);
  });
});

test.describe('serve-static', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sack-static-'));
  const small = 'hello from a file\n';
  fs.writeFileSync(path.join(dir, 'a.txt'), small);
  const big = path.join(dir, 'big.bin');
  fs.writeFileSync(big, Buffer.alloc(32 << 20, 7));
  test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

  // The descriptors of this process open on `file`.
  const openOn = (file) =>
    fs.readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return fs.readlinkSync(`/proc/self/fd/${fd}`) === file;
      } catch {
        return false;
      }
    }).length;

  test.it('serves a file: GET, HEAD, 304 by ETag, a range', async (t) => {
    const statics = serveStatic(dir);
    const port = serve(t, (req, res) => statics(req, res, finalhandler(req, res)));
    const a = await request(port, { path: '/a.txt' });
    assert.equal(a.status, 200);
    assert.equal(a.text, small);
    assert.equal(a.headers['content-length'], String(small.length));
    const h = await request(port, { method: 'HEAD', path: '/a.txt' });
    assert.equal(h.status, 200);
    assert.equal(h.body.length, 0);
    const n = await request(port, { path: '/a.txt', headers: { 'If-None-Match': a.headers.etag } });
    assert.equal(n.status, 304);
    const r = await request(port, { path: '/a.txt', headers: { Range: 'bytes=6-9' } });
    assert.equal(r.status, 206);
    assert.equal(r.text, 'from');
  });

  test.it('a download the client leaves closes its file (on-finished sees the response end)', { skip: process.platform !== 'linux' && 'reads /proc/self/fd' }, async (t) => {
    const statics = serveStatic(dir);
    let closed;
    const whenClosed = new Promise((resolve) => (closed = resolve));
    const port = serve(t, (req, res) => {
      res.on('close', () => closed());
      statics(req, res, finalhandler(req, res));
    });
    const s = net.connect(port, '127.0.0.1');
    t.after(() => s.destroy());
    s.write('GET /big.bin HTTP/1.1\r\nHost: h\r\n\r\n');
    let got = 0;
    await new Promise((resolve) =>
      s.on('data', (d) => {
        got += d.length;
        if (got > 1 << 20) resolve();
      }),
    );
    assert.equal(openOn(big), 1, 'the file is open while it is sent');
    s.destroy();
    await withTimeout(whenClosed, 5000, "the response's 'close'");
    await waitUntil(() => openOn(big) === 0, 3000, 'the file to be closed');
    await delay(10);
    assert.equal(openOn(big), 0);
  });
});
