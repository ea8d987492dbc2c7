'use strict';
// Fan-out server on Bun.serve for bench/run.js's fanout-10k test (protocol
// and pacing: fanout-common.js): ws.subscribe(topic) in open and
// server.publish(topic, msg). Run with the bun binary. PORT (0 = any free
// port); prints "LISTENING <port>".
const { fanout, stdinGuard } = require('./fanout-common.js');

let server = null;
const f = fanout({
  publish: (t, topic, msg) => {
    server.publish(topic, msg);
    return 0;
  },
  buffered: (ws) => ws.getBufferedAmount(),
  send: (ws, text) => ws.send(text),
});

server = Bun.serve({
  hostname: '127.0.0.1',
  port: Number(process.env.PORT || 0),
  fetch(req, srv) {
    const url = new URL(req.url).pathname;
    if (srv.upgrade(req, { data: { url } })) return undefined;
    return new Response('WebSocket only', { status: 426 });
  },
  websocket: {
    perMessageDeflate: false,
    maxPayloadLength: 64 * 1024,
    backpressureLimit: 16 * 1024 * 1024,
    idleTimeout: 0,
    sendPings: false,
    open(ws) {
      const url = ws.data.url;
      const topic = f.topicFor(url);
      if (topic === null) {
        ws.close(1008, 'unknown path');
        return;
      }
      if (topic === '') return;
      ws.subscribe(topic);
      f.subscribed(ws, url);
    },
    message(ws, msg) {
      if (ws.data.url === '/ctl') f.control(ws, String(msg));
    },
    close(ws) {
      const url = ws.data.url;
      if (url !== '/ctl' && f.topicFor(url) !== null) f.unsubscribed(ws, url);
    },
  },
});
if (typeof server.publish !== 'function') {
  console.log('SKIP this Bun has no topics (server.publish)');
  process.exit(3);
}
console.log(`LISTENING ${server.port}`);
stdinGuard();
