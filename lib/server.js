'use strict';
// Websocket.Server: argument forms, server events and methods.

const native = require('../native.js');
const { defineEvents, emit, hasHandler } = require('./events.js');
const { sackError } = require('./errors.js');
const { normalize } = require('./options.js');
const { Connection, isValidCloseCode } = require('./connection.js');
const registry = require('./registry.js');
const { Request, Response } = require('./http.js');

const INITIALIZING = -1;
const CLOSING = 2;
const CLOSED = 3;
const LISTENING = 4;

function Server(...args) {
  if (!new.target) return new Server(...args);
  const { address, port, native: opts, connect } = normalize(args);
  this.readyState = INITIALIZING;
  this._accepting = null;
  this._open = 0;
  this._held = false;
  this._refed = true;
  let handle;
  try {
    handle = native.listen(address, port, opts);
  } catch (e) {
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
  registry.servers.set(this._id, this);
  this.readyState = LISTENING;
  this._hold(true);
  if (connect) this.on('connect', connect);
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

Server.prototype.address = function address() {
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

Server.prototype.disableSSL = function disableSSL() {
  throw sackError(Error, 'ERR_SACK_NOT_TLS', 'server.disableSSL() is only valid during a lowError event with code 1 (non-TLS bytes on a TLS port)');
};

Server.prototype.rejectSSL = function rejectSSL() {
  throw sackError(Error, 'ERR_SACK_NOT_TLS', 'server.rejectSSL() is only valid during a lowError event with code 1 (non-TLS bytes on a TLS port)');
};

Server.prototype.close = function close(code, reason) {
  if (code === undefined || code === null) code = 1001;
  if (!isValidCloseCode(code)) {
    throw sackError(RangeError, 'WS_ERR_INVALID_CLOSE_CODE', `server.close: invalid close code ${String(code)}`);
  }
  if (reason === undefined || reason === null) reason = '';
  if (typeof reason !== 'string' || Buffer.byteLength(reason) > 123) {
    throw sackError(RangeError, 'ERR_OUT_OF_RANGE', 'server.close: the reason must be a string of at most 123 UTF-8 bytes');
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
};

Server.prototype._released = function _released(ws) {
  registry.conns.delete(ws._id);
  if (ws._counted) this._open--;
  if (ws._held) {
    ws._held = false;
    native.keepAlive(false);
  }
};

Server.prototype._emitConnect = function _emitConnect(ws) {
  emit(this, 'connect', ws, ws);
};

Server.prototype._onAccept = function _onAccept(handle, info, id) {
  const ws = this._newConnection(handle, info, id, 0);
  this._accepting = ws;
  ws._deciding = true;
  let failed = false;
  let failure;
  try {
    emit(this, 'accept', this, ws);
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

Server.prototype._onOpen = function _onOpen(handle, info, id) {
  const ws = this._newConnection(handle, info, id, 1);
  this._opened(ws);
  this._emitConnect(ws);
};

Server.prototype._onError = function _onError(info, code, message) {
  const socketInfo = {
    remoteAddress: info[0],
    remotePort: info[1],
    localAddress: info[2],
    localPort: info[3],
    error: { code, message },
  };
  emit(this, 'error', this, socketInfo);
};

// The arguments come from src/binding/dispatch.rs (Event::Request).
Server.prototype._onRequest = function _onRequest(exchange, method, target, q, flags, headers, body, remote, local) {
  const req = new Request(method, target, q, flags, headers, body, remote, local);
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

Server.prototype._onClose = function _onClose() {
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
});

Server.prototype.CONNECTING = 0;
Server.prototype.LISTENING = LISTENING;
Server.prototype.CLOSING = CLOSING;
Server.prototype.CLOSED = CLOSED;

module.exports = { Server };
