#!/usr/bin/env node
'use strict';
// `npm run bench`: builds the load generator (bench/loadgen), then runs every
// test against every server, repetitions interleaved (A, B, C, A, B, C, …),
// each server pinned to one core and the generator to another, and prints
// one table, also written to BENCHMARKS.md with the machine and the command.
//
// Environment:
//   BENCH_REPS     repetitions per test and server (default 5)
//   BENCH_SECONDS  measured seconds per echo run (default 5; 1 s warm-up more)
//   BENCH_SERVERS  comma list of servers to run (default: all; see SERVERS)
//   BENCH_TESTS    comma list of test ids to run (default: all; see TESTS)
//   BENCH_CONNECT_CONNS        connections of the connect test (default 10000)
//   BENCH_CONNECT_CONCURRENCY  handshakes in progress at once (default 100)
//   BENCH_OUT      where to write the report (default BENCHMARKS.md at the root)
//   BENCH_JSON     also write every run's raw result to this file
//   BENCH_SERVER_CPUS / BENCH_LOADGEN_CPUS  taskset lists (default 0 and 1)
//   BENCH_BASE     another built checkout of sack, run as `sack-base` (before/after)
//   BENCH_FANOUT_CONNS      subscribers of the fanout test (default 10000, over 100 topics)
//   BENCH_BACKPLANE_CONNS   subscribers of the backplane test (default 25)
//   BENCH_BACKPLANE_RATE    its publishes per second (default 50000)
//   BENCH_REDIS_SERVER      the redis-server binary (default: redis-server on PATH)
//   BENCH_REDIS_CPUS        its taskset list (default: BENCH_SERVER_CPUS, with the publisher)
//
// Tests marked `deflate` (permessage-deflate echo) run only on the servers
// marked `deflate`, started with DEFLATE=1; tests marked `tls` only on the
// servers marked `tls`. Tests marked `fanout` (topics, one publisher, many
// subscribers) run on the servers with a `fanout` script; tests marked
// `backplane` on the servers marked `backplane` (two sack processes and a
// Redis).
//
// Only loopback traffic: every server binds 127.0.0.1 on an ephemeral port
// and the generator refuses any other address. Every run is bounded in time.

const { spawn, spawnSync, execFileSync } = require('child_process');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');

const BENCH = __dirname;
const ROOT = path.resolve(BENCH, '..');
const DEPS = path.join(BENCH, '.deps');
const LOADGEN_DIR = path.join(BENCH, 'loadgen');
const LOADGEN_TARGET = path.join(LOADGEN_DIR, 'target');
const LOADGEN = path.join(LOADGEN_TARGET, 'release', 'sack-loadgen');

const env = process.env;
const REPS = intEnv('BENCH_REPS', 5, 1, 100);
const SECONDS = numEnv('BENCH_SECONDS', 5, 0.2, 120);
const WARMUP = numEnv('BENCH_WARMUP', 1, 0, 30);
const CONNECT_CONNS = intEnv('BENCH_CONNECT_CONNS', 10000, 1, 1000000);
const CONNECT_CONCURRENCY = intEnv('BENCH_CONNECT_CONCURRENCY', 100, 1, 100000);
const FANOUT_CONNS = intEnv('BENCH_FANOUT_CONNS', 10000, 100, 1000000);
const BACKPLANE_CONNS = intEnv('BENCH_BACKPLANE_CONNS', 25, 1, 100000);
const BACKPLANE_RATE = intEnv('BENCH_BACKPLANE_RATE', 50000, 1, 10000000);
const REDIS_SERVER = env.BENCH_REDIS_SERVER || 'redis-server';
const SERVER_CPUS = env.BENCH_SERVER_CPUS || '0';
const LOADGEN_CPUS = env.BENCH_LOADGEN_CPUS || '1';
// The backplane rows' redis-server (default: with the publisher, A).
const REDIS_CPUS = env.BENCH_REDIS_CPUS || SERVER_CPUS;
const OUT = path.resolve(env.BENCH_OUT || path.join(ROOT, 'BENCHMARKS.md'));

// Pinned versions of the comparison servers (overridable).
const BUN_VERSION = env.BENCH_BUN_VERSION || '1.4.5';
// uWebSockets.js proper is published on GitHub only. These registry packages
// carry its prebuilt addon; the first whose addon loads here is used.
const UWS_CANDIDATES = [
  // uWS.js v20.57.0, repackaged; its Linux addons need glibc >= 2.38.
  { pkg: '@btc-vision/uwebsockets.js', version: '20.57.0', addon: (abi) => `uws_linux_x64_${abi}.node`, uws: 'v20.57.0' },
  // uWS.js v20.30.0, repackaged by Truffle (Ganache); glibc >= 2.27.
  { pkg: '@trufflesuite/uws-js-unofficial', version: '20.30.0-unofficial.0', addon: (abi) => `binaries/uws_linux_x64_${abi}.node`, uws: 'v20.30.0' },
];

