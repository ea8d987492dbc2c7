'use strict';
// Fan-out server on the `ws` package for bench/run.js's fanout-10k test
// (protocol and pacing: fanout-common.js): a Set of connections per topic
// and ws.send() to each, the message turned into a Buffer once per publish
// (as ws's broadcast example sends one `data` to every client). PORT (0 =
// any free port); prints "LISTENING <port>".
const { WebSocketServer } = require('ws');
const { fanout, stdinGuard } = require('./fanout-common.js');

const sets = new Map(); // topic → Set of connections
const f = fanout({
  publish: (t, topic, msg) => {
    const set = sets.get(topic);
    if (set !== undefined) {
      const data = Buffer.from(msg);
      for (const ws of set) ws.send(data, { binary: false });
    }
    return 0;
  },
  buffered: (ws) => ws.bufferedAmount,
  send: (ws, text) => ws.send(text),
});

const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(process.env.PORT || 0), perMessageDeflate: false, clientTracking: false });
wss.on('connection', (ws, req) => {
  const url = req.url;
  const topic = f.topicFor(url);
  if (topic === null) {
    ws.close(1008, 'unknown path');
    return;
  }
  if (topic === '') {
    ws.on('message', (data) => f.control(ws, data.toString()));
    return;
  }
  let set = sets.get(topic);
  if (set === undefined) sets.set(topic, (set = new Set()));
  set.add(ws);
  f.subscribed(ws, url);
  ws.on('close', () => {
    set.delete(ws);
    f.unsubscribed(ws, url);
  });
});
wss.on('listening', () => console.log(`LISTENING ${wss.address().port}`));
stdinGuard();
