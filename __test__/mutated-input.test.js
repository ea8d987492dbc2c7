'use strict';
// Mutated input against a live server. Valid HTTP requests and WebSocket
// frames (plain, and compressed with permessage-deflate) get bytes
// flipped, replaced, inserted, dropped, repeated or cut
// (seeded, so a failure can be replayed), and go out whole or in pieces,
// some with the client half-closing after them. Whatever arrives:
//
// - the server answers with well-formed HTTP responses or WebSocket frames
//   and valid close codes, or nothing, and never 500 (no handler throws);
// - every HTTP connection ends within handshakeTimeout of the last byte
//   (nothing hangs), and no WebSocket connection outlives its client;
// - afterwards a plain request is served, and no connection, pending
//   response or file descriptor is left over (nothing leaks).
//
// SACK_FUZZ_SEED (a number) and SACK_FUZZ_CASES (cases per kind, default
// 300) vary the run; a failure names its seed and case, and the bytes.
// This complements `cargo test`'s checks of the sans-IO parsers
// (src/checks.rs) with the engine's own state machines: the task, the
// HTTP lane and the event dispatch.

const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const fs = require('node:fs');
const zlib = require('node:zlib');
const { spawnSync } = require('node:child_process');

const { HOST, scope, delay, withTimeout, waitUntil, encodeFrame, decodeFrame, closePayload, upgradeRequest, request } =
  require('./helpers.js');

const SEED = Number(process.env.SACK_FUZZ_SEED || 20261124);
const CASES = Number(process.env.SACK_FUZZ_CASES || 300);
const TIMEOUT = 400; // handshakeTimeout
const PARALLEL = 16;

/** xorshift32: the same cases for the same seed. */
function rng(seed) {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
  return { next, below: (n) => next() % n, byte: () => next() & 0xff };
}

/** A few random edits, as src/checks.rs makes them. */
function mutate(r, input, edits) {
  let v = Buffer.from(input);
  for (let i = 0; i < edits; i++) {
    const at = r.below(v.length + 1);
    switch (r.below(6)) {
      case 0:
        if (at < v.length) v[at] ^= 1 << r.below(8);
        break;
      case 1:
        if (at < v.length) v[at] = r.byte();
        break;
      case 2:
        v = Buffer.concat([v.subarray(0, at), Buffer.from([r.byte()]), v.subarray(at)]);
        break;
      case 3:
        if (at < v.length) v = Buffer.concat([v.subarray(0, at), v.subarray(at + 1)]);
        break;
      case 4: {
        const from = r.below(v.length + 1);
        const copy = v.subarray(from, Math.min(v.length, from + r.below(24)));
        v = Buffer.concat([v.subarray(0, at), copy, v.subarray(at)]);
        break;
      }
      default:
        v = v.subarray(0, at); // cut short
    }
  }
  return v;
}

/** `buf` in 1–5 pieces. */
function split(r, buf) {
  const parts = [];
  let rest = buf;
  for (let n = r.below(5); n > 0 && rest.length > 1; n--) {
    const at = 1 + r.below(rest.length - 1);
    parts.push(rest.subarray(0, at));
    rest = rest.subarray(at);
  }
  parts.push(rest);
  return parts;
}

