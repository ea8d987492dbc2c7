'use strict';
// examples/chat-server.js, the `npm start` demo, run as a user runs it: in
// its own process with PORT=0, its URL read from its stdout. Without a
// browser: the page and 404 over HTTP, the room over `ws` clients, the stop
// on SIGTERM. With headless Chromium (chromiumSession in helpers.js; skips
// only when it cannot be installed): two tabs chat, the count follows them,
// a screenshot goes to .cache/test-output/chat.png (SACK_TEST_OUTPUT
// overrides the directory), and Ctrl-C (SIGINT) stops the demo with code 0.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');

const { ROOT, HOST, WebSocket, startNode, request, opened, clientClosed, unexpectedResponse, withTimeout, chromiumSession } = require('./helpers.js');

const DEMO = path.join(ROOT, 'examples', 'chat-server.js');
const OUT_DIR = process.env.SACK_TEST_OUTPUT || path.join(ROOT, '.cache', 'test-output');
const URL_LINE = /sack chat on (http:\/\/localhost:(\d+)\/)\n/;

/** Starts the demo (killed after the test); resolves { demo, url, port }. */
async function startDemo(t, env = {}) {
  const demo = startNode(`require(${JSON.stringify(DEMO)})`, { env: { PORT: '0', ...env } });
  t.after(() => demo.kill());
  const m = await demo.line(URL_LINE, 10000);
  const port = Number(m[2]);
  assert.ok(port > 0, `a real port in ${JSON.stringify(m[0])}`);
  return { demo, url: m[1], port };
}

/** Stops the demo with `signal`; checks it says so and exits with code 0. */
async function stopDemo(demo, signal) {
  demo.child.kill(signal);
  const exit = await demo.exited(5000);
  assert.deepEqual(exit, { code: 0, signal: null }, `exit after ${signal}; stderr: ${demo.stderr}`);
  assert.match(demo.stdout, new RegExp(`${signal}: closing \\d+ connection`));
  assert.match(demo.stdout, /sack chat stopped\n$/);
  assert.equal(demo.stderr, '');
}

/** A `ws` client whose JSON messages are read in order with next(). */
function chatClient(t, port, pathname = '/chat') {
  const c = new WebSocket(`ws://${HOST}:${port}${pathname}`);
  const queue = [];
  const waiting = [];
  c.on('error', () => {});
  c.on('message', (data, isBinary) => {
    const msg = isBinary ? { binary: data } : JSON.parse(String(data));
    if (waiting.length) waiting.shift()(msg);
    else queue.push(msg);
  });
  c.next = (ms = 3000) =>
    withTimeout(new Promise((resolve) => (queue.length ? resolve(queue.shift()) : waiting.push(resolve))), ms, 'a chat message');
  t.after(() => c.terminate());
  return c;
}

