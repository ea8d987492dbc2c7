'use strict';
// Worker pools: standing receivers (Thread.accept(..., { persistent: true })),
// cancelling a registration, and data posted along with a connection. Real
// sockets on 127.0.0.1, the ws package as client, real worker_threads.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { Worker } = require('node:worker_threads');
const WebSocket = require('ws');
const sack = require('..');
const { withTimeout, scope } = require('./helpers.js');

const ROOT = path.join(__dirname, '..');

// A worker with one standing receiver for `destination`: it echoes
// `${threadId} ${JSON.stringify(data)} ${message}`, cancels its
// registration on 'stop' (reporting what cancel() returned) and then has
// nothing left to keep it alive.
function poolWorker(destination) {
  const code = `
    const { parentPort, threadId } = require('node:worker_threads');
    const sack = require(${JSON.stringify(ROOT)});
    const receiver = sack.Websocket.Thread.accept(${JSON.stringify(destination)}, (destination, ws, data) => {
      ws.onmessage = (m) => ws.send(threadId + ' ' + JSON.stringify(data) + ' ' + m);
    }, { persistent: true });
    parentPort.on('message', (m) => {
      if (m === 'stop') {
        parentPort.postMessage({ type: 'cancelled', first: receiver.cancel(), again: receiver.cancel() });
        parentPort.close();
      }
    });
    parentPort.postMessage({ type: 'ready', threadId });
  `;
  const worker = new Worker(code, { eval: true });
  const messages = [];
  worker.on('message', (m) => messages.push(m));
  const ready = new Promise((resolve, reject) => {
    worker.on('message', (m) => m.type === 'ready' && resolve(m.threadId));
    worker.once('error', reject);
  });
  const exited = new Promise((resolve) => worker.once('exit', resolve));
  return { worker, ready, exited, messages };
}

// Opens `n` clients at once; each sends "hi" and resolves with its echo.
function burst(port, n) {
  return Promise.all(
    Array.from(
      { length: n },
      (_, i) =>
        new Promise((resolve, reject) => {
          const c = new WebSocket(`ws://127.0.0.1:${port}/c${i}`);
          c.on('open', () => c.send('hi'));
          c.on('message', (m) => {
            resolve({ i, text: String(m) });
            c.close();
          });
          c.on('error', reject);
        }),
    ),
  );
}

test.describe('worker pools', () => {
  test.it('a burst of 200 connections all reach standing receivers, spread over the workers, with the data posted along', async (t) => {
    const $ = scope(t);
    const s = $.server();
    const destination = 'pool-burst';
    const pool = [poolWorker(destination), poolWorker(destination)];
    const ids = await withTimeout(Promise.all(pool.map((w) => w.ready)), 10000, 'workers ready');
    let kept = 0;
    s.onaccept = (ws) => {
      if (!ws.post(destination, { path: ws.url, n: [1, 2] })) {
        kept++;
        s.accept();
      }
    };
    s.onconnect = (ws) => (ws.onmessage = (m) => ws.send(`main ${m}`));
    const answers = await withTimeout(burst(s.address().port, 200), 15000, 'the burst');
    assert.equal(kept, 0, 'no connection fell back to the main thread');
    const perWorker = new Map();
    for (const { i, text } of answers) {
      const [tid, data, msg] = text.split(' ');
      assert.deepEqual(JSON.parse(data), { path: `/c${i}`, n: [1, 2] });
      assert.equal(msg, 'hi');
      perWorker.set(Number(tid), (perWorker.get(Number(tid)) || 0) + 1);
    }
    assert.deepEqual([...perWorker.keys()].sort(), [...ids].sort(), 'both workers served');
    for (const n of perWorker.values()) assert.ok(n >= 50, `turns are taken: ${[...perWorker.values()]}`);

    // Cancelled, the workers leave by themselves (no terminate()), and
    // posting finds no receiver.
    for (const w of pool) w.worker.postMessage('stop');
    await withTimeout(Promise.all(pool.map((w) => w.exited)), 10000, 'the workers to exit after cancel()');
    for (const w of pool) {
      assert.deepEqual(w.messages.find((m) => m.type === 'cancelled'), { type: 'cancelled', first: true, again: false });
    }
    const [after] = await withTimeout(burst(s.address().port, 1), 5000, 'a connection after the pool stopped');
    assert.equal(after.text, 'main hi');
    assert.equal(kept, 1);
  });

  test.it('Thread.cancel(destination) cancels this thread’s registrations; a one-shot receiver is gone once used', async (t) => {
    const { Thread } = sack.Websocket;
    const noop = () => {};
    const a = Thread.accept('pool-cancel', noop);
    Thread.accept('pool-cancel', noop, { persistent: true });
    Thread.accept('pool-other', noop);
    assert.equal(Thread.cancel('pool-cancel'), 2);
    assert.equal(Thread.cancel('pool-cancel'), 0);
    assert.equal(a.cancel(), false);
    assert.equal(Thread.cancel('pool-other'), 1);

    // One-shot: used by the first connection, then cancel() says false.
    const $ = scope(t);
    const s = $.server();
    let arrived;
    const got = new Promise((resolve) => {
      arrived = Thread.accept('pool-once', (destination, ws, data) => {
        ws.onmessage = (m) => ws.send(`${data} ${m}`);
        resolve();
      });
    });
    s.onaccept = (ws) => ws.post('pool-once', 'here') || s.accept();
    s.onconnect = (ws) => (ws.onmessage = (m) => ws.send(`main ${m}`));
    const [first] = await withTimeout(burst(s.address().port, 1), 5000, 'the first connection');
    await got;
    assert.equal(first.text, 'here hi');
    assert.equal(arrived.cancel(), false);
    const [second] = await withTimeout(burst(s.address().port, 1), 5000, 'the second connection');
    assert.equal(second.text, 'main hi');
  });

  test.it('bad arguments: options, persistent, data that cannot be cloned', async (t) => {
    const { Thread } = sack.Websocket;
    assert.throws(() => Thread.accept('x', () => {}, 5), TypeError);
    assert.throws(() => Thread.accept('x', () => {}, { persistent: 'yes' }), TypeError);
    assert.throws(() => Thread.cancel(''), TypeError);
    const $ = scope(t);
    const s = $.server();
    const r = Thread.accept('pool-clone', () => {});
    t.after(() => r.cancel());
    let thrown;
    s.onaccept = (ws) => {
      try {
        ws.post('pool-clone', { f() {} });
      } catch (e) {
        thrown = e;
      }
      s.accept();
    };
    s.onconnect = (ws) => (ws.onmessage = (m) => ws.send(m));
    await withTimeout(burst(s.address().port, 1), 5000, 'the connection');
    assert.ok(thrown instanceof TypeError && /cloned/.test(thrown.message), String(thrown));
  });
});
