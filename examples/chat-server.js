// A chat room: one sack server serves the page over HTTP (`request` event)
// and the page's WebSocket (/chat) on the same port. Every message goes to
// every open tab (a topic), with a count of who is connected.
//   PORT=9000 HOST=127.0.0.1 node examples/chat-server.js
//   (PORT default 8080, 0 = any free port; HOST default: all interfaces)
// Several processes, one room: give each the same Redis,
//   REDIS_URL=redis://127.0.0.1:6379 PORT=9001 node examples/chat-server.js
//   REDIS_URL=redis://127.0.0.1:6379 PORT=9002 node examples/chat-server.js
'use strict';
const crypto = require('node:crypto');
const sack = require('..');

const MAX_CHARS = 1000;

const server = sack.Websocket.Server({
  port: Number(process.env.PORT ?? 8080),
  ...(process.env.HOST ? { address: process.env.HOST } : {}),
  // A chat line is small: refuse big frames at the engine (close 1009)
  // instead of buffering up to the 100 MiB default.
  maxPayload: 16 * 1024,
  // A tab that stops reading is dropped rather than queueing everyone's
  // messages for it without end.
  backpressureLimit: 1024 * 1024,
  // Topics across processes, when asked for.
  ...(process.env.REDIS_URL ? { backplane: { url: process.env.REDIS_URL } } : {}),
});

// ---------------------------------------------------------------- the page

const STYLE = `
  * { box-sizing: border-box; }
  body { margin: 0; height: 100vh; display: flex; flex-direction: column; max-width: 44rem; margin-inline: auto;
         font: 16px/1.45 system-ui, sans-serif; background: #f4f5f7; color: #1d2330; }
  header { display: flex; align-items: baseline; justify-content: space-between; padding: 1rem; }
  h1 { margin: 0; font-size: 1.3rem; }
  #me { margin-left: .6rem; font-size: .85rem; font-weight: normal; color: #5b6475; }
  #status { font-size: .9rem; padding: .15rem .6rem; border-radius: 1rem; background: #dfe3ea; }
  #status.online { background: #d3f2dc; color: #135c2a; }
  #log { flex: 1; overflow-y: auto; list-style: none; margin: 0; padding: 0 1rem; }
  #log li { margin: .4rem 0; padding: .45rem .7rem; border-radius: .5rem; background: #fff;
            box-shadow: 0 1px 2px #0001; white-space: pre-wrap; overflow-wrap: anywhere; }
  #log li.mine { background: #e3edff; }
  #log .meta { display: block; font-size: .78rem; color: #5b6475; }
  form { display: flex; gap: .5rem; padding: 1rem; }
  input { flex: 1; font: inherit; padding: .55rem .7rem; border: 1px solid #c4cad4; border-radius: .4rem; }
  input:focus { outline: 2px solid #2f6fec40; border-color: #2f6fec; }
  button { font: inherit; padding: .55rem 1.1rem; border: 0; border-radius: .4rem; background: #2f6fec; color: #fff; }
  button:disabled { background: #9db5e8; }
`;

