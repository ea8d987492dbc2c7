// The echo server the Autobahn fuzzing client tests: every message back with
// its type. Prints "LISTENING <port>" once bound (PORT=0: any free port).
'use strict';
const sack = require('..');

// permessage-deflate on unless SACK_DEFLATE=0: clients that do not offer it
// (cases 1–11) get plain connections, the deflate cases (12, 13) use it.
const deflate = process.env.SACK_DEFLATE !== '0';
const server = sack.Websocket.Server({
  address: '127.0.0.1',
  port: Number(process.env.PORT || 0),
  ...(deflate ? { perMessageDeflate: true } : {}),
});
server.onconnect = function (ws) {
  ws.onmessage = function (msg) {
    ws.send(msg);
  };
};
process.stdout.write(`LISTENING ${server.address().port}\n`);
process.on('SIGTERM', () => server.close());
