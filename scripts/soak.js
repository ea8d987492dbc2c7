#!/usr/bin/env node
// Soak test (not in CI): minutes of WebSocket churn plus HTTP keep-alive
// traffic against one echo server, then checks that no message was lost,
// duplicated or reordered, that the server's descriptors are all released
// and that its RSS came back to where it started.
//   npm run soak [-- SECONDS]       default 300
//   env SOAK_CONNECTIONS (5000), SOAK_MESSAGES per session (20),
//       SOAK_SESSION_MS mean session length (8000)
// The server runs in a child process so that its RSS and descriptors are
// measured alone; the load (ws clients, node:http agent) runs here.
'use strict';

const { fork, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const WebSocket = require('ws');

const ROOT = path.join(__dirname, '..');
const HANDSHAKES_IN_FLIGHT = 256; // under the listen backlog (511): no SYN retries
const BURST = 5; // messages sent back to back within a session
const HTTP_SOCKETS = 16;
const FD_MARGIN = 256; // descriptors besides the connections (runtime, pipes, HTTP)
const WARMUP_LIMIT_MS = 60000;
const DRAIN_LIMIT_MS = 30000; // clients finishing their session (≤ 1.5 × sessionMs) once the load stops
const SETTLE_LIMIT_MS = 15000; // server releasing its connections afterwards
const SAMPLE_MS = 250;
const TRIM_WAIT_MS = 1500;
// The warm-up runs the full load this long at least (and until every
// client has had a session): V8 grows its young generation to the
// allocation rate of the load and keeps it, which is sizing, not a leak.
const WARMUP_MIN_MS = 20000;
const PROGRESS_MS = 15000;

if (process.argv[2] === '--server') runServer();
else main().catch((err) => {
  console.error(err);
  process.exit(2);
});

// ---------------------------------------------------------------- server child

function runServer() {
  const sack = require(ROOT);
  const server = sack.Websocket.Server({ port: 0, address: '127.0.0.1' });
  server.onconnect = (ws) => {
    ws.onmessage = (m) => ws.send(m);
  };
  // The path comes back as the body, so the client can tell that each
  // answer on a keep-alive connection belongs to its own request.
  server.onrequest = (req, res) => res.end(req.url);

  let peakRss = 0;
  let peakConnections = 0;
  const sample = () => {
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
    peakConnections = Math.max(peakConnections, server.connections);
  };
  setInterval(sample, SAMPLE_MS);
  sample();

  process.on('message', (msg) => {
    // A full GC first, so that JS garbage not yet collected is not taken
    // for memory the server holds on to.
    if (msg.gc) global.gc();
    sample();
    const mem = process.memoryUsage();
    process.send({
      rss: mem.rss,
      // V8's share of the RSS, to tell JS from native memory: what live
      // objects use, and what the heap holds from the system.
      heapUsed: mem.heapUsed,
      heapTotal: mem.heapTotal,
      peakRss,
      peakConnections,
      connections: server.connections,
      // readdir's own descriptor on the directory is listed too.
      fds: fs.readdirSync('/proc/self/fd').length - 1,
    });
  });
  process.on('disconnect', () => process.exit(0));
  process.send({ port: server.address().port });
}

function startServer() {
  const child = fork(__filename, ['--server'], { execArgv: ['--expose-gc'], stdio: 'inherit' });
  // The server leaves only when told (disconnect); before that, its exit
  // (a crash) ends the soak rather than leaving it waiting for answers.
  child.on('exit', (code, signal) => {
    if (!child.told) {
      console.error(`soak: FAIL, the server exited (${code ?? signal})`);
      process.exit(2);
    }
  });
  const port = new Promise((resolve) => child.once('message', (m) => resolve(m.port)));
  return { child, port };
}

function stopServer(child) {
  child.told = true;
  child.disconnect();
}

// Questions are queued, one at a time: IPC keeps the order, so the next
// message is the answer to the one asked.
let asked = Promise.resolve();
function ask(child, gc = false) {
  asked = asked.then(() => new Promise((resolve) => {
    child.once('message', resolve);
    child.send({ gc });
  }));
  return asked;
}

// Waits until the server has no WebSocket open and its descriptor count has
// stopped moving (sockets are closed by the engine a little after the JS
// close event), within SETTLE_LIMIT_MS.
async function settle(child) {
  const end = Date.now() + SETTLE_LIMIT_MS;
  let prev = await ask(child, true);
  for (;;) {
    await sleep(SAMPLE_MS * 2);
    const now = await ask(child, true);
    const still = now.connections === 0 && now.fds === prev.fds;
    if (still || Date.now() > end) {
      // The engine gives freed pages back a second after a server's last
      // connection ended (src/engine/memory.rs): measure after that.
      if (still) await sleep(TRIM_WAIT_MS);
      return { ...(still ? await ask(child, true) : now), settled: still };
    }
    prev = now;
  }
}

// ---------------------------------------------------------------- load

function newStats() {
  return {
    sent: 0, received: 0, lost: 0, duplicated: 0, reordered: 0, misrouted: 0,
    opened: 0, closed: 0, abnormalCloses: 0, wsErrors: 0, peakOpen: 0,
    httpSent: 0, httpAnswered: 0, httpFailed: 0,
    errorSamples: new Map(), // message → count, to report what went wrong
  };
}

function noteError(stats, what, err) {
  const key = `${what}: ${err.code || err.message}`;
  stats.errorSamples.set(key, (stats.errorSamples.get(key) || 0) + 1);
}

// The N logical clients, kept from the warm-up to the end: seq continues
// across a client's sessions, so a stale echo is recognisable.
function newClients(n) {
  return Array.from({ length: n }, (_, id) => ({
    id,
    seq: 0,
    maxEchoed: 0,
    outstanding: new Set(), // sent, echo not yet back
    allSent: false,
    timer: null,
    sessions: 0,
    ws: null,
  }));
}

// Each client opens, sends its messages `${id}:${seq}`, closes (1000) when
// every echo is back, and reopens while the load runs.
function wsChurn(port, cfg, clients, stats) {
  const url = `ws://127.0.0.1:${port}/`;
  const waiting = [...clients];
  let running = true;
  let handshaking = 0;
  let live = 0;

  function openMore() {
    while (running && handshaking < HANDSHAKES_IN_FLIGHT && waiting.length) connect(waiting.shift());
  }

  function connect(c) {
    handshaking++;
    live++;
    let shaking = true;
    const doneShaking = () => {
      if (!shaking) return;
      shaking = false;
      handshaking--;
    };
    const ws = (c.ws = new WebSocket(url, { perMessageDeflate: false }));
    ws.on('open', () => {
      doneShaking();
      stats.opened++;
      stats.peakOpen = Math.max(stats.peakOpen, live - handshaking);
      startSession(c, ws);
      openMore();
    });
    ws.on('message', (data) => onEcho(c, ws, data.toString()));
    ws.on('error', (err) => {
      stats.wsErrors++;
      noteError(stats, 'ws', err);
    });
    ws.on('close', (code) => {
      doneShaking();
      clearTimeout(c.timer);
      live--;
      stats.closed++;
      if (code !== 1000) {
        stats.abnormalCloses++;
        noteError(stats, 'ws close', { message: String(code) });
      }
      // Whatever was not echoed before the close is gone for good.
      stats.lost += c.outstanding.size;
      c.outstanding.clear();
      c.sessions++;
      c.ws = null;
      if (running) waiting.push(c);
      openMore();
    });
  }

  // A session sends its K messages in bursts of BURST, spread over about
  // cfg.sessionMs (jittered so the clients do not move in step): sessions
  // that last keep about N connections open at once, and each burst puts
  // several messages in flight, so that order is tested.
  function startSession(c, ws) {
    let left = cfg.messages;
    const bursts = Math.ceil(cfg.messages / BURST);
    const gap = (cfg.sessionMs / bursts) * (0.5 + Math.random());
    const burst = () => {
      for (let k = 0; k < BURST && left > 0; k++, left--) {
        const seq = ++c.seq;
        c.outstanding.add(seq);
        ws.send(`${c.id}:${seq}`);
        stats.sent++;
      }
      c.allSent = left === 0;
      if (!c.allSent) c.timer = setTimeout(burst, gap);
    };
    burst();
  }

  // An echo not outstanding is a duplicate; one older than an echo already
  // back is reordered (a lost one only counts as lost).
  function onEcho(c, ws, text) {
    const [id, seq] = text.split(':').map(Number);
    if (id !== c.id) return void stats.misrouted++;
    if (!c.outstanding.delete(seq)) return void stats.duplicated++;
    stats.received++;
    if (seq < c.maxEchoed) stats.reordered++;
    else c.maxEchoed = seq;
    if (c.outstanding.size === 0 && c.allSent) ws.close(1000);
  }

  // No reopening from now on; sessions under way finish (so their messages
  // count), any left after DRAIN_LIMIT_MS are terminated.
  async function stop() {
    running = false;
    waiting.length = 0;
    if (!(await waitFor(() => live === 0, DRAIN_LIMIT_MS))) {
      console.log(`soak: ${live} clients still open after ${DRAIN_LIMIT_MS} ms, terminating them`);
      for (const c of clients) if (c.ws) c.ws.terminate();
      await waitFor(() => live === 0, 5000);
    }
  }

  openMore();
  return { stop, everyClientDone: () => clients.every((c) => c.sessions > 0) };
}

// HTTP_SOCKETS loops of GET /h/<n> over one keep-alive agent; the body must
// be the path.
function httpTraffic(port, stats) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: HTTP_SOCKETS });
  let running = true;
  let n = 0;

  function request() {
    return new Promise((resolve) => {
      const p = `/h/${++n}`;
      stats.httpSent++;
      const fail = (err) => {
        stats.httpFailed++;
        noteError(stats, 'http', err);
        resolve();
      };
      const req = http.get({ host: '127.0.0.1', port, path: p, agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('error', fail);
        res.on('end', () => {
          if (res.statusCode !== 200 || body !== p) {
            return fail(new Error(`status ${res.statusCode}, body ${JSON.stringify(body.slice(0, 40))}`));
          }
          stats.httpAnswered++;
          resolve();
        });
      });
      req.setTimeout(10000, () => req.destroy(new Error('timeout')));
      req.on('error', fail);
    });
  }

  const loop = async () => {
    while (running) await request();
  };
  const loops = Array.from({ length: HTTP_SOCKETS }, loop);
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy(); // closes the idle keep-alive sockets
    },
  };
}

