#!/usr/bin/env node
'use strict';
// A reference for `npm run bench:http`: uWebSockets.js (its HTTP server is
// C++; only the handler is JS) answering every request "hello" like
// sack-hello.js. UWS_ADDON is the addon's path (bench/run.js installs it
// into bench/.deps); listens on 127.0.0.1:$PORT (0 = any free port) and
// prints `LISTENING <port>`.

const path = require('path');

const addon = process.env.UWS_ADDON;
if (!addon) {
  console.error('UWS_ADDON is not set (the path of a uws_<platform>_<arch>_<abi>.node)');
  process.exit(2);
}
const uWS = require(path.resolve(addon));
const port = Number(process.env.PORT || 0);
let listening = null;

uWS
  .App()
  .any('/*', (res) => {
    res.writeHeader('Content-Type', 'text/plain').end('hello');
  })
  .listen('127.0.0.1', port, (token) => {
    if (!token) {
      console.error('uWS: listen failed');
      process.exit(1);
    }
    listening = token;
    process.stdout.write(`LISTENING ${uWS.us_socket_local_port(token)}\n`);
  });

function stop() {
  if (listening) uWS.us_listen_socket_close(listening);
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
