'use strict';
// Websocket.Server: argument forms, server events and methods.

const native = require('./native.js');
const { defineEvents, emit, hasHandler } = require('./events.js');
const { sackError } = require('./errors.js');
const { normalize, hostMaterial, ticketKeyBytes } = require('./options.js');
const { Connection, isValidCloseCode, toBytes } = require('./connection.js');
const topics = require('./topics.js');
const { Cluster } = require('./cluster.js');
const registry = require('./registry.js');
const { Request } = require('./http/request.js');
const { Response } = require('./http/response.js');

const INITIALIZING = -1;
const CLOSING = 2;
const CLOSED = 3;
const LISTENING = 4;

function Server(...args) {
  if (!new.target) return new Server(...args);
  const { address, port, native: opts, connect, options } = normalize(args);
  this.readyState = INITIALIZING;
  this._accepting = null;
  this._open = 0;
  this._held = false;
  this._refed = true;
  // The open connections, as `ws`'s server.clients.
  this.clients = new Set();
  // noServer: bound to nothing; connections come through handleUpgrade().
  this._noServer = options.noServer === true;
  this._upgrades = this._noServer ? new Map() : null;
  let handle;
  try {
    handle = this._noServer ? native.listenNone(opts) : native.listen(address, port, opts);
  } catch (e) {
    // Bad TLS material or Redis URL: a TypeError naming the option and the reason.
    if (e.code === 'ERR_SACK_TLS_MATERIAL' || e.code === 'ERR_SACK_BACKPLANE_URL') {
      const err = sackError(TypeError, e.code, e.message);
      Error.captureStackTrace(err, Server);
      throw err;
    }
    // napi errors carry the code (EADDRINUSE, …); give them a plain Error shape.
    const err = new Error(e.message);
    err.code = e.code;
    err.address = address;
    err.port = port;
    Error.captureStackTrace(err, Server);
    throw err;
  }
  this._native = handle;
  this._id = handle.id;
  this.cluster = new Cluster(this);
  registry.servers.set(this._id, this);
  this.readyState = LISTENING;
  // A listening socket keeps the process alive, as net.Server's; a
  // noServer one has none (the http.Server that hands over upgrades does).
  if (!this._noServer) this._hold(true);
  if (connect) this.on('connect', connect);
}

// Topics: to every subscriber of `topic` on this server (and, with a
// backplane, on every other process). Returns what happened here:
// { sent, dropped } (dropped: subscribers over maxBackpressure).
// options.local: true keeps the message in this process.
Server.prototype.publish = function publish(topic, data, options) {
  if (options !== undefined && options !== null && typeof options !== 'object') {
    throw sackError(TypeError, 'ERR_INVALID_ARG_TYPE', 'publish(topic, data, options): options must be an object');
  }
  const local = !!(options && options.local);
  if (options && options.local !== undefined && typeof options.local !== 'boolean') {
    throw sackError(TypeError, 'ERR_INVALID_ARG_TYPE', 'publish(topic, data, options): options.local must be a boolean');
  }
  return topics.publishThrough(this._native, topic, data, 'publish', toBytes, local);
};

// Subscribers of `topic` on this server (this process).
Server.prototype.subscriberCount = function subscriberCount(topic) {
  topics.checkTopic(topic, 'subscriberCount');
  return this._native.subscriberCount(topic);
};

// TLS at run time: each applies from the next handshake; connections
// already open keep their certificate. Bad material throws (a TypeError
// naming what is wrong) before anything changes.
function tlsCall(server, what, call) {
  if (server.readyState !== LISTENING) throw sackError(Error, 'ERR_SERVER_NOT_RUNNING', `${what}: the server is closed`);
  try {
    return call();
  } catch (e) {
    if (e.code === 'ERR_SACK_TLS_MATERIAL') throw sackError(TypeError, 'ERR_SACK_TLS_MATERIAL', `${what}: ${e.message}`);
    if (e.code === 'ERR_SACK_NOT_TLS') throw sackError(Error, 'ERR_SACK_NOT_TLS', `${what}: ${e.message}`);
    throw e;
  }
}

