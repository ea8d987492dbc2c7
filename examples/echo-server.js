// The demo started by `npm start`: an echo server with a tiny page.
//   PORT=9000 npm start   (default 8080)
'use strict';
const sack = require('..');

const port = Number(process.env.PORT || 8080);
const server = sack.Websocket.Server({ port });

server.onaccept = function (ws) {
  // Accept every client; pick "echo" when the client offers it.
  server.accept(ws.protocols.includes('echo') ? 'echo' : undefined);
};

server.onconnect = function (ws) {
  console.log(`connected: ${ws.connection.remoteAddress}:${ws.connection.remotePort} ${ws.url}`);
  ws.onmessage = (msg) => ws.send(msg);
  ws.onclose = (code, reason) => console.log(`closed: ${code} ${reason}`);
};

const { address, port: bound } = server.address();
console.log(`sack echo server listening on ws://${address.includes(':') ? `[${address}]` : address}:${bound}/`);
console.log('Try it: node -e "const W=require(\'ws\');const c=new W(\'ws://127.0.0.1:' + bound + '\');c.on(\'open\',()=>c.send(\'hi\'));c.on(\'message\',m=>{console.log(String(m));c.close()})"');
process.on('SIGINT', () => {
  server.close();
  process.exit(0);
});
