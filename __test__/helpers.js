'use strict';
// Shared helpers for the sack integration tests: timeouts, per-test
// resource tracking, `ws` clients, raw `net` clients that speak WebSocket
// frames by hand, HTTP response parsing and child Node processes.

const net = require('node:net');
const http = require('node:http');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');
const events = require('node:events');
const { spawn, execFileSync } = require('node:child_process');

const WebSocket = require('ws');
const sack = require('..');

const ROOT = path.join(__dirname, '..');
const { Server, readyStates } = sack.Websocket;
const HOST = '127.0.0.1';

/** Rejects with a labelled error when `promise` takes longer than `ms`. */
function withTimeout(promise, ms = 3000, label = 'operation') {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${label}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The next `name` event of a sack object (server or connection), which has
 * sack-style `once`/`on`, not EventEmitter. Resolves with { self, args }.
 */
function nextEvent(obj, name, ms = 3000) {
  return withTimeout(
    new Promise((resolve) => {
      obj.once(name, function (...args) {
        resolve({ self: this, args });
      });
    }),
    ms,
    `sack event "${name}"`,
  );
}

/** The next `name` event of an EventEmitter (rejects on its 'error'). */
function onceEE(emitter, name, ms = 3000) {
  return withTimeout(events.once(emitter, name), ms, `event "${name}"`);
}

/** Resolves once `predicate()` is true (polled), or rejects after `ms`. */
async function waitUntil(predicate, ms = 3000, label = 'condition') {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${label}`);
    await delay(10);
  }
}

/** Closes a sack server and waits for its 'close' event. */
async function closeServer(server, ms = 5000) {
  if (!server || server.readyState === readyStates.CLOSED) return;
  const closed = nextEvent(server, 'close', ms);
  if (server.readyState === readyStates.LISTENING) server.close();
  await closed;
}

/**
 * Per-test resources, released in `t.after`: raw sockets are destroyed and
 * `ws` clients terminated first, then every server is closed (waiting for
 * its close event, so a server that never closes fails the test).
 */
function scope(t) {
  const servers = [];
  const clients = [];
  const sockets = [];
  t.after(async () => {
    for (const s of sockets) s.destroy();
    for (const c of clients) {
      try {
        c.terminate();
      } catch {
        // already gone
      }
    }
    for (const s of servers) await closeServer(s);
  });
  return {
    /** A sack server on 127.0.0.1, ephemeral port. */
    server(options = {}, connect) {
      const s = connect
        ? new Server({ address: HOST, port: 0, ...options }, connect)
        : new Server({ address: HOST, port: 0, ...options });
      servers.push(s);
      return s;
    },
    /** Tracks a server made some other way. */
    track(s) {
      servers.push(s);
      return s;
    },
    /** A `ws` client for `path` on the server's port. */
    client(server, pathname = '/', protocols, options) {
      const url = `ws://${HOST}:${server.address().port}${pathname}`;
      const c = new WebSocket(url, protocols, options);
      c.on('error', (e) => {
        c.lastError = e;
      });
      clients.push(c);
      return c;
    },
    /** A raw TCP client (RawClient) connected to the server's port. */
    async raw(server) {
      const r = await RawClient.connect(server.address().port);
      sockets.push(r.socket);
      return r;
    },
    socket(s) {
      sockets.push(s);
      return s;
    },
  };
}

/** Opens a `ws` client; rejects on 'error' or 'unexpected-response'. */
function opened(client, ms = 3000) {
  return withTimeout(
    new Promise((resolve, reject) => {
      client.once('open', resolve);
      client.once('error', reject);
      client.once('unexpected-response', (req, res) =>
        reject(new Error(`unexpected response ${res.statusCode}`)),
      );
    }),
    ms,
    'client open',
  );
}

/** The client's close event as { code, reason (string) }. */
function clientClosed(client, ms = 3000) {
  return withTimeout(
    new Promise((resolve) => {
      client.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    }),
    ms,
    'client close',
  );
}

/** The next message of a `ws` client as { data, isBinary }. */
function clientMessage(client, ms = 3000) {
  return withTimeout(
    new Promise((resolve) => {
      client.once('message', (data, isBinary) => resolve({ data, isBinary }));
    }),
    ms,
    'client message',
  );
}