// The default certificate: { cert, key, passphrase?, ca? }.
Server.prototype.setSecureContext = function setSecureContext(context) {
  const m = hostMaterial(context, 'setSecureContext(context): context', false);
  tlsCall(this, 'setSecureContext', () => this._native.setSecureContext(m));
};

// A certificate chosen by SNI: { host (a name, *.name, or an array), cert, key, passphrase?, ca? }.
Server.prototype.addHost = function addHost(host) {
  const m = hostMaterial(host, 'addHost(host): host', true);
  tlsCall(this, 'addHost', () => this._native.addHost(m));
};

// The session-ticket key (48 bytes), to give other processes behind the
// same load balancer, so a client resumes its session on any of them.
Server.prototype.getTicketKeys = function getTicketKeys() {
  return tlsCall(this, 'getTicketKeys', () => this._native.getTicketKeys());
};

// Seals new tickets with `keys`; tickets of the key before still resume.
Server.prototype.setTicketKeys = function setTicketKeys(keys) {
  const b = ticketKeyBytes(keys, 'setTicketKeys(keys): keys');
  tlsCall(this, 'setTicketKeys', () => this._native.setTicketKeys(b));
};

// Removes a host's certificate; returns whether there was one.
Server.prototype.removeHost = function removeHost(name) {
  if (typeof name !== 'string' || name === '') throw sackError(TypeError, 'ERR_INVALID_ARG_TYPE', 'removeHost(name): name must be a non-empty string');
  return tlsCall(this, 'removeHost', () => this._native.removeHost(name));
};

// handleUpgrade(req, socket, head, [callback]): an upgrade request that
// arrived on a Node http.Server ('upgrade' event). The engine takes the TCP
// connection over (its own duplicate of the socket's descriptor, with the
// bytes Node read already: the head it parsed and `head`), and serves it
// from then on as one it accepted: the accept and connect events follow.
// `callback(ws, req)`, as ws's, once the connection is open.
Server.prototype.handleUpgrade = function handleUpgrade(req, socket, head, callback) {
  if (callback !== undefined && typeof callback !== 'function') {
    throw sackError(TypeError, 'ERR_INVALID_ARG_TYPE', 'handleUpgrade: the callback must be a function');
  }
  if (!req || typeof req.method !== 'string' || !Array.isArray(req.rawHeaders)) {
    throw sackError(TypeError, 'ERR_INVALID_ARG_TYPE', 'handleUpgrade: req must be the http.IncomingMessage of the "upgrade" event');
  }
  if (this.readyState !== LISTENING) {
    socket.destroy();
    return;
  }
  if (socket.encrypted) {
    throw sackError(Error, 'ERR_SACK_TLS_UNAVAILABLE', 'handleUpgrade: a TLS socket (https.Server) cannot be taken over in this build; use an http.Server behind a TLS proxy');
  }
  const fd = socket._handle && socket._handle.fd;
  if (typeof fd !== 'number' || fd < 0) {
    throw sackError(Error, 'ERR_SACK_NO_FD', 'handleUpgrade: the socket has no file descriptor to take over (a TCP socket on Linux or macOS is needed)');
  }
  // Stop Node reading it, and take what it read ahead of `head`.
  socket.pause();
  const chunks = [requestHead(req)];
  if (head && head.length) chunks.push(head);
  for (let c; (c = socket.read()) !== null; ) chunks.push(c);
  if (callback) this._upgrades.set(`${socket.remoteAddress} ${socket.remotePort}`, [callback, req]);
  try {
    this._native.adopt(fd, Buffer.concat(chunks));
  } finally {
    // Node's descriptor goes; the engine has its own.
    socket.destroy();
  }
};

// The request head as the client sent it (near enough: names as sent,
// values as Node kept them).
function requestHead(req) {
  let h = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) h += `${raw[i]}: ${raw[i + 1]}\r\n`;
  return Buffer.from(h + '\r\n', 'latin1');
}

