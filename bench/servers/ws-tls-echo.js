'use strict';
// The echo of ws-echo.js over TLS: `ws` on Node's `https.Server`, the way
// Node programs serve wss:// (every handshake on the JS thread). Same
// certificate as sack-tls-echo.js.
const fs = require('node:fs');
const https = require('node:https');
const { WebSocketServer } = require('ws');

const server = https.createServer({ cert: fs.readFileSync(process.env.BENCH_TLS_CERT), key: fs.readFileSync(process.env.BENCH_TLS_KEY) });
const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => console.log(`LISTENING ${server.address().port}`));

if (process.env.BENCH_STDIN_GUARD === '1') {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
