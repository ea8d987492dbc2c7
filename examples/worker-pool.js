// A listener on the main thread that spreads connections over a pool of
// worker threads, one per available CPU. Each worker serves an echo.
//
//   node examples/worker-pool.js            (PORT=8080, WORKERS=os.availableParallelism())
//
// Every worker registers for the destination "echo" once per connection it
// is ready to take (Thread.accept is one-shot); the main thread posts each
// new connection during its accept event, which accepts it on the worker's
// behalf. With no worker ready, the main thread serves the connection itself.
'use strict';
const os = require('node:os');
const { Worker, isMainThread, threadId, parentPort } = require('node:worker_threads');
const sack = require('..');

const DESTINATION = 'echo';

if (isMainThread) {
  const count = Number(process.env.WORKERS || os.availableParallelism());
  const server = sack.Websocket.Server({ port: Number(process.env.PORT || 8080) });
  const workers = [];
  for (let i = 0; i < count; i++) workers.push(new Worker(__filename));

  server.onaccept = function (ws) {
    if (!ws.post(DESTINATION)) server.accept(); // no worker ready: keep it here
  };
  server.onconnect = function (ws) {
    ws.onmessage = (msg) => ws.send(msg);
  };

  console.log(`listening on port ${server.address().port} with ${count} workers`);
  process.on('SIGINT', () => {
    server.close();
    for (const w of workers) w.terminate();
  });
} else {
  let served = 0;
  const ready = () =>
    sack.Websocket.Thread.accept(DESTINATION, (destination, ws) => {
      served++;
      ready(); // take the next one too
      ws.onmessage = (msg) => ws.send(msg);
      ws.onclose = () => parentPort.postMessage({ threadId, served });
    });
  ready();
}