Server.prototype._hold = function _hold(on) {
  if (on === this._held) return;
  this._held = on;
  native.keepAlive(on);
};

// Tells the engine which handlers exist: without an accept handler it
// answers upgrades itself, a round trip through JS saved per handshake.
Server.prototype._handlersChanged = function _handlersChanged() {
  if (this._native && this.readyState === LISTENING) {
    this._native.setHandlers(hasHandler(this, 'accept'), hasHandler(this, 'request'));
  }
};

// An Express or Connect app (a function with use/handle) as the request
// handler: it needs Node's http request objects and would crash the process
// at its first request. Said at once, with the way that works.
Server.prototype._checkHandler = function _checkHandler(name, fn) {
  if (name === 'request' && typeof fn.use === 'function' && typeof fn.handle === 'function') {
    throw sackError(
      TypeError,
      'ERR_INVALID_ARG_TYPE',
      'an Express or Connect app cannot be a sack request handler (it needs Node\'s http objects): serve it with ' +
        'http.createServer(app) and hand the upgrades to sack: ' +
        'const wss = Websocket.Server({ noServer: true }); httpServer.on("upgrade", (req, socket, head) => wss.handleUpgrade(req, socket, head))',
    );
  }
};

// { address, family, port }, or null once closed (as net.Server's).
Server.prototype.address = function address() {
  if (this.readyState === CLOSED || this._noServer) return null;
  const [addr, port, family] = this._native.address();
  return { address: addr, family, port };
};

Object.defineProperty(Server.prototype, 'connections', {
  get() {
    return this._open;
  },
});

Object.defineProperty(Server.prototype, 'port', {
  get() {
    return this._native.address()[1];
  },
});

Server.prototype.accept = function accept(protocol) {
  if (!this._accepting) {
    throw sackError(Error, 'WS_ERR_NOT_ACCEPTING', 'server.accept() is only valid during the "accept" event; use ws.accept() later');
  }
  return this._accepting.accept(protocol);
};

Server.prototype.reject = function reject(status, reason) {
  if (!this._accepting) {
    throw sackError(Error, 'WS_ERR_NOT_ACCEPTING', 'server.reject() is only valid during the "accept" event; use ws.reject() later');
  }
  return this._accepting.reject(status, reason);
};

// disableSSL() / rejectSSL(): only during a `lowError` event with code 1
// (plain text on a TLS port). disableSSL carries the same socket on as
// plain HTTP (no byte lost; requests have `req.redirect === true`, and a
// plain WebSocket upgrade works too); rejectSSL, or no choice, drops it.
Server.prototype.disableSSL = function disableSSL() {
  if (!this._lowChoice) {
    throw sackError(Error, 'ERR_SACK_NOT_TLS', 'server.disableSSL() is only valid during a lowError event with code 1 (non-TLS bytes on a TLS port)');
  }
  this._lowChoice.plain = true;
};

Server.prototype.rejectSSL = function rejectSSL() {
  if (!this._lowChoice) {
    throw sackError(Error, 'ERR_SACK_NOT_TLS', 'server.rejectSSL() is only valid during a lowError event with code 1 (non-TLS bytes on a TLS port)');
  }
  this._lowChoice.plain = false;
};

// A failure before HTTP: (code, socketInfo, data), this = server. Code 1
// waits for the handler's choice (made during the event); the engine
// holds only that connection meanwhile.
Server.prototype._onLowError = function _onLowError(code, info, data, decide) {
  const socketInfo = socketInfoOf(info);
  // Before any TLS session: the SNI name only when it is what failed (7).
  if (code === 7) socketInfo.hostname = data;
  if (!decide) {
    emit(this, 'lowError', this, code, socketInfo, data);
    return;
  }
  const choice = { plain: false };
  this._lowChoice = choice;
  try {
    emit(this, 'lowError', this, code, socketInfo, data);
  } finally {
    this._lowChoice = null;
    if (this._native) this._native.decideLow(decide, choice.plain);
  }
};

