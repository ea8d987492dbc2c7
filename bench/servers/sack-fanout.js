'use strict';
// Fan-out server on sack for bench/run.js's fanout-10k test (protocol and
// pacing: fanout-common.js). PORT (0 = any free port); prints
// "LISTENING <port>".
// FANOUT_MODE=engine (default): topics in the engine, ws.subscribe(topic)
//   and server.publish(topic, msg) (one call per message, whatever the
//   subscriber count);
// FANOUT_MODE=jsloop: the way before topics, a Set of connections per
//   topic in JS and ws.send(msg) to each.
// SACK_PACKAGE: another checkout to measure (bench/run.js's `sack-base`).
const sack = require(process.env.SACK_PACKAGE || '../..');
const { fanout, stdinGuard } = require('./fanout-common.js');

const mode = process.env.FANOUT_MODE || 'engine';
if (mode !== 'engine' && mode !== 'jsloop') {
  console.error(`FANOUT_MODE=${mode}: expected engine or jsloop`);
  process.exit(2);
}
const server = sack.Websocket.Server({ address: '127.0.0.1', port: Number(process.env.PORT || 0) });
if (mode === 'engine' && typeof server.publish !== 'function') {
  console.log('SKIP this sack has no topics (server.publish)');
  process.exit(3);
}

const sets = new Map(); // jsloop: topic → Set of connections
const f = fanout({
  publish:
    mode === 'engine'
      ? (t, topic, msg) => server.publish(topic, msg).dropped
      : (t, topic, msg) => {
          const set = sets.get(topic);
          if (set !== undefined) for (const ws of set) ws.send(msg);
          return 0;
        },
  buffered: (ws) => ws.bufferedAmount,
  send: (ws, text) => ws.send(text),
});

server.onconnect = (ws) => {
  const url = ws.url;
  const topic = f.topicFor(url);
  if (topic === null) {
    ws.close(1008, 'unknown path');
    return;
  }
  if (topic === '') {
    ws.onmessage = (msg) => f.control(ws, msg);
    return;
  }
  if (mode === 'engine') ws.subscribe(topic);
  else {
    let set = sets.get(topic);
    if (set === undefined) sets.set(topic, (set = new Set()));
    set.add(ws);
  }
  f.subscribed(ws, url);
  ws.onclose = () => {
    if (mode === 'jsloop') sets.get(topic).delete(ws);
    f.unsubscribed(ws, url);
  };
};
console.log(`LISTENING ${server.address().port}`);
stdinGuard();
