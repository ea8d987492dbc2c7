'use strict';
// Fan-out server on uWebSockets.js for bench/run.js's fanout-10k test
// (protocol and pacing: fanout-common.js): ws.subscribe(topic) in open and
// app.publish(topic, msg) (uWS's topic tree). UWS_ADDON: the addon's path
// (see uws-echo.js). PORT (0 = any free port); prints "LISTENING <port>".
const path = require('path');
const { fanout, stdinGuard } = require('./fanout-common.js');

const addon = process.env.UWS_ADDON;
if (!addon) {
  console.error('UWS_ADDON is not set (the path of a uws_<platform>_<arch>_<abi>.node)');
  process.exit(2);
}
const uWS = require(path.resolve(addon));
const app = uWS.App();
if (typeof app.publish !== 'function') {
  console.log('SKIP this uWebSockets.js has no topics (app.publish)');
  process.exit(3);
}

const f = fanout({
  publish: (t, topic, msg) => {
    app.publish(topic, msg, false);
    return 0;
  },
  buffered: (ws) => ws.getBufferedAmount(),
  send: (ws, text) => ws.send(text, false),
});

app
  .ws('/*', {
    compression: uWS.DISABLED,
    maxPayloadLength: 64 * 1024,
    maxBackpressure: 16 * 1024 * 1024,
    idleTimeout: 0,
    upgrade(res, req, context) {
      res.upgrade(
        { url: req.getUrl() },
        req.getHeader('sec-websocket-key'),
        req.getHeader('sec-websocket-protocol'),
        req.getHeader('sec-websocket-extensions'),
        context,
      );
    },
    open(ws) {
      const url = ws.getUserData().url;
      const topic = f.topicFor(url);
      if (topic === null) {
        ws.end(1008, 'unknown path');
        return;
      }
      if (topic === '') return;
      ws.subscribe(topic);
      f.subscribed(ws, url);
    },
    message(ws, msg) {
      if (ws.getUserData().url === '/ctl') f.control(ws, Buffer.from(msg).toString());
    },
    close(ws) {
      // The connection's subscriptions go with it; only the count is ours.
      const url = ws.getUserData().url;
      if (url !== '/ctl' && f.topicFor(url) !== null) f.unsubscribed(ws, url);
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
stdinGuard();
