#!/usr/bin/env node
'use strict';
// Server memory per connection with permessage-deflate, by option.
//
// For each variant: a sack echo server in a child process, then a client
// process (the `ws` package) that opens N connections offering
// permessage-deflate. The server's VmRSS (/proc/<pid>/status) is read
//   base:   after a warm-up (a few connections opened, used and closed),
//   idle:   with the N connections open and nothing sent,
//   active: after every connection sent a compressible 16 KiB text message
//           (or DEFLATE_MEM_MESSAGES of them, one after another) and received
//           its echo (so the server inflated and deflated once
//           per connection and keeps whatever state that leaves),
//   closed: after the client closed them all.
// Per-connection figures are (idle − base) / N and (active − base) / N.
//
//   node bench/deflate-memory.js
//
// Environment:
//   DEFLATE_MEM_CONNS     connections per variant (default 1000)
//   DEFLATE_MEM_SIZE      message size in bytes (default 16384)
//   DEFLATE_MEM_MESSAGES  messages each way per connection when active
//                         (default 1; more than 32 KiB in all fills the
//                         compressor's history, the steady state)
//   DEFLATE_MEM_VARIANTS  comma list of variant ids (default: all; see VARIANTS)
//   DEFLATE_MEM_REPS      runs per variant, the median is printed (default 1)
//   DEFLATE_MEM_SERVER    JSON server options for one extra variant "custom",
//                         e.g. '{"perMessageDeflate":{"level":1}}'
//   DEFLATE_MEM_JSON      also write the raw figures to this file
//
// Loopback only (127.0.0.1, ephemeral ports); every step has a time limit
// and both children are killed on the way out. Each child needs N file
// descriptors and a bit: raise `ulimit -n` first if it is below N + 100.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');

const ROOT = path.resolve(__dirname, '..');
const HOST = '127.0.0.1';

const VARIANTS = [
  { id: 'off', label: 'no deflate', options: {} },
  { id: 'default', label: 'perMessageDeflate: true', options: { perMessageDeflate: true } },
  { id: 'smwb9', label: 'serverMaxWindowBits: 9', options: { perMessageDeflate: { serverMaxWindowBits: 9 } } },
  { id: 'snct', label: 'serverNoContextTakeover', options: { perMessageDeflate: { serverNoContextTakeover: true } } },
  { id: 'cnct', label: 'clientNoContextTakeover', options: { perMessageDeflate: { clientNoContextTakeover: true } } },
  {
    id: 'both-nct',
    label: 'server+clientNoContextTakeover',
    options: { perMessageDeflate: { serverNoContextTakeover: true, clientNoContextTakeover: true } },
  },
  { id: 'allow', label: 'perMessageDeflateAllow', options: { perMessageDeflateAllow: true } },
];

function intEnv(name, def, min, max) {
  const v = process.env[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    console.error(`${name} must be an integer from ${min} to ${max}`);
    process.exit(2);
  }
  return n;
}

// ---------------------------------------------------------------- children

// The server: options from argv[3] (JSON); echoes; prints "PORT <n>".
function serverMain() {
  const sack = require(ROOT);
  const options = JSON.parse(process.argv[3] || '{}');
  const server = sack.Websocket.Server({ address: HOST, port: 0, ...options });
  let extensions = null;
  server.onconnect = (ws) => {
    if (extensions === null) extensions = ws.extensions;
    ws.onmessage = (m) => ws.send(m);
  };
  console.log(`PORT ${server.address().port}`);
  // "EXT" on stdin: print the first connection's extensions. EOF: exit.
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (line === 'EXT') console.log(`EXT ${JSON.stringify(extensions)}`);
  });
  rl.on('close', () => process.exit(0));
}

// Deterministic, compressible text of exactly `bytes` bytes (ASCII words).
function message(bytes, seed) {
  const words = ['alpha ', 'beta ', 'gamma ', 'delta ', 'epsilon ', 'zeta ', 'eta ', 'theta ', 'iota ', 'kappa '];
  let x = seed >>> 0 || 1;
  let s = `#${seed} `;
  while (s.length < bytes) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    s += words[x % words.length];
  }
  return s.slice(0, bytes);
}