/** The HTTP response a `ws` client got instead of a 101. */
function unexpectedResponse(client, ms = 3000) {
  return withTimeout(
    new Promise((resolve, reject) => {
      client.once('open', () => reject(new Error('the connection was accepted')));
      client.once('unexpected-response', (req, res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ statusCode: res.statusCode, statusMessage: res.statusMessage, headers: res.headers, body }));
        res.on('error', reject);
      });
    }),
    ms,
    'an HTTP refusal',
  );
}

// ---------------------------------------------------------------- frames

const OP = { CONT: 0, TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 };

/** A WebSocket frame. Client frames are masked unless `mask: false`. */
function encodeFrame(opcode, payload = Buffer.alloc(0), { fin = true, mask = true, rsv = 0, maskKey } = {}) {
  payload = typeof payload === 'string' ? Buffer.from(payload) : Buffer.from(payload);
  const len = payload.length;
  let head;
  if (len < 126) {
    head = Buffer.alloc(2);
    head[1] = len;
  } else if (len < 65536) {
    head = Buffer.alloc(4);
    head[1] = 126;
    head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10);
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  head[0] = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f);
  if (!mask) return Buffer.concat([head, payload]);
  head[1] |= 0x80;
  const key = maskKey || crypto.randomBytes(4);
  const body = Buffer.alloc(len);
  for (let i = 0; i < len; i++) body[i] = payload[i] ^ key[i & 3];
  return Buffer.concat([head, key, body]);
}

/** A close frame payload: code (2 bytes) then reason. */
function closePayload(code, reason = '') {
  const r = Buffer.isBuffer(reason) ? reason : Buffer.from(reason);
  const b = Buffer.alloc(2 + r.length);
  b.writeUInt16BE(code, 0);
  r.copy(b, 2);
  return b;
}

/** Parses one frame at the start of `buf`; null when incomplete. */
function decodeFrame(buf) {
  if (buf.length < 2) return null;
  const fin = (buf[0] & 0x80) !== 0;
  const rsv = (buf[0] >> 4) & 7;
  const opcode = buf[0] & 0x0f;
  const masked = (buf[1] & 0x80) !== 0;
  let len = buf[1] & 0x7f;
  let off = 2;
  if (len === 126) {
    if (buf.length < 4) return null;
    len = buf.readUInt16BE(2);
    off = 4;
  } else if (len === 127) {
    if (buf.length < 10) return null;
    len = Number(buf.readBigUInt64BE(2));
    off = 10;
  }
  let maskKey = null;
  if (masked) {
    if (buf.length < off + 4) return null;
    maskKey = Buffer.from(buf.subarray(off, off + 4));
    off += 4;
  }
  if (buf.length < off + len) return null;
  const raw = Buffer.from(buf.subarray(off, off + len));
  const payload = Buffer.alloc(len);
  for (let i = 0; i < len; i++) payload[i] = masked ? raw[i] ^ maskKey[i & 3] : raw[i];
  const frame = { fin, rsv, opcode, masked, maskKey, raw, payload, lenCode: buf[1] & 0x7f, length: off + len };
  if (opcode === OP.CLOSE && len >= 2) {
    frame.code = payload.readUInt16BE(0);
    frame.reason = payload.subarray(2).toString();
  }
  return frame;
}

/** Parses an HTTP response head at the start of `buf`; null when incomplete. */
function parseHead(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/(\d\.\d) (\d{3})(?: (.*))?$/.exec(lines[0]);
  if (!m) throw new Error(`not an HTTP status line: ${JSON.stringify(lines[0])}`);
  const headers = {};
  const rawHeaders = [];
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    const name = line.slice(0, i).trim();
    const value = line.slice(i + 1).trim();
    rawHeaders.push(name, value);
    const lower = name.toLowerCase();
    if (lower in headers) headers[lower] = [].concat(headers[lower], value);
    else headers[lower] = value;
  }
  return {
    httpVersion: m[1],
    statusCode: Number(m[2]),
    statusMessage: m[3] || '',
    statusLine: lines[0],
    headers,
    rawHeaders,
    headLength: end + 4,
  };
}

