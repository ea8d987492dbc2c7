#!/usr/bin/env node
'use strict';
// The sack side of `npm run bench:http`: every plain HTTP request is answered
// "hello". Listens on 127.0.0.1:$PORT (0 = any free port) and prints
// `LISTENING <port>` on stdout once it accepts connections.

// SACK_PACKAGE: another checkout to measure (BENCH_BASE in run.js).
const sack = require(process.env.SACK_PACKAGE || '../..');

const port = Number(process.env.PORT || 0);
const server = sack.Websocket.Server({ address: '127.0.0.1', port });
const BODY = 'hello';

server.onrequest = (req, res) => {
  res.setHeader('Content-Type', 'text/plain');
  res.end(BODY);
};

process.stdout.write(`LISTENING ${server.address().port}\n`);

function stop() {
  server.onclose = () => process.exit(0);
  server.close();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
