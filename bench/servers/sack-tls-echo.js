'use strict';
// The echo of sack-echo.js over TLS, for bench/run.js's TLS rows: the
// certificate and key from BENCH_TLS_CERT and BENCH_TLS_KEY (bench/run.js
// makes them with openssl). PORT (0 = any free port); prints
// "LISTENING <port>".
const fs = require('node:fs');
const sack = require(process.env.SACK_PACKAGE || '../..');

const server = sack.Websocket.Server({
  address: '127.0.0.1',
  port: Number(process.env.PORT || 0),
  cert: fs.readFileSync(process.env.BENCH_TLS_CERT),
  key: fs.readFileSync(process.env.BENCH_TLS_KEY),
});
server.onconnect = (ws) => {
  ws.onmessage = (msg) => ws.send(msg);
};
console.log(`LISTENING ${server.address().port}`);

if (process.env.BENCH_STDIN_GUARD === '1') {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
