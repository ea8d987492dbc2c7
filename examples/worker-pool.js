// A listener on the main thread that spreads connections over a pool of
// worker threads, one per available CPU. Each worker serves an echo.
//
//   node examples/worker-pool.js            (PORT=8080, WORKERS=os.availableParallelism())
//
// Every worker registers for the destination "echo" once, as a standing
// receiver ({ persistent: true }): the workers take turns, so a burst of
// connections is spread over all of them. The main thread posts each new
// connection during its accept event, which accepts it on the worker's
// behalf, with the data its accept handler worked out (here the path).
// On Ctrl-C the workers cancel their registration and leave by themselves.
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
    // No worker registered (yet): keep it here.
    if (!ws.post(DESTINATION, { room: ws.url })) server.accept();
  };
  server.onconnect = function (ws) {
    ws.onmessage = (msg) => ws.send(msg);
  };

  console.log(`listening on port ${server.address().port} with ${count} workers`);
  process.on('SIGINT', () => {
    server.close();
    for (const w of workers) w.postMessage('stop');
  });
} else {
  let served = 0;
  const receiver = sack.Websocket.Thread.accept(
    DESTINATION,
    (destination, ws, data) => {
      served++;
      ws.onmessage = (msg) => ws.send(msg);
      ws.onclose = () => parentPort.postMessage({ threadId, served, room: data.room });
    },
    { persistent: true },
  );
  parentPort.on('message', (m) => {
    if (m === 'stop') {
      receiver.cancel();
      parentPort.close();
    }
  });
}
