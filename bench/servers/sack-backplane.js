'use strict';
// sack with a Redis backplane, for bench/run.js's backplane-latency test.
// The same script runs as the publishing process (A) and the subscribers'
// process (B). BACKPLANE_URL (redis://127.0.0.1:PORT), BACKPLANE_MODE
// (pubsub | history), BACKPLANE_PREFIX. PORT (0 = any free port); prints
// "LISTENING <port>" once the backplane is up.
//
// - a client connecting to /sub/<n> is subscribed to topic `t<n>`;
// - /ctl is the control connection: `go <rate> <size> <n>` answers
//   `started` and publishes <size>-byte text messages to `t<n>` at <rate>
//   per second: a 1 ms timer, each tick publishing what is due by then
//   (at most 100 ms worth: a stalled process does not burst without bound);
//   `stop` ends it and answers `done <published>`.
// A message: `TTTT:SSSSSSSSSSSS:NNNNNNNNNNNNNNNNNNNN:` (topic, sequence
// number, and process.hrtime.bigint() — CLOCK_MONOTONIC, ns — read just
// before its publish call; zero-padded decimal) then `x` up to <size> bytes.
const sack = require(process.env.SACK_PACKAGE || '../..');
const { stdinGuard } = require('./fanout-common.js');

const MAX_SECONDS = Number(process.env.FANOUT_MAX_SECONDS || 300);
const url = process.env.BACKPLANE_URL;
if (!url) {
  console.error('BACKPLANE_URL is not set');
  process.exit(2);
}
const backplane = { url, mode: process.env.BACKPLANE_MODE || 'pubsub' };
if (process.env.BACKPLANE_PREFIX) backplane.prefix = process.env.BACKPLANE_PREFIX;
let server;
try {
  server = sack.Websocket.Server({ address: '127.0.0.1', port: Number(process.env.PORT || 0), backplane });
} catch (e) {
  if (e.code === 'ERR_SACK_BACKPLANE_UNAVAILABLE') {
    console.log(`SKIP ${e.message}`);
    process.exit(3);
  }
  throw e;
}

let running = false;
let published = 0;

function startPublishing(ws, rate, size, n) {
  const topic = `t${n}`;
  const prefix = `${String(n).padStart(4, '0')}:`;
  const pad = ':' + 'x'.repeat(Math.max(0, size - 39));
  const t0 = process.hrtime.bigint();
  const deadline = Date.now() + MAX_SECONDS * 1000;
  const cap = Math.max(1, Math.ceil(rate / 10));
  const perNs = BigInt(rate);
  running = true;
  const tick = () => {
    if (!running) return;
    if (Date.now() > deadline) {
      running = false;
      return;
    }
    const due = Number(((process.hrtime.bigint() - t0) * perNs) / 1000000000n);
    const n = Math.min(due - published, cap);
    for (let i = 0; i < n; i++) {
      const msg = prefix + String(published).padStart(12, '0') + ':' + String(process.hrtime.bigint()).padStart(20, '0') + pad;
      server.publish(topic, msg);
      published++;
    }
    setTimeout(tick, 1);
  };
  tick();
}

server.onconnect = (ws) => {
  const m = /^\/sub\/(\d+)$/.exec(ws.url);
  if (m) {
    ws.subscribe(`t${m[1]}`);
    return;
  }
  if (ws.url !== '/ctl') {
    ws.close(1008, 'unknown path');
    return;
  }
  ws.onmessage = (text) => {
    const w = String(text).trim().split(/\s+/);
    if (w[0] === 'go' && !running) {
      const rate = Number(w[1]);
      const size = Number(w[2]);
      const n = Number(w[3] || 0);
      if (!(rate >= 1 && rate <= 10000000 && size >= 39 && size <= 65535 && n >= 0 && n <= 9999)) {
        ws.send('error bad go');
        return;
      }
      ws.send('started');
      startPublishing(ws, rate, size, n);
    } else if (w[0] === 'stop') {
      running = false;
      ws.send(`done ${published}`);
    }
  };
};

// LISTENING once the backplane is up (at most 10 s).
let listening = false;
const giveUp = setTimeout(() => {
  console.error(`the backplane (${url}) did not come up within 10 s`);
  process.exit(1);
}, 10000);
server.on('backplane', (state, info) => {
  if (state === 'up' && !listening) {
    listening = true;
    clearTimeout(giveUp);
    console.log(`LISTENING ${server.address().port}`);
  } else if (state !== 'up') {
    console.error(`backplane ${state}: ${JSON.stringify(info)}`);
  }
});
stdinGuard();
