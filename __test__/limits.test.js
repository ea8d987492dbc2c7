'use strict';
// Attacks on the server's memory and on its fairness to other clients.
//
// Each test runs a sack server in a child process, so that its RSS is
// measured alone: the child prints process.memoryUsage().rss every 100 ms,
// and the peak is taken (with the kernel's VmHWM of the child as a check).
// A control client, in a child process of its own so the attacker's work
// here does not delay it, echoes one message every 20 ms through the
// attacked server during the attack; it must get every echo, and reports
// its longest wait between two echoes and its latencies. Each test asserts
// the peak RSS under a stated bound, the control's echoes, and how the
// attack ends:
//   1. a client floods messages faster than the JS handler takes them
//      (the engine stops reading it: TCP pushes back);
//   2. a client floods pings and never reads the pongs (the engine stops
//      reading it while more than maxBackpressure bytes wait for it);
//   3. the app ignores send()'s false for a client that never reads
//      (error WS_ERR_BACKPRESSURE, close 1008, past backpressureLimit);
//   4. permessage-deflate bombs from 8 clients at once (1009, inflate
//      memory bounded and freed);
//   5. 100 stalled HTTP request bodies of 10 MiB (bodies held at once
//      bounded by maxBodyBuffer, reading paused past it);
//   6. maxConnections counts HTTP keep-alive connections too (an idle one
//      is closed to make room for an upgrade, the rest get 503).
// An attack whose server passes RSS_ABORT is stopped and the server killed,
// so that a build without these limits does not take the machine down.
//
// Option names, error codes and bounds are set in one place, just below.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const zlib = require('node:zlib');

const { ROOT, HOST, OP, startNode, encodeFrame, upgradeRequest, request, delay, onceEE, scope } = require('./helpers.js');

// ---------------------------------------------------------------- settings

/** The server options these tests set, by name. */
const OPT = {
  maxBackpressure: 'maxBackpressure',
  backpressureLimit: 'backpressureLimit',
  closeTimeout: 'closeTimeout',
  perMessageDeflate: 'perMessageDeflate',
  maxConnections: 'maxConnections',
  // Test 5 runs with this option's default (64 MiB); named here for reports.
  maxBodyBuffer: 'maxBodyBuffer',
};
/** The error code of a connection closed for exceeding backpressureLimit. */
const ERR_BACKPRESSURE = 'WS_ERR_BACKPRESSURE';

const MiB = 1024 * 1024;
/** Peak server RSS allowed per test. */
const RSS_BOUND = {
  // Measured on the fixed engine (2-core machine, idle): flood 65 MiB,
  // ping flood 47, slow reader 55, deflate bombs 257, bodies 121,
  // connections 46. The bounds leave room for a busier machine.
  flood: 160 * MiB,
  pingFlood: 128 * MiB,
  slowReader: 128 * MiB,
  // Two bombs inflating at once (2 × maxPayload) and the first slices of
  // the others; "well under 8 × 100 MiB".
  deflateBombs: 400 * MiB,
  // maxBodyBuffer (64 MiB) plus one body (10 MiB) and the baseline.
  bodies: 200 * MiB,
  connections: 128 * MiB,
};
/** An attack stops, and its server is killed, past this RSS. */
const RSS_ABORT = 3 * 1024 * MiB;
const SAMPLE_MS = 100;

const ATTACK_MS = 3000;
const CONTROL_EVERY_MS = 20;
/** How long the control waits for missing echoes after its last send. */
const CONTROL_GRACE_MS = 3000;
/** Test 1: the control's longest wait between two echoes. */
const FLOOD_MAX_GAP_MS = 1000;
/** Test 4: the control's median echo latency (`ws` gets about 3 ms). */
const BOMB_P50_MS = 250;
/** Test 2: what the never-reading client may get into its socket at most. */
const PING_ACCEPTED_BOUND = 256 * MiB;