// Valid requests, and the handler's answers to them (see makeServer).
const HTTP_SEEDS = [
  ['GET / HTTP/1.1\r\nHost: a\r\n\r\n', 'GET / -'],
  ['GET /async?x=1 HTTP/1.1\r\nHost: a\r\n\r\nGET /chunk HTTP/1.1\r\nHost: a\r\n\r\n', 'GET /async -', 'GET /chunk -!'],
  [
    'POST /form HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\na=1&b=2',
    'POST /form 7',
  ],
  ['PUT /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n', 'PUT /up 8'],
  ['POST /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc', 'POST /e 3'],
  ['HEAD /h HTTP/1.1\r\nHost: a\r\n\r\nGET /after-head HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', '', 'GET /after-head -'],
  ['GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /old2 HTTP/1.0\r\n\r\n', 'GET /old -', 'GET /old2 -'],
  // Content-Length: 0 is an empty body, not none.
  ['OPTIONS * HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n', 'OPTIONS * 0'],
  ['DELETE /chunk HTTP/1.1\r\nHost: a\r\nX-Latin: caf\xe9\r\n\r\n', 'DELETE /chunk -!'],
  // A keep-alive connection that upgrades on its second request, with a
  // frame right behind (101: the answer is the switch, frames follow).
  [
    `POST /first HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nokGET /then HTTP/1.1\r\nHost: a\r\n\r\n${upgradeRequest('/ws')}` +
      encodeFrame(1, Buffer.from('hi'), { maskKey: Buffer.from([9, 8, 7, 6]) }).toString('latin1'),
    'POST /first 2',
    'GET /then -',
    101,
  ],
  // At the limits (maxHeaderSize 2048, maxBodySize 4096): a few edits cross them.
  [`GET /big HTTP/1.1\r\nHost: a\r\nX-Pad: ${'p'.repeat(1995)}\r\n\r\n`, 'GET /big -'],
  [`POST /body HTTP/1.1\r\nHost: a\r\nContent-Length: 4096\r\n\r\n${'b'.repeat(4096)}`, 'POST /body 4096'],
  [
    `POST /chunks HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nff0\r\n${'c'.repeat(0xff0)}\r\n10\r\n${'d'.repeat(16)}\r\n0\r\n\r\n`,
    'POST /chunks 4096!', // a /chunk… URL: written in two parts
  ],
].map(([wire, ...answers]) => ({ wire: Buffer.from(wire, 'latin1'), answers }));

const STATUS_LINE = /^HTTP\/1\.1 (\d{3}) [^\r\n]*$/;

/**
 * Reads responses off `buf` until it ends; throws on anything that is not a
 * well-formed response. A 101 stops the reading (frames follow).
 */
function checkResponses(buf, label) {
  let at = 0;
  const responses = [];
  while (at < buf.length) {
    const end = buf.indexOf('\r\n\r\n', at);
    assert.ok(end >= 0, `${label}: an incomplete head at ${at}: ${show(buf.subarray(at))}`);
    const lines = buf.subarray(at, end).toString('latin1').split('\r\n');
    const m = STATUS_LINE.exec(lines[0]);
    assert.ok(m, `${label}: status line ${JSON.stringify(lines[0])}`);
    const status = Number(m[1]);
    const res = { status, body: '' };
    responses.push(res);
    const headers = {};
    for (const line of lines.slice(1)) {
      const i = line.indexOf(':');
      assert.ok(i > 0, `${label}: header line ${JSON.stringify(line)}`);
      (headers[line.slice(0, i).toLowerCase()] ||= []).push(line.slice(i + 1).trim());
    }
    const lengths = headers['content-length'] || [];
    assert.ok(lengths.length <= 1, `${label}: ${lengths.length} Content-Length lines`);
    assert.ok(!(lengths.length && headers['transfer-encoding']), `${label}: Content-Length and Transfer-Encoding`);
    at = end + 4;
    if (status === 101) {
      res.frames = buf.subarray(at); // WebSocket from here on
      break;
    }
    // The handler names the method: a HEAD response has no body.
    const head = (headers['x-method'] || [])[0] === 'HEAD';
    if (head || status < 200 || status === 204 || status === 304) continue;
    if (headers['transfer-encoding']) {
      assert.deepEqual(headers['transfer-encoding'], ['chunked'], label);
      for (;;) {
        const eol = buf.indexOf('\r\n', at);
        assert.ok(eol >= 0, `${label}: an incomplete chunk`);
        const size = buf.subarray(at, eol).toString('latin1');
        assert.match(size, /^[0-9a-f]+$/, `${label}: chunk size`);
        res.body += buf.subarray(eol + 2, eol + 2 + parseInt(size, 16)).toString('latin1');
        at = eol + 2 + parseInt(size, 16);
        assert.equal(buf.subarray(at, at + 2).toString('latin1'), '\r\n', `${label}: CRLF after a chunk`);
        at += 2;
        if (size === '0') break;
      }
    } else if (lengths.length) {
      res.body = buf.subarray(at, at + Number(lengths[0])).toString('latin1');
      at += Number(lengths[0]);
      assert.ok(at <= buf.length, `${label}: a body shorter than its Content-Length`);
    } else {
      res.body = buf.subarray(at).toString('latin1');
      at = buf.length; // ends with the connection
    }
  }
  return responses;
}

