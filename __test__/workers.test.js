'use strict';
// Worker-thread handoff (Websocket.Thread, ws.post): the contract's
// "Worker threads" section. Real sockets on 127.0.0.1, the ws package as
// client, real worker_threads.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { Worker } = require('node:worker_threads');
const { spawnSync } = require('node:child_process');
const WebSocket = require('ws');
const sack = require('..');

const ROOT = path.join(__dirname, '..');
const TIMEOUT = 15000;

function within(promise, ms = TIMEOUT, what = 'operation') {
  let t;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      t = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

// A worker that registers `count` times for `destination` (re-registering
// after each arrival), echoes every message, and reports arrivals and
// received text messages to the parent.
function echoWorker(destination, { count = 1, report = false } = {}) {
  const code = `
    const { parentPort, threadId } = require('node:worker_threads');
    const sack = require(${JSON.stringify(ROOT)});
    let left = ${count};
    function ready() {
      sack.Websocket.Thread.accept(${JSON.stringify(destination)}, (destination, ws) => {
        parentPort.postMessage({ type: 'arrived', destination, threadId, url: ws.url, CGI: { ...ws.CGI },
          headers: { ...ws.headers }, protocol: ws.protocol, readyState: ws.readyState,
          remoteAddress: ws.connection.remoteAddress, handlers: ws.listenerCount('message') + ws.listenerCount('close') });
        if (--left > 0) ready();
        ws.onmessage = (m) => {
          ${report ? "parentPort.postMessage({ type: 'message', data: m });" : ''}
          ws.send(m);
        };
      });
    }
    ready();
    parentPort.postMessage({ type: 'ready' });
  `;
  const w = new Worker(code, { eval: true });
  const ready = new Promise((resolve, reject) => {
    w.on('message', (m) => m.type === 'ready' && resolve());
    w.once('error', reject);
  });
  return { worker: w, ready };
}

function listen(options = {}) {
  return sack.Websocket.Server({ address: '127.0.0.1', port: 0, ...options });
}

function open(server, path = '/', protocols) {
  const c = new WebSocket(`ws://127.0.0.1:${server.address().port}${path}`, protocols);
  return within(new Promise((resolve, reject) => {
    c.once('open', () => resolve(c));
    c.once('error', reject);
  }), TIMEOUT, 'client open');
}

function closed(c) {
  return within(new Promise((resolve) => c.once('close', (code) => resolve(code))), TIMEOUT, 'client close');
}

function serverClosed(server) {
  return within(new Promise((resolve) => server.on('close', resolve)), TIMEOUT, 'server close');
}

test('post during accept: the receiver gets an open socket; connect fires only there', async () => {
  const { worker, ready } = echoWorker('accept-dest');
  await ready;
  const server = listen();
  let mainConnect = 0;
  let posted;
  server.onaccept = (ws) => {
    posted = ws.post('accept-dest');
  };
  server.onconnect = () => mainConnect++;
  const arrived = new Promise((resolve) => worker.on('message', (m) => m.type === 'arrived' && resolve(m)));
  const c = await open(server, '/room/7?user=ann&flag');
  const info = await within(arrived);
  assert.equal(posted, true);
  assert.equal(info.destination, 'accept-dest');
  assert.equal(info.url, '/room/7');
  assert.deepEqual(info.CGI, { user: 'ann', flag: null });
  assert.equal(info.headers.upgrade.toLowerCase(), 'websocket');
  assert.equal(info.readyState, 1);
  assert.equal(info.protocol, '');
  assert.match(info.remoteAddress, /127\.0\.0\.1/);
  assert.equal(info.handlers, 0, 'the new socket has no handlers');
  const echo = new Promise((resolve) => c.once('message', (d, bin) => resolve([String(d), bin])));
  c.send('hello worker');
  assert.deepEqual(await within(echo), ['hello worker', false]);
  assert.equal(mainConnect, 0);
  c.close();
  await closed(c);
  server.close();
  await serverClosed(server);
  await worker.terminate();
});

test('posting an open socket while the client streams: every message once, in order, echoed', async () => {
  const { worker, ready } = echoWorker('stream-dest', { report: true });
  await ready;
  const server = listen();
  const TOTAL = 5000;
  const POST_AT = 1000;
  const mainSeen = [];
  server.onconnect = (ws) => {
    ws.onmessage = (m) => {
      mainSeen.push(Number(m));
      ws.send(m);
      if (mainSeen.length === POST_AT) {
        // Sent before the post: must reach the client before the worker's echoes.
        ws.send('before-post');
        assert.equal(sack.Websocket.Thread.post(ws, 'stream-dest'), true);
        assert.equal(ws.readyState, 3);
        assert.throws(() => ws.send('x'), { code: 'WS_ERR_NOT_OPEN' });
      }
    };
  };
  const workerSeen = [];
  worker.on('message', (m) => m.type === 'message' && workerSeen.push(Number(m.data)));
  const c = await open(server);
  const got = [];
  const done = new Promise((resolve) =>
    c.on('message', (d) => {
      got.push(String(d));
      if (got.length === TOTAL + 1) resolve();
    }),
  );
  for (let i = 0; i < TOTAL; i++) c.send(String(i)); // no pause
  await within(done, 30000, 'all echoes');
  assert.deepEqual(mainSeen, Array.from({ length: POST_AT }, (_, i) => i));
  const expected = [];
  for (let i = 0; i < TOTAL; i++) {
    expected.push(String(i));
    if (i === POST_AT - 1) expected.push('before-post');
  }
  assert.deepEqual(got, expected, 'the client sees every echo once, in order');
  await within((async () => { while (workerSeen.length < TOTAL - POST_AT) await new Promise((r) => setTimeout(r, 10)); })());
  assert.deepEqual(workerSeen, Array.from({ length: TOTAL - POST_AT }, (_, i) => POST_AT + i));
  c.close();
  await closed(c);
  server.close();
  await serverClosed(server);
  await worker.terminate();
});

test('post with no receiver returns false and the socket stays usable', async () => {
  const server = listen();
  let result;
  server.onconnect = (ws) => {
    result = ws.post('nobody-here');
    ws.onmessage = (m) => ws.send('main:' + m);
  };
  const c = await open(server);
  const echo = new Promise((resolve) => c.once('message', (d) => resolve(String(d))));
  c.send('ping');
  assert.equal(await within(echo), 'main:ping');
  assert.equal(result, false);
  assert.throws(() => sack.Websocket.Thread.post('', {}), TypeError);
  assert.throws(() => sack.Websocket.Thread.accept('x'), TypeError);
  c.close();
  await closed(c);
  server.close();
  await serverClosed(server);
});

test('a pool of 4 workers: each gets sockets, re-registering after each', async () => {
  const pool = Array.from({ length: 4 }, () => echoWorker('pool', { count: 3 }));
  await Promise.all(pool.map((p) => p.ready));
  const server = listen();
  server.onaccept = (ws) => {
    if (!ws.post('pool')) server.reject(503);
  };
  const arrivals = [];
  for (const p of pool) p.worker.on('message', (m) => m.type === 'arrived' && arrivals.push(m.threadId));
  const clients = [];
  for (let i = 0; i < 12; i++) {
    const c = await open(server, `/c${i}`);
    const echo = new Promise((resolve) => c.once('message', (d) => resolve(String(d))));
    c.send(`n${i}`);
    assert.equal(await within(echo), `n${i}`);
    clients.push(c);
  }
  // Arrival reports travel over each worker's MessagePort and may trail the
  // echoes the clients already got.
  await within((async () => {
    while (arrivals.length < 12) await new Promise((r) => setTimeout(r, 5));
  })(), TIMEOUT, 'arrival reports');
  const per = new Map();
  for (const t of arrivals) per.set(t, (per.get(t) || 0) + 1);
  assert.equal(arrivals.length, 12);
  assert.equal(per.size, 4, 'every worker got sockets');
  for (const n of per.values()) assert.equal(n, 3, 'each worker took one per registration');
  // All registrations used: the next post finds no receiver.
  const res = new Promise((resolve) => {
    const c = new WebSocket(`ws://127.0.0.1:${server.address().port}/`);
    c.on('unexpected-response', (req, r) => resolve(r.statusCode));
    c.on('error', () => {});
  });
  assert.equal(await within(res), 503);
  for (const c of clients) c.close();
  await Promise.all(clients.map(closed));
  server.close();
  await serverClosed(server);
  await Promise.all(pool.map((p) => p.worker.terminate()));
});

test('a socket blocked before post reaches the receiver reading; the old object no longer blocks it', async (t) => {
  const { worker, ready } = echoWorker('unblock-dest');
  t.after(() => worker.terminate());
  await ready;
  const server = listen();
  t.after(() => server.close());
  let old;
  server.onconnect = (ws) => {
    old = ws;
    ws.block(); // backpressure on this thread, then handed on
    assert.equal(ws.post('unblock-dest'), true);
    ws.block(); // no longer this thread's socket: no effect
    ws.noDelay = false;
  };
  const c = await open(server);
  t.after(() => c.terminate());
  for (const text of ['one', 'two']) {
    const echo = new Promise((resolve) => c.once('message', (d) => resolve(String(d))));
    c.send(text);
    assert.equal(await within(echo, TIMEOUT, `the echo of ${text}`), text);
  }
  old.resume();
  assert.equal(old.readyState, 3);
  c.close();
  await closed(c);
  server.close();
  await serverClosed(server);
  await worker.terminate();
});

test('a worker that exits keeps the sockets it posted to another thread open there', async (t) => {
  // The worker listens and hands every connection to the main thread.
  const w = new Worker(`
    const { parentPort } = require('node:worker_threads');
    const sack = require(${JSON.stringify(ROOT)});
    const server = sack.Websocket.Server({ address: '127.0.0.1', port: 0 });
    server.onconnect = (ws) => ws.post('to-main');
    parentPort.postMessage(server.address().port);
  `, { eval: true });
  t.after(() => w.terminate());
  const port = await within(new Promise((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  }));
  const got = [];
  const accept = () => sack.Websocket.Thread.accept('to-main', (d, ws) => {
    got.push(ws);
    ws.onmessage = (m) => ws.send('main:' + m);
  });
  accept();
  const c = new WebSocket(`ws://127.0.0.1:${port}/`);
  t.after(() => c.terminate());
  await within(new Promise((resolve, reject) => {
    c.once('open', resolve);
    c.once('error', reject);
  }));
  const echo = (text) => within(new Promise((resolve) => {
    c.once('message', (d) => resolve(String(d)));
    c.send(text);
  }), TIMEOUT, `the echo of ${text}`);
  assert.equal(await echo('before'), 'main:before');
  let closedWith = null;
  c.on('close', (code) => { closedWith = code; });
  await w.terminate();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(closedWith, null, 'still open after the worker is gone');
  assert.equal(await echo('after'), 'main:after');
  assert.equal(got.length, 1);
  c.close();
  await closed(c);
});

function runChild(code) {
  return spawnSync(process.execPath, ['-e', code], { cwd: ROOT, encoding: 'utf8', timeout: 60000 });
}

test('a worker terminated mid-traffic: the process lives, the client sees 1001 or 1006, then the process exits', () => {
  const r = runChild(`
    const { Worker } = require('node:worker_threads');
    const sack = require('.');
    const WebSocket = require('ws');
    const server = sack.Websocket.Server({ address: '127.0.0.1', port: 0 });
    server.onaccept = (ws) => ws.post('victim');
    const w = new Worker(\`
      const sack = require(\${JSON.stringify(process.cwd())});
      sack.Websocket.Thread.accept('victim', (d, ws) => { ws.onmessage = (m) => ws.send(m); });
      require('node:worker_threads').parentPort.postMessage('ready');
    \`, { eval: true });
    w.on('message', () => {
      const c = new WebSocket('ws://127.0.0.1:' + server.address().port);
      let n = 0;
      const t = setInterval(() => c.readyState === 1 && c.send('x'.repeat(100)), 1);
      c.on('message', () => { if (++n === 50) w.terminate(); });
      c.on('close', (code) => { clearInterval(t); console.log('CLOSE ' + code); server.close(); });
    });
    w.on('exit', () => console.log('WORKER EXIT'));
  `);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /WORKER EXIT/);
  assert.match(r.stdout, /CLOSE (1001|1006)/);
});

