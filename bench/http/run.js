#!/usr/bin/env node
'use strict';
// `npm run bench:http`: plain HTTP throughput of sack's HTTP fallback against
// Node's `http.createServer`, both answering every request "hello".
//
// Every server is started once, pinned to one CPU (`taskset -c 0`), checked
// to answer "hello" and warmed up. Then, in each of BENCH_ROUNDS rounds, the
// servers take turns (in reverse order every other round, so none always
// goes first): `wrk -t1 -c64 -d<seconds>s` pinned to the other CPU
// (`taskset -c 1`), with the server's CPU time (every thread's, from
// /proc/<pid>/task/*/schedstat, or utime + stime when that is missing) read
// before and after. The turns of one round are seconds apart, so a slow
// spell of the machine tends to hit the servers of a round alike.
// Prints every turn, then per server the median round (by requests per
// server CPU-second), the sack/node ratios of the medians, and the ratios
// round by round with their median.
//
// wrk is the Debian package `wrk`: when it is missing this script installs it
// with apt-get (running `apt-get update` first if the install fails), and if
// that is impossible it says so and exits 0.
//
// Environment:
//   BENCH_SECONDS      measured seconds per server and round (default 3)
//   BENCH_ROUNDS       rounds (default 5)
//   BENCH_WARMUP       warm-up seconds per server before the rounds (default 2; 0 = none)
//   BENCH_CONNECTIONS  wrk connections (default 64)
//   BENCH_SERVER_CPU / BENCH_WRK_CPU  taskset CPU lists (default 0 and 1)
//
// Loopback only: the servers bind 127.0.0.1 on an ephemeral port.

const { spawn, spawnSync } = require('child_process');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');

const HERE = __dirname;
const env = process.env;

const SECONDS = intEnv('BENCH_SECONDS', 3, 1, 600);
const WARMUP = intEnv('BENCH_WARMUP', 2, 0, 60);
const CONNECTIONS = intEnv('BENCH_CONNECTIONS', 64, 1, 10000);
const ROUNDS = intEnv('BENCH_ROUNDS', 5, 1, 50);
const SERVER_CPU = env.BENCH_SERVER_CPU || '0';
const WRK_CPU = env.BENCH_WRK_CPU || '1';

const SERVERS = [
  { name: 'sack', script: path.join(HERE, 'sack-hello.js') },
  { name: 'node http', script: path.join(HERE, 'node-hello.js') },
];
// Before/after in one run: BENCH_BASE names another built checkout of sack.
if (env.BENCH_BASE) {
  SERVERS.splice(1, 0, { name: 'sack-base', script: path.join(HERE, 'sack-hello.js'), env: { SACK_PACKAGE: path.resolve(env.BENCH_BASE) } });
}

// A reference, not a goal: uWebSockets.js, a C++ HTTP server with a JS
// handler, shows what is left per request once the server's own work is
// small (the kernel's TCP work stays). BENCH_UWS=0 leaves it out.
function uwsReference() {
  if (env.BENCH_UWS === '0') return null;
  try {
    const { prepareUws } = require('../run.js');
    const p = prepareUws();
    return { name: 'uWS (reference)', script: path.join(HERE, 'uws-hello.js'), env: p.env, version: p.version };
  } catch (e) {
    console.log(`uWS reference skipped: ${e.message}`);
    return null;
  }
}

function intEnv(name, def, min, max) {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) {
    console.error(`${name} must be an integer from ${min} to ${max} (got ${JSON.stringify(raw)})`);
    process.exit(2);
  }
  return v;
}

function have(cmd, args = ['--version']) {
  const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 10000 });
  return !r.error;
}

function wrkInstalled() {
  // `wrk --version` exits 1 but runs; a missing binary gives ENOENT.
  const r = spawnSync('wrk', ['--version'], { encoding: 'utf8', timeout: 10000 });
  if (r.error) return null;
  const text = `${r.stdout}${r.stderr}`;
  return (text.match(/wrk\s+\S+/) || ['wrk'])[0];
}

function aptInstallWrk() {
  const apt = (args) => {
    console.log(`$ apt-get ${args.join(' ')}`);
    const r = spawnSync('apt-get', args, {
      stdio: ['ignore', 'ignore', 'inherit'],
      timeout: 300000,
      env: { ...env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    return !r.error && r.status === 0;
  };
  if (!have('apt-get', ['--version'])) return false;
  if (apt(['install', '-y', 'wrk'])) return true;
  return apt(['update']) && apt(['install', '-y', 'wrk']);
}

function ensureWrk() {
  let version = wrkInstalled();
  if (version) return version;
  console.log('wrk is not installed; installing the Debian package "wrk"…');
  aptInstallWrk();
  version = wrkInstalled();
  if (!version) {
    console.log(
      'bench:http skipped: wrk could not be installed (apt-get install -y wrk failed; it needs root and the Debian archive).\n' +
        'Install wrk by hand and run `npm run bench:http` again.',
    );
    process.exit(0);
  }
  return version;
}

const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5000 });
  const v = Number(r.stdout && r.stdout.trim());
  return Number.isFinite(v) && v > 0 ? v : 100;
})();