// ---------------------------------------------------------------- servers
//
// A server: name, script in bench/servers/, and prepare() returning how to
// start it ({ cmd: [program, ...args], env, version }) or throwing an Error
// whose message says why it is skipped. To add a variant (issue 5: sack with
// 1, 2, 4 worker threads), add an entry with its own env, e.g.
//   { name: 'sack-w2', script: 'sack-echo.js', env: { SACK_WORKERS: '2' }, cpus: '0' },
// `cpus` (taskset list) defaults to BENCH_SERVER_CPUS.
//
// `fanout`: the server's script (and environment) for the fanout tests,
// run by the same program as its echo script (node, or bun). A server
// with `fanoutOnly` runs the fanout tests only; one with `backplane` the
// backplane tests only.
const SERVERS = [
  {
    name: 'sack',
    deflate: true,
    script: 'sack-echo.js',
    fanout: { script: 'sack-fanout.js', env: { FANOUT_MODE: 'engine' } },
    prepare: () => nodeServer('sack-echo.js', `sack ${pkgVersion(ROOT)} (this repo)`),
  },
  // Before/after in one run: BENCH_BASE names another built checkout of
  // sack (e.g. a `git worktree` of the commit before a change).
  { name: 'sack-base', deflate: true, script: 'sack-echo.js', fanout: { script: 'sack-fanout.js', env: { FANOUT_MODE: 'engine' } }, prepare: prepareBase('sack-echo.js') },
  // Fan-out the way before topics: a Set of connections per topic in JS
  // and ws.send() to each (fanout tests only).
  {
    name: 'sack-jsloop',
    fanoutOnly: true,
    script: 'sack-fanout.js',
    fanout: { script: 'sack-fanout.js', env: { FANOUT_MODE: 'jsloop' } },
    prepare: () => nodeServer('sack-fanout.js', `sack ${pkgVersion(ROOT)} (this repo), ws.send() over a Set per topic in JS`),
  },
  // sack attached to an Express app on Node's http.Server (handleUpgrade):
  // the same echo once the engine has taken the connection over.
  {
    name: 'sack-express',
    optIn: true,
    script: 'sack-express-echo.js',
    prepare: () =>
      nodeServer('sack-express-echo.js', `sack ${pkgVersion(ROOT)} behind express ${pkgVersion(path.join(ROOT, 'node_modules', 'express'))} (handleUpgrade)`),
  },
  {
    name: 'ws',
    deflate: true,
    script: 'ws-echo.js',
    fanout: { script: 'ws-fanout.js' },
    prepare: () => nodeServer('ws-echo.js', `ws ${pkgVersion(path.join(ROOT, 'node_modules', 'ws'))}`),
  },
  // TLS rows (tests with `tls`): the same echoes over TLS 1.3, with a
  // certificate made for the run. `ws-tls` is `ws` on Node's https.Server.
  { name: 'sack-tls', tls: true, script: 'sack-tls-echo.js', prepare: () => nodeServer('sack-tls-echo.js', `sack ${pkgVersion(ROOT)} with cert/key (rustls)`) },
  {
    name: 'ws-tls',
    tls: true,
    script: 'ws-tls-echo.js',
    prepare: () => nodeServer('ws-tls-echo.js', `ws ${pkgVersion(path.join(ROOT, 'node_modules', 'ws'))} on Node's https.Server`),
  },
  { name: 'bun', deflate: true, script: 'bun-echo.js', fanout: { script: 'bun-fanout.js' }, prepare: prepareBun },
  { name: 'uws', deflate: true, script: 'uws-echo.js', fanout: { script: 'uws-fanout.js' }, prepare: prepareUws },
  // Issue 5's row: the same echo served by 1, 2 and 4 worker threads (the
  // main thread only listens and posts). Same one server core as the others.
  // Only sack-w1 runs by default (the 2- and 4-worker rows match it on one
  // core; name them in BENCH_SERVERS to see them).
  ...[1, 2, 4].map((n) => ({
    name: `sack-w${n}`,
    optIn: n > 1,
    script: 'sack-workers-echo.js',
    prepare: () => {
      const p = nodeServer('sack-workers-echo.js', `sack ${pkgVersion(ROOT)}, ${n} worker thread${n > 1 ? 's' : ''}`);
      p.env = { SACK_WORKERS: String(n) };
      return p;
    },
  })),
  // The backplane tests: two sack processes with the same Redis backplane
  // (a redis-server started per run), in Redis Pub/Sub mode or in history
  // mode (a Lua script and a Redis Stream per topic).
  ...['pubsub', 'history'].map((mode) => ({
    name: `sack-${mode}`,
    backplane: true,
    script: 'sack-backplane.js',
    prepare: () => {
      const p = nodeServer('sack-backplane.js', `sack ${pkgVersion(ROOT)}, backplane mode '${mode}', ${redisVersion()}`);
      p.env = { BACKPLANE_MODE: mode };
      return p;
    },
  })),
];