// close([code], [reason], [callback]): the callback hears the `close`
// event, or an ERR_SERVER_NOT_RUNNING error when the server is not
// listening (as net.Server's).
Server.prototype.close = function close(code, reason, cb) {
  if (typeof code === 'function') [code, reason, cb] = [undefined, undefined, code];
  else if (typeof reason === 'function') [reason, cb] = [undefined, reason];
  if (cb !== undefined && typeof cb !== 'function') {
    throw sackError(TypeError, 'ERR_INVALID_ARG_TYPE', 'server.close: the callback must be a function');
  }
  if (code === undefined || code === null) code = 1001;
  if (typeof code !== 'number') {
    throw sackError(TypeError, 'ERR_INVALID_ARG_TYPE', `server.close: the code must be a number; received ${typeof code}`);
  }
  if (!isValidCloseCode(code)) {
    throw sackError(RangeError, 'WS_ERR_INVALID_CLOSE_CODE', `server.close: invalid close code ${String(code)}`);
  }
  if (reason === undefined || reason === null) reason = '';
  if (typeof reason !== 'string' || Buffer.byteLength(reason) > 123) {
    throw sackError(RangeError, 'ERR_OUT_OF_RANGE', 'server.close: the reason must be a string of at most 123 UTF-8 bytes');
  }
  if (cb) {
    if (this.readyState === LISTENING || this.readyState === CLOSING) this.once('close', () => cb());
    else {
      const err = sackError(Error, 'ERR_SERVER_NOT_RUNNING', 'Server is not running.');
      process.nextTick(cb, err);
    }
  }
  if (this.readyState !== LISTENING) return;
  this.readyState = CLOSING;
  for (const ws of registry.conns.values()) {
    if (ws._server === this && ws.readyState === 1) ws.readyState = CLOSING;
  }
  this._native.close(code, reason);
};

Server.prototype.ref = function ref() {
  this._refed = true;
  if (this.readyState === LISTENING || this.readyState === CLOSING) this._hold(true);
  return this;
};

Server.prototype.unref = function unref() {
  this._refed = false;
  this._hold(false);
  return this;
};

// Engine events (dispatch.js).

Server.prototype._newConnection = function _newConnection(handle, info, id, state) {
  const ws = new Connection(this, handle, info, id, state);
  registry.conns.set(id, ws);
  ws._held = true;
  native.keepAlive(true);
  return ws;
};

Server.prototype._opened = function _opened(ws) {
  ws._counted = true;
  this._open++;
  this.clients.add(ws);
};

Server.prototype._released = function _released(ws) {
  registry.conns.delete(ws._id);
  if (this._upgrades !== null) this._upgrades.delete(`${ws._request()[2]} ${ws._request()[3]}`);
  if (ws._counted) {
    this._open--;
    this.clients.delete(ws);
  }
  if (ws._held) {
    ws._held = false;
    native.keepAlive(false);
  }
};

Server.prototype._emitConnect = function _emitConnect(ws) {
  emit(this, 'connect', ws, ws);
  if (this._upgrades !== null && this._upgrades.size > 0) {
    const key = `${ws._request()[2]} ${ws._request()[3]}`;
    const pending = this._upgrades.get(key);
    if (pending) {
      this._upgrades.delete(key);
      pending[0].call(this, ws, pending[1]);
    }
  }
};

Server.prototype._onAccept = function _onAccept(handle, info, id) {
  const ws = this._newConnection(handle, info, id, 0);
  this._accepting = ws;
  ws._deciding = true;
  let failed = false;
  let failure;
  try {
    emitAccept(this, ws);
  } catch (err) {
    failed = true;
    failure = err;
  } finally {
    this._accepting = null;
    ws._deciding = false;
  }
  // A handler that threw before deciding: the client gets a 500 rather
  // than waiting for the decision timeout, as a request handler's throw.
  if (failed && ws.readyState === 0) ws.reject(500);
  if (ws._connectPending) {
    ws._connectPending = false;
    this._emitConnect(ws);
  }
  // On to the process like any handler's exception.
  if (failed) throw failure;
};