// ---------------------------------------------------------------- server in a child

// A stand-in server object for scope().raw(): only address() is used.
const at = (port) => ({ address: () => ({ port }) });

const mib = (bytes) => `${(bytes / MiB).toFixed(1)} MiB`;

/**
 * The child's script: a sack server on 127.0.0.1 with `options`, RSS
 * printed every SAMPLE_MS ("rss N"), then `body` (which sets the handlers;
 * in it: `s`, `say(...)`, `note({...})` for an "event {json}" line with the
 * time, `spin(µs)`, `echo(ws)`), then "port N".
 */
function serverScript(options, body) {
  return `
    const { Server } = require(${JSON.stringify(ROOT)}).Websocket;
    const say = (...a) => console.log(a.join(' '));
    const note = (o) => say('event', JSON.stringify({ at: Date.now(), ...o }));
    setInterval(() => say('rss', process.memoryUsage().rss), ${SAMPLE_MS});
    const spin = (us) => {
      const end = process.hrtime.bigint() + BigInt(Math.round(us * 1000));
      while (process.hrtime.bigint() < end);
    };
    const echo = (ws) => {
      ws.onmessage = (m) => ws.send(m);
    };
    const s = new Server({ address: ${JSON.stringify(HOST)}, port: 0, ...${JSON.stringify(options)} });
    s.on('error', () => {});
    ${body}
    say('port', s.address().port);
  `;
}

/** VmRSS and VmHWM of a process, in bytes (null when not readable). */
function procMemory(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name) => Number((new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status) || [])[1] || 0) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return null;
  }
}

/**
 * Starts the attacked server (see serverScript) and watches its memory:
 * `peak()` is the highest RSS seen (the child's samples, /proc's VmRSS and
 * VmHWM on Linux), `aborted` is set once it passed RSS_ABORT (the child is
 * then killed), `events()` the child's "event" lines as objects.
 */
async function attackServer(t, options, body) {
  const h = startNode(serverScript(options, body));
  t.after(() => h.kill());
  const port = Number((await h.line(/^port (\d+)$/m, 10000))[1]);
  const pid = h.child.pid;
  const m = { h, port, sampled: 0, samples: 0, watched: 0, hwm: 0, aborted: false, abortedAt: 0 };
  let seen = 0;
  let lastSample = 0;
  const poll = () => {
    const end = h.stdout.lastIndexOf('\n') + 1;
    if (end > seen) {
      for (const line of h.stdout.slice(seen, end).split('\n')) {
        const x = /^rss (\d+)$/.exec(line);
        if (x) {
          lastSample = Number(x[1]);
          m.samples++;
          m.sampled = Math.max(m.sampled, lastSample);
        }
      }
      seen = end;
    }
    const mem = h.running() ? procMemory(pid) : null;
    if (mem) {
      m.watched = Math.max(m.watched, mem.rss);
      m.hwm = Math.max(m.hwm, mem.hwm);
    }
    const now = Math.max(lastSample, mem ? mem.rss : 0);
    if (!m.aborted && now > RSS_ABORT) {
      m.aborted = true;
      m.abortedAt = now;
      h.kill();
    }
  };
  const timer = setInterval(poll, 50);
  t.after(() => clearInterval(timer));
  m.peak = () => {
    poll();
    return Math.max(m.sampled, m.watched, m.hwm);
  };
  m.events = () =>
    h.stdout
      .split('\n')
      .filter((l) => l.startsWith('event '))
      .map((l) => JSON.parse(l.slice(6)));
  m.describe = () =>
    `peak RSS ${mib(m.peak())} (child's ${m.samples} samples: ${mib(m.sampled)}, VmHWM ${mib(m.hwm)})` +
    (m.aborted ? `; STOPPED at ${mib(m.abortedAt)} (over ${mib(RSS_ABORT)})` : '');
  return m;
}

// ---------------------------------------------------------------- control client

