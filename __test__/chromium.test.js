'use strict';
// A real browser against sack's permessage-deflate: headless Chromium (the
// Debian `chromium` package) driven by playwright-core. A page served by
// sack's own `request` event opens a WebSocket to the same server; the page
// sends and checks the messages and reports back through page.evaluate.
//
// The last tests do the same over TLS: the page from https://localhost and
// the WebSocket to wss:// on that one port, Chromium trusting the test
// certificate by its key (a launch of its own, with the flag).
//
// Set-up (chromiumSession in helpers.js), done by the first test: installs
// Debian's chromium and playwright-core into .cache/ when missing. When they
// cannot be installed, every test skips and says why.

const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const crypto = require('node:crypto');

const { HOST, scope, withTimeout, compressibleText, chromiumSession, testPki } = require('./helpers.js');

const PMD = 'permessage-deflate';

// ---------------------------------------------------------------- page

// In the page: open a WebSocket, send each message of `plan`, check each
// echo exactly, report the results. `plan`: [{ kind: 'text' | 'binary' |
// 'random', bytes, seed }]; 'random' is incompressible binary.
function pageScript() {
  /* global document, window, location */
  async function sha256(data) {
    const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : new Uint8Array(data);
    const h = await crypto.subtle.digest('SHA-256', bytes);
    return Array.from(new Uint8Array(h), (b) => b.toString(16).padStart(2, '0')).join('');
  }
  function equalBytes(a, b) {
    if (a.byteLength !== b.byteLength) return false;
    const x = new Uint8Array(a);
    const y = new Uint8Array(b);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
    return true;
  }
  function randomBytes(n) {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i += 65536) crypto.getRandomValues(b.subarray(i, Math.min(n, i + 65536)));
    return b.buffer;
  }
  window.runPlan = async function runPlan(url, plan) {
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    const inbox = [];
    const waiting = [];
    let closed = null;
    ws.onmessage = (e) => (waiting.length ? waiting.shift().resolve(e.data) : inbox.push(e.data));
    ws.onclose = (e) => {
      closed = { code: e.code, reason: e.reason, wasClean: e.wasClean };
      for (const w of waiting.splice(0)) w.reject(new Error(`closed ${e.code} ${e.reason}`));
    };
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new Error('WebSocket error before open'));
    });
    const next = () =>
      inbox.length
        ? Promise.resolve(inbox.shift())
        : closed
          ? Promise.reject(new Error(`closed ${closed.code}`))
          : new Promise((resolve, reject) => waiting.push({ resolve, reject }));
    const messages = plan.map((p) =>
      p.kind === 'text' ? compressibleText(p.bytes, p.seed) : p.kind === 'binary' ? new TextEncoder().encode(compressibleText(p.bytes, p.seed)).buffer : randomBytes(p.bytes),
    );
    // All sent at once, the echoes read in order.
    for (const m of messages) ws.send(m);
    const results = [];
    for (let i = 0; i < messages.length; i++) {
      const sent = messages[i];
      const got = await next();
      const text = typeof sent === 'string';
      results.push({
        kind: plan[i].kind,
        bytes: plan[i].bytes,
        type: typeof got === 'string' ? 'text' : 'binary',
        equal: text ? got === sent : got instanceof ArrayBuffer && equalBytes(got, sent),
        length: typeof got === 'string' ? new TextEncoder().encode(got).length : got.byteLength,
        sha: await sha256(got),
        sentSha: await sha256(sent),
      });
    }
    const extensions = ws.extensions;
    ws.close(1000, 'done');
    await new Promise((resolve) => (closed ? resolve() : (ws.onclose = (e) => resolve((closed = { code: e.code, wasClean: e.wasClean })))));
    return { extensions, results, closed };
  };
  document.title = 'ready';
}

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>loading</title></head>
<body><p>sack permessage-deflate test page</p>
<script>
${compressibleText.toString()}
(${pageScript.toString()})();
</script></body></html>`;

// ---------------------------------------------------------------- wire tap

/**
 * A TCP relay from its own port to `port`, that parses the WebSocket frame
 * headers going each way (after the HTTP heads) without keeping payloads:
 * `frames.up` (browser → server) and `frames.down`, each [{ opcode, rsv,
 * fin, len }], and byte counts.
 */
function tap(port) {
  const frames = { up: [], down: [] };
  const bytes = { up: 0, down: 0 };
  const sockets = new Set();
  function parser(list) {
    let head = true;
    let buf = Buffer.alloc(0);
    let skip = 0;
    return (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (head) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          buf = buf.subarray(end + 4);
          head = false;
        }
        if (skip) {
          const n = Math.min(skip, buf.length);
          skip -= n;
          buf = buf.subarray(n);
          if (skip) return;
        }
        if (buf.length < 2) return;
        let len = buf[1] & 0x7f;
        let off = 2;
        if (len === 126) {
          if (buf.length < 4) return;
          len = buf.readUInt16BE(2);
          off = 4;
        } else if (len === 127) {
          if (buf.length < 10) return;
          len = Number(buf.readBigUInt64BE(2));
          off = 10;
        }
        if (buf[1] & 0x80) off += 4;
        if (buf.length < off) return;
        list.push({ fin: (buf[0] & 0x80) !== 0, rsv: (buf[0] >> 4) & 7, opcode: buf[0] & 15, len });
        buf = buf.subarray(off);
        skip = len;
      }
    };
  }
  const server = net.createServer((client) => {
    const upstream = net.connect(port, HOST);
    sockets.add(client);
    sockets.add(upstream);
    const up = parser(frames.up);
    const down = parser(frames.down);
    client.on('data', (d) => {
      bytes.up += d.length;
      up(d);
      upstream.write(d);
    });
    upstream.on('data', (d) => {
      bytes.down += d.length;
      down(d);
      client.write(d);
    });
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => sockets.delete(client));
    upstream.on('close', () => sockets.delete(upstream));
  });
  return {
    frames,
    bytes,
    listen: () =>
      new Promise((resolve) => {
        server.listen(0, HOST, () => resolve(server.address().port));
      }),
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

// ---------------------------------------------------------------- tests

const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');

test.describe('Chromium (headless) with permessage-deflate', { concurrency: false }, () => {
  const session = chromiumSession();
  test.after(() => session.close());
  const browser = (t) => session.context(t);

  /**
   * A sack server that serves PAGE at "/" and echoes WebSocket messages,
   * recording each connection's extensions and each message's SHA-256.
   */
  function pageServer(t, options) {
    const $ = scope(t);
    const s = $.server(options);
    const seen = { extensions: [], received: [] };
    s.onrequest = (req, res) => {
      if (req.url === '/') {
        res.setHeader('Content-Type', 'text/html; charset=utf-8');
        res.setHeader('Cache-Control', 'no-store');
        res.end(PAGE);
      } else {
        res.writeHead(404, { 'Content-Type': 'text/plain' });
        res.end('not found');
      }
    };
    s.onconnect = (ws) => {
      seen.extensions.push(ws.extensions);
      ws.onmessage = (m) => {
        seen.received.push({ type: typeof m === 'string' ? 'text' : 'binary', sha: sha(typeof m === 'string' ? Buffer.from(m) : Buffer.from(m)) });
        ws.send(m);
      };
    };
    return { s, seen, origin: `http://${HOST}:${s.address().port}` };
  }

  /** Opens the page from `origin` and runs `plan` against `wsUrl`. */
  async function runInPage(t, context, origin, wsUrl, plan) {
    const page = await context.newPage();
    try {
      const errors = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      const resp = await page.goto(`${origin}/`, { timeout: 15000 });
      assert.equal(resp.status(), 200, 'the page served by sack');
      await page.waitForFunction(() => document.title === 'ready', null, { timeout: 10000 });
      const out = await withTimeout(
        page.evaluate(([u, p]) => window.runPlan(u, p), [wsUrl, plan]),
        60000,
        'the page to run its plan',
      );
      assert.deepEqual(errors, [], 'no page errors');
      return out;
    } finally {
      // Before the server closes (the scope's after hook).
      await withTimeout(page.close(), 10000, 'closing the page').catch(() => {});
    }
  }

  function checkResults(out, plan, seen) {
    assert.equal(out.results.length, plan.length);
    out.results.forEach((r, i) => {
      const p = plan[i];
      assert.equal(r.type, p.kind === 'text' ? 'text' : 'binary', `message ${i} (${p.kind} ${p.bytes}) type`);
      assert.equal(r.length, p.bytes, `message ${i} (${p.kind} ${p.bytes}) length`);
      assert.ok(r.equal, `message ${i} (${p.kind} ${p.bytes}) came back exactly`);
      assert.equal(r.sha, r.sentSha);
      if (p.kind !== 'random') assert.equal(r.sha, sha(Buffer.from(compressibleText(p.bytes, p.seed))), `message ${i}: the same bytes Node generates`);
      // What the server received is what the page sent.
      assert.equal(seen.received[i].sha, r.sentSha, `message ${i} at the server`);
      assert.equal(seen.received[i].type, r.type);
    });
    assert.equal(out.closed.code, 1000);
  }

  test.it('installs or finds Chromium and playwright-core, and launches', { timeout: 30 * 60000 }, async (t) => {
    const context = await browser(t);
    if (!context) return;
    const page = await context.newPage();
    t.after(() => page.close().catch(() => {}));
    const ua = await page.evaluate(() => navigator.userAgent);
    assert.match(ua, /HeadlessChrome|Chrome/);
  });

  test.it('the browser negotiates permessage-deflate; a 1 MiB compressible text round-trips exactly', { timeout: 120000 }, async (t) => {
    const context = await browser(t);
    if (!context) return;
    const { seen, origin } = pageServer(t, { perMessageDeflate: true });
    const plan = [{ kind: 'text', bytes: 1 << 20, seed: 42 }];
    const out = await runInPage(t, context, origin, `ws://${HOST}:${new URL(origin).port}/ws`, plan);
    assert.match(out.extensions, /^permessage-deflate\b/, `the browser's ws.extensions: ${JSON.stringify(out.extensions)}`);
    assert.equal(seen.extensions.length, 1);
    assert.match(seen.extensions[0], /^permessage-deflate\b/, 'the server side');
    checkResults(out, plan, seen);
    t.diagnostic(`browser extensions: ${out.extensions}; server: ${seen.extensions[0]}`);
  });

  test.it('compressed on the wire both ways (through a relay that reads the frame headers)', { timeout: 120000 }, async (t) => {
    const context = await browser(t);
    if (!context) return;
    const { s, seen, origin } = pageServer(t, { perMessageDeflate: true });
    const relay = tap(s.address().port);
    const relayPort = await relay.listen();
    t.after(() => relay.close());
    const plan = [
      { kind: 'text', bytes: 1 << 20, seed: 1 },
      { kind: 'binary', bytes: 1 << 20, seed: 2 },
      { kind: 'text', bytes: 100, seed: 3 },
    ];
    const out = await runInPage(t, context, origin, `ws://${HOST}:${relayPort}/`, plan);
    checkResults(out, plan, seen);
    const data = (list) => list.filter((f) => f.opcode === 1 || f.opcode === 2 || f.opcode === 0);
    const down = data(relay.frames.down);
    const up = data(relay.frames.up);
    // sack sends one frame per message: RSV1 on the two big ones, not on the
    // 100-byte one (default threshold 1024).
    assert.deepEqual(down.map((f) => [f.opcode, f.rsv, f.fin]), [[1, 4, true], [2, 4, true], [1, 0, true]], JSON.stringify(down));
    assert.ok(down[0].len < (1 << 20) / 4 && down[1].len < (1 << 20) / 4, `server frames: ${down.map((f) => f.len)}`);
    // Chromium compresses too (RSV1 on the first frame of each message).
    const firstFrames = up.filter((f, i) => i === 0 || up[i - 1].fin);
    assert.ok(firstFrames.slice(0, 2).every((f) => f.rsv === 4), `browser frames: ${JSON.stringify(up.slice(0, 6))}`);
    assert.ok(relay.bytes.up < (1 << 20) / 2, `browser sent ${relay.bytes.up} bytes for 2 MiB`);
    assert.ok(relay.bytes.down < (1 << 20) / 2, `server sent ${relay.bytes.down} bytes for 2 MiB`);
    t.diagnostic(`wire: browser → server ${relay.bytes.up} bytes, server → browser ${relay.bytes.down} bytes for 2 MiB + 100 B`);
  });

  const variants = [
    ['defaults', { perMessageDeflate: true }, /^permessage-deflate$/],
    [
      'no context takeover, 9-bit windows both ways',
      { perMessageDeflate: { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 9, clientMaxWindowBits: 9 } },
      /^permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=9$/,
    ],
    ['threshold 0, level 1', { perMessageDeflate: { threshold: 0, level: 1 } }, /^permessage-deflate$/],
    ['perMessageDeflateAllow', { perMessageDeflateAllow: true }, /^permessage-deflate$/],
  ];
  for (const [name, options, expected] of variants) {
    test.it(`${name}: text, binary and random messages of many sizes, in order`, { timeout: 120000 }, async (t) => {
      const context = await browser(t);
      if (!context) return;
      const { seen, origin } = pageServer(t, options);
      const plan = [];
      let seed = 1;
      for (const bytes of [0, 1, 125, 126, 1023, 1024, 1025, 65535, 65536, 65537, 300000, 1 << 20]) {
        plan.push({ kind: 'text', bytes, seed: seed++ });
        plan.push({ kind: 'binary', bytes, seed: seed++ });
        plan.push({ kind: 'random', bytes, seed: seed++ });
      }
      for (let i = 0; i < 40; i++) plan.push({ kind: 'text', bytes: 2000 + i, seed: 7 }); // repeats: context takeover
      const out = await runInPage(t, context, origin, `ws://${HOST}:${new URL(origin).port}/`, plan);
      assert.match(seen.extensions[0], expected, 'the server side');
      assert.match(out.extensions, /^permessage-deflate\b/);
      checkResults(out, plan, seen);
    });
  }
});