// The client: argv[3] port, argv[4] message size. stdin commands:
// OPEN n (open n more connections), ACTIVE k (k messages each way on each,
// one after another),
// CLOSE (close them all), QUIT.
function clientMain() {
  const WebSocket = require(path.join(ROOT, 'node_modules', 'ws'));
  const port = Number(process.argv[3]);
  const size = Number(process.argv[4]);
  const url = `ws://${HOST}:${port}/`;
  let sockets = [];
  let serial = 0;

  function openOne() {
    return new Promise((resolve, reject) => {
      const c = new WebSocket(url, { perMessageDeflate: true });
      c.once('open', () => resolve(c));
      c.once('error', reject);
    });
  }
  async function open(n) {
    const batch = 50;
    for (let i = 0; i < n; i += batch) {
      const got = await Promise.all(Array.from({ length: Math.min(batch, n - i) }, openOne));
      sockets.push(...got);
    }
    const ext = sockets[0] ? sockets[0].extensions : '';
    return `OPENED ${sockets.length} ${JSON.stringify(ext)}`;
  }
  function exchange(c) {
    return new Promise((resolve, reject) => {
      const m = message(size, ++serial);
      const closed = (code) => reject(new Error(`closed ${code}`));
      c.once('message', (data, isBinary) => {
        c.off('close', closed);
        resolve(isBinary || data.toString() !== m ? 1 : 0);
      });
      c.once('close', closed);
      c.send(m);
    });
  }
  async function active(k) {
    let bad = 0;
    await Promise.all(
      sockets.map(async (c) => {
        for (let i = 0; i < k; i++) bad += await exchange(c);
      }),
    );
    return `ACTIVE_DONE ${bad}`;
  }
  async function close() {
    await Promise.all(
      sockets.map(
        (c) =>
          new Promise((resolve) => {
            if (c.readyState === WebSocket.CLOSED) return resolve();
            c.once('close', resolve);
            c.close(1000);
          }),
      ),
    );
    sockets = [];
    return 'CLOSED';
  }
  const rl = readline.createInterface({ input: process.stdin });
  let chain = Promise.resolve();
  rl.on('line', (line) => {
    const [cmd, arg] = line.split(' ');
    chain = chain.then(async () => {
      try {
        if (cmd === 'OPEN') console.log(await open(Number(arg)));
        else if (cmd === 'ACTIVE') console.log(await active(Number(arg) || 1));
        else if (cmd === 'CLOSE') console.log(await close());
        else if (cmd === 'QUIT') process.exit(0);
      } catch (e) {
        console.log(`FAIL ${e.message}`);
      }
    });
  });
  rl.on('close', () => process.exit(0));
}

// ---------------------------------------------------------------- parent

const children = new Set();

/** A child running this script in `role`; `.line(re, ms)` waits for output. */
function child(role, args) {
  const p = spawn(process.execPath, [__filename, role, ...args], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.add(p);
  const lines = [];
  const waiters = new Set();
  let stderr = '';
  let exited = null;
  readline.createInterface({ input: p.stdout }).on('line', (l) => {
    lines.push(l);
    for (const w of waiters) w();
  });
  p.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-2000);
  });
  p.on('exit', (code, signal) => {
    exited = { code, signal };
    children.delete(p);
    for (const w of waiters) w();
  });
  return {
    pid: p.pid,
    send: (l) => p.stdin.write(`${l}\n`),
    line(re, ms) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`${role}: no ${re} within ${ms} ms; stderr: ${stderr}`));
        }, ms);
        const check = () => {
          const i = lines.findIndex((l) => re.test(l));
          if (i >= 0) {
            const [l] = lines.splice(i, 1);
            clearTimeout(timer);
            waiters.delete(check);
            const fail = /^FAIL /.test(l);
            if (fail) reject(new Error(`${role}: ${l}`));
            else resolve(l);
            return;
          }
          const f = lines.findIndex((l) => /^FAIL /.test(l));
          if (f >= 0 || exited) {
            clearTimeout(timer);
            waiters.delete(check);
            reject(new Error(`${role}: ${f >= 0 ? lines[f] : `exited ${JSON.stringify(exited)}`}; stderr: ${stderr}`));
          }
        };
        waiters.add(check);
        check();
      });
    },
    stop() {
      if (exited) return Promise.resolve();
      return new Promise((resolve) => {
        const t = setTimeout(() => p.kill('SIGKILL'), 3000);
        p.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
        p.stdin.end();
      });
    },
  };
}