const GOOD_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const GOOD_ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';

/** An upgrade request; `headers` entries override (null removes) the defaults. */
function upgradeRequest(pathname = '/', headers = {}, { method = 'GET', version = '1.1' } = {}) {
  const h = {
    Host: `${HOST}`,
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': GOOD_KEY,
    'Sec-WebSocket-Version': '13',
  };
  for (const [k, v] of Object.entries(headers)) {
    if (v === null) delete h[k];
    else h[k] = v;
  }
  let s = `${method} ${pathname} HTTP/${version}\r\n`;
  for (const [k, v] of Object.entries(h)) s += `${k}: ${v}\r\n`;
  return s + '\r\n';
}

/**
 * A raw TCP client: accumulates what the server sends and waits for
 * conditions on it, so tests can check bytes on the wire.
 */
class RawClient {
  constructor(socket) {
    this.socket = socket;
    this.buf = Buffer.alloc(0);
    this.ended = false;
    this.closed = false;
    this.error = null;
    this._waiters = new Set();
    this.counting = false;
    this.count = 0;
    socket.on('data', (d) => {
      if (this.counting) this.count += d.length;
      else this.buf = Buffer.concat([this.buf, d]);
      this._check();
    });
    socket.on('end', () => {
      this.ended = true;
      this._check();
    });
    socket.on('error', (e) => {
      this.error = e;
    });
    socket.on('close', () => {
      this.closed = true;
      this._check();
    });
    this.closedPromise = new Promise((resolve) => socket.once('close', resolve));
  }

  static async connect(port) {
    const socket = net.connect(port, HOST);
    socket.on('error', () => {});
    await onceEE(socket, 'connect');
    return new RawClient(socket);
  }

  /** From now on only count incoming bytes (for bulk transfers). */
  countOnly() {
    this.counting = true;
    this.count += this.buf.length;
    this.buf = Buffer.alloc(0);
  }

  write(data) {
    this.socket.write(data);
  }

  _check() {
    for (const w of this._waiters) w();
  }

  /**
   * Resolves with the first non-undefined value of `fn(this)`, checked now
   * and whenever data arrives or the socket ends.
   */
  waitFor(fn, ms = 3000, label = 'data from the server') {
    let check;
    const p = new Promise((resolve, reject) => {
      check = () => {
        let v;
        try {
          v = fn(this);
        } catch (e) {
          this._waiters.delete(check);
          reject(e);
          return;
        }
        if (v !== undefined) {
          this._waiters.delete(check);
          resolve(v);
        } else if (this.ended || this.closed) {
          this._waiters.delete(check);
          const seen = JSON.stringify(this.buf.toString('latin1').slice(0, 300));
          reject(new Error(`the socket ended while waiting for ${label}; unread bytes: ${seen}`));
        }
      };
      this._waiters.add(check);
      check();
    });
    return withTimeout(p, ms, label).finally(() => this._waiters.delete(check));
  }

  /** Waits for the end of the stream (FIN or close). */
  waitEnd(ms = 3000) {
    return this.waitFor((r) => (r.ended || r.closed ? true : undefined), ms, 'the end of the stream').catch((e) => {
      if (this.ended || this.closed) return true;
      throw e;
    });
  }

  /** Waits for an HTTP response head; consumes it. */
  async readHead(ms = 3000) {
    const head = await this.waitFor((r) => parseHead(r.buf) || undefined, ms, 'an HTTP response head');
    this.buf = this.buf.subarray(head.headLength);
    return head;
  }

  /** Sends an upgrade request and reads the response head. */
  async handshake(pathname = '/', headers = {}) {
    this.write(upgradeRequest(pathname, headers));
    return this.readHead();
  }

  /** Waits for one frame from the server; consumes it. */
  async readFrame(ms = 3000) {
    const f = await this.waitFor((r) => decodeFrame(r.buf) || undefined, ms, 'a WebSocket frame');
    this.buf = this.buf.subarray(f.length);
    return f;
  }