/** CPU seconds (user + system, all threads) of process `pid`. */
function cpuSeconds(pid) {
  return schedSeconds(pid) ?? statSeconds(pid);
}

// The run time of every thread in nanoseconds (first field of each
// thread's schedstat): finer than the clock ticks of /proc/<pid>/stat,
// which matters for turns of a few seconds. Null when it is not there.
function schedSeconds(pid) {
  let tasks;
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return null;
  }
  let ns = 0;
  for (const tid of tasks) {
    let text;
    try {
      text = fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8');
    } catch (e) {
      if (e.code === 'ENOENT' || e.code === 'ESRCH') continue; // thread ended meanwhile
      return null;
    }
    const v = Number(text.split(' ')[0]);
    if (!Number.isFinite(v)) return null;
    ns += v;
  }
  return ns / 1e9;
}

function statSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]); // field 14
  const stime = Number(fields[12]); // field 15
  return (utime + stime) / CLK_TCK;
}

function startServer(spec, pin) {
  return new Promise((resolve, reject) => {
    const cmd = pin ? 'taskset' : process.execPath;
    const args = pin ? ['-c', SERVER_CPU, process.execPath, spec.script] : [spec.script];
    const child = spawn(cmd, args, { env: { ...env, ...spec.env, PORT: '0' }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${spec.name}: no "LISTENING <port>" within 10 s (stdout: ${JSON.stringify(out)})`));
    }, 10000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${spec.name} exited early (${code ?? signal}); stdout: ${JSON.stringify(out)}`));
    });
    child.stdout.on('data', (d) => {
      out += d;
      const m = /LISTENING (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolve({ child, port: Number(m[1]) });
      }
    });
  });
}

function stopServer(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

function checkHello(port) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () =>
        res.statusCode === 200 && body === 'hello'
          ? resolve()
          : reject(new Error(`expected 200 "hello", got ${res.statusCode} ${JSON.stringify(body)}`)),
      );
    });
    req.setTimeout(5000, () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', reject);
  });
}

function runWrk(port, seconds, pin) {
  const wrkArgs = ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, `http://127.0.0.1:${port}/`];
  const [cmd, args] = pin ? ['taskset', ['-c', WRK_CPU, 'wrk', ...wrkArgs]] : ['wrk', wrkArgs];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), (seconds + 30) * 1000);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`wrk failed (${code ?? signal}): ${err || out}`));
      resolve(parseWrk(out));
    });
  });
}

function parseWrk(out) {
  const num = (re) => {
    const m = re.exec(out);
    return m ? Number(m[1]) : NaN;
  };
  const latency = /Latency\s+([\d.]+)(us|ms|s)\b/.exec(out);
  const toMs = { us: 1e-3, ms: 1, s: 1e3 };
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    requests: num(/(\d+) requests in/),
    latencyMs: latency ? Number(latency[1]) * toMs[latency[2]] : NaN,
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/) || 0,
    socketErrors: errors ? errors.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
    raw: out,
  };
}

// One measured turn of a running server.
async function turn(server, pin) {
  const cpu0 = cpuSeconds(server.child.pid);
  const t0 = process.hrtime.bigint();
  const r = await runWrk(server.port, SECONDS, pin);
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = cpuSeconds(server.child.pid) - cpu0;
  return { ...r, cpu, wall, cpuPct: (cpu / wall) * 100, perCpu: r.requests / cpu };
}