// ---------------------------------------------------------------- TLS

// A test CA and two leaves it signs for localhost and 127.0.0.1:
// `trusted`, whose key Chromium is told to accept, and `other`, another key
// for the same names, which it must refuse. { error } when openssl is
// missing or fails.
function makePki() {
  return testPki('sack chromium test CA', ({ leaf }) => ({ trusted: leaf('trusted'), other: leaf('other') }));
}

/** Base64 of the SHA-256 of a certificate's SubjectPublicKeyInfo (Chromium's SPKI pin). */
function spkiHash(pem) {
  const der = new crypto.X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  return crypto.createHash('sha256').update(der).digest('base64');
}

// In the page: open a WebSocket to `url`, read the server's greeting, send
// `text` and a binary message of `binaryBytes` bytes ((i * 31 + 7) & 255),
// read each reply, close; report what came back (text as is, binary as its
// length and SHA-256), with the page's protocol and the socket's URL.
function tlsPageScript() {
  /* global document, window, location */
  const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
  window.exchange = async function exchange(url, text, binaryBytes) {
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    const inbox = [];
    const waiting = [];
    ws.onmessage = (e) => (waiting.length ? waiting.shift().resolve(e.data) : inbox.push(e.data));
    let closed = null;
    const closing = new Promise((resolve) => {
      ws.onclose = (e) => {
        closed = { code: e.code, reason: e.reason, wasClean: e.wasClean };
        for (const w of waiting.splice(0)) w.reject(new Error(`closed ${e.code} ${e.reason}`));
        resolve(closed);
      };
    });
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new Error('WebSocket error before open'));
    });
    const next = () =>
      inbox.length
        ? Promise.resolve(inbox.shift())
        : closed
          ? Promise.reject(new Error(`closed ${closed.code}`))
          : new Promise((resolve, reject) => waiting.push({ resolve, reject }));
    const describe = async (d) =>
      typeof d === 'string' ? { type: 'text', text: d } : { type: 'binary', length: d.byteLength, sha: hex(await crypto.subtle.digest('SHA-256', d)) };
    const greeting = await describe(await next());
    ws.send(text);
    const echo = await describe(await next());
    const bytes = new Uint8Array(binaryBytes);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + 7) & 255;
    ws.send(bytes);
    const reply = await describe(await next());
    ws.close(1000, 'done');
    return {
      protocol: location.protocol,
      secureContext: window.isSecureContext,
      url: ws.url,
      greeting,
      echo,
      reply,
      sentSha: hex(await crypto.subtle.digest('SHA-256', bytes)),
      closed: await closing,
    };
  };
  document.title = 'ready';
}

