'use strict';
// Throwaway echo server used only to validate scripts/autobahn.js before the
// sack server exists. It uses the npm `ws` package installed OUTSIDE the repo:
//
//   npm install --prefix /tmp/ab-ws ws@8
//   node scripts/autobahn.js --server scripts/autobahn-echo-ws.js --cases '1.*,2.*'
//
// (set AB_WS_DIR to use another install prefix). Listens on 127.0.0.1:$PORT
// (0 = ephemeral), echoes every message with the same type and prints
// `LISTENING <port>` once ready. AB_WS_DEFLATE=1 enables permessage-deflate
// (for the 12.*/13.* cases).

const path = require('path');

const wsDir = process.env.AB_WS_DIR || '/tmp/ab-ws';
let WebSocketServer;
try {
  ({ WebSocketServer } = require(path.join(wsDir, 'node_modules', 'ws')));
} catch (err) {
  console.error(`cannot load ws from ${wsDir} (run: npm install --prefix ${wsDir} ws@8): ${err.message}`);
  process.exit(2);
}

const port = Number(process.env.PORT || 0);
const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  perMessageDeflate: process.env.AB_WS_DEFLATE === '1',
  maxPayload: 64 * 1024 * 1024,
  // ws >= 8.18 closes with 1008 after 16384 fragments (a DoS guard), which
  // fails cases 9.3.x/9.4.x (4 MiB sent in 64-byte fragments); lift it here.
  maxFragments: 0,
});

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    ws.send(data, { binary: isBinary });
  });
  ws.on('error', () => {}); // protocol errors: ws closes the connection itself
});

wss.on('listening', () => {
  process.stdout.write(`LISTENING ${wss.address().port}\n`);
});

wss.on('error', (err) => {
  console.error(`echo server error: ${err.message}`);
  process.exit(1);
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => process.exit(0));
}