// ---------------------------------------------------------------- tests
//
// metrics: key in the generator's JSON, label, whether higher is better,
// and whether to report it per server CPU-second.
//
// args.writes: how the generator writes its frames. 'batched' (its default):
// every frame due on a connection in one write(2), as a busy client or a
// proxy does; 'per-frame': one write(2) per frame, as a browser sending
// one message per event does, so the server gets small segments and more
// wake-ups for the same messages.
const TESTS = [
  {
    id: 'echo-32t-64x16',
    title: 'echo 32 B text, 64 conns × 16 in flight (client: many frames per write)',
    args: { mode: 'echo', conns: 64, depth: 16, size: 32, type: 'text', writes: 'batched' },
    metrics: [{ key: 'msgs_per_s', unit: 'msgs/s', higher: true, perCpu: 'msgs' }],
  },
  {
    id: 'echo-32t-64x16-perframe',
    title: 'echo 32 B text, 64 conns × 16 in flight (client: one frame per write)',
    args: { mode: 'echo', conns: 64, depth: 16, size: 32, type: 'text', writes: 'per-frame' },
    metrics: [{ key: 'msgs_per_s', unit: 'msgs/s', higher: true, perCpu: 'msgs' }],
  },
  {
    id: 'echo-32t-64x64',
    title: 'echo 32 B text, 64 conns × 64 in flight',
    args: { mode: 'echo', conns: 64, depth: 64, size: 32, type: 'text' },
    metrics: [{ key: 'msgs_per_s', unit: 'msgs/s', higher: true, perCpu: 'msgs' }],
  },
  {
    id: 'echo-16kb-64x16',
    title: 'echo 16 KiB binary, 64 conns × 16 in flight (client: many frames per write)',
    args: { mode: 'echo', conns: 64, depth: 16, size: 16384, type: 'binary', writes: 'batched' },
    metrics: [{ key: 'msgs_per_s', unit: 'msgs/s', higher: true, perCpu: 'msgs' }],
  },
  {
    id: 'echo-16kb-64x16-perframe',
    title: 'echo 16 KiB binary, 64 conns × 16 in flight (client: one frame per write)',
    args: { mode: 'echo', conns: 64, depth: 16, size: 16384, type: 'binary', writes: 'per-frame' },
    metrics: [{ key: 'msgs_per_s', unit: 'msgs/s', higher: true, perCpu: 'msgs' }],
  },
  // permessage-deflate (servers with `deflate`, started with DEFLATE=1, each
  // with its own defaults): 4 KiB JSON text, different per message. The
  // generator offers `permessage-deflate; client_max_window_bits` as
  // browsers do, compresses every message at level 6 keeping its window
  // (context takeover, unless the server says otherwise), inflates and
  // checks every echo. Payload ÷ wire: message bytes ÷ bytes on the
  // socket, both ways. RSS / conn: (server VmRSS at the end of the run,
  // every connection open and busy − VmRSS before the first connection) ÷
  // connections; at 64 connections fixed costs (heap growth, JIT, buffers)
  // weigh in, the 1,000-connection row shows the per-connection state.
  {
    id: 'deflate-echo-4kj-64x16',
    title: 'permessage-deflate echo 4 KiB JSON text, 64 conns × 16 in flight',
    deflate: true,
    args: { mode: 'echo', conns: 64, depth: 16, size: 4096, type: 'json', deflate: 1, rss: 1 },
    metrics: [
      { key: 'msgs_per_s', unit: 'msgs/s', higher: true, perCpu: 'msgs' },
      { key: 'wire_ratio', unit: 'payload ÷ wire bytes', higher: true },
      { key: 'bytes_per_conn', unit: 'B RSS / active deflate conn', higher: false },
    ],
  },
  {
    id: 'deflate-echo-4kj-1000x1',
    title: 'permessage-deflate echo 4 KiB JSON text, 1,000 conns × 1 in flight',
    deflate: true,
    args: { mode: 'echo', conns: 1000, depth: 1, size: 4096, type: 'json', deflate: 1, rss: 1 },
    metrics: [
      { key: 'msgs_per_s', unit: 'msgs/s', higher: true, perCpu: 'msgs' },
      { key: 'bytes_per_conn', unit: 'B RSS / active deflate conn', higher: false },
    ],
  },
  {
    id: 'connect',
    title: null, // set below: depends on the connection count
    args: { mode: 'connect', conns: CONNECT_CONNS, concurrency: CONNECT_CONCURRENCY, hold: 2 },
    metrics: [
      { key: 'handshakes_per_s', unit: 'handshakes/s', higher: true, perCpu: 'handshakes' },
      { key: 'bytes_per_conn', unit: 'B RSS / idle conn', higher: false },
    ],
  },
  // Over TLS (servers with `tls`, compared with ws-tls): the generator
  // speaks TLS 1.3 with rustls; `full`: every handshake a full one,
  // `resume`: sessions resumed by ticket after the first.
  {
    id: 'wss-echo-32t-64x16',
    title: 'wss echo 32 B text, 64 conns × 16 in flight',
    tls: true,
    args: { mode: 'echo', conns: 64, depth: 16, size: 32, type: 'text', tls: 'full' },
    metrics: [{ key: 'msgs_per_s', unit: 'msgs/s', higher: true, perCpu: 'msgs' }],
  },
  {
    id: 'wss-echo-16kb-64x16',
    title: 'wss echo 16 KiB binary, 64 conns × 16 in flight',
    tls: true,
    args: { mode: 'echo', conns: 64, depth: 16, size: 16384, type: 'binary', tls: 'full' },
    metrics: [{ key: 'msgs_per_s', unit: 'msgs/s', higher: true, perCpu: 'msgs' }],
  },
  {
    id: 'tls-connect-full',
    title: 'TLS 1.3 full handshakes + upgrade, 5,000 conns held idle',
    tls: true,
    args: { mode: 'connect', conns: 5000, concurrency: 100, hold: 2, tls: 'full' },
    metrics: [
      { key: 'handshakes_per_s', unit: 'handshakes/s', higher: true, perCpu: 'handshakes' },
      { key: 'bytes_per_conn', unit: 'B RSS / idle conn', higher: false },
    ],
  },
  {
    id: 'tls-connect-resume',
    title: 'TLS 1.3 resumed handshakes + upgrade, 5,000 conns',
    tls: true,
    args: { mode: 'connect', conns: 5000, concurrency: 100, hold: 2, tls: 'resume' },
    metrics: [{ key: 'handshakes_per_s', unit: 'handshakes/s', higher: true, perCpu: 'handshakes' }],
  },
  {
    id: 'latency-1x1',
    title: 'latency 32 B text, 1 conn × 1 in flight',
    // The generator polls without sleeping here (its core is its own), so
    // the row shows the server's wake-up and work, not the generator's.
    args: { mode: 'echo', conns: 1, depth: 1, size: 32, type: 'text', spin: 1 },
    metrics: [{ key: 'p50_us', unit: 'µs p50', higher: false }],
  },
  // Topics, fan-out in one process (servers with `fanout`): the generator
  // holds `conns` subscribers over 100 topics (path /sub/<n>; the server
  // subscribes each in its open handler) and one control connection
  // (/ctl). On `go` the server publishes 100-byte text messages to the
  // topics round-robin, `rounds` messages per topic per event-loop turn
  // (setImmediate), putting a turn off by 1 ms while the subscriber it
  // samples has over 16 KiB queued (bench/servers/fanout-common.js). The
  // generator reads everything, checks every frame (size, topic, sequence)
  // and counts frames received in the measured window; after `stop` it
  // reads the rest and compares with what the server published.
  // rounds 1: every subscriber gets one message per turn, so a server that
  // writes from the JS thread makes one write(2) per frame; rounds 10: ten
  // per subscriber per turn, which such a server can put in one write.
  {
    id: 'fanout-10k',
    title: null, // set below: depends on the connection count
    fanout: true,
    args: { mode: 'fanout', conns: FANOUT_CONNS, topics: 100, size: 100, rounds: 1 },
    metrics: [{ key: 'frames_per_s', unit: 'frames/s delivered', higher: true, perCpu: 'frames' }],
  },
  {
    id: 'fanout-10k-x10',
    title: null,
    fanout: true,
    args: { mode: 'fanout', conns: FANOUT_CONNS, topics: 100, size: 100, rounds: 10 },
    metrics: [{ key: 'frames_per_s', unit: 'frames/s delivered', higher: true, perCpu: 'frames' }],
  },
  // Topics across processes (servers with `backplane`): a redis-server
  // (persistence off) and two sack processes with the same backplane; the
  // generator's subscribers on one (B), its control connection on the
  // other (A), which publishes paced 100-byte messages stamped with
  // process.hrtime (CLOCK_MONOTONIC). Latency: stamp → the generator's
  // read of the frame (A's publish call, A's engine, Redis, B's engine,
  // B's write, loopback). Placement: A and Redis share the server core,
  // B the generator's core.
  {
    id: 'backplane-latency',
    title: `backplane: ${BACKPLANE_RATE.toLocaleString('en-US')} msgs/s of 100 B published on process A, ${BACKPLANE_CONNS} subscribers on process B, Redis between`,
    backplane: true,
    args: { mode: 'backplane', conns: BACKPLANE_CONNS, rate: BACKPLANE_RATE, size: 100 },
    metrics: [
      { key: 'p50_us', unit: 'µs p50 publish → received', higher: false },
      { key: 'p99_us', unit: 'µs p99 publish → received', higher: false },
      { key: 'lost_pct', unit: '% of messages lost', higher: false },
      { key: 'redis_cpu_pct', unit: '% of a core, Redis', higher: false },
      { key: 'frames_per_s', unit: 'frames/s delivered (per CPU-s of A + B)', higher: true, perCpu: 'frames' },
    ],
  },
];

// ---------------------------------------------------------------- helpers

function intEnv(name, def, min, max) {
  return Math.round(numEnv(name, def, min, max));
}

function numEnv(name, def, min, max) {
  const v = env[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max) {
    console.error(`${name}=${v}: expected a number from ${min} to ${max}`);
    process.exit(2);
  }
  return n;
}

function pkgVersion(dir) {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version;
  } catch {
    return '?';
  }
}

// The `sack` server, run on the checkout BENCH_BASE names.
function prepareBase(script) {
  return () => {
    const base = process.env.BENCH_BASE;
    if (!base) throw new Error('set BENCH_BASE to another built checkout of sack');
    const p = nodeServer(script, `sack at ${path.resolve(base)}`);
    p.env = { SACK_PACKAGE: path.resolve(base) };
    return p;
  };
}

function nodeServer(script, version) {
  return { cmd: [process.execPath, path.join(BENCH, 'servers', script)], env: {}, version };
}

// How to start a server for the fanout tests: its `fanout` script, run by
// the program of its echo script (node or bun), with the same environment.
function fanoutPrep(server, prep) {
  return {
    ...prep,
    cmd: [...prep.cmd.slice(0, -1), path.join(BENCH, 'servers', server.fanout.script)],
    env: { ...prep.env, ...(server.fanout.env || {}) },
  };
}

// The backplane tests need a redis-server here (started per run).
function redisVersion() {
  let v;
  try {
    v = sh(REDIS_SERVER, ['--version']);
  } catch (e) {
    throw new Error(`no ${REDIS_SERVER} to run (${e.code || lastLines(String(e.stderr || e.message), 1)}); install redis-server or set BENCH_REDIS_SERVER`);
  }
  const m = /v=(\S+)/.exec(v);
  return `redis-server ${m ? m[1] : v}`;
}

function sh(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60000, ...opts }).trim();
}

function lastLines(s, n = 6) {
  return s.trim().split('\n').slice(-n).join(' | ');
}

