#!/usr/bin/env node
'use strict';
// Autobahn|Testsuite (wstest fuzzingclient) runner.
//
//   node scripts/autobahn.js --server path/to/echo-server.js
//        [--cases "1.*,2.*"] [--exclude "12.*,13.*"] [--all]
//
// 1. runs scripts/setup-autobahn.sh (installs wstest into .autobahn/venv once),
// 2. starts `node <server>` with PORT=0 and waits (30 s max) for the line
//    `LISTENING <port>` on its stdout,
// 3. writes .autobahn/fuzzingclient.json and runs
//    `wstest -m fuzzingclient -s .autobahn/fuzzingclient.json`
//    (overall timeout: $AUTOBAHN_TIMEOUT_S, default 2400 s),
// 4. reads .autobahn/reports/index.json and prints the failing cases, the counts
//    per result category, the wall time and a final `N passed, N failed` line.
// Exit status: 0 when every case passed, 1 when any failed or none ran, 2 on
// usage errors. The server child is always killed at the end.
//
// Defaults: cases 1.* to 11.* (everything but 12.* and 13.*, the
// permessage-deflate cases); --all runs every case. When --cases is given the
// default exclusion is dropped (use --exclude to add one). The server may also
// be given as $AUTOBAHN_SERVER.

const fs = require('fs');
const path = require('path');
const { spawn, spawnSync } = require('child_process');

const ROOT = path.resolve(__dirname, '..');
const AB_DIR = path.join(ROOT, '.autobahn');
const REPORT_DIR_REL = '.autobahn/reports';
const REPORT_DIR = path.join(ROOT, REPORT_DIR_REL);
const SPEC_PATH = path.join(AB_DIR, 'fuzzingclient.json');
const SETUP = path.join(__dirname, 'setup-autobahn.sh');
const AGENT = 'sack';
const LISTEN_TIMEOUT_MS = 30_000;

const PASS_BEHAVIOR = new Set(['OK', 'NON-STRICT', 'INFORMATIONAL']);
const PASS_CLOSE = new Set(['OK', 'NON-STRICT', 'INFORMATIONAL']);

const children = new Set();

function log(msg) {
  process.stderr.write(`[autobahn] ${msg}\n`);
}

function usage(msg) {
  if (msg) process.stderr.write(`autobahn.js: ${msg}\n`);
  process.stderr.write(
    'usage: node scripts/autobahn.js --server <server.js> [--cases "1.*,2.*"] ' +
      '[--exclude "12.*,13.*"] [--all]\n',
  );
  process.exit(2);
}

function splitList(s) {
  return s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
}

function parseArgs(argv) {
  const opts = { cases: null, exclude: null, server: process.env.AUTOBAHN_SERVER || null, all: false };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    let val = null;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) {
      val = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    const next = () => {
      if (val !== null) return val;
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--cases':
        opts.cases = splitList(next());
        break;
      case '--exclude':
        opts.exclude = splitList(next());
        break;
      case '--server':
        opts.server = next();
        break;
      case '--all':
        opts.all = true;
        break;
      case '-h':
      case '--help':
        usage();
        break;
      default:
        usage(`unknown argument: ${argv[i]}`);
    }
  }
  if (!opts.server) usage('--server is required (or set AUTOBAHN_SERVER)');
  if (opts.cases === null) opts.cases = ['*'];
  if (opts.cases.length === 0) usage('--cases is empty');
  if (opts.exclude === null) {
    const defaultRun = !opts.all && opts.cases.length === 1 && opts.cases[0] === '*';
    opts.exclude = defaultRun ? ['12.*', '13.*'] : [];
  }
  return opts;
}

function killTree(child, signal = 'SIGTERM') {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  try {
    // Children are started detached (own process group): kill the group.
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      /* already gone */
    }
  }
}

function killAll(signal = 'SIGKILL') {
  for (const c of children) killTree(c, signal);
}

// SIGTERM everything, give it 3 s, then SIGKILL what is left.
async function stopAll() {
  const alive = [...children];
  if (!alive.length) return;
  const gone = Promise.all(alive.map((c) => new Promise((r) => c.once('exit', r))));
  for (const c of alive) killTree(c, 'SIGTERM');
  let timer;
  await Promise.race([gone, new Promise((r) => (timer = setTimeout(r, 3000)))]);
  clearTimeout(timer);
  killAll('SIGKILL');
}