test.describe('examples/chat-server.js (npm start)', { concurrency: false }, () => {
  test.it('serves the page at / with a CSP, 404 elsewhere, and binds HOST', async (t) => {
    const { port } = await startDemo(t, { HOST });
    const page = await request(port, { path: '/' });
    assert.equal(page.status, 200);
    assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
    assert.match(page.headers['content-security-policy'], /script-src 'sha256-[^']+'/);
    assert.match(page.text, /^<!doctype html>/);
    assert.match(page.text, /<title>sack chat<\/title>/);
    assert.match(page.text, /\/chat`\)/, 'the page connects to /chat');
    assert.doesNotMatch(page.text, /innerHTML/, 'text goes in with textContent');
    for (const p of ['/nope', '/chat', '/index.html']) {
      const r = await request(port, { path: p });
      assert.equal(r.status, 404, p);
    }
    // HOST=127.0.0.1: nothing answers on the IPv6 loopback.
    const v6 = net.connect({ host: '::1', port });
    const [outcome] = await Promise.race([
      new Promise((resolve) => v6.once('connect', () => resolve(['connected']))),
      new Promise((resolve) => v6.once('error', (e) => resolve([e.code]))),
    ]);
    v6.destroy();
    assert.notEqual(outcome, 'connected', 'HOST=127.0.0.1 should not listen on ::1');
  });

  test.it('broadcasts JSON to every connection, counts them, limits text, ignores binary, refuses other paths', async (t) => {
    const { port } = await startDemo(t, { HOST });
    const a = chatClient(t, port);
    await opened(a);
    assert.deepEqual(await a.next(), { type: 'hello', name: 'guest-1' });
    assert.deepEqual(await a.next(), { type: 'count', n: 1 });

    const b = chatClient(t, port);
    await opened(b);
    assert.deepEqual(await b.next(), { type: 'hello', name: 'guest-2' });
    assert.deepEqual(await b.next(), { type: 'count', n: 2 });
    assert.deepEqual(await a.next(), { type: 'count', n: 2 });

    // Binary is ignored: the next thing anyone gets is the text after it.
    a.send(Buffer.from('binary'));
    const long = '<img src=x onerror=alert(1)>\u0007 ' + '😀'.repeat(1200);
    const before = Date.now();
    a.send(`  ${long}  `);
    for (const c of [a, b]) {
      const m = await c.next();
      assert.equal(m.type, 'message');
      assert.equal(m.from, 'guest-1');
      assert.ok(m.at >= before - 1000 && m.at <= Date.now() + 1000, `at: ${m.at}`);
      const chars = Array.from(m.text);
      assert.equal(chars.length, 1000, 'capped at 1000 characters, whole code points');
      assert.ok(m.text.startsWith('<img src=x onerror=alert(1)> 😀'), 'trimmed, control character removed, markup left as text');
      assert.equal(chars.at(-1), '😀');
    }
    b.send('   '); // blank: not sent
    b.send('hi');
    assert.deepEqual({ ...(await a.next()), at: 0 }, { type: 'message', text: 'hi', from: 'guest-2', at: 0 });

    // Another path: 404 before the upgrade.
    const other = new WebSocket(`ws://${HOST}:${port}/other`);
    other.on('error', () => {});
    t.after(() => other.terminate());
    const refused = await unexpectedResponse(other);
    assert.equal(refused.statusCode, 404);

    b.close();
    await clientClosed(b);
    assert.deepEqual(await a.next(), { type: 'count', n: 1 });
  });

  test.it('SIGTERM closes the connections (1001) and the process exits 0', async (t) => {
    const { demo, port } = await startDemo(t, { HOST });
    const a = chatClient(t, port);
    await opened(a);
    const closed = clientClosed(a, 5000);
    await a.next();
    await stopDemo(demo, 'SIGTERM');
    assert.equal((await closed).code, 1001);
    assert.match(demo.stdout, /SIGTERM: closing 1 connection/);
  });

  // ---------------------------------------------------------------- browser

  const session = chromiumSession();
  test.after(() => session.close());

  test.it('two Chromium tabs chat; the count follows them; screenshot; Ctrl-C stops the demo', { timeout: 30 * 60000 }, async (t) => {
    const context = await session.context(t);
    if (!context) return;
    // As `npm start` runs it: no HOST, the URL it prints.
    const { demo, url } = await startDemo(t);

    const problems = [];
    async function open(name) {
      const page = await context.newPage();
      t.after(() => page.close().catch(() => {}));
      page.on('pageerror', (e) => problems.push(`${name}: ${e}`));
      // A CSP violation is reported on the console.
      page.on('console', (m) => {
        if (m.type() === 'error' && !/favicon/.test(m.location()?.url ?? '')) problems.push(`${name}: ${m.text()}`);
      });
      await page.setViewportSize({ width: 720, height: 540 });
      const resp = await page.goto(url, { timeout: 15000 });
      assert.equal(resp.status(), 200);
      return page;
    }
    const status = (page, text) => page.locator('#status', { hasText: text }).waitFor({ timeout: 10000 });
    const texts = (page) => page.locator('#log li .text').allTextContents();
    async function say(page, text) {
      await page.locator('#text').fill(text);
      await page.locator('#send').click();
    }

    const a = await open('A');
    await status(a, '1 connected');
    const b = await open('B');
    await status(a, '2 connected');
    await status(b, '2 connected');

    const markup = 'Hello from A: <b>not bold</b> & <script>alert(1)</script>';
    await say(a, markup);
    await b.locator('#log li .text', { hasText: markup }).waitFor({ timeout: 10000 });
    await say(b, 'Hi A, tab B here.');
    await say(a, 'Both tabs see every message, and the count above.');
    const all = [markup, 'Hi A, tab B here.', 'Both tabs see every message, and the count above.'];
    await b.locator('#log li').nth(2).waitFor({ timeout: 10000 });
    await a.locator('#log li').nth(2).waitFor({ timeout: 10000 });
    assert.deepEqual(await texts(b), all, 'page B');
    assert.deepEqual(await texts(a), all, 'page A');
    assert.equal(await b.locator('#log b, #log script').count(), 0, 'markup shown as text, not parsed');
    // Each tab marks its own lines.
    assert.deepEqual(await a.locator('#log li').evaluateAll((els) => els.map((e) => e.classList.contains('mine'))), [true, false, true]);
    assert.deepEqual(await b.locator('#log li').evaluateAll((els) => els.map((e) => e.classList.contains('mine'))), [false, true, false]);
    assert.equal(await a.locator('#text').inputValue(), '', 'the input is cleared after sending');
    assert.equal(await b.locator('#me').textContent(), 'you are guest-2');

    fs.mkdirSync(OUT_DIR, { recursive: true });
    const shot = path.join(OUT_DIR, 'chat.png');
    await b.screenshot({ path: shot });
    assert.ok(fs.statSync(shot).size > 1000);
    t.diagnostic(`screenshot of page B: ${shot}`);

    await b.close();
    await status(a, '1 connected');
    // Checked before the stop: then the page's reconnects fail, as they should.
    assert.deepEqual(problems, [], 'no page errors or CSP violations');

    await stopDemo(demo, 'SIGINT');
    assert.match(demo.stdout, /SIGINT: closing 1 connection/);
    await status(a, 'offline');
  });
});