// Installs `spec` into bench/.deps (never into the repo's package.json).
function npmInstall(spec, extra = []) {
  fs.mkdirSync(DEPS, { recursive: true });
  const pj = path.join(DEPS, 'package.json');
  if (!fs.existsSync(pj)) {
    fs.writeFileSync(pj, JSON.stringify({ name: 'sack-bench-deps', private: true, description: 'Installed by bench/run.js; not part of the repo' }, null, 2) + '\n');
  }
  const r = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--no-package-lock', '--loglevel=error', ...extra, spec], {
    cwd: DEPS,
    encoding: 'utf8',
    timeout: 600000,
  });
  if (r.error) throw new Error(`npm install ${spec}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`npm install ${spec} failed: ${lastLines(r.stderr || r.stdout, 3)}`);
}

function installedVersion(pkg) {
  const dir = path.join(DEPS, 'node_modules', pkg);
  return fs.existsSync(path.join(dir, 'package.json')) ? pkgVersion(dir) : null;
}

function isElf(file) {
  try {
    const fd = fs.openSync(file, 'r');
    const b = Buffer.alloc(4);
    fs.readSync(fd, b, 0, 4, 0);
    fs.closeSync(fd);
    return b.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
  } catch {
    return false;
  }
}

function prepareBun() {
  if (process.platform !== 'linux') throw new Error('bun: only set up for Linux here');
  if (installedVersion('bun') !== BUN_VERSION) npmInstall(`bun@${BUN_VERSION}`);
  const mod = path.join(DEPS, 'node_modules');
  // The real binary, not a Node.js wrapper: the measured pid must be bun's.
  const candidates = [
    path.join(mod, 'bun', 'bin', 'bun.exe'),
    path.join(mod, '@oven', `bun-linux-${process.arch === 'arm64' ? 'aarch64' : 'x64'}`, 'bin', 'bun'),
    path.join(mod, '@oven', `bun-linux-${process.arch === 'arm64' ? 'aarch64' : 'x64'}-baseline`, 'bin', 'bun'),
  ];
  let bin = candidates.find(isElf);
  if (!bin) {
    // The package's postinstall links the binary; run it if npm did not.
    spawnSync(process.execPath, ['install.js'], { cwd: path.join(mod, 'bun'), encoding: 'utf8', timeout: 120000 });
    bin = candidates.find(isElf);
  }
  if (!bin) throw new Error(`bun@${BUN_VERSION} installed but no bun binary for ${process.platform}-${process.arch} was found`);
  let version;
  try {
    version = sh(bin, ['--version']);
  } catch (e) {
    throw new Error(`the bun binary does not run here: ${lastLines(String(e.stderr || e.message), 2)}`);
  }
  return { cmd: [bin, path.join(BENCH, 'servers', 'bun-echo.js')], env: {}, version: `bun ${version} (Bun.serve)` };
}

function prepareUws() {
  if (process.platform !== 'linux' || process.arch !== 'x64') throw new Error('uws: only linux-x64 addons are looked for');
  const abi = process.versions.modules;
  const reasons = [];
  for (const c of UWS_CANDIDATES) {
    try {
      if (installedVersion(c.pkg) !== c.version) npmInstall(`${c.pkg}@${c.version}`, ['--ignore-scripts', '--omit=dev']);
      const addon = path.join(DEPS, 'node_modules', c.pkg, c.addon(abi));
      if (!fs.existsSync(addon)) throw new Error(`no addon for Node ABI ${abi} (${path.basename(addon)})`);
      // Load it in a child: a failed dlopen must not touch this process.
      const r = spawnSync(process.execPath, ['-e', `const u=require(${JSON.stringify(addon)});if(typeof u.App!=='function'||typeof u.us_socket_local_port!=='function')throw new Error('unexpected exports')`], {
        encoding: 'utf8',
        timeout: 30000,
      });
      if (r.status !== 0) {
        const m = /Error: (.*)/.exec(r.stderr || '');
        throw new Error(`addon does not load: ${m ? m[1] : lastLines(r.stderr || '', 1)}`);
      }
      const tried = reasons.length ? `; not used: ${reasons.join('; ')}` : '';
      return {
        cmd: [process.execPath, path.join(BENCH, 'servers', 'uws-echo.js')],
        env: { UWS_ADDON: addon },
        version: `uWebSockets.js ${c.uws} (npm ${c.pkg}@${c.version}${tried})`,
      };
    } catch (e) {
      reasons.push(`${c.pkg}@${c.version}: ${e.message}`);
    }
  }
  throw new Error(`no uWebSockets.js addon for Node ${process.versions.node} (ABI ${abi}) from the npm registry: ${reasons.join('; ')}`);
}

// ---------------------------------------------------------------- machine

function machine() {
  let cpu = '?';
  try {
    const m = /^model name\s*:\s*(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpu = m[1].trim();
  } catch {}
  let nproc = os.cpus().length;
  try {
    nproc = Number(sh('nproc', []));
  } catch {}
  return {
    nproc,
    cpu,
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    load: os.loadavg().map((x) => x.toFixed(2)).join(' '),
    mem: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
  };
}

// The open-files limit the spawned shells can set: 65536 if allowed, else
// the hard limit.
function nofileLimit() {
  try {
    return { limit: Number(sh('sh', ['-c', 'ulimit -n 65536 && ulimit -n'])), raised: true };
  } catch {
    const hard = sh('sh', ['-c', 'ulimit -Hn']);
    return { limit: hard === 'unlimited' ? 65536 : Number(hard), raised: false };
  }
}

// ---------------------------------------------------------------- running

function delay(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function pinned(cpus, nofile, cmd) {
  const shell = ['sh', '-c', `ulimit -n ${nofile} 2>/dev/null; exec "$@"`, 'sh', ...cmd];
  return PIN ? ['taskset', '-c', cpus, ...shell] : shell;
}

let PIN = true;
let NOFILE = 1024;

// Children alive now, ended if this runner is interrupted (servers also
// exit by themselves when our end of their stdin closes).
const children = new Set();
function track(child) {
  children.add(child);
  child.on('exit', () => children.delete(child));
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    for (const c of children) c.kill('SIGKILL');
    console.error(`\ninterrupted (${sig}); BENCHMARKS.md not written`);
    process.exit(130);
  });
}

// Starts a server and resolves with { child, port, pid } once it printed
// "LISTENING <port>".
function startServer(server, prep, extraEnv = {}) {
  return new Promise((resolve, reject) => {
    const argv = pinned(server.cpus || SERVER_CPUS, NOFILE, prep.cmd);
    const child = spawn(argv[0], argv.slice(1), {
      cwd: ROOT,
      env: { ...env, ...prep.env, ...(server.env || {}), ...extraEnv, PORT: '0', BENCH_STDIN_GUARD: '1' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    track(child);
    let out = '';
    let err = '';
    let done = false;
    const timer = setTimeout(() => finish(new Error(`no LISTENING line within 20 s; stderr: ${lastLines(err)}`)), 20000);
    function finish(e, port) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (e) {
        child.kill('SIGKILL');
        reject(e);
      } else resolve({ child, port, pid: child.pid, stderr: () => err });
    }
    child.stdout.on('data', (d) => {
      out += d;
      if (out.length > 65536) out = out.slice(-8192);
      const m = /^LISTENING (\d+)\s*$/m.exec(out);
      if (m) finish(null, Number(m[1]));
      // A server that cannot run this test says why and exits.
      const skip = /^SKIP (.*)$/m.exec(out);
      if (skip) finish(Object.assign(new Error(skip[1].trim()), { skip: true }));
    });
    child.stderr.on('data', (d) => {
      err += d;
      if (err.length > 65536) err = err.slice(-8192);
    });
    child.on('error', (e) => finish(e));
    child.on('exit', () => {
      child.exited = true;
    });
    // After its output is read (a SKIP line comes before the exit).
    child.on('close', (code, sig) => {
      finish(new Error(`exited (${sig || code}) before listening; stderr: ${lastLines(err)}`));
    });
  });
}

// A free loopback port (for redis-server, which cannot be given port 0).
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// Whether a Redis answers PING on `port` (within 500 ms).
function redisPing(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = '';
    const done = (ok) => {
      clearTimeout(t);
      s.destroy();
      resolve(ok);
    };
    const t = setTimeout(() => done(false), 500);
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      buf += d;
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
    });
    s.on('error', () => done(false));
  });
}

// A redis-server for one backplane run: loopback, a free port, no
// persistence (no RDB snapshots, no AOF), pinned to BENCH_REDIS_CPUS
// (default: with the publishing process, BENCH_SERVER_CPUS). Resolves { child, port, pid } once it
// answers PING (at most 5 s; three tries, in case the port was taken).
async function startRedis() {
  let last = '';
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await freePort();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sack-bench-redis-'));
    const argv = pinned(REDIS_CPUS, NOFILE, [
      REDIS_SERVER, '--port', String(port), '--bind', '127.0.0.1', '--protected-mode', 'yes',
      '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--logfile', '',
    ]);
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    track(child);
    let out = '';
    const keep = (d) => {
      out += d;
      if (out.length > 65536) out = out.slice(-8192);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', (e) => keep(`\n${e.message}`));
    child.on('exit', () => {
      child.exited = true;
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const until = Date.now() + 5000;
    while (Date.now() < until && !child.exited) {
      if (await redisPing(port)) return { child, port, pid: child.pid };
      await delay(50);
    }
    last = lastLines(out, 3) || 'no answer to PING within 5 s';
    await stopServer(child);
  }
  throw new Error(`redis-server did not start: ${last}`);
}

async function stopServer(child) {
  if (child.exited) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 3000);
  await gone;
  clearTimeout(t);
}

function runLoadgen(args, timeoutS) {
  return new Promise((resolve) => {
    const argv = pinned(LOADGEN_CPUS, NOFILE, [LOADGEN, ...args]);
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    track(child);
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      err += `\nkilled after ${timeoutS} s`;
      child.kill('SIGKILL');
    }, timeoutS * 1000);
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').filter((l) => l.startsWith('{')).pop();
      let r;
      try {
        r = JSON.parse(line);
      } catch {
        r = { ok: false, error: `no result from the generator (exit ${code}): ${lastLines(err || out)}` };
      }
      resolve(r);
    });
  });
}

function serverFailed(e) {
  return e.skip ? { ok: false, skipped: e.message, error: `skipped: ${e.message}` } : { ok: false, error: `server: ${e.message}` };
}

async function runOne(server, prep, test) {
  if (test.backplane) return runBackplane(server, prep, test);
  let srv;
  try {
    const extra = test.deflate ? { DEFLATE: '1' } : test.fanout ? { FANOUT_ROUNDS: String(test.args.rounds) } : {};
    srv = await startServer(server, test.fanout ? fanoutPrep(server, prep) : prep, extra);
  } catch (e) {
    return serverFailed(e);
  }
  const a = test.args;
  const args = [a.mode, '--host', '127.0.0.1', '--port', String(srv.port), '--pid', String(srv.pid)];
  let timeoutS;
  if (a.mode === 'echo') {
    args.push('--conns', a.conns, '--depth', a.depth, '--size', a.size, '--type', a.type, '--seconds', SECONDS, '--warmup', WARMUP);
    if (a.spin) args.push('--spin', '1');
    if (a.tls) args.push('--tls', a.tls);
    if (a.writes) args.push('--writes', a.writes);
    if (a.deflate) args.push('--deflate', '1');
    if (a.rss) args.push('--rss', '1');
    timeoutS = WARMUP + SECONDS + 60;
  } else if (a.mode === 'fanout') {
    args.push('--conns', a.conns, '--topics', a.topics, '--size', a.size, '--seconds', SECONDS, '--warmup', WARMUP);
    args.push('--concurrency', 100, '--timeout', 120);
    timeoutS = 120 + WARMUP + SECONDS + 60;
  } else {
    args.push('--conns', a.conns, '--concurrency', a.concurrency, '--hold', a.hold, '--timeout', 120);
    if (a.tls) args.push('--tls', a.tls);
    timeoutS = 120 + a.hold + 30;
  }
  const r = await runLoadgen(args.map(String), timeoutS);
  if (srv.child.exited) {
    r.ok = false;
    r.error = `${r.error ? r.error + '; ' : ''}server exited during the run; stderr: ${lastLines(srv.stderr())}`;
  }
  await stopServer(srv.child);
  return r;
}

// One backplane run: a fresh redis-server, then process B (the
// subscribers' server, pinned with the generator: BENCH_LOADGEN_CPUS) and
// process A (the publisher, pinned with Redis: BENCH_SERVER_CPUS), both
// with backplane redis://127.0.0.1:<port>. The generator's JSON has B's
// CPU as server_cpu, A's as pub_cpu, Redis's as redis_cpu; the row's
// server CPU is A + B (sub_cpu keeps B's).
async function runBackplane(server, prep, test) {
  const a = test.args;
  const started = [];
  const stopAll = () => Promise.all(started.map((c) => stopServer(c)));
  let redis, A, B;
  try {
    redis = await startRedis();
    started.push(redis.child);
    const extra = { BACKPLANE_URL: `redis://127.0.0.1:${redis.port}` };
    B = await startServer({ ...server, cpus: LOADGEN_CPUS }, prep, extra);
    started.push(B.child);
    A = await startServer({ ...server, cpus: SERVER_CPUS }, prep, extra);
    started.push(A.child);
  } catch (e) {
    await stopAll();
    return serverFailed(e);
  }
  const args = ['backplane', '--host', '127.0.0.1', '--port', B.port, '--pub-port', A.port, '--pid', B.pid, '--pub-pid', A.pid];
  args.push('--redis-pid', redis.pid, '--conns', a.conns, '--rate', a.rate, '--size', a.size, '--seconds', SECONDS, '--warmup', WARMUP, '--timeout', 60);
  const r = await runLoadgen(args.map(String), 60 + WARMUP + SECONDS + 60);
  for (const [name, p] of [['publisher (A)', A], ['subscribers\' server (B)', B], ['redis-server', redis]]) {
    if (p.child.exited) {
      r.ok = false;
      r.error = `${r.error ? r.error + '; ' : ''}${name} exited during the run`;
    }
  }
  if (r.ok) {
    r.sub_cpu = r.server_cpu;
    r.server_cpu = (r.server_cpu || 0) + (r.pub_cpu || 0);
    r.redis_cpu_pct = r.redis_cpu * 100;
  }
  await stopAll();
  return r;
}