test('20 rounds of worker create/terminate with live sockets, then a clean exit', () => {
  const r = runChild(`
    const { Worker } = require('node:worker_threads');
    const sack = require('.');
    const WebSocket = require('ws');
    const server = sack.Websocket.Server({ address: '127.0.0.1', port: 0 });
    server.onaccept = (ws) => { if (!ws.post('round')) server.reject(503); };
    let round = 0;
    const codes = [];
    function next() {
      if (round++ === 20) { console.log('CODES ' + codes.join(',')); server.close(); return; }
      const w = new Worker(\`
        const sack = require(\${JSON.stringify(process.cwd())});
        sack.Websocket.Thread.accept('round', (d, ws) => { ws.onmessage = (m) => ws.send(m); });
        require('node:worker_threads').parentPort.postMessage('ready');
      \`, { eval: true });
      w.on('message', () => {
        const cs = [0, 1, 2].map(() => new WebSocket('ws://127.0.0.1:' + server.address().port));
        let echoes = 0;
        const c = cs[0];
        c.on('open', () => c.send('a'));
        c.on('message', () => { echoes++; w.terminate(); });
        let closedCount = 0;
        for (const x of cs) {
          x.on('error', () => {});
          x.on('close', (code) => { codes.push(code); if (++closedCount === 3) next(); });
        }
      });
    }
    next();
  `);
  assert.equal(r.status, 0, r.stderr);
  const codes = /CODES (.*)/.exec(r.stdout)[1].split(',').map(Number);
  assert.equal(codes.length, 60);
  // The first client of each round was echoed by the worker, then closed by its exit.
  for (const code of codes) assert.ok([1001, 1006].includes(code) || code >= 1000, `close code ${code}`);
});
