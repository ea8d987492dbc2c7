'use strict';
// Echo server on uWebSockets.js, for bench/run.js. uWebSockets.js itself is
// published on GitHub only; bench/run.js installs a registry package that
// carries its prebuilt addon into bench/.deps and passes the addon's path
// in UWS_ADDON. PORT (0 = any free port); prints "LISTENING <port>"; the
// message type is kept.
const path = require('path');

const addon = process.env.UWS_ADDON;
if (!addon) {
  console.error('UWS_ADDON is not set (the path of a uws_<platform>_<arch>_<abi>.node)');
  process.exit(2);
}
// Load the .node directly: some repackagings fall back to a pure-JS
// emulation when the addon fails to load, which must not be measured.
const uWS = require(path.resolve(addon));

// DEFLATE=1 (bench/run.js's deflate rows): a compressor and a decompressor
// of its own per connection, so that both directions keep their window
// across messages as ws, sack and browsers do (uWS's SHARED_* ones reset
// per message and negotiate no context takeover).
const deflate = process.env.DEFLATE === '1';
let compression = uWS.DISABLED;
if (deflate) {
  if (uWS.DEDICATED_COMPRESSOR === undefined) {
    console.error('uWS: this build has no DEDICATED_COMPRESSOR; no deflate row');
    process.exit(3);
  }
  compression = uWS.DEDICATED_COMPRESSOR | (uWS.DEDICATED_DECOMPRESSOR || 0);
}

uWS
  .App()
  .ws('/*', {
    compression,
    maxPayloadLength: 100 * 1024 * 1024,
    maxBackpressure: 16 * 1024 * 1024,
    idleTimeout: 0,
    message(ws, msg, isBinary) {
      // uWS compresses a send only when asked to (its third argument).
      ws.send(msg, isBinary, deflate);
    },
  })
  .any('/*', (res) => {
    res.writeStatus('426 Upgrade Required').end('WebSocket only');
  })
  .listen('127.0.0.1', Number(process.env.PORT || 0), (token) => {
    if (!token) {
      console.error('uWS: listen failed');
      process.exit(1);
    }
    console.log(`LISTENING ${uWS.us_socket_local_port(token)}`);
  });

// Started by bench/run.js, which holds our stdin open: exit when it goes.
if (process.env.BENCH_STDIN_GUARD === '1') {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