  /** Reads frames until one with `opcode` (skipping others); returns it. */
  async readFrameOf(opcode, ms = 3000) {
    const end = Date.now() + ms;
    for (;;) {
      const f = await this.readFrame(Math.max(1, end - Date.now()));
      if (f.opcode === opcode) return f;
    }
  }

  sendFrame(opcode, payload, options) {
    this.write(encodeFrame(opcode, payload, options));
  }

  destroy() {
    this.socket.destroy();
  }
}

/** Sends `request` on a fresh socket and reads until the server ends it. */
async function rawExchange(port, request, ms = 3000) {
  const r = await RawClient.connect(port);
  try {
    r.write(request);
    await r.waitEnd(ms);
    return { raw: r.buf, head: parseHead(r.buf), client: r };
  } finally {
    r.destroy();
  }
}

/**
 * Deterministic, compressible text of exactly `bytes` UTF-8 bytes (with
 * multi-byte characters), words repeated at all distances. Self-contained:
 * chromium.test.js runs it in the page by its source.
 */
function compressibleText(bytes, seed = 1) {
  const words = ['alpha ', 'beta ', 'gamma ', 'delta ', 'jörg ', '€uro ', '😀 ', 'epsilon '];
  const enc = new TextEncoder();
  const lens = words.map((w) => enc.encode(w).length);
  let x = seed >>> 0 || 1;
  const parts = [];
  let n = 0;
  for (;;) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    const k = x % words.length;
    if (n + lens[k] > bytes) break;
    parts.push(words[k]);
    n += lens[k];
  }
  return parts.join('') + 'x'.repeat(bytes - n);
}

// ---------------------------------------------------------------- processes

/**
 * Runs `code` in a child Node process (cwd = the package root). Resolves with
 * { code, signal, stdout, stderr, timedOut }; a child still running after
 * `ms` is killed (by its pid) and reported with timedOut = true. `env`:
 * variables added to this process's for the child.
 */
function runNode(code, { ms = 10000, args = [], input, env } = {}) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...args, '-e', code], {
      cwd: ROOT,
      env: env ? { ...process.env, ...env } : process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, ms);
    child.on('close', (exitCode, signal) => {
      clearTimeout(timer);
      resolve({ code: exitCode, signal, stdout, stderr, timedOut });
    });
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}

/**
 * Starts `code` in a child Node process and returns a handle to talk to it:
 * `line(regex)` waits for a stdout line matching regex (returns the match),
 * `exited(ms)` waits for the exit ({ code, signal }), `kill()` ends it.
 * Register `t.after(() => h.kill())` so no child outlives its test.
 * `maxFiles`: the child's limit of open file descriptors (`ulimit -n`).
 * `env`: variables added to this process's for the child.
 */
function startNode(code, { args = [], maxFiles, env } = {}) {
  const argv = [...args, '-e', code];
  const options = { cwd: ROOT, env: env ? { ...process.env, ...env } : process.env, stdio: ['ignore', 'pipe', 'pipe'] };
  const child =
    maxFiles === undefined
      ? spawn(process.execPath, argv, options)
      : spawn('/bin/sh', ['-c', `ulimit -n ${Number(maxFiles)} && exec "$@"`, 'sh', process.execPath, ...argv], options);
  const h = {
    child,
    stdout: '',
    stderr: '',
    exit: null,
    _waiters: new Set(),
  };
  const notify = () => {
    for (const w of h._waiters) w();
  };
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    h.stdout += d;
    notify();
  });
  child.stderr.on('data', (d) => {
    h.stderr += d;
  });
  const exitPromise = new Promise((resolve) => {
    child.on('close', (code, signal) => {
      h.exit = { code, signal };
      notify();
      resolve(h.exit);
    });
  });
  h.line = (regex, ms = 5000) => {
    let check;
    const p = new Promise((resolve, reject) => {
      check = () => {
        const m = regex.exec(h.stdout);
        if (m) resolve(m);
        else if (h.exit) reject(new Error(`child exited (${JSON.stringify(h.exit)}) before printing ${regex}; stdout: ${JSON.stringify(h.stdout)} stderr: ${JSON.stringify(h.stderr.slice(0, 2000))}`));
      };
      h._waiters.add(check);
      check();
    });
    return withTimeout(p, ms, `child output ${regex}`).finally(() => h._waiters.delete(check));
  };
  h.exited = (ms = 5000) => withTimeout(exitPromise, ms, 'the child process to exit');
  h.running = () => h.exit === null;
  h.kill = () => {
    if (h.exit === null) child.kill('SIGKILL');
    return exitPromise;
  };
  return h;
}