process.on('exit', () => killAll('SIGKILL'));
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    log(`got ${sig}, stopping`);
    killAll('SIGKILL');
    process.exit(1);
  });
}

function track(child) {
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

function runSetup() {
  log('setting up wstest (scripts/setup-autobahn.sh)');
  const r = spawnSync('bash', [SETUP], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
    timeout: 20 * 60_000,
  });
  if (r.error) throw new Error(`setup-autobahn.sh: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`setup-autobahn.sh exited with ${r.status ?? r.signal}`);
  const lines = r.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  const wstest = lines.length ? lines[lines.length - 1] : path.join(AB_DIR, 'venv', 'bin', 'wstest');
  if (!fs.existsSync(wstest)) throw new Error(`setup-autobahn.sh did not produce wstest (got "${wstest}")`);
  return wstest;
}

function startServer(serverPath) {
  return new Promise((resolve, reject) => {
    const abs = path.resolve(process.cwd(), serverPath);
    if (!fs.existsSync(abs)) {
      reject(new Error(`server script not found: ${abs}`));
      return;
    }
    log(`starting server: node ${abs}`);
    const child = track(
      spawn(process.execPath, [abs], {
        cwd: ROOT,
        env: { ...process.env, PORT: '0' },
        stdio: ['ignore', 'pipe', 'inherit'],
        detached: true,
      }),
    );
    let settled = false;
    let buf = '';
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      killTree(child, 'SIGKILL');
      reject(new Error(`server did not print "LISTENING <port>" within ${LISTEN_TIMEOUT_MS / 1000} s`));
    }, LISTEN_TIMEOUT_MS);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      if (settled) {
        process.stderr.write(chunk.replace(/^(?=.)/gm, '[server] '));
        return;
      }
      buf += chunk;
      let nl;
      while (!settled && (nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        const m = /^LISTENING (\d+)\s*$/.exec(line);
        if (m) {
          settled = true;
          clearTimeout(timer);
          if (buf) process.stderr.write(buf.replace(/^(?=.)/gm, '[server] '));
          resolve({ child, port: Number(m[1]) });
        } else {
          process.stderr.write(`[server] ${line}\n`);
        }
      }
    });
    child.on('error', (err) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new Error(`cannot start server: ${err.message}`));
    });
    child.on('exit', (code, signal) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new Error(`server exited (${signal || code}) before printing "LISTENING <port>"`));
    });
  });
}

function runWstest(wstest, timeoutS) {
  return new Promise((resolve) => {
    log(`running ${path.relative(ROOT, wstest)} -m fuzzingclient -s ${path.relative(ROOT, SPEC_PATH)} (timeout ${timeoutS} s)`);
    const child = track(
      spawn(wstest, ['-m', 'fuzzingclient', '-s', SPEC_PATH], {
        cwd: ROOT,
        env: { ...process.env, PYTHONUNBUFFERED: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      }),
    );
    let expected = null;
    let timedOut = false;
    let pending = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      pending += chunk;
      let nl;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        const m = /will run (\d+) test cases/.exec(line);
        if (m) expected = Number(m[1]);
        // The case list line is one huge line: shorten it.
        process.stdout.write((line.startsWith('Cases = ') && line.length > 200 ? line.slice(0, 200) + ' ...' : line) + '\n');
      }
    });
    child.stderr.pipe(process.stderr);
    const timer = setTimeout(() => {
      timedOut = true;
      log(`wstest timed out after ${timeoutS} s, killing it`);
      killTree(child, 'SIGTERM');
      setTimeout(() => killTree(child, 'SIGKILL'), 5000).unref();
    }, timeoutS * 1000);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: null, error: err, timedOut, expected });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (pending) process.stdout.write(pending + '\n');
      resolve({ code, signal, timedOut, expected });
    });
  });
}

function caseKey(id) {
  return id.split('.').map((n) => Number(n));
}

function compareCaseIds(a, b) {
  const x = caseKey(a);
  const y = caseKey(b);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? -1) - (y[i] ?? -1);
    if (d) return d;
  }
  return 0;
}

function readCaseDetail(reportfile) {
  try {
    const r = JSON.parse(fs.readFileSync(path.join(REPORT_DIR, reportfile), 'utf8'));
    const parts = [];
    if (r.result) parts.push(String(r.result));
    if (r.resultClose && r.behaviorClose !== 'OK') parts.push(`close: ${r.resultClose}`);
    return parts.join(' | ');
  } catch {
    return '';
  }
}

function formatCounts(counts) {
  return Object.keys(counts)
    .sort()
    .map((k) => `${k}=${counts[k]}`)
    .join(', ');
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const timeoutS = Number(process.env.AUTOBAHN_TIMEOUT_S || 2400);
  if (!(timeoutS > 0)) usage(`bad AUTOBAHN_TIMEOUT_S: ${process.env.AUTOBAHN_TIMEOUT_S}`);
  const t0 = Date.now();

  let passed = 0;
  let failed = 0;
  let ok = false;
  let server = null;
  try {
    const wstest = runSetup();
    server = await startServer(opts.server);
    log(`server listening on 127.0.0.1:${server.port}`);
    let serverExit = null;
    server.child.on('exit', (code, signal) => {
      serverExit = signal || code;
    });

    fs.mkdirSync(AB_DIR, { recursive: true });
    fs.rmSync(REPORT_DIR, { recursive: true, force: true });
    const spec = {
      outdir: REPORT_DIR_REL,
      servers: [{ agent: AGENT, url: `ws://127.0.0.1:${server.port}` }],
      cases: opts.cases,
      'exclude-cases': opts.exclude,
      'exclude-agent-cases': {},
    };
    fs.writeFileSync(SPEC_PATH, JSON.stringify(spec, null, 2) + '\n');
    log(`cases: ${JSON.stringify(opts.cases)}  exclude: ${JSON.stringify(opts.exclude)}`);

    const tRun = Date.now();
    const run = await runWstest(wstest, timeoutS);
    const runS = ((Date.now() - tRun) / 1000).toFixed(1);

    const problems = [];
    if (run.error) problems.push(`cannot run wstest: ${run.error.message}`);
    if (run.timedOut) problems.push(`wstest timed out after ${timeoutS} s`);
    else if (run.code !== 0 && !run.error) problems.push(`wstest exited with ${run.signal || run.code}`);
    if (serverExit !== null) problems.push(`server exited during the run (${serverExit})`);

    const indexPath = path.join(REPORT_DIR, 'index.json');
    let results = {};
    if (fs.existsSync(indexPath)) {
      const index = JSON.parse(fs.readFileSync(indexPath, 'utf8'));
      results = index[AGENT] || {};
    } else {
      problems.push(`no report: ${path.relative(ROOT, indexPath)} missing`);
    }

    const ids = Object.keys(results).sort(compareCaseIds);
    const behaviorCounts = {};
    const closeCounts = {};
    const failures = [];
    for (const id of ids) {
      const r = results[id];
      behaviorCounts[r.behavior] = (behaviorCounts[r.behavior] || 0) + 1;
      closeCounts[r.behaviorClose] = (closeCounts[r.behaviorClose] || 0) + 1;
      if (PASS_BEHAVIOR.has(r.behavior) && PASS_CLOSE.has(r.behaviorClose)) {
        passed++;
      } else {
        failed++;
        failures.push({ id, r });
      }
    }
    if (run.expected !== null && ids.length < run.expected) {
      problems.push(`only ${ids.length} of ${run.expected} cases have results`);
    }

    console.log('');
    console.log(`Autobahn fuzzingclient results (agent ${AGENT}, reports in ${REPORT_DIR_REL}/index.html)`);
    for (const { id, r } of failures) {
      const detail = readCaseDetail(r.reportfile);
      console.log(
        `  ${id.padEnd(9)} behavior=${r.behavior} behaviorClose=${r.behaviorClose} ` +
          `remoteCloseCode=${r.remoteCloseCode} duration=${r.duration}ms` +
          (detail ? `  -- ${detail}` : ''),
      );
    }
    console.log(`cases run: ${ids.length}${run.expected !== null ? ` (expected ${run.expected})` : ''}`);
    console.log(`behavior:      ${formatCounts(behaviorCounts) || '-'}`);
    console.log(`behaviorClose: ${formatCounts(closeCounts) || '-'}`);
    for (const p of problems) console.log(`problem: ${p}`);
    console.log(`wall time: ${((Date.now() - t0) / 1000).toFixed(1)} s (wstest ${runS} s)`);
    ok = failed === 0 && ids.length > 0 && problems.length === 0;
  } catch (err) {
    console.log(`error: ${err.message}`);
    console.log(`wall time: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  } finally {
    await stopAll();
  }
  // A run that broke down (timeout, server crash, missing cases) exits 1 even
  // when every case that did report passed; the `problem:` lines say why.
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = ok ? 0 : 1;
}

main();