// The accept handlers, called as emit() calls them. One that is async
// (the README's pattern) and rejects before deciding answers 500 as a
// throwing one does; the rejection still reaches the process, unhandled.
function emitAccept(server, ws) {
  const prop = server._on_accept;
  const list = server._ls_accept;
  const fns = prop ? (list ? [prop, ...list] : [prop]) : list ? list.slice() : [];
  for (const fn of fns) {
    const r = fn.call(server, ws);
    if (r !== null && typeof r === 'object' && typeof r.then === 'function') {
      r.then(undefined, (err) => {
        if (ws.readyState === 0) ws.reject(500);
        return Promise.reject(err);
      });
    }
  }
}

Server.prototype._onOpen = function _onOpen(handle, info, id) {
  const ws = this._newConnection(handle, info, id, 1);
  this._opened(ws);
  this._emitConnect(ws);
};

// `socketInfo` of the error and lowError events, from the engine's
// [remoteAddress, remotePort, localAddress, localPort, hostname,
// tlsVersion, cipher] (src/binding/dispatch.rs, socket_info); the TLS
// facts are null on plain text.
function socketInfoOf(info) {
  return {
    remoteAddress: info[0],
    remotePort: info[1],
    localAddress: info[2],
    localPort: info[3],
    hostname: info[4] ?? null,
    tlsVersion: info[5] ?? null,
    cipher: info[6] ?? null,
  };
}

Server.prototype._onError = function _onError(info, code, message) {
  const socketInfo = socketInfoOf(info);
  socketInfo.error = { code, message };
  if (this._upgrades !== null) this._upgrades.delete(`${info[0]} ${info[1]}`);
  emit(this, 'error', this, socketInfo);
};

// The arguments come from src/binding/request_group.rs (Event::Request).
Server.prototype._onRequest = function _onRequest(exchange, method, target, q, flags, headers, body, remote, local, tls) {
  const req = new Request(method, target, q, flags, headers, body, remote, local, tls);
  const res = new Response(exchange);
  req._res = res;
  res.req = req;
  try {
    // One property handler (the usual case): a direct call.
    const only = this._ls_request ? null : this._on_request;
    if (only) only.call(this, req, res);
    else if (!emit(this, 'request', this, req, res)) {
      res.writeHead(426, { Upgrade: 'websocket' });
      res.end('this server speaks WebSocket');
    }
  } catch (err) {
    // The client gets a 500 (or a dropped connection if the head was out);
    // the exception goes on to the process like any handler's.
    res._fail();
    throw err;
  }
};

// The backplane's news (src/engine/backplane/mod.rs `what`): 1 up, 2 down,
// 3 gap, as the `backplane` event; 4 answers a cluster query.
const BACKPLANE_STATES = [undefined, 'up', 'down', 'gap'];
Server.prototype._onBackplane = function _onBackplane(what, id, text) {
  if (what === 4) {
    this.cluster._answer(id, text);
    return;
  }
  const state = BACKPLANE_STATES[what];
  if (state !== undefined) emit(this, 'backplane', this, state, JSON.parse(text));
};

Server.prototype._onClose = function _onClose() {
  this.cluster._closed();
  this.readyState = CLOSED;
  this._native.setHandlers(false, false);
  registry.servers.delete(this._id);
  this._hold(false);
  emit(this, 'close', this);
};

defineEvents(Server.prototype, {
  accept: ['onaccept'],
  connect: ['onconnect'],
  request: ['onrequest'],
  lowError: ['onerrorlow', 'onlowerror'],
  error: ['onerror'],
  close: ['onclose'],
  backplane: ['onbackplane'],
});

Server.prototype.CONNECTING = 0;
Server.prototype.LISTENING = LISTENING;
Server.prototype.CLOSING = CLOSING;
Server.prototype.CLOSED = CLOSED;

module.exports = { Server };