/** Collects a server connection's events in order: [name, ...args] entries. */
function record(ws) {
  const log = [];
  ws.on('message', (m) => log.push(['message', m]));
  ws.on('error', (e) => log.push(['error', e]));
  ws.on('close', (code, reason) => log.push(['close', code, reason]));
  return log;
}

/** A Node `http` request; resolves with the response and its body. */
function request(port, { method = 'GET', path: p = '/', headers = {}, body, agent = false, ms = 3000, setup } = {}) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const req = http.request({ host: HOST, port, method, path: p, headers, agent }, (res) => {
        const parts = [];
        res.on('data', (d) => parts.push(d));
        res.on('end', () =>
          resolve({
            status: res.statusCode,
            reason: res.statusMessage,
            headers: res.headers,
            rawHeaders: res.rawHeaders,
            httpVersion: res.httpVersion,
            body: Buffer.concat(parts),
            text: Buffer.concat(parts).toString('utf8'),
            socket: req.socket,
            events: req.sackEvents,
          }),
        );
        res.on('error', reject);
      });
      req.sackEvents = [];
      req.on('error', reject);
      if (setup) setup(req);
      else if (body !== undefined) req.end(body);
      else req.end();
    }),
    ms,
    `http ${method} ${p}`,
  );
}

/** Runs a command; resolves { code, out } (stdout and stderr, tail). */
function run(cmd, args, { env, ms }) {
  return new Promise((resolve) => {
    let child;
    try {
      child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      resolve({ code: -1, out: String(e) });
      return;
    }
    let out = '';
    const keep = (d) => {
      out = (out + d).slice(-4000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => {
      out += `\n(killed after ${ms} ms)`;
      child.kill('SIGKILL');
    }, ms);
    child.on('error', (e) => keep(`\n${e}`));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, out });
    });
  });
}

/**
 * The directory of npm package `name@version`, installed into `dir` (its
 * own prefix, outside node_modules; package.json is not touched) unless it
 * is there already. SACK_NO_INSTALL=1 forbids the install: then it throws.
 */
async function ensureNpmPackage({ name, version, dir, env = {}, log = () => {}, lock }) {
  const entry = path.join(dir, 'node_modules', name);
  if (fs.existsSync(path.join(entry, 'package.json'))) return entry;
  if (process.env.SACK_NO_INSTALL === '1') throw new Error(`${name} is not installed in ${dir} and SACK_NO_INSTALL=1`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  // Install into a fresh directory and rename it into place: a concurrent
  // run or an interrupted install never leaves a half-installed `dir`.
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  const t0 = Date.now();
  log(`installing ${name}@${version} into ${dir}`);
  // With `lock` (a directory holding package.json and package-lock.json
  // for exactly this package), the whole tree is pinned: `npm ci`. Else the
  // newest versions of its dependencies, which a registry may not hold
  // consistently (a package published before the one it depends on).
  let args = ['install', '--prefix', tmp, '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--ignore-scripts', `${name}@${version}`];
  if (lock) {
    fs.mkdirSync(tmp, { recursive: true });
    for (const f of ['package.json', 'package-lock.json']) fs.copyFileSync(path.join(lock, f), path.join(tmp, f));
    args = ['ci', '--prefix', tmp, '--no-audit', '--no-fund', '--ignore-scripts'];
  }
  const r = await run(npm, args, { env, ms: 5 * 60000 });
  if (r.code !== 0) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw new Error(`npm install ${name}@${version} failed: ${r.out.slice(-600)}`);
  }
  try {
    fs.renameSync(tmp, dir);
  } catch (e) {
    // Someone else finished first: use theirs.
    fs.rmSync(tmp, { recursive: true, force: true });
    if (!fs.existsSync(entry)) throw e;
  }
  log(`${name} installed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return entry;
}

/**
 * Runs `script` (`node -e`) in another process while test `t` lasts (it is
 * killed after). `explain(promise)` rejects as `promise` does, with the
 * script's stderr added, so a client that failed says why.
 */
function background(t, script) {
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  t.after(() => child.kill());
  return {
    explain: (promise) =>
      promise.catch((e) => {
        throw new Error(`${e.message}; the script's stderr: ${stderr}`);
      }),
  };
}