// Both kinds of traffic until `until()` says stop; returns how long the
// load ran and how long the clients took to finish.
async function runLoad(port, cfg, clients, stats, until) {
  const t0 = Date.now();
  const churn = wsChurn(port, cfg, clients, stats);
  const web = httpTraffic(port, stats);
  await until(churn);
  const t1 = Date.now();
  await Promise.all([churn.stop(), web.stop()]);
  return { loadS: (t1 - t0) / 1000, drainS: (Date.now() - t1) / 1000 };
}

// ---------------------------------------------------------------- main

function config() {
  const seconds = Number(process.argv[2] || process.env.SOAK_SECONDS || 300);
  const connections = Number(process.env.SOAK_CONNECTIONS || 5000);
  const messages = Number(process.env.SOAK_MESSAGES || 20);
  const sessionMs = Number(process.env.SOAK_SESSION_MS || 8000);
  for (const [k, v] of Object.entries({ seconds, connections, messages, sessionMs })) {
    if (!(v > 0)) throw new Error(`soak: bad ${k}: ${v}`);
  }
  return { seconds, connections, messages, sessionMs };
}

function fdLimits() {
  const m = /Max open files\s+(\S+)\s+(\S+)/.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
  const num = (s) => (s === 'unlimited' ? Infinity : Number(s));
  return { soft: num(m[1]), hard: num(m[2]) };
}