// Runs in the browser. Text from the network is inserted with textContent
// only, so a message is never parsed as HTML.
function pageScript() {
  const $ = (id) => document.getElementById(id);
  const log = $('log');
  const status = $('status');
  const form = $('form');
  const input = $('text');
  const send = $('send');
  let ws = null;
  let me = '';

  function setStatus(text, online) {
    status.textContent = text;
    status.className = online ? 'online' : '';
    send.disabled = !online;
  }

  function show(msg) {
    const li = document.createElement('li');
    if (msg.from === me) li.className = 'mine';
    const meta = document.createElement('span');
    meta.className = 'meta';
    meta.textContent = `${msg.from} · ${new Date(msg.at).toLocaleTimeString()}`;
    const text = document.createElement('span');
    text.className = 'text';
    text.textContent = msg.text;
    li.append(meta, text);
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
    log.append(li);
    if (atBottom) li.scrollIntoView({ block: 'end' });
  }

  function connect() {
    setStatus('connecting…', false);
    ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/chat`);
    ws.onmessage = (e) => {
      const msg = JSON.parse(e.data);
      if (msg.type === 'hello') $('me').textContent = `you are ${(me = msg.name)}`;
      else if (msg.type === 'count') setStatus(`${msg.n} connected`, true);
      else if (msg.type === 'message') show(msg);
    };
    // The server went away (restart, Ctrl-C): try again in a while.
    ws.onclose = () => {
      setStatus('offline, retrying…', false);
      setTimeout(connect, 2000);
    };
  }

  form.onsubmit = (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text || !ws || ws.readyState !== WebSocket.OPEN) return;
    ws.send(text);
    input.value = '';
    input.focus();
  };
  connect();
}

const SCRIPT = `(${pageScript})();`;
// Only these exact inline blocks may run or style the page (and the page
// may connect only to its own origin): defence in depth against injection.
const hash = (s) => `'sha256-${crypto.createHash('sha256').update(s).digest('base64')}'`;
const CSP = `default-src 'none'; style-src ${hash(STYLE)}; script-src ${hash(SCRIPT)}; connect-src 'self'`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sack chat</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1>sack chat<span id="me"></span></h1><span id="status">connecting…</span></header>
<ul id="log" aria-live="polite"></ul>
<form id="form" autocomplete="off">
  <input id="text" maxlength="${MAX_CHARS}" placeholder="Say something" aria-label="message" autofocus>
  <button id="send" disabled>Send</button>
</form>
<script>${SCRIPT}</script>
</body>
</html>`;

server.onrequest = (req, res) => {
  if (req.url !== '/') {
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
    return res.end('not found\n');
  }
  res.writeHead(200, {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Security-Policy': CSP,
    'X-Content-Type-Options': 'nosniff',
    'Cache-Control': 'no-store',
  });
  res.end(PAGE);
};

// ---------------------------------------------------------------- the room

// Every tab subscribes to the topic "chat"; a publish reaches them all.
// The engine writes the one frame to each: no JS loop over connections.
// With REDIS_URL set, every process sharing that Redis is one room.
const ROOM = 'chat';
let guests = 0;

function broadcast(msg) {
  // A tab too slow to take it (over maxBackpressure) is skipped, and
  // backpressureLimit drops it if it never catches up.
  server.publish(ROOM, JSON.stringify(msg));
}

server.onaccept = (ws) => {
  if (ws.url !== '/chat') return server.reject(404, 'no such endpoint');
  server.accept();
};

server.onconnect = (ws) => {
  const name = `guest-${++guests}`;
  ws.subscribe(ROOM);
  ws.send(JSON.stringify({ type: 'hello', name }));
  broadcast({ type: 'count', n: server.subscriberCount(ROOM) });

  ws.onmessage = (data) => {
    if (typeof data !== 'string') return; // the page sends text only
    // Whole code points (no half surrogate pair), no control characters
    // but newlines and tabs; the page inserts it as text, never as HTML.
    const text = Array.from(data.replace(/[^\P{Cc}\n\t]/gu, '').trim()).slice(0, MAX_CHARS).join('');
    if (text) broadcast({ type: 'message', text, from: name, at: Date.now() });
  };
  // A closed connection has left its topics by now.
  ws.onclose = () => broadcast({ type: 'count', n: server.subscriberCount(ROOM) });
};

// ---------------------------------------------------------------- run

server.onclose = () => console.log('sack chat stopped');

let stopping = false;
function stop(signal) {
  // A second Ctrl-C does not wait for slow clients.
  if (stopping) process.exit(1);
  stopping = true;
  console.log(`${signal}: closing ${server.connections} connection(s)…`);
  // Closes every WebSocket with 1001; 'close' fires once all have ended,
  // and then nothing keeps the process alive: it exits with code 0.
  server.close();
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

console.log(`sack chat on http://localhost:${server.address().port}/`);
