'use strict';
// Echo server on sack for bench/run.js: PORT (0 = any free port), prints
// "LISTENING <port>" once bound to 127.0.0.1. Text comes back as text
// (string), binary as binary (ArrayBuffer).
// SACK_PACKAGE: another checkout to measure (bench/run.js's `sack-base`).
const sack = require(process.env.SACK_PACKAGE || '../..');

// DEFLATE=1: permessage-deflate with sack's defaults (bench/run.js's deflate rows).
const deflate = process.env.DEFLATE === '1' ? { perMessageDeflate: true } : {};
const server = sack.Websocket.Server({ address: '127.0.0.1', port: Number(process.env.PORT || 0), ...deflate });
server.onconnect = (ws) => {
  ws.onmessage = (msg) => ws.send(msg);
};
console.log(`LISTENING ${server.address().port}`);

// Started by bench/run.js, which holds our stdin open: exit when it goes.
if (process.env.BENCH_STDIN_GUARD === '1') {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