// Each process holds a descriptor per connection. If the soft limit is too
// low but the hard one allows it, run again under a raised soft limit (Node
// cannot set rlimits itself); otherwise fewer connections, said aloud.
// Returns false when the re-run has done the work.
function fitDescriptors(cfg) {
  const need = cfg.connections + FD_MARGIN;
  const { soft, hard } = fdLimits();
  if (soft >= need) return true;
  if (hard >= need && !process.env.SOAK_RAISED) {
    const argv = [process.execPath, ...process.argv.slice(1)];
    const r = spawnSync('bash', ['-c', 'ulimit -Sn "$0" && exec "$@"', String(need), ...argv], {
      stdio: 'inherit',
      env: { ...process.env, SOAK_RAISED: '1' },
    });
    process.exitCode = r.status ?? 2;
    return false;
  }
  cfg.connections = Math.max(1, soft - FD_MARGIN);
  console.log(`soak: descriptor limit ${soft} (hard ${hard}): connections capped at ${cfg.connections}`);
  return true;
}

async function main() {
  const cfg = config();
  if (!fitDescriptors(cfg)) return;
  const { child, port: portP } = startServer();
  const port = await portP;
  const watchdog = setTimeout(() => {
    console.error('soak: watchdog expired, giving up');
    child.kill();
    process.exit(2);
  }, cfg.seconds * 1000 + WARMUP_LIMIT_MS + 2 * (DRAIN_LIMIT_MS + SETTLE_LIMIT_MS) + 60000);
  watchdog.unref();

  console.log(`soak: ${cfg.connections} connections × ${cfg.messages} messages per session, ${cfg.seconds} s, ` +
    `server pid ${child.pid} port ${port}`);
  const stats = newStats();
  const clients = newClients(cfg.connections);
  const fresh = await ask(child, true);

  // "Before" is measured after a warm-up in which every client has had one
  // session under the full load, then a settle: the first connections
  // allocate buffers the runtime and the allocator keep for the next ones,
  // and V8 sizes its heap to the load (WARMUP_MIN_MS), which is not a leak.
  // The fresh process's RSS is reported too.
  await runLoad(port, cfg, clients, stats, async (churn) => {
    const warmed = sleep(Math.min(WARMUP_MIN_MS, cfg.seconds * 1000));
    const done = await waitFor(churn.everyClientDone, WARMUP_LIMIT_MS);
    if (!done) console.log('soak: warm-up cut short, not every client had a session');
    await warmed;
  });
  const before = await settle(child);

  console.log('soak: warm-up done, load running');
  const t0 = Date.now();
  const ticker = setInterval(() => progress(child, stats, t0), PROGRESS_MS);
  const time = await runLoad(port, cfg, clients, stats, () => sleep(cfg.seconds * 1000));
  clearInterval(ticker);
  const after = await settle(child);
  stopServer(child);

  const failures = checks(stats, before, after);
  report(cfg, stats, { fresh, before, after, time }, failures);
  process.exitCode = failures.length ? 1 : 0;
}