function fmt(n, digits = 0) {
  if (!Number.isFinite(n)) return 'n/a';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function table(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  return rows
    .map((r, ri) => {
      const line = r.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ');
      return ri === 0 ? `${line}\n${widths.map((w) => '-'.repeat(w)).join('  ')}` : line;
    })
    .join('\n');
}

async function main() {
  if (os.platform() !== 'linux') {
    console.log('bench:http needs Linux (/proc, taskset); skipped.');
    return;
  }
  const wrkVersion = ensureWrk();
  let pin = have('taskset', ['--version']);
  const cpus = os.cpus().length;
  if (pin && cpus < 2) {
    console.log(`only ${cpus} CPU: not pinning server and wrk apart`);
    pin = false;
  } else if (!pin) {
    console.log('taskset not found: server and wrk are not pinned');
  }
  console.log(
    `bench:http — ${wrkVersion}, -t1 -c${CONNECTIONS} -d${SECONDS}s (warm-up ${WARMUP}s); ` +
      `server on CPU ${pin ? SERVER_CPU : 'any'}, wrk on CPU ${pin ? WRK_CPU : 'any'}; ` +
      `node ${process.version}; ${cpus} × ${os.cpus()[0] ? os.cpus()[0].model.trim() : 'cpu'}`,
  );

  const load = os.loadavg()[0];
  if (load > 0.5) {
    console.log(`warning: load average ${load.toFixed(2)} before the run: other processes share the CPUs, numbers are noisy`);
  }

  const uws = uwsReference();
  if (uws) {
    SERVERS.push(uws);
    console.log(`reference: ${uws.version}`);
  }
  const rounds = SERVERS.map(() => []);
  const running = [];
  try {
    for (const spec of SERVERS) {
      const server = await startServer(spec, pin);
      running.push(server);
      await checkHello(server.port);
      if (WARMUP > 0) await runWrk(server.port, WARMUP, pin);
    }
    for (let round = 1; round <= ROUNDS; round++) {
      const order = SERVERS.map((_, i) => i);
      if (round % 2 === 0) order.reverse();
      for (const i of order) {
        process.stdout.write(`  round ${round}/${ROUNDS} ${SERVERS[i].name}… `);
        const r = await turn(running[i], pin);
        rounds[i].push(r);
        console.log(`${fmt(r.rps)} req/s, ${fmt(r.perCpu)} per CPU-s`);
      }
    }
  } finally {
    await Promise.all(running.map((s) => stopServer(s.child)));
  }
  // The median round of each server, by requests per server CPU-second.
  const results = SERVERS.map((spec, i) => {
    const sorted = [...rounds[i]].sort((a, b) => a.perCpu - b.perCpu);
    return { name: spec.name, ...sorted[(sorted.length - 1) >> 1], all: rounds[i] };
  });

  const rows = [['server (median round)', 'requests/s', 'avg latency', 'server CPU', 'CPU s', 'requests / CPU-s', 'range / CPU-s', 'errors']];
  for (const r of results) {
    const per = r.all.map((x) => x.perCpu);
    rows.push([
      r.name,
      fmt(r.rps),
      `${fmt(r.latencyMs, 2)} ms`,
      `${fmt(r.cpuPct, 0)} %`,
      fmt(r.cpu, 2),
      fmt(r.perCpu),
      `${fmt(Math.min(...per))}–${fmt(Math.max(...per))}`,
      String(r.all.reduce((a, x) => a + x.non2xx + x.socketErrors, 0)),
    ]);
  }
  console.log('');
  console.log(table(rows));
  const byName = (n) => results.find((r) => r.name === n);
  const [sack, node] = [byName('sack'), byName('node http')];
  const ref = results.find((r) => r.name.startsWith('uWS'));
  const base = byName('sack-base');
  console.log('');
  console.log(
    `ratio sack / node http (medians of ${ROUNDS}): ${fmt(sack.rps / node.rps, 2)}× requests/s, ` +
      `${fmt(sack.perCpu / node.perCpu, 2)}× requests per server CPU-second`,
  );
  if (base) {
    console.log(`sack / sack-base (medians): ${fmt(sack.perCpu / base.perCpu, 2)}× requests per server CPU-second`);
  }
  if (ref) {
    console.log(
      `reference ${ref.name} / node http: ${fmt(ref.rps / node.rps, 2)}× requests/s, ` +
        `${fmt(ref.perCpu / node.perCpu, 2)}× requests per server CPU-second`,
    );
  }
  // Round by round: within a round the servers run seconds apart, so a
  // slow spell of the machine that covers a round cancels out here, where
  // it may not between the medians above.
  for (const r of [sack, base, ref].filter(Boolean)) {
    const ratios = r.all.map((x, k) => x.perCpu / node.all[k].perCpu);
    const sorted = [...ratios].sort((a, b) => a - b);
    console.log(
      `${r.name} / node http per round (requests per server CPU-second): ` +
        `${ratios.map((x) => `${fmt(x, 2)}×`).join(', ')}; median ${fmt(sorted[(sorted.length - 1) >> 1], 2)}×`,
    );
  }
  for (const r of results) {
    const non2xx = r.all.reduce((a, x) => a + x.non2xx, 0);
    const socketErrors = r.all.reduce((a, x) => a + x.socketErrors, 0);
    if (non2xx + socketErrors > 0) {
      console.log(`note: ${r.name} had ${non2xx} non-2xx responses and ${socketErrors} socket errors`);
    }
  }
}

main().catch((e) => {
  console.error(`bench:http failed: ${e.stack || e.message}`);
  process.exit(1);
});