const TLS_PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>loading</title></head>
<body><p>sack wss:// test page</p>
<script>
(${tlsPageScript.toString()})();
</script></body></html>`;

test.describe('Chromium (headless) over TLS: https page and wss:// on one sack port', { concurrency: false }, () => {
  let pki = null;
  let session = null;
  test.after(() => session?.close());

  /**
   * A Chromium of its own (the pin is a launch flag), trusting only the
   * `trusted` leaf's key: certificate checks stay on for everything else.
   * localhost is mapped to 127.0.0.1 (the server's only address), so the URL
   * keeps the name the certificate is for. Null after t.skip when openssl or
   * Chromium is unavailable.
   */
  async function tlsBrowser(t) {
    pki ??= makePki();
    if (pki.error) {
      t.skip(`openssl unavailable: ${pki.error}`);
      return null;
    }
    session ??= chromiumSession({
      args: [`--ignore-certificate-errors-spki-list=${spkiHash(pki.trusted.cert)}`, `--host-resolver-rules=MAP localhost ${HOST}`],
    });
    return session.context(t);
  }

  /** A TLS sack server with `leaf` that serves TLS_PAGE at "/" and answers the page's WebSocket. */
  function tlsPageServer(t, leaf) {
    const $ = scope(t);
    const s = $.server({ cert: leaf.cert, key: leaf.key });
    const seen = { requests: [], upgrades: [], received: [] };
    s.onrequest = (req, res) => {
      // (req.connection has no TLS fields yet, hostname and tlsVersion are
      // null on requests: the upgrade's below and Chromium's
      // securityDetails() tell the TLS side.)
      seen.requests.push({ url: req.url, host: req.headers.host });
      if (req.url === '/') {
        res.setHeader('Content-Type', 'text/html; charset=utf-8');
        res.setHeader('Cache-Control', 'no-store');
        res.end(TLS_PAGE);
      } else {
        res.writeHead(404, { 'Content-Type': 'text/plain' });
        res.end('not found');
      }
    };
    s.onconnect = (ws) => {
      seen.upgrades.push({ url: ws.url, origin: ws.headers.origin, hostname: ws.connection.hostname, tlsVersion: ws.connection.tlsVersion });
      // Text comes back prefixed, binary reversed: the page checks real
      // replies, not a loop-back of its own bytes.
      ws.onmessage = (m) => {
        if (typeof m === 'string') {
          seen.received.push({ type: 'text', text: m });
          ws.send(`sack got: ${m}`);
        } else {
          const b = Buffer.from(m);
          seen.received.push({ type: 'binary', length: b.length, sha: sha(b) });
          ws.send(Buffer.from(b).reverse());
        }
      };
      // The server speaks first.
      ws.send('hello from sack over TLS');
    };
    return { s, seen, port: s.address().port };
  }

  test.it('the page comes over https from sack, opens wss:// to the same port; text and binary both ways', { timeout: 120000 }, async (t) => {
    const context = await tlsBrowser(t);
    if (!context) return;
    const { seen, port } = tlsPageServer(t, pki.trusted);
    const origin = `https://localhost:${port}`;
    const TEXT = 'ping from the page: jörg €uro 😀';
    // Several 16 KiB TLS records each way.
    const BINARY = 100000;
    const sent = Buffer.alloc(BINARY);
    for (let i = 0; i < BINARY; i++) sent[i] = (i * 31 + 7) & 255;
    const page = await context.newPage();
    try {
      const errors = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      const resp = await page.goto(`${origin}/`, { timeout: 15000 });
      assert.equal(resp.status(), 200, 'the page served by sack');
      assert.equal(resp.url(), `${origin}/`);
      // What Chromium saw of the connection: our leaf, our CA, TLS 1.3.
      const security = await resp.securityDetails();
      assert.equal(security?.subjectName, 'localhost', JSON.stringify(security));
      assert.equal(security.issuer, 'sack chromium test CA');
      assert.equal(security.protocol, 'TLS 1.3');
      await page.waitForFunction(() => document.title === 'ready', null, { timeout: 10000 });
      const out = await withTimeout(
        page.evaluate(([u, text, n]) => window.exchange(u, text, n), [`wss://localhost:${port}/ws`, TEXT, BINARY]),
        30000,
        'the page to exchange its messages',
      );
      assert.deepEqual(errors, [], 'no page errors');
      assert.equal(out.protocol, 'https:');
      assert.equal(out.secureContext, true);
      assert.equal(out.url, `wss://localhost:${port}/ws`);
      assert.deepEqual(out.greeting, { type: 'text', text: 'hello from sack over TLS' });
      assert.deepEqual(out.echo, { type: 'text', text: `sack got: ${TEXT}` });
      assert.equal(out.sentSha, sha(sent), 'the page sent the bytes Node expects');
      assert.deepEqual(out.reply, { type: 'binary', length: BINARY, sha: sha(Buffer.from(sent).reverse()) });
      assert.deepEqual(out.closed, { code: 1000, reason: 'done', wasClean: true });
      // The server side: the same messages; the page and the upgrade both
      // on this one port, the upgrade over TLS 1.3 with SNI localhost.
      assert.deepEqual(seen.received, [
        { type: 'text', text: TEXT },
        { type: 'binary', length: BINARY, sha: sha(sent) },
      ]);
      assert.deepEqual(seen.requests.find((r) => r.url === '/'), { url: '/', host: `localhost:${port}` });
      assert.deepEqual(seen.upgrades, [{ url: '/ws', origin, hostname: 'localhost', tlsVersion: 'TLSv1.3' }]);
      t.diagnostic(`Chromium: ${security.protocol}, subject ${security.subjectName}, issuer ${security.issuer}`);
    } finally {
      // Before the server closes (the scope's after hook).
      await withTimeout(page.close(), 10000, 'closing the page').catch(() => {});
    }
  });

  test.it('the same browser refuses a certificate with another key for the same names (the pin is per key)', { timeout: 120000 }, async (t) => {
    const context = await tlsBrowser(t);
    if (!context) return;
    const { seen, port } = tlsPageServer(t, pki.other);
    const page = await context.newPage();
    try {
      await assert.rejects(page.goto(`https://localhost:${port}/`, { timeout: 15000 }), /net::ERR_CERT_AUTHORITY_INVALID/);
      assert.deepEqual(seen.requests, [], 'no request got through');
      assert.deepEqual(seen.upgrades, []);
    } finally {
      await withTimeout(page.close(), 10000, 'closing the page').catch(() => {});
    }
  });
});