// A line now and then, so that a long run shows where it is going.
async function progress(child, s, t0) {
  const m = await ask(child);
  const t = Math.round((Date.now() - t0) / 1000);
  console.log(`  ${t} s: sent ${s.sent}, received ${s.received}, opened ${s.opened}, http ${s.httpAnswered}; ` +
    `server ${m.connections} open, ${m.fds} fds, RSS ${(m.rss / 1048576).toFixed(1)} MB`);
}

function checks(s, before, after) {
  const f = [];
  if (s.lost) f.push(`${s.lost} messages lost`);
  if (s.duplicated) f.push(`${s.duplicated} messages duplicated`);
  if (s.reordered) f.push(`${s.reordered} messages reordered`);
  if (s.misrouted) f.push(`${s.misrouted} echoes reached another client`);
  if (s.abnormalCloses || s.wsErrors) f.push(`${s.abnormalCloses} abnormal closes, ${s.wsErrors} client errors`);
  if (s.httpFailed) f.push(`${s.httpFailed} HTTP requests failed`);
  if (!before.settled || !after.settled) f.push('the server did not settle (connections left open or descriptors still moving)');
  if (after.fds !== before.fds) f.push(`server descriptors ${before.fds} before, ${after.fds} after`);
  if (after.rss > before.rss * 1.1) {
    // V8's numbers tell a JS leak (heap in use grew) from memory kept for
    // reuse: V8's grown heap, and pages glibc malloc keeps (malloc_trim is
    // not reachable from JS).
    const mb = (b) => (b / 1048576).toFixed(1);
    f.push(`server RSS after is ${pct(after.rss / before.rss)} of before (limit 110 %); ` +
      `V8 heap in use ${mb(before.heapUsed)} → ${mb(after.heapUsed)} MB, ` +
      `held ${mb(before.heapTotal)} → ${mb(after.heapTotal)} MB; ` +
      'the rest is native memory, of which glibc malloc may keep freed pages');
  }
  return f;
}