// ---------------------------------------------------------------- report

// Whether `test` runs on server `s`: TLS tests on the TLS servers, the
// others on the rest; deflate tests only on servers that can deflate;
// fanout tests on the servers with a fanout script, backplane tests on the
// backplane servers (which run nothing else, as the fanout-only ones).
function applies(s, test) {
  if (test.fanout) return !!s.fanout;
  if (test.backplane) return !!s.backplane;
  if (s.fanoutOnly || s.backplane) return false;
  return !s.tls === !test.tls && (!test.deflate || s.deflate === true);
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (!n) return NaN;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

function fmt(x) {
  if (!Number.isFinite(x)) return '—';
  const ax = Math.abs(x);
  if (ax >= 1000) return Math.round(x).toLocaleString('en-US');
  if (ax >= 100) return x.toFixed(0);
  if (ax >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

function pct(x) {
  return Number.isFinite(x) ? `${Math.round(x * 100)} %` : '—';
}

function buildRows(results, servers, tests) {
  const rows = [];
  for (const test of tests) {
    for (const metric of test.metrics) {
      const wsRuns = (results[test.id]?.[test.tls ? 'ws-tls' : 'ws'] || []).filter((r) => r.ok && Number.isFinite(r[metric.key]));
      const wsMedian = median(wsRuns.map((r) => r[metric.key]));
      for (const s of servers) {
        if (!applies(s, test)) continue;
        const all = results[test.id]?.[s.name] || [];
        const ok = all.filter((r) => r.ok && Number.isFinite(r[metric.key]));
        const row = { test: test.title, metric, server: s.name, runs: `${ok.length}/${all.length}` };
        if (!ok.length) {
          const firstErr = all.find((r) => r.error);
          const skipped = all.find((r) => r.skipped);
          if (skipped) row.skipped = skipped.skipped;
          row.failed = firstErr ? firstErr.error : 'no run';
          rows.push(row);
          continue;
        }
        const v = ok.map((r) => r[metric.key]);
        row.median = median(v);
        row.min = Math.min(...v);
        row.max = Math.max(...v);
        row.vsWs = Number.isFinite(wsMedian) && wsMedian !== 0 ? row.median / wsMedian : NaN;
        if (metric.perCpu) {
          row.perCpu = median(ok.filter((r) => r.server_cpu > 0).map((r) => r[metric.key] / r.server_cpu));
        }
        row.serverCpu = median(ok.map((r) => r.server_cpu).filter(Number.isFinite));
        row.genCpu = median(ok.map((r) => r.client_cpu).filter(Number.isFinite));
        row.otherCpu = median(ok.map((r) => r.other_cpu).filter(Number.isFinite));
        if (metric.key === 'bytes_per_conn') {
          row.lat = `RSS ${fmt(median(ok.map((r) => r.rss_before_kb / 1024)))} → ${fmt(median(ok.map((r) => r.rss_after_kb / 1024)))} MiB`;
        } else if (test.backplane) {
          row.lat = `${fmt(median(ok.map((r) => r.p50_us)))} / ${fmt(median(ok.map((r) => r.p99_us)))}`;
        } else if (test.fanout) {
          row.lat = '—';
        } else if (test.args.mode === 'echo') {
          row.lat = `${fmt(median(ok.map((r) => r.p50_us)))} / ${fmt(median(ok.map((r) => r.p99_us)))}`;
        } else if (metric.key === 'handshakes_per_s') {
          row.lat = `${fmt(median(ok.map((r) => r.hs_p50_us)))} / ${fmt(median(ok.map((r) => r.hs_p99_us)))}`;
        } else {
          row.lat = `RSS ${fmt(median(ok.map((r) => r.rss_before_kb / 1024)))} → ${fmt(median(ok.map((r) => r.rss_after_kb / 1024)))} MiB`;
        }
        const notes = [];
        // What the server accepted of the generator's deflate offer.
        if (test.deflate && metric === test.metrics[0]) notes.push(`negotiated: ${ok[0].extension || 'nothing'}`);
        // Messages that never arrived (over all runs), and what the
        // server said it dropped (sack: subscribers over maxBackpressure).
        if (test.fanout) {
          const lost = ok.reduce((x, r) => x + r.lost, 0);
          const expected = ok.reduce((x, r) => x + r.expected, 0);
          const dropped = ok.reduce((x, r) => x + r.server_dropped, 0);
          notes.push(lost ? `lost ${lost.toLocaleString('en-US')} of ${expected.toLocaleString('en-US')} frames` : `none of ${expected.toLocaleString('en-US')} frames lost`);
          if (dropped) notes.push(`server dropped ${dropped.toLocaleString('en-US')}`);
        }
        if (test.backplane && metric === test.metrics[0]) {
          const m = (k) => median(ok.map((r) => r[k]));
          notes.push(`CPU: A ${pct(m('pub_cpu'))}, B ${pct(m('sub_cpu'))}, Redis ${pct(m('redis_cpu'))}`);
          const got = m('msgs_per_s');
          if (got < 0.97 * test.args.rate) notes.push(`B received ${fmt(got)} msgs/s per subscriber: behind the publisher`);
        }
        if (row.genCpu > 0.9 && !test.args.spin) notes.push('generator near saturation');
        if (row.otherCpu > 0.25) notes.push(`other load on the machine: ${pct(row.otherCpu)} of a core`);
        if (notes.length) row.note = notes.join('; ');
        if (ok.length < all.length) {
          const e = all.find((r) => !r.ok);
          row.note = `${row.note ? row.note + '; ' : ''}failed runs: ${e && e.error}`;
        }
        rows.push(row);
      }
    }
  }
  return rows;
}

function table(rows) {
  const head = ['Test', 'Metric', 'Server', 'Median', 'Min–max', 'vs ws', 'Per server CPU-s', 'Server CPU', 'Gen CPU', 'Other CPU', 'p50 / p99 µs', 'Runs'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((h, i) => (i >= 3 && i <= 9 ? '---:' : '---')).join('|')}|`];
  let prev = null;
  for (const r of rows) {
    const label = r.test === prev ? '' : r.test;
    prev = r.test;
    const unit = `${r.metric.unit}${r.metric.higher ? '' : ' (lower is better)'}`;
    if (r.skipped) {
      lines.push(`| ${label} | ${unit} | ${r.server} | SKIPPED | ${r.skipped.replace(/\|/g, '/').slice(0, 200)} | | | | | | | ${r.runs} |`);
      continue;
    }
    if (r.failed) {
      lines.push(`| ${label} | ${unit} | ${r.server} | FAILED | ${r.failed.replace(/\|/g, '/').slice(0, 200)} | | | | | | | ${r.runs} |`);
      continue;
    }
    const cells = [
      label,
      unit,
      r.server,
      fmt(r.median),
      `${fmt(r.min)}–${fmt(r.max)}`,
      Number.isFinite(r.vsWs) ? `${r.vsWs.toFixed(2)}×` : '—',
      r.perCpu !== undefined ? `${fmt(r.perCpu)} ${r.metric.perCpu}` : '—',
      pct(r.serverCpu),
      pct(r.genCpu),
      pct(r.otherCpu),
      r.lat || '—',
      r.runs + (r.note ? ` (${r.note.replace(/\|/g, '/').slice(0, 160)})` : ''),
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

function commandLine() {
  const vars = Object.keys(env)
    .filter((k) => k.startsWith('BENCH_'))
    .sort()
    .map((k) => `${k}=${/^[\w.,:/-]*$/.test(env[k]) ? env[k] : JSON.stringify(env[k])}`);
  return [...vars, 'npm run bench'].join(' ');
}

// ---------------------------------------------------------------- main

async function main() {
  const started = new Date();
  const m = machine();
  const tests = TESTS.filter((t) => !env.BENCH_TESTS || env.BENCH_TESTS.split(',').map((s) => s.trim()).includes(t.id));
  if (!tests.length) {
    console.error(`BENCH_TESTS matched no test; tests: ${TESTS.map((t) => t.id).join(', ')}`);
    process.exit(2);
  }
  // `optIn` servers run only when BENCH_SERVERS names them.
  let chosen = SERVERS.filter((s) => !s.optIn);
  if (env.BENCH_SERVERS) {
    const names = env.BENCH_SERVERS.split(',').map((s) => s.trim()).filter(Boolean);
    const unknown = names.filter((n) => !SERVERS.some((s) => s.name === n));
    if (unknown.length) {
      console.error(`BENCH_SERVERS: unknown ${unknown.join(', ')}; servers: ${SERVERS.map((s) => s.name).join(', ')}`);
      process.exit(2);
    }
    chosen = names.map((n) => SERVERS.find((s) => s.name === n));
  }

  // Pinning needs taskset and two cores.
  try {
    sh('taskset', ['-c', '0', 'true']);
  } catch {
    PIN = false;
  }
  let pinNote = `server \`taskset -c ${SERVER_CPUS}\`, generator (and this runner) \`taskset -c ${LOADGEN_CPUS}\``;
  if (!PIN) pinNote = 'not pinned: taskset is missing';
  else if (m.nproc < 2) {
    PIN = false;
    pinNote = 'not pinned: fewer than 2 CPUs';
  }
  if (PIN && tests.some((t) => t.backplane)) {
    pinNote += `; backplane rows: publisher process A \`taskset -c ${SERVER_CPUS}\`, redis-server \`taskset -c ${REDIS_CPUS}\`, subscribers' process B with the generator \`taskset -c ${LOADGEN_CPUS}\` (four processes on two cores: none has a core of its own)`;
  }

  // Open files: the connect test needs conns + margin in both processes.
  const nf = nofileLimit();
  NOFILE = nf.limit;
  const connectTest = TESTS.find((t) => t.id === 'connect');
  let connNote = `ulimit -n ${NOFILE}${nf.raised ? '' : ' (the hard limit; 65536 is not allowed here)'}`;
  if (connectTest.args.conns + 256 > NOFILE) {
    const n = Math.max(100, NOFILE - 256);
    connNote += `; connect test reduced from ${connectTest.args.conns} to ${n} connections to fit`;
    console.log(`note: ${connNote}`);
    connectTest.args.conns = n;
  }
  connectTest.title = `connect ${connectTest.args.conns.toLocaleString('en-US')} conns, ${connectTest.args.concurrency} at a time, held idle`;
  // The fanout tests: subscribers + the control connection, whole topics.
  if (FANOUT_CONNS + 1 + 256 > NOFILE) {
    const n = Math.max(100, Math.floor((NOFILE - 257) / 100) * 100);
    connNote += `; fanout tests reduced from ${FANOUT_CONNS} to ${n} subscribers to fit`;
    console.log(`note: fanout tests reduced from ${FANOUT_CONNS} to ${n} subscribers to fit ulimit -n ${NOFILE}`);
    for (const t of TESTS.filter((t) => t.fanout)) t.args.conns = n;
  }
  for (const t of TESTS.filter((t) => t.fanout)) {
    const a = t.args;
    t.title = `fan-out: ${a.conns.toLocaleString('en-US')} subscribers over ${a.topics} topics, ${a.size} B text, published as fast as the server can, ${a.rounds} message${a.rounds > 1 ? 's' : ''} per topic per event-loop turn`;
  }

  // Build the generator (its own workspace and target dir).
  console.log('building bench/loadgen (cargo build --release) …');
  const b = spawnSync('cargo', ['build', '--release', '--quiet'], {
    cwd: LOADGEN_DIR,
    env: { ...env, CARGO_TARGET_DIR: LOADGEN_TARGET },
    stdio: 'inherit',
    timeout: 900000,
  });
  if (b.status !== 0 || !fs.existsSync(LOADGEN)) {
    console.error(`cargo build of bench/loadgen failed${b.error ? ': ' + b.error.message : ''}`);
    process.exit(1);
  }

  // Keep this process off the server's core while it waits.
  if (PIN) spawnSync('taskset', ['-a', '-c', '-p', LOADGEN_CPUS, String(process.pid)], { stdio: 'ignore' });

  // Prepare the servers; skip the ones that cannot run here, saying why.
  const servers = [];
  const skipped = [];
  for (const s of chosen) {
    process.stdout.write(`preparing ${s.name} … `);
    try {
      const prep = s.prepare();
      servers.push({ ...s, prep });
      console.log(prep.version);
    } catch (e) {
      skipped.push({ name: s.name, reason: e.message });
      console.log(`SKIPPED: ${e.message}`);
    }
  }
  if (!servers.length) {
    console.error('no server to run');
    process.exit(1);
  }

  const perRun = (t) => (t.args.mode === 'echo' ? WARMUP + SECONDS + 0.6 + (t.args.rss ? 0.3 : 0) : t.args.mode === 'connect' ? 4 : WARMUP + SECONDS + 4);
  const estimate = tests.reduce((acc, t) => acc + perRun(t) * REPS * servers.filter((s) => applies(s, t)).length, 0);
  // A certificate for the TLS servers, made for this run.
  if (servers.some((s) => s.tls)) {
    const dir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'sack-bench-tls-'));
    sh('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'), '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1']);
    env.BENCH_TLS_CERT = path.join(dir, 'cert.pem');
    env.BENCH_TLS_KEY = path.join(dir, 'key.pem');
    process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  }
  console.log(
    `\n${tests.length} tests × ${servers.length} servers × ${REPS} reps, ${SECONDS} s each (+${WARMUP} s warm-up); about ${Math.ceil(estimate / 60)} min\n`,
  );

  const results = {};
  const raw = [];
  for (const test of tests) {
    results[test.id] = {};
    for (let rep = 1; rep <= REPS; rep++) {
      for (const s of servers) {
        if (!applies(s, test)) continue;
        const r = await runOne(s, s.prep, test);
        (results[test.id][s.name] ||= []).push(r);
        raw.push({ test: test.id, server: s.name, rep, ...r });
        const main = test.metrics
          .map((mt) => (Number.isFinite(r[mt.key]) ? `${fmt(r[mt.key])} ${mt.unit}` : null))
          .filter(Boolean)
          .join(', ');
        const cpu = Number.isFinite(r.server_cpu)
          ? ` (server CPU ${pct(r.server_cpu)}, gen ${pct(r.client_cpu)}, other ${pct(r.other_cpu)})`
          : '';
        console.log(
          `[${test.id} ${rep}/${REPS}] ${s.name.padEnd(5)} ${r.ok ? main + cpu : `FAILED: ${r.error}${main ? ` (${main})` : ''}`}`,
        );
      }
    }
  }

  const rows = buildRows(results, servers, tests);
  const tbl = table(rows);
  const took = ((Date.now() - started.getTime()) / 60000).toFixed(1);
  console.log(`\n${tbl}\n`);
  for (const s of skipped) console.log(`skipped ${s.name}: ${s.reason}`);

  const md = [
    '# Benchmarks',
    '',
    `Written by \`npm run bench\` (bench/run.js) on ${started.toISOString().replace(/\.\d+Z$/, 'Z')}; ${took} min. Rerun to refresh; do not edit by hand.`,
    '',
    `Command: \`${commandLine()}\``,
    '',
    '## Machine',
    '',
    `- CPU: ${m.cpu}, nproc ${m.nproc}, ${m.mem}`,
    `- Kernel: ${m.kernel}`,
    `- Node.js: ${m.node}`,
    `- Load average when the run began: ${m.load}`,
    `- Pinning: ${pinNote}`,
    `- Open files: ${connNote}`,
    '',
    '## Servers',
    '',
    ...servers.map((s) => `- **${s.name}**: ${s.prep.version} — bench/servers/${s.script}${s.fanout && s.fanout.script !== s.script ? ` (fan-out rows: ${s.fanout.script})` : ''}`),
    ...skipped.map((s) => `- **${s.name}**: skipped — ${s.reason}`),
    '',
    '## Results',
    '',
    `${REPS} repetition(s) per test and server, interleaved (${servers.map((s) => s.name).join(', ')}, ${servers.map((s) => s.name).join(', ')}, …), a fresh server process per run. Echo runs: ${WARMUP} s warm-up, then ${SECONDS} s measured.`,
    '',
    tbl,
    '',
    '- **Median**, **Min–max**: over the runs; **vs ws**: median ÷ the median of `ws` (for "lower is better" rows, below 1 is better).',
    '- **Per server CPU-s**: messages (or handshakes) per second of server CPU time, from `/proc/<pid>/stat` utime+stime over the measured window.',
    '- **Server CPU**, **Gen CPU**: CPU time ÷ wall time of the server (pinned to one core: 100 % is that core) and of the load generator; a generator near 100 % would make the row measure the generator.',
    '- **Other CPU**: the rest of the machine\'s busy time (`/proc/stat`, steal included) in the same window, in % of one core: other processes, and kernel network work charged to no process. Pinning keeps the server and the generator apart, not other processes away: well above ~20 % means a noisy neighbour, and the row is suspect.',
    '- **p50 / p99 µs**: echo rows: time from queuing a message to checking its echo, including the pipeline\'s queueing; connect rows: connect to verified `101`.',
    '- **Latency row**: one connection, one message at a time; the generator busy-polls (so its Gen CPU is 100 % by design) and the time is the server\'s wake-up, its work and the loopback round trip.',
    '- **B RSS / idle conn**: (VmRSS after all connections are open and held idle 2 s − VmRSS before the first) ÷ connections.',
    '- **One frame / many frames per write**: the generator writes each frame with a write(2) of its own (`--writes per-frame`), or every frame due on a connection in one write (`--writes batched`, its default); the same messages, but in the first case the server receives more, smaller segments and wakes up more often.',
    '- **fan-out rows**: the generator holds the subscribers (connection i on topic i mod 100, path `/sub/<topic>`, subscribed by the server in its open handler) and one control connection; on `go` the server publishes 100-byte text messages to the topics round-robin, 1 (or 10) message(s) per topic per event-loop turn (`setImmediate`), and puts a turn off by 1 ms (`setTimeout`) while the subscriber it samples (the first of each topic in turn) has over 16 KiB queued (`bufferedAmount`, uWS/Bun `getBufferedAmount()`), so nothing queues without bound. The same JS drives every server (bench/servers/fanout-common.js); only the publish differs: `server.publish` (sack), a `Set` per topic and `ws.send` to each (sack-jsloop, ws: the message made a `Buffer` once per publish), `app.publish` (uws), `server.publish` (bun). With 1 message per topic per turn every subscriber gets one frame per turn, and a server that writes from its JS thread makes one write(2) per frame; with 10, it can put ten frames in one write; sack\'s engine writes from its own thread, so frames published while it writes go out together either way. **frames/s delivered**: text frames the generator received and checked (size, topic, a per-topic sequence number) in the measured window; **Per server CPU-s**: frames per second of server CPU. After the window the generator asks the server to stop, reads the rest and compares with what was published: the Runs column says what was lost.',
    '- **backplane rows**: a redis-server (loopback, free port, `--save \'\' --appendonly no`) and two sack processes with `backplane: { url, mode }`. Process A publishes 100-byte messages to one topic at the given rate (a 1 ms timer; each tick publishes what is due, each message stamped with `process.hrtime.bigint()` just before its `server.publish`); the generator\'s subscribers are on process B. **Latency**: the generator\'s CLOCK_MONOTONIC when the read that brought the frame returned − the stamp (the same clock: Node\'s hrtime is CLOCK_MONOTONIC on Linux; a stamp ahead of the generator\'s clock fails the run). It is publish call → A\'s engine → Redis → B\'s engine → B\'s write → loopback → read, so it includes queueing in both sack processes, in Redis and in the kernel. **Lost**: messages published after a subscriber\'s first one that never reached it. **Server CPU**: A + B; A, B and Redis each in the Runs column; Redis\'s own CPU is a row. Pinning: see Machine; with four processes on two cores, every hop may wait for a core.',
    '- **permessage-deflate rows**: servers started with `DEFLATE=1` (each with its own defaults; the negotiated extension is in the Runs column). The generator offers `permessage-deflate; client_max_window_bits` as browsers do, compresses each 4 KiB JSON message (different per message) at level 6 with context takeover, inflates every echo and compares it. **payload ÷ wire bytes**: message bytes ÷ bytes written and read on the sockets (frame headers included), both directions. **B RSS / active deflate conn**: (VmRSS at the end of the measured window, every connection open and busy − VmRSS before the first connection) ÷ connections; at 64 connections the fixed costs of a busy server weigh in, the 1,000-connection row is closer to the per-connection state.',
    '',
    '## Method',
    '',
    '- Load generator: bench/loadgen (Rust, mio, one thread): its own handshake (Sec-WebSocket-Accept verified), every client frame masked, each connection keeps N messages in flight, written in one batch per connection per wake-up (or one write per frame in the "one frame per write" rows); every echo is checked for type, length, bytes and order (a sequence number in each payload). Any mismatch, close or stall fails the run.',
    '- Traffic: 127.0.0.1 only, ephemeral ports; each run is bounded in time.',
    '',
    // The hand-written part: what each optimization bought, and the profile.
    fs.existsSync(path.join(BENCH, 'NOTES.md')) ? fs.readFileSync(path.join(BENCH, 'NOTES.md'), 'utf8') : '',
  ].join('\n');
  fs.writeFileSync(OUT, md);
  console.log(`wrote ${path.relative(process.cwd(), OUT) || OUT} (${took} min)`);
  if (env.BENCH_JSON) {
    fs.writeFileSync(path.resolve(env.BENCH_JSON), JSON.stringify({ machine: m, started, raw }, null, 2) + '\n');
  }
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}

module.exports = { SERVERS, TESTS, prepareUws };
