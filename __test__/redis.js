'use strict';
// A real redis-server for the backplane tests, on a free loopback port with
// persistence off. `ensureRedis` installs Debian's redis-server (root with
// apt-get) when it is missing; SACK_REDIS_SERVER names another binary;
// SACK_NO_INSTALL=1 forbids the install.

const { spawn } = require('node:child_process');
const net = require('node:net');
const { run, withTimeout, isExecutable, aptInstall } = require('./helpers.js');

const REDIS = process.env.SACK_REDIS_SERVER || '/usr/bin/redis-server';
const CLI = process.env.SACK_REDIS_CLI || '/usr/bin/redis-cli';

/** redis-server's path, or throws with why it is unavailable. */
async function ensureRedis(log = () => {}) {
  if (isExecutable(REDIS) && isExecutable(CLI)) return REDIS;
  await aptInstall('redis-server', REDIS, `${REDIS} not found`, log, 10 * 60000);
  if (!isExecutable(CLI)) throw new Error(`${CLI} not found after installing redis-server`);
  return REDIS;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Starts redis-server; resolves { port, url, cli(...args), stop(), start() }.
 * `stop` shuts it down (its data is lost: no persistence), `start` brings
 * it back on the same port. Register `t.after(() => r.stop())`.
 */
async function startRedis() {
  const bin = await ensureRedis();
  const port = await freePort();
  let child = null;
  const r = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async start() {
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--logfile', ''];
      child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      const ready = new Promise((resolve, reject) => {
        child.stdout.on('data', (d) => {
          out += d;
          if (/Ready to accept connections/.test(out)) resolve();
        });
        child.on('exit', (code) => reject(new Error(`redis-server exited (${code}): ${out.slice(-800)}`)));
      });
      await withTimeout(ready, 10000, 'redis-server to start');
    },
    async stop() {
      if (child === null || child.exitCode !== null) return;
      const c = child;
      const gone = new Promise((resolve) => c.on('exit', resolve));
      c.kill('SIGTERM');
      await withTimeout(gone, 10000, 'redis-server to stop').catch(() => c.kill('SIGKILL'));
    },
    /** Runs redis-cli against it; resolves its output, trimmed. */
    async cli(...args) {
      const res = await run(CLI, ['-p', String(port), ...args], { ms: 10000 });
      if (res.code !== 0) throw new Error(`redis-cli ${args.join(' ')}: ${res.out}`);
      return res.out.trim();
    },
  };
  await r.start();
  return r;
}

module.exports = { ensureRedis, startRedis };