function report(cfg, s, m, failures) {
  const mb = (b) => `${(b / 1048576).toFixed(1)} MB`;
  const rows = [
    ['soak duration (after warm-up) + drain', `${m.time.loadS.toFixed(1)} s + ${m.time.drainS.toFixed(1)} s`],
    ['clients × messages/session, session length', `${cfg.connections} × ${cfg.messages}, ~${cfg.sessionMs / 1000} s`],
    ['messages sent', s.sent],
    ['messages received', s.received],
    ['messages lost', s.lost],
    ['messages duplicated', s.duplicated],
    ['messages reordered', s.reordered],
    ['echoes to the wrong client', s.misrouted],
    ['connections opened', s.opened],
    ['connections closed', s.closed],
    ['abnormal closes / client errors', `${s.abnormalCloses} / ${s.wsErrors}`],
    ['open at once: client peak / server peak', `${s.peakOpen} / ${m.after.peakConnections}`],
    ['HTTP requests sent', s.httpSent],
    ['HTTP requests answered', s.httpAnswered],
    ['HTTP requests failed', s.httpFailed],
    ['server fds fresh / before / after', `${m.fresh.fds} / ${m.before.fds} / ${m.after.fds}`],
    ['server RSS fresh', mb(m.fresh.rss)],
    ['server RSS before (after warm-up)', mb(m.before.rss)],
    ['server RSS peak (250 ms samples)', mb(m.after.peakRss)],
    ['server RSS after', mb(m.after.rss)],
    ['RSS after ÷ before', pct(m.after.rss / m.before.rss)],
    ['server V8 heap used / total, before', `${mb(m.before.heapUsed)} / ${mb(m.before.heapTotal)}`],
    ['server V8 heap used / total, after', `${mb(m.after.heapUsed)} / ${mb(m.after.heapTotal)}`],
  ];
  console.log('\nsoak report (counts include the warm-up)');
  for (const [k, v] of rows) console.log(`  ${k.padEnd(42)} ${v}`);
  for (const [k, n] of s.errorSamples) console.log(`  error ${k} ×${n}`);
  if (failures.length === 0) console.log('\nPASS');
  else console.log(`\nFAIL\n${failures.map((x) => `  - ${x}`).join('\n')}`);
}

// ---------------------------------------------------------------- helpers

function pct(x) {
  return `${(x * 100).toFixed(1)} %`;
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitFor(pred, ms) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) return false;
    await sleep(50);
  }
  return true;
}