/**
 * The control client's script (a `ws` client): once open, prints "open",
 * sends its sequence number every CONTROL_EVERY_MS for `ms`, waits up to
 * CONTROL_GRACE_MS for the missing echoes, then prints "result {json}" and
 * exits. If the upgrade is refused: "refused STATUS".
 */
function controlScript(port, ms) {
  return `
    const WebSocket = require(${JSON.stringify(require.resolve('ws'))});
    const c = new WebSocket('ws://${HOST}:${port}/control');
    const sent = [];
    const lat = [];
    let got = 0, next = 0, disorder = 0, lastEcho = 0, maxGap = 0;
    let timer = null, sending = false, reported = false, opened = false;
    const report = (why) => {
      if (reported) return;
      reported = true;
      clearInterval(timer);
      const now = performance.now();
      if (got < sent.length) maxGap = Math.max(maxGap, now - lastEcho);
      lat.sort((a, b) => a - b);
      const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : null);
      console.log('result ' + JSON.stringify({
        why, sent: sent.length, got, disorder, maxGapMs: maxGap,
        p50: q(0.5), p99: q(0.99), maxMs: lat.length ? lat[lat.length - 1] : null,
      }));
      process.exit(0);
    };
    c.on('unexpected-response', (req, res) => {
      console.log('refused ' + res.statusCode);
      process.exit(0);
    });
    c.on('error', (e) => {
      if (!opened) {
        console.log('failed ' + e.message);
        process.exit(0);
      }
      report('error ' + e.message);
    });
    c.on('close', (code) => report('closed ' + code));
    c.on('open', () => {
      opened = true;
      console.log('open');
      const start = performance.now();
      lastEcho = start;
      sending = true;
      timer = setInterval(() => {
        if (performance.now() - start >= ${ms}) {
          clearInterval(timer);
          sending = false;
          if (got === sent.length) report('done');
          else setTimeout(() => report('gave up waiting'), ${CONTROL_GRACE_MS});
          return;
        }
        sent.push(performance.now());
        c.send(String(sent.length - 1));
      }, ${CONTROL_EVERY_MS});
    });
    c.on('message', (d) => {
      const now = performance.now();
      const n = Number(String(d));
      if (n !== next) disorder++;
      next = n + 1;
      if (sent[n] !== undefined) lat.push(now - sent[n]);
      got++;
      maxGap = Math.max(maxGap, now - lastEcho);
      lastEcho = now;
      if (!sending && got === sent.length) report('done');
    });
  `;
}

/**
 * Starts the control client against `port` for `ms` of echoes. `first`:
 * "open", "refused STATUS" or "failed …"; `result()` its report.
 */
async function startControl(t, port, ms) {
  const h = startNode(controlScript(port, ms));
  t.after(() => h.kill());
  const first = (await h.line(/^(open|refused \d+|failed .*)$/m, 10000))[1];
  return {
    h,
    first,
    async result() {
      if (first !== 'open') return null;
      const line = await h.line(/^result (.*)$/m, ms + CONTROL_GRACE_MS + 10000);
      return JSON.parse(line[1]);
    },
  };
}

const describeControl = (c) =>
  c
    ? `control: ${c.got}/${c.sent} echoes (${c.why}), longest gap ${c.maxGapMs.toFixed(0)} ms, ` +
      `latency p50 ${c.p50 === null ? '-' : c.p50.toFixed(1)} ms, p99 ${c.p99 === null ? '-' : c.p99.toFixed(1)} ms, ` +
      `max ${c.maxMs === null ? '-' : c.maxMs.toFixed(0)} ms`
    : 'control: no result';

/** The control got every echo, in order. */
function assertControl(c) {
  assert.ok(c, 'the control client reported nothing');
  assert.ok(c.sent >= 10, `the control sent only ${c.sent} messages`);
  assert.equal(c.got, c.sent, `the control got ${c.got} of its ${c.sent} echoes (${c.why})`);
  assert.equal(c.disorder, 0, 'the control got echoes out of order');
}

