// sack echo served by worker threads: the main thread listens and posts each
// connection (during accept) to one of SACK_WORKERS workers, round robin
// through Thread.accept registrations. Prints "LISTENING <port>".
'use strict';
const { Worker, isMainThread, parentPort } = require('node:worker_threads');
const path = require('node:path');
const sack = require(path.join(__dirname, '..', '..'));

if (isMainThread) {
  const count = Number(process.env.SACK_WORKERS || 1);
  let ready = 0;
  const server = sack.Websocket.Server({ address: '127.0.0.1', port: Number(process.env.PORT || 0) });
  server.onaccept = (ws) => {
    if (!ws.post('echo')) server.accept(); // no worker ready: serve it here
  };
  server.onconnect = (ws) => {
    ws.onmessage = (m) => ws.send(m);
  };
  for (let i = 0; i < count; i++) {
    const w = new Worker(__filename);
    w.on('message', () => {
      if (++ready === count) process.stdout.write(`LISTENING ${server.address().port}\n`);
    });
  }
  // Started by bench/run.js, which holds our stdin open: exit when it goes.
  if (process.env.BENCH_STDIN_GUARD === '1') {
    process.stdin.on('end', () => process.exit(0));
    process.stdin.on('error', () => process.exit(0));
    process.stdin.resume();
  }
} else {
  // Keep several registrations outstanding so posts never find none.
  const take = () =>
    sack.Websocket.Thread.accept('echo', (d, ws) => {
      take();
      ws.onmessage = (m) => ws.send(m);
    });
  for (let i = 0; i < 64; i++) take();
  parentPort.postMessage('ready');
}