function show(buf) {
  const s = buf.toString('latin1');
  return JSON.stringify(s.length > 400 ? s.slice(0, 400) + '…' : s);
}

/**
 * Sends `parts` on a fresh connection (1 ms apart); resolves with what came
 * back once the server ends it, which must be within `ms` of the last part.
 */
function exchange(port, parts, { halfClose, ms }) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    const socket = net.connect({ host: HOST, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server did not end the connection; received ${show(Buffer.concat(chunks))}`));
    }, ms + 10 * parts.length);
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', () => {}); // a reset after a refusal is an end too
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    socket.once('connect', async () => {
      for (const p of parts) {
        if (socket.destroyed) return;
        socket.write(p);
        await delay(1);
      }
      if (halfClose && !socket.destroyed) socket.end();
    });
  });
}

function fdCount() {
  return fs.readdirSync('/proc/self/fd').length;
}

/** Runs `fn(i)` for i in 0..n, `PARALLEL` at a time. */
async function pool(n, fn) {
  let next = 0;
  const worker = async () => {
    while (next < n) await fn(next++);
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
}

function makeServer(t, options = {}) {
  const server = scope(t).server({
    handshakeTimeout: TIMEOUT,
    maxHeaderSize: 2048,
    maxBodySize: 4096,
    maxPayload: 4096,
    ...options,
  });
  // Refused requests fire 'error' events: heard, not checked here.
  server.on('error', () => {});
  server.onrequest = (req, res) => {
    res.setHeader('X-Method', req.method);
    const body = `${req.method} ${req.path} ${req.bytes ? req.bytes.byteLength : '-'}`;
    if (req.url.startsWith('/async')) setImmediate(() => res.end(body));
    else if (req.url.startsWith('/chunk')) {
      res.write(body);
      res.end('!');
    } else res.end(body);
  };
  server.onconnect = (ws) => {
    ws.onmessage = (m) => ws.send(m);
  };
  return server;
}

async function stillServes(server) {
  const res = await request(server.address().port, { path: '/check' });
  assert.equal(res.status, 200);
  assert.equal(res.body.toString(), 'GET /check -');
}

async function noLeaks(server, fds) {
  await waitUntil(() => server.connections === 0, 3000, 'no open WebSocket connection');
  const live = require('../lib/registry.js').fast.exchanges;
  await waitUntil(() => live() === 0, 3000, 'no pending HTTP response');
  // Sockets the server closed free their descriptors; a few may belong to
  // the test's own last request still closing.
  await waitUntil(() => fdCount() <= fds + 2, 3000, `file descriptors back to ${fds} (now ${fdCount()})`);
}

// On Linux, keep-alive connections move to the JS thread's lane (see
// README, "Design"), chosen once per thread at start-up: the lane's turn
// runs here, the engine task's in a child process with SACK_HTTP_LANE=0.
const LANE = process.platform === 'linux' && process.env.SACK_HTTP_LANE !== '0';
const ONLY_HTTP = process.env.SACK_FUZZ_ONLY === 'http';

test.describe(`mutated HTTP requests (${LANE ? 'HTTP lane' : 'engine tasks only'})`, () => {
  test.it(`${CASES} cases, seed ${SEED}: well-formed answers or a close, within handshakeTimeout, nothing left over`, async (t) => {
    const server = makeServer(t);
    const port = server.address().port;
    await stillServes(server);
    const fds = fdCount();
    const seen = new Map();
    await pool(CASES, async (i) => {
      const r = rng(SEED + i * 7919);
      const seed = HTTP_SEEDS[r.below(HTTP_SEEDS.length)];
      const input = r.below(10) === 0 ? seed.wire : mutate(r, seed.wire, 1 + r.below(3));
      const label = `seed ${SEED} case ${i}: ${show(input)}`;
      // An upgraded connection has no timeout: the client's FIN ends it.
      const halfClose = r.below(2) === 0 || seed.answers.includes(101);
      const got = await withTimeout(
        exchange(port, split(r, input), { halfClose, ms: TIMEOUT * 3 + 500 }),
        10000,
        label,
      ).catch((e) => {
        throw new Error(`${label}: ${e.message}`);
      });
      const responses = checkResponses(got, label);
      for (const { status, frames } of responses) {
        assert.notEqual(status, 500, `${label}: a 500 without a throwing handler`);
        seen.set(status, (seen.get(status) || 0) + 1);
        if (frames) serverFrames(frames, label, false);
      }
      if (input === seed.wire) {
        // Unchanged, however cut and whether half-closed: every answer,
        // in order, nothing lost.
        const finals = responses.filter((res) => res.status !== 100);
        const want = seed.answers.map((a) => (a === 101 ? '101 ' : `200 ${a}`));
        assert.deepEqual(finals.map((res) => `${res.status} ${res.body}`), want, label);
      }
    });
    t.diagnostic(`statuses: ${JSON.stringify(Object.fromEntries([...seen].sort((a, b) => a[0] - b[0])))}`);
    // The mix is real: valid requests were served and bad ones refused.
    assert.ok(seen.get(200) > CASES / 10, 'some requests served');
    assert.ok(seen.get(400) > CASES / 10, 'some requests refused');
    await stillServes(server);
    await noLeaks(server, fds);
  });

  if (LANE && !ONLY_HTTP) {
    test.it('the same cases with SACK_HTTP_LANE=0 (a child process)', async () => {
      // Without the runner's NODE_TEST_CONTEXT the child reports as text.
      const { NODE_TEST_CONTEXT, ...env } = process.env;
      const child = spawnSync(process.execPath, [__filename], {
        env: { ...env, SACK_HTTP_LANE: '0', SACK_FUZZ_ONLY: 'http' },
        encoding: 'utf8',
        timeout: 120000,
      });
      const out = `${child.stdout}${child.stderr}`;
      assert.equal(child.status, 0, out.slice(-4000));
      assert.match(out, /engine tasks only/);
      assert.match(out, /# fail 0/);
    });
  }
});

/** A handshake on a raw socket; resolves with the socket and what followed the 101. */
function upgraded(port, headers) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: HOST, port });
    let buf = Buffer.alloc(0);
    socket.on('error', reject);
    const onData = (d) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      const head = buf.subarray(0, end).toString('latin1');
      assert.match(head, /^HTTP\/1\.1 101 /);
      resolve({ socket, head, rest: buf.subarray(end + 4) });
    };
    socket.on('data', onData);
    socket.write(upgradeRequest('/', headers));
  });
}

const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);
/** A message payload as a client compresses it (RFC 7692 §7.2.1), no context kept. */
const deflated = (data) => zlib.deflateRawSync(Buffer.from(data), { finishFlush: zlib.constants.Z_SYNC_FLUSH }).subarray(0, -4);
/** A server message payload inflated (§7.2.2); the server keeps no context (serverNoContextTakeover). */
const inflated = (payload) => zlib.inflateRawSync(Buffer.concat([payload, TAIL]), { finishFlush: zlib.constants.Z_SYNC_FLUSH });

const m = (op, payload, opts) => encodeFrame(op, Buffer.from(payload), { maskKey: Buffer.from([1, 2, 3, 4]), ...opts });
const RSV1 = { rsv: 4 };
// Valid frames, and what the echo server sends back for them (opcode and
// payload of each frame, or the close code).
const WS_SEEDS = [
  [m(1, 'hello'), [1, 'hello']],
  [Buffer.concat([m(1, 'hel', { fin: false }), m(9, 'ping'), m(0, 'lo')]), [10, 'ping'], [1, 'hello']],
  [Buffer.concat([m(2, Buffer.alloc(200, 7)), m(10, 'pong')]), [2, '\x07'.repeat(200)]],
  [Buffer.concat([m(1, 'κόσμε'), m(8, closePayload(1000, 'bye'))]), [1, 'κόσμε'], 1000],
  [Buffer.concat([m(2, 'a', { fin: false }), m(0, 'b', { fin: false }), m(0, 'c')]), [2, 'abc']],
  // At maxPayload (4096), whole and in fragments.
  [m(2, Buffer.alloc(4096, 9)), [2, '\x09'.repeat(4096)]],
  [Buffer.concat([m(1, 'x'.repeat(4000), { fin: false }), m(0, 'y'.repeat(96))]), [1, 'x'.repeat(4000) + 'y'.repeat(96)]],
].map(([wire, ...answers]) => ({ wire, answers }));

// The same with permessage-deflate: compressed messages (RSV1 on the first
// frame only), fragmented, mixed with plain ones, and at maxPayload once
// inflated (a 2-byte-per-KiB "bomb" over it). Echoes of 1024 bytes or more
// come back compressed.
const text2k = 'compress me, '.repeat(160); // 2080 bytes
const DEFLATE_SEEDS = [
  [m(1, deflated('hello hello hello'), RSV1), [1, 'hello hello hello']],
  [Buffer.concat([m(1, deflated(text2k), RSV1), m(2, 'plain')]), [1, text2k], [2, 'plain']],
  [
    (() => {
      const z = deflated('fragmented and compressed');
      return Buffer.concat([m(1, z.subarray(0, 5), { fin: false, rsv: 4 }), m(9, 'p'), m(0, z.subarray(5))]);
    })(),
    [10, 'p'],
    [1, 'fragmented and compressed'],
  ],
  [m(2, deflated(Buffer.alloc(4096, 1)), RSV1), [2, '\x01'.repeat(4096)]],
  [Buffer.concat([m(2, deflated(Buffer.alloc(100000)), RSV1)]), 1009],
].map(([wire, ...answers]) => ({ wire, answers }));

/** The server's frames in `buf`, checked; `cut`: the rest, when incomplete. */
function serverFrames(buf, label, deflate) {
  const frames = [];
  let at = 0;
  while (at < buf.length) {
    const f = decodeFrame(buf.subarray(at));
    if (!f) return { frames, cut: true };
    assert.equal(f.masked, false, `${label}: a masked server frame`);
    assert.equal(f.rsv & 3, 0, `${label}: RSV2/RSV3`);
    if (f.rsv) {
      assert.ok(deflate && f.fin && (f.opcode === 1 || f.opcode === 2), `${label}: RSV1 where it may not be`);
      f.payload = inflated(f.payload);
    }
    assert.ok([0, 1, 2, 8, 9, 10].includes(f.opcode), `${label}: opcode ${f.opcode}`);
    assert.ok(!frames.some((g) => g.opcode === 8), `${label}: a frame after the close frame`);
    if (f.opcode === 8) {
      // Empty, or a code that may go on the wire (RFC 6455 §7.4): the
      // server's own, or the client's echoed (§5.5.1).
      assert.notEqual(f.payload.length, 1, `${label}: a one-byte close payload`);
      f.code = f.payload.length ? f.code : 1005;
      const wire = (c) => (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
      assert.ok(f.code === 1005 || wire(f.code), `${label}: close code ${f.code}`);
    }
    frames.push(f);
    at += f.length;
  }
  return { frames, cut: false };
}

/** `CASES` mutated inputs from `seeds`, each on its own connection. */
async function mutatedFrames(t, { seeds, options, headers, deflate, salt }) {
  const server = makeServer(t, options);
  const port = server.address().port;
  await stillServes(server);
  const fds = fdCount();
  const codes = new Map();
  await pool(CASES, async (i) => {
    const r = rng(SEED ^ (i * 104729) ^ salt);
    const seed = seeds[r.below(seeds.length)];
    const intact = r.below(10) === 0;
    const input = intact ? seed.wire : mutate(r, seed.wire, 1 + r.below(3));
    const label = `seed ${SEED} case ${i}: ${input.toString('hex')}`;
    const { socket, head, rest } = await withTimeout(upgraded(port, headers), 3000, `${label}: handshake`);
    if (deflate) assert.match(head, /\r\nSec-WebSocket-Extensions: permessage-deflate/i);
    let buf = rest;
    let ended = false;
    socket.on('data', (d) => (buf = Buffer.concat([buf, d])));
    const closed = new Promise((resolve) => socket.on('close', resolve));
    socket.on('end', () => (ended = true));
    for (const p of split(r, input)) {
      socket.write(p);
      await delay(1);
    }
    // A FIN after the frames: an intact seed that ends with a close frame
    // must still get all its answers (the client may read on).
    const closes = seed.answers.some((a) => typeof a === 'number');
    if (intact ? closes && r.below(2) === 0 : r.below(3) === 0) socket.end();
    const frames = () => serverFrames(buf, label, deflate).frames;
    if (intact) {
      await waitUntil(() => frames().length >= seed.answers.length, 3000, `${label}: the echo`);
    } else {
      // A violation closes at once; otherwise the connection may wait
      // for the rest of a frame, and the client goes after a while.
      await Promise.race([closed, delay(150)]);
    }
    // After its close frame the server closes the TCP connection itself.
    if (frames().some((f) => f.opcode === 8)) {
      await withTimeout(closed, 3000, `${label}: the server's TCP close after its close frame`);
    }
    socket.destroy();
    await closed;
    const got = serverFrames(buf, label, deflate);
    assert.ok(!(got.cut && ended), `${label}: an incomplete frame before the server's FIN`);
    const close = got.frames.find((f) => f.opcode === 8);
    if (close) {
      assert.ok(ended, `${label}: a close frame, then a reset instead of a FIN`);
      codes.set(close.code, (codes.get(close.code) || 0) + 1);
    }
    if (intact) {
      const seen = got.frames.map((f) => (f.opcode === 8 ? f.code : [f.opcode, f.payload.toString('latin1')]));
      const want = seed.answers.map((a) => (typeof a === 'number' ? a : [a[0], Buffer.from(a[1]).toString('latin1')]));
      assert.deepEqual(seen, want, label);
    }
  });
  t.diagnostic(`close codes: ${JSON.stringify(Object.fromEntries(codes))}`);
  await stillServes(server);
  await noLeaks(server, fds);
  return codes;
}

test.describe('mutated WebSocket frames', { skip: ONLY_HTTP }, () => {
  test.it(`${CASES} cases, seed ${SEED}: echoes or a valid close, and no connection outlives its client`, async (t) => {
    const codes = await mutatedFrames(t, { seeds: WS_SEEDS, salt: 0 });
    assert.ok(codes.get(1002) > CASES / 20, 'some protocol errors were answered with 1002');
  });

  test.it(`permessage-deflate, ${CASES} cases: inflated echoes, or a valid close (1007 for bad data, 1009 past maxPayload)`, async (t) => {
    const codes = await mutatedFrames(t, {
      seeds: DEFLATE_SEEDS,
      options: { perMessageDeflate: { serverNoContextTakeover: true } },
      headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' },
      deflate: true,
      salt: 0x5a5a5a,
    });
    assert.ok(codes.get(1007) > CASES / 20, 'some bad compressed data was answered with 1007');
    assert.ok(codes.get(1009) > CASES / 50, 'some messages were too big once inflated');
  });
});
