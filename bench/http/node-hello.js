#!/usr/bin/env node
'use strict';
// The Node.js side of `npm run bench:http`: `http.createServer` answering
// every request "hello", the same way sack-hello.js does. Listens on
// 127.0.0.1:$PORT (0 = any free port) and prints `LISTENING <port>` on stdout.

const http = require('http');

const port = Number(process.env.PORT || 0);
const BODY = 'hello';

const server = http.createServer((req, res) => {
  res.setHeader('Content-Type', 'text/plain');
  res.end(BODY);
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`LISTENING ${server.address().port}\n`);
});

function stop() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
