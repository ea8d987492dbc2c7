'use strict';
// Echo server on Bun.serve, run with the bun binary (bench/run.js installs
// the `bun` npm package into bench/.deps). PORT (0 = any free port); prints
// "LISTENING <port>"; text comes back as text, binary as binary.
const deflate = process.env.DEFLATE === '1';
const server = Bun.serve({
  hostname: '127.0.0.1',
  port: Number(process.env.PORT || 0),
  fetch(req, srv) {
    if (srv.upgrade(req)) return undefined;
    return new Response('WebSocket only', { status: 426 });
  },
  websocket: {
    // DEFLATE=1: permessage-deflate with Bun's defaults (bench/run.js's deflate rows).
    perMessageDeflate: deflate,
    maxPayloadLength: 100 * 1024 * 1024,
    backpressureLimit: 16 * 1024 * 1024,
    message(ws, msg) {
      // Bun compresses a send only when asked to (its second argument).
      ws.send(msg, deflate);
    },
  },
});
console.log(`LISTENING ${server.port}`);

// Started by bench/run.js, which holds our stdin open: exit when it goes.
if (process.env.BENCH_STDIN_GUARD === '1') {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
