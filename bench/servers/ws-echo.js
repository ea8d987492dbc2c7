'use strict';
// Echo server on the `ws` package (as installed: no bufferutil or
// utf-8-validate addons), for bench/run.js. PORT (0 = any free port);
// prints "LISTENING <port>"; the message type is kept.
const { WebSocketServer } = require('ws');

// DEFLATE=1: permessage-deflate with ws's defaults (bench/run.js's deflate rows).
const perMessageDeflate = process.env.DEFLATE === '1';
const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(process.env.PORT || 0), perMessageDeflate });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
wss.on('listening', () => console.log(`LISTENING ${wss.address().port}`));

// Started by bench/run.js, which holds our stdin open: exit when it goes.
if (process.env.BENCH_STDIN_GUARD === '1') {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