// ---------------------------------------------------------------- Chromium

// Headless Chromium (the Debian `chromium` package) driven by
// playwright-core, for chromium.test.js and demo.test.js. Set-up, done on
// first use and idempotent (quick once installed):
// - /usr/bin/chromium (SACK_CHROMIUM overrides): if missing, and we are root
//   with apt-get, `apt-get update && apt-get install -y chromium`.
// - playwright-core (SACK_PLAYWRIGHT_VERSION, default below): if it is not
//   there, `npm install` into .cache/playwright/ at the package root
//   (SACK_PLAYWRIGHT_DIR overrides), outside node_modules, without touching
//   package.json. playwright-core never downloads a browser.
// SACK_NO_INSTALL=1 forbids both installs.

const CHROMIUM = process.env.SACK_CHROMIUM || '/usr/bin/chromium';
const PW_DIR = process.env.SACK_PLAYWRIGHT_DIR || path.join(ROOT, '.cache', 'playwright');
const PW_VERSION = process.env.SACK_PLAYWRIGHT_VERSION || '1.65.1';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function isExecutable(file) {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Installs Debian package `pkg` with apt-get so that `binary` exists, or
 * throws saying why it cannot (`why`: what is missing). Root with apt-get
 * only; SACK_NO_INSTALL=1 forbids it. `ms`: the install's time limit.
 */
async function aptInstall(pkg, binary, why, log, ms) {
  if (process.env.SACK_NO_INSTALL === '1') throw new Error(`${why} and SACK_NO_INSTALL=1`);
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    throw new Error(`${why}; install it with: sudo apt-get install -y ${pkg}`);
  }
  if (!isExecutable('/usr/bin/apt-get')) throw new Error(`${why} and there is no apt-get`);
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  // Waits for another apt/dpkg to finish instead of failing on the lock.
  const lock = ['-o', 'DPkg::Lock::Timeout=600'];
  const t0 = Date.now();
  log(`installing ${pkg} with apt-get (this can take a few minutes)`);
  const update = await run('apt-get', [...lock, 'update'], { env, ms: 10 * 60000 });
  if (update.code !== 0) throw new Error(`${why}; apt-get update failed: ${update.out.slice(-600)}`);
  const install = await run('apt-get', [...lock, 'install', '-y', pkg], { env, ms });
  if (install.code !== 0 || !isExecutable(binary)) {
    throw new Error(`${why}; apt-get install ${pkg} failed: ${install.out.slice(-600)}`);
  }
  log(`${pkg} installed in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}

/** Chromium's path, or throws with the reason it is unavailable. */
async function ensureChromium(log) {
  if (isExecutable(CHROMIUM)) return CHROMIUM;
  const why = `${CHROMIUM} not found`;
  if (CHROMIUM !== '/usr/bin/chromium') throw new Error(`${why} (SACK_CHROMIUM is set; not installing)`);
  await aptInstall('chromium', CHROMIUM, why, log, 20 * 60000);
  return CHROMIUM;
}

/** playwright-core's `chromium`, installed into PW_DIR if needed. */
async function ensurePlaywright(log) {
  const dir = await ensureNpmPackage({
    name: 'playwright-core',
    version: PW_VERSION,
    dir: PW_DIR,
    env: { PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: '1' },
    log,
  });
  return require(dir).chromium;
}

/**
 * One headless Chromium for a test file, launched by the first test that
 * asks. `context(t)`: its playwright browser context, or null after
 * t.skip(reason) when Chromium or playwright-core is missing and cannot be
 * installed (installed but failing to launch is a failure, not a skip).
 * Register `test.after(() => session.close())`. `args`: flags added to
 * CHROMIUM_ARGS, for a session that needs its own launch (chromium.test.js
 * launches one trusting a test certificate's key).
 */
function chromiumSession({ args = [] } = {}) {
  let setup = null; // { context, userDataDir }, { skip: reason } or { error }
  return {
    async context(t) {
      if (!setup) {
        const log = (m) => t.diagnostic(m);
        try {
          const executablePath = await ensureChromium(log);
          const chromium = await ensurePlaywright(log);
          const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sack-chromium-'));
          try {
            const context = await chromium.launchPersistentContext(userDataDir, {
              executablePath,
              headless: true,
              args: [...CHROMIUM_ARGS, ...args],
              timeout: 60000,
            });
            setup = { context, userDataDir };
            log(`Chromium ${context.browser()?.version() ?? ''} via playwright-core ${require(path.join(PW_DIR, 'node_modules', 'playwright-core', 'package.json')).version}`);
          } catch (e) {
            fs.rmSync(userDataDir, { recursive: true, force: true });
            setup = { error: e };
          }
        } catch (e) {
          setup = { skip: e.message };
        }
      }
      if (setup.error) throw setup.error;
      if (setup.skip) {
        t.skip(`Chromium or playwright-core unavailable: ${setup.skip}`);
        return null;
      }
      return setup.context;
    },
    async close() {
      if (setup?.context) {
        await withTimeout(setup.context.close(), 15000, 'closing Chromium').catch(() => {});
        fs.rmSync(setup.userDataDir, { recursive: true, force: true });
      }
    },
  };
}

// Test certificates made with the openssl CLI: a CA named `caName` in a
// temporary directory, and `build({ ssl, file, leaf, ca })` making what a
// test needs from it. `leaf(name, { key, cn, san })` makes a key (`key`:
// genpkey arguments, ECDSA P-256 by default) and a certificate the CA
// signs for `san` (localhost and 127.0.0.1 by default). Returns what
// `build` returns, or { error } when openssl is missing or fails.
const EC_P256 = ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];
function testPki(caName, build) {
  let dir;
  try {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sack-pki-'));
    const file = (name) => path.join(dir, name);
    const ssl = (...args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30000 });
    ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', file('ca.key'), '-out', file('ca.pem'), '-days', '2', '-subj', `/CN=${caName}`);
    const leaf = (name, { key = EC_P256, cn = 'localhost', san = 'DNS:localhost,IP:127.0.0.1' } = {}) => {
      fs.writeFileSync(file(`${name}.ext`), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\n`);
      ssl('genpkey', ...key, '-out', file(`${name}.key`));
      ssl('req', '-new', '-key', file(`${name}.key`), '-out', file(`${name}.csr`), '-subj', `/CN=${cn}`);
      ssl('x509', '-req', '-in', file(`${name}.csr`), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial', '-out', file(`${name}.pem`), '-days', '2', '-extfile', file(`${name}.ext`));
      return { cert: fs.readFileSync(file(`${name}.pem`)), key: fs.readFileSync(file(`${name}.key`)) };
    };
    return build({ ssl, file, leaf, ca: fs.readFileSync(file('ca.pem')) });
  } catch (e) {
    return { error: `openssl failed: ${e.stderr || e.message}` };
  } finally {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }
}

module.exports = {
  testPki,
  record,
  startNode,
  sack,
  Server,
  readyStates,
  WebSocket,
  ROOT,
  HOST,
  OP,
  GOOD_KEY,
  GOOD_ACCEPT,
  withTimeout,
  delay,
  nextEvent,
  onceEE,
  waitUntil,
  closeServer,
  scope,
  opened,
  clientClosed,
  clientMessage,
  unexpectedResponse,
  encodeFrame,
  decodeFrame,
  closePayload,
  parseHead,
  upgradeRequest,
  RawClient,
  rawExchange,
  runNode,
  background,
  request,
  run,
  ensureNpmPackage,
  isExecutable,
  aptInstall,
  compressibleText,
  chromiumSession,
};