function assertRss(m, bound) {
  assert.ok(!m.aborted, `the server passed ${mib(RSS_ABORT)} (stopped at ${mib(m.abortedAt)})`);
  assert.ok(m.peak() < bound, `peak server RSS ${mib(m.peak())}, bound ${mib(bound)}`);
}

// ---------------------------------------------------------------- attacker helpers

/** Resolves on the socket's 'drain' or 'close', or at `until` (ms epoch). */
function drainBefore(socket, until) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, until - Date.now()));
    socket.on('drain', done);
    socket.on('close', done);
  });
}

/**
 * Writes `chunk` again and again while the socket takes it (until write()
 * returns false, then on 'drain'), until `until`, `stop()`, or `maxBytes`.
 * Returns { writes, bytes } written (some may still sit in Node's buffer:
 * socket.writableLength).
 */
async function flood(socket, chunk, until, stop = () => false, maxBytes = Infinity) {
  let writes = 0;
  let bytes = 0;
  while (Date.now() < until && !stop() && !socket.destroyed && bytes < maxBytes) {
    const part = maxBytes - bytes < chunk.length ? chunk.subarray(0, maxBytes - bytes) : chunk;
    writes++;
    bytes += part.length;
    if (!socket.write(part)) await drainBefore(socket, until);
    else if (writes % 32 === 0) await new Promise(setImmediate); // let timers and reads run
  }
  return { writes, bytes };
}

/** `n` copies of `frame` in one buffer (fewer writes for a flood). */
const repeat = (frame, n) => Buffer.concat(Array.from({ length: n }, () => frame));

const MASK = Buffer.from([0x12, 0x34, 0x56, 0x78]);

/** A raw client past the handshake on `pathname` (101 checked). */
async function rawWs($, port, pathname, headers) {
  const r = await $.raw(at(port));
  const head = await r.handshake(pathname, headers);
  assert.equal(head.statusCode, 101, `upgrade of ${pathname}: ${head.statusLine}`);
  return { r, head };
}

// ---------------------------------------------------------------- tests

