'use strict';
// The echo of sack-echo.js with sack attached to an Express 5 app on Node's
// http.Server (noServer + handleUpgrade): Express serves HTTP, and every
// upgrade is handed to sack's engine, which serves the connection from then
// on. For bench/run.js: PORT (0 = any free port), prints "LISTENING <port>".
const http = require('node:http');
const express = require('express');
const sack = require('../..');

const app = express();
app.get('/', (req, res) => res.send('ok'));
const server = http.createServer(app);
const wss = sack.Websocket.Server({ noServer: true });
wss.onconnect = (ws) => {
  ws.onmessage = (msg) => ws.send(msg);
};
server.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head));
server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(`LISTENING ${server.address().port}`);
});

// Started by bench/run.js, which holds our stdin open: exit when it goes.
if (process.env.BENCH_STDIN_GUARD === '1') {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