function rssKiB(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** RSS once it stops moving (two reads 300 ms apart within 0.5 %, or 3 s). */
async function settledRss(pid) {
  let prev = rssKiB(pid);
  const end = Date.now() + 3000;
  for (;;) {
    await sleep(300);
    const now = rssKiB(pid);
    if (Math.abs(now - prev) <= prev * 0.005 || Date.now() > end) return now;
    prev = now;
  }
}

async function measure(variant, conns, size, messages) {
  const server = child('--server', [JSON.stringify(variant.options)]);
  let client;
  try {
    const port = Number((await server.line(/^PORT /, 10000)).split(' ')[1]);
    client = child('--client', [String(port), String(size)]);
    // Warm-up: the engine's threads, first buffers, zlib code paths.
    client.send('OPEN 20');
    await client.line(/^OPENED /, 20000);
    client.send('ACTIVE');
    await client.line(/^ACTIVE_DONE /, 20000);
    client.send('CLOSE');
    await client.line(/^CLOSED/, 20000);
    const base = await settledRss(server.pid);

    client.send(`OPEN ${conns}`);
    const opened = await client.line(/^OPENED /, 120000);
    const clientExt = JSON.parse(opened.split(' ').slice(2).join(' '));
    const idle = await settledRss(server.pid);
    server.send('EXT');
    const serverExt = JSON.parse((await server.line(/^EXT /, 5000)).slice(4));

    client.send(`ACTIVE ${messages}`);
    const done = await client.line(/^ACTIVE_DONE /, 120000 * messages);
    const bad = Number(done.split(' ')[1]);
    if (bad) throw new Error(`${bad} echoes differed`);
    const active = await settledRss(server.pid);

    client.send('CLOSE');
    await client.line(/^CLOSED/, 60000);
    const closed = await settledRss(server.pid);
    return { base, idle, active, closed, clientExt, serverExt };
  } finally {
    if (client) await client.stop();
    await server.stop();
  }
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
}

async function main() {
  const conns = intEnv('DEFLATE_MEM_CONNS', 1000, 1, 100000);
  const size = intEnv('DEFLATE_MEM_SIZE', 16384, 1, 64 * 1024 * 1024);
  const reps = intEnv('DEFLATE_MEM_REPS', 1, 1, 20);
  const messages = intEnv('DEFLATE_MEM_MESSAGES', 1, 1, 100);
  let variants = VARIANTS.slice();
  if (process.env.DEFLATE_MEM_SERVER) {
    variants.push({ id: 'custom', label: `custom ${process.env.DEFLATE_MEM_SERVER}`, options: JSON.parse(process.env.DEFLATE_MEM_SERVER) });
  }
  if (process.env.DEFLATE_MEM_VARIANTS) {
    const want = process.env.DEFLATE_MEM_VARIANTS.split(',').map((s) => s.trim());
    const unknown = want.filter((w) => !variants.some((v) => v.id === w));
    if (unknown.length) {
      console.error(`unknown variant(s) ${unknown.join(', ')}; known: ${variants.map((v) => v.id).join(', ')}`);
      process.exit(2);
    }
    variants = variants.filter((v) => want.includes(v.id));
  }
  console.log(`sack permessage-deflate memory: ${conns} connections, ${messages} × ${size}-byte compressible text messages, ` + `node ${process.version}, median of ${reps} run(s) per variant\n`);
  const rows = [];
  for (let r = 0; r < reps; r++) {
    // Interleaved repetitions: variant A, B, C, A, B, C, …
    for (const v of variants) {
      const m = await measure(v, conns, size, messages);
      rows.push({ id: v.id, rep: r, ...m });
      process.stderr.write(`  ${v.id} #${r + 1}: base ${m.base} kB, idle ${m.idle} kB, active ${m.active} kB, closed ${m.closed} kB\n`);
    }
  }
  const table = variants.map((v) => {
    const mine = rows.filter((x) => x.id === v.id);
    const per = (k) => median(mine.map((x) => ((x[k] - x.base) * 1024) / conns));
    return {
      variant: v.label,
      negotiated: mine[0].serverExt || '(none)',
      base: median(mine.map((x) => x.base)) / 1024,
      idle: per('idle'),
      active: per('active'),
      closed: median(mine.map((x) => (x.closed - x.base) / 1024)),
    };
  });
  const kib = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`;
  const head = ['variant', 'negotiated (server ws.extensions)', 'base RSS', 'RSS idle / conn', 'RSS active / conn', 'RSS after close'];
  const body = table.map((t) => [t.variant, t.negotiated, `${t.base.toFixed(1)} MiB`, kib(t.idle), kib(t.active), `${t.closed >= 0 ? '+' : ''}${t.closed.toFixed(1)} MiB`]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) => `| ${cells.map((c, i) => (i >= 2 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ')} |`;
  console.log(line(head));
  console.log(`|${widths.map((w, i) => (i >= 2 ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`);
  for (const b of body) console.log(line(b));
  console.log(
    '\nPer connection: (RSS − base) / connections. "idle": open, nothing sent; "active": after ' +
      `${messages === 1 ? 'one' : messages} ${size}-byte message${messages === 1 ? '' : 's'} each way per connection. "after close": RSS − base once the client closed them all.`,
  );
  if (process.env.DEFLATE_MEM_JSON) fs.writeFileSync(process.env.DEFLATE_MEM_JSON, JSON.stringify(rows, null, 2));
}

function killChildren() {
  for (const p of children) p.kill('SIGKILL');
}

if (process.argv[2] === '--server') serverMain();
else if (process.argv[2] === '--client') clientMain();
else {
  process.on('exit', killChildren);
  process.on('SIGINT', () => process.exit(130));
  process.on('SIGTERM', () => process.exit(143));
  const limit = setTimeout(() => {
    console.error('deflate-memory: gave up after 20 minutes');
    process.exit(1);
  }, 20 * 60000);
  limit.unref();
  main().then(
    () => process.exit(0),
    (e) => {
      console.error(e.stack || String(e));
      process.exit(1);
    },
  );
}