test.describe('limits: memory and fairness under attack', () => {
  test.it('1. a client floods faster than the handler works: reading stops (TCP pushes back), RSS bounded, other clients served', async (t) => {
    const $ = scope(t);
    const m = await attackServer(
      t,
      {},
      `s.onconnect = (ws) => {
        ws.onmessage = (msg) => {
          spin(50);
          ws.send(msg);
        };
      };`,
    );
    const control = await startControl(t, m.port, ATTACK_MS);
    assert.equal(control.first, 'open');

    const { r } = await rawWs($, m.port, '/attack');
    r.countOnly(); // the echoes are read, only counted
    const FRAME = 1024;
    const frame = encodeFrame(OP.BINARY, Buffer.alloc(FRAME, 0x61), { maskKey: MASK });
    const PER_WRITE = 64;
    const t0 = Date.now();
    const sent = await flood(r.socket, repeat(frame, PER_WRITE), t0 + ATTACK_MS, () => m.aborted);
    const frames = sent.bytes / frame.length;
    const peakAtEnd = m.peak();

    // The flood ends: every message it got into the server is echoed
    // (backpressure delays messages, it drops none). Not waited for when
    // the RSS bound is passed already: the test fails anyway, and the
    // backlog of a build without the limit takes minutes.
    const expected = frames * (FRAME + 4); // server frames: 2 + 2 length bytes, unmasked
    const t1 = Date.now();
    const echoDeadline = peakAtEnd < RSS_BOUND.flood ? t1 + 10000 : t1;
    while (r.count < expected && Date.now() < echoDeadline && !m.aborted && !r.closed) await delay(20);
    const echoedIn = Date.now() - t1;
    const c = await control.result();

    t.diagnostic(
      `flood: ${frames} frames of ${FRAME} B (${mib(sent.bytes)}) in ${ATTACK_MS} ms; ` +
        `${mib(r.count)} of ${mib(expected)} echoed, ${echoedIn} ms after the flood; peak RSS at the flood's end ${mib(peakAtEnd)}`,
    );
    t.diagnostic(m.describe());
    t.diagnostic(describeControl(c));
    assertRss(m, RSS_BOUND.flood);
    assertControl(c);
    assert.ok(c.maxGapMs < FLOOD_MAX_GAP_MS, `the control waited ${c.maxGapMs.toFixed(0)} ms between two echoes`);
    assert.equal(r.count, expected, `${expected - r.count} bytes of echoes missing ${echoedIn} ms after the flood`);
  });

  test.it('2. a ping flood from a client that never reads: reading stops past maxBackpressure, RSS bounded', async (t) => {
    const $ = scope(t);
    const m = await attackServer(t, { [OPT.maxBackpressure]: 1 * MiB }, `s.onconnect = echo;`);
    const control = await startControl(t, m.port, ATTACK_MS);
    assert.equal(control.first, 'open');

    const { r } = await rawWs($, m.port, '/attack');
    r.socket.pause(); // never reads again
    const ping = encodeFrame(OP.PING, Buffer.alloc(125, 0x70), { maskKey: MASK });
    const sent = await flood(r.socket, repeat(ping, 500), Date.now() + ATTACK_MS, () => m.aborted);
    // What the server's side took (the rest waits in this process).
    const accepted = sent.bytes - r.socket.writableLength;
    const open = !r.socket.destroyed;
    r.destroy();
    const c = await control.result();

    t.diagnostic(
      `ping flood: ${mib(sent.bytes)} written in ${ATTACK_MS} ms, ${mib(accepted)} (${Math.floor(accepted / ping.length)} pings) taken by the server's side; ` +
        `connection ${open ? 'still open' : 'closed'} at the end`,
    );
    t.diagnostic(m.describe());
    t.diagnostic(describeControl(c));
    assertRss(m, RSS_BOUND.pingFlood);
    assertControl(c);
    assert.ok(accepted < PING_ACCEPTED_BOUND, `the server's side took ${mib(accepted)} of pings: nothing pushed back`);
  });

  test.it('3. the app ignores send() = false for a client that never reads: WS_ERR_BACKPRESSURE, close 1008, RSS bounded', async (t) => {
    const $ = scope(t);
    const CLOSE_TIMEOUT = 1000;
    const LIMIT = 8 * MiB;
    const m = await attackServer(
      t,
      { [OPT.backpressureLimit]: LIMIT, [OPT.closeTimeout]: CLOSE_TIMEOUT },
      `const MSG = Buffer.alloc(64 * 1024, 0x62);
      s.onconnect = (ws) => {
        if (ws.url !== '/attack') return echo(ws);
        const t0 = Date.now();
        let sent = 0;
        let stopped = null;
        ws.on('error', (e) => note({ ev: 'error', code: e.code, closeCode: e.closeCode, buffered: ws.bufferedAmount, sent }));
        ws.on('close', (code) => note({ ev: 'close', code, sent }));
        const pump = () => {
          for (let i = 0; i < 16 && !stopped; i++) {
            if (ws.readyState !== 1) stopped = 'readyState ' + ws.readyState;
            else if (Date.now() - t0 > ${ATTACK_MS}) stopped = 'time';
            else if (sent >= 1024 * 1024 * 1024) stopped = '1 GiB sent';
            else {
              try {
                ws.send(MSG); // the return value is ignored
                sent += MSG.length;
              } catch (e) {
                stopped = e.code;
              }
            }
          }
          if (stopped) note({ ev: 'stopped', why: stopped, sent, buffered: ws.bufferedAmount });
          else setImmediate(pump);
        };
        pump();
      };`,
    );
    const control = await startControl(t, m.port, ATTACK_MS);
    assert.equal(control.first, 'open');

    const t0 = Date.now();
    const { r } = await rawWs($, m.port, '/attack');
    r.socket.pause(); // never reads
    // The sender stops within ATTACK_MS; the close comes within closeTimeout.
    const until = t0 + ATTACK_MS + CLOSE_TIMEOUT + 2000;
    while (Date.now() < until && !m.aborted && !m.events().some((e) => e.ev === 'close')) await delay(50);
    const events = m.events();
    const error = events.find((e) => e.ev === 'error');
    const close = events.find((e) => e.ev === 'close');
    const stopped = events.find((e) => e.ev === 'stopped');
    const c = await control.result();

    t.diagnostic(
      `slow reader: ` +
        (error
          ? `error ${error.code}/${error.closeCode} after ${mib(error.sent)} sent (bufferedAmount ${mib(error.buffered)}) at +${error.at - t0} ms; `
          : 'no error event; ') +
        (close ? `close ${close.code} ${close.at - (error ? error.at : t0)} ms after ${error ? 'the error' : 'the start'}; ` : 'no close event; ') +
        (stopped ? `sender stopped (${stopped.why}) after ${mib(stopped.sent)} with bufferedAmount ${mib(stopped.buffered)}` : 'sender did not stop'),
    );
    t.diagnostic(m.describe());
    t.diagnostic(describeControl(c));
    assertRss(m, RSS_BOUND.slowReader);
    assertControl(c);
    assert.ok(error, 'no error event on the connection');
    assert.equal(error.code, ERR_BACKPRESSURE);
    assert.equal(error.closeCode, 1008);
    assert.ok(close, 'no close event on the connection');
    assert.ok(close.at >= error.at, 'the close event came before the error event');
    assert.ok(close.at - error.at <= CLOSE_TIMEOUT + 1000, `the close came ${close.at - error.at} ms after the error (closeTimeout ${CLOSE_TIMEOUT})`);
  });

  let bombFrame = null;
  /** One message (masked frame, RSV1) of ~200 KiB that inflates to 200 MiB of zeros. */
  function deflateBomb() {
    if (!bombFrame) {
      const z = zlib.deflateRawSync(Buffer.alloc(200 * MiB), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
      assert.deepEqual([...z.subarray(-4)], [0x00, 0x00, 0xff, 0xff]);
      bombFrame = encodeFrame(OP.BINARY, z.subarray(0, -4), { rsv: 4, maskKey: MASK }); // RFC 7692 §7.2.1
    }
    return bombFrame;
  }

  test.it('4. permessage-deflate bombs from 8 clients at once: each closed 1009, RSS well under 8 × maxPayload, others served', async (t) => {
    const $ = scope(t);
    const frame = deflateBomb();
    const m = await attackServer(
      t,
      { [OPT.perMessageDeflate]: true },
      `s.onconnect = (ws) => {
        if (ws.url !== '/attack') return echo(ws);
        ws.on('error', () => {});
      };`,
    );
    const control = await startControl(t, m.port, ATTACK_MS);
    assert.equal(control.first, 'open');

    const CLIENTS = 8;
    const until = Date.now() + ATTACK_MS;
    const outcomes = [];
    const bomber = async () => {
      while (Date.now() < until && !m.aborted) {
        const started = Date.now();
        let r;
        try {
          r = (await rawWs($, m.port, '/attack', { 'Sec-WebSocket-Extensions': 'permessage-deflate' })).r;
          r.write(frame);
          const f = await r.readFrameOf(OP.CLOSE, 15000);
          outcomes.push({ code: f.code, ms: Date.now() - started });
        } catch (e) {
          outcomes.push({ code: null, error: e.message, ms: Date.now() - started });
        } finally {
          if (r) r.destroy();
        }
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, bomber));
    const c = await control.result();

    const codes = {};
    for (const o of outcomes) codes[o.code] = (codes[o.code] || 0) + 1;
    const slowest = Math.max(0, ...outcomes.map((o) => o.ms));
    t.diagnostic(
      `deflate bombs: ${outcomes.length} bombs of ${(frame.length / 1024).toFixed(0)} KiB (200 MiB inflated) from ${CLIENTS} clients in ${ATTACK_MS} ms; ` +
        `close codes ${JSON.stringify(codes)}; slowest close ${slowest} ms`,
    );
    const failed = outcomes.find((o) => o.code !== 1009);
    if (failed) t.diagnostic(`first bomb not closed 1009: ${JSON.stringify(failed)}`);
    t.diagnostic(m.describe());
    t.diagnostic(describeControl(c));
    assertRss(m, RSS_BOUND.deflateBombs);
    assertControl(c);
    assert.ok(c.p50 < BOMB_P50_MS, `the control's median echo latency was ${c.p50.toFixed(1)} ms`);
    assert.ok(outcomes.length >= CLIENTS, `only ${outcomes.length} bombs sent`);
    assert.deepEqual(Object.keys(codes), ['1009'], `close codes ${JSON.stringify(codes)}`);
  });

  test.it('5. 100 stalled 10 MiB HTTP request bodies: bodies held at once are bounded, WebSocket clients served, a small POST answered after', async (t) => {
    const $ = scope(t);
    const m = await attackServer(
      t,
      {},
      `s.onconnect = echo;
      s.onrequest = (req, res) => res.end('got ' + (req.bytes ? req.bytes.byteLength : 0));`,
    );
    const STALL_MS = 500;
    const control = await startControl(t, m.port, ATTACK_MS + STALL_MS);
    assert.equal(control.first, 'open');

    const CLIENTS = 100;
    const LENGTH = 10 * MiB; // the default maxBodySize: allowed
    const BODY = LENGTH - 4096; // never complete
    const head = `POST /upload HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: ${LENGTH}\r\n\r\n`;
    const chunk = Buffer.alloc(64 * 1024, 0x63);
    const until = Date.now() + ATTACK_MS;
    const sockets = [];
    const upload = async () => {
      const socket = $.socket(net.connect(m.port, HOST));
      socket.on('error', () => {});
      sockets.push(socket);
      await onceEE(socket, 'connect');
      socket.write(head);
      const sent = await flood(socket, chunk, until, () => m.aborted, BODY);
      return sent.bytes - socket.writableLength;
    };
    const accepted = await Promise.all(Array.from({ length: CLIENTS }, upload));
    await delay(Math.max(0, until + STALL_MS - Date.now())); // stalled
    const answered = sockets.filter((s) => s.bytesRead > 0).length;
    const total = accepted.reduce((a, b) => a + b, 0);
    const complete = accepted.filter((b) => b >= BODY).length;
    const c = await control.result();

    // The stalled clients go: a normal request is served.
    for (const s of sockets) s.destroy();
    let small;
    try {
      small = await request(m.port, { method: 'POST', path: '/small', body: 'hello', ms: 5000 });
    } catch (e) {
      small = { error: e.message };
    }

    t.diagnostic(
      `bodies: ${CLIENTS} clients, ${mib(total)} taken by the server's side in ${ATTACK_MS} ms (${complete} sent all ${mib(BODY)}), ` +
        `${answered} got an answer while stalled; small POST after: ${small.error || `${small.status} ${JSON.stringify(small.text)}`} ` +
        `(${OPT.maxBodyBuffer} at its default)`,
    );
    t.diagnostic(m.describe());
    t.diagnostic(describeControl(c));
    assertRss(m, RSS_BOUND.bodies);
    assertControl(c);
    assert.ok(!small.error, `the small POST failed: ${small.error}`);
    assert.equal(small.status, 200);
    assert.equal(small.text, 'got 5');
  });

  test.it('6. maxConnections counts HTTP keep-alive connections: an idle one makes room for an upgrade, the rest get 503', async (t) => {
    const $ = scope(t);
    const MAX = 50;
    const m = await attackServer(
      t,
      { [OPT.maxConnections]: MAX },
      `s.onconnect = echo;
      s.onrequest = (req, res) => res.end('ok');`,
    );

    // What the server holds, as its clients see it: sockets it has not
    // ended (the control counts from its 101 until it reports).
    const keepAlive = [];
    const upgraded = [];
    let control = null;
    const isOpen = (r) => !r.ended && !r.closed;
    const holding = () =>
      keepAlive.filter(isOpen).length + upgraded.filter(isOpen).length + (control && control.first === 'open' && control.h.running() ? 1 : 0);
    let maxHeld = 0;
    const sampler = setInterval(() => {
      maxHeld = Math.max(maxHeld, holding());
    }, 5);
    t.after(() => clearInterval(sampler));

    // 50 keep-alive HTTP clients, one request each, then idle.
    const get = `GET /ka HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`;
    await Promise.all(
      Array.from({ length: MAX }, async () => {
        const r = await $.raw(at(m.port));
        keepAlive.push(r);
        r.write(get);
        const h = await r.readHead(5000);
        assert.equal(h.statusCode, 200);
        const len = Number(h.headers['content-length']);
        await r.waitFor((x) => (x.buf.length >= len ? true : undefined), 3000, 'the body');
        assert.notEqual(String(h.headers.connection).toLowerCase(), 'close');
      }),
    );
    await delay(100);
    const heldBefore = holding();

    // A WebSocket client still gets in (the control).
    const CONTROL_MS = 2000;
    control = await startControl(t, m.port, CONTROL_MS);
    await delay(100);
    const heldAfterControl = holding();
    const keepAliveAfterControl = keepAlive.filter(isOpen).length;

    // 60 upgrades at once beyond the limit.
    const EXTRA = 60;
    const statuses = await Promise.all(
      Array.from({ length: EXTRA }, async () => {
        const r = await $.raw(at(m.port));
        r.write(upgradeRequest('/extra'));
        try {
          const h = await r.readHead(5000);
          if (h.statusCode === 101) upgraded.push(r);
          return h.statusLine;
        } catch (e) {
          return `no answer: ${e.message}`;
        }
      }),
    );
    await delay(300);
    const heldAtEnd = holding();
    maxHeld = Math.max(maxHeld, heldAtEnd);
    const c = await control.result();
    clearInterval(sampler);

    const tally = {};
    for (const s of statuses) {
      const k = /^HTTP\/1\.1 (101|503)\b/.test(s) ? s.slice(9, 12) : s;
      tally[k] = (tally[k] || 0) + 1;
    }
    t.diagnostic(
      `connections: ${heldBefore} held after ${MAX} keep-alive requests; the WebSocket client: ${control.first}, ` +
        `${heldAfterControl} held after it (${keepAliveAfterControl} keep-alive left); ${EXTRA} more upgrades: ${JSON.stringify(tally)}; ` +
        `${heldAtEnd} held at the end (${keepAlive.filter(isOpen).length} keep-alive); most held at once ${maxHeld}`,
    );
    t.diagnostic(m.describe());
    t.diagnostic(describeControl(c));
    assertRss(m, RSS_BOUND.connections);
    assert.equal(control.first, 'open', 'the WebSocket client was refused while idle keep-alive connections held every slot');
    assertControl(c);
    assert.equal((tally['101'] || 0) + (tally['503'] || 0), EXTRA, `answers ${JSON.stringify(tally)}`);
    assert.ok((tally['503'] || 0) >= EXTRA - (MAX - 1), `only ${tally['503'] || 0} upgrades got 503`);
    assert.ok(maxHeld <= MAX, `the server held ${maxHeld} connections at once (maxConnections ${MAX})`);
  });
});
