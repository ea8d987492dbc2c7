'use strict';
// Receives every engine event of this environment. The native side calls
// `dispatch` once per event, in order, all events of a wake in one go
// (src/binding/dispatch.rs holds the numbering).

const native = require('../native.js');
const registry = require('./registry.js');
const { emit } = require('./events.js');
const { sackError, closeCodeOf } = require('./errors.js');
const { adopt } = require('./thread.js');

const TEXT = 1;
const BINARY = 2;
const CLOSE = 3;
const PONG = 4;
const DRAIN = 5;
const ERROR = 6;
const OPEN = 7;
const ACCEPT = 8;
const SERVER_ERROR = 9;
const SERVER_CLOSE = 10;
const ADOPT = 11;
const REQUEST = 12;

const conns = registry.conns;
const servers = registry.servers;

function dispatch(kind, id, a, b, c, d, e, f, g, h) {
  if (kind === TEXT || kind === BINARY) {
    const ws = conns.get(id);
    if (ws !== undefined) ws._message(a);
    return;
  }
  switch (kind) {
    case CLOSE: {
      const ws = conns.get(id);
      if (ws !== undefined) ws._closed(a, b);
      return;
    }
    case PONG: {
      const ws = conns.get(id);
      if (ws !== undefined) emit(ws, 'pong', ws, a);
      return;
    }
    case DRAIN: {
      const ws = conns.get(id);
      if (ws !== undefined) emit(ws, 'drain', ws);
      return;
    }
    case ERROR: {
      const ws = conns.get(id);
      if (ws !== undefined) {
        emit(ws, 'error', ws, sackError(Error, a, b, { closeCode: closeCodeOf[a] || 1002 }));
      }
      return;
    }
    case OPEN: {
      const server = servers.get(id);
      if (server !== undefined) server._onOpen(a, b, c);
      return;
    }
    case ACCEPT: {
      const server = servers.get(id);
      if (server !== undefined) server._onAccept(a, b, c);
      return;
    }
    case SERVER_ERROR: {
      const server = servers.get(id);
      if (server !== undefined) server._onError(a, b, c);
      return;
    }
    case REQUEST: {
      const server = servers.get(id);
      if (server !== undefined) server._onRequest(a, b, c, d, e, f, g, h);
      return;
    }
    case ADOPT:
      adopt(id, a, b, c, d);
      return;
    case SERVER_CLOSE: {
      const server = servers.get(id);
      if (server !== undefined) server._onClose();
      return;
    }
  }
}

native.init(dispatch, registry.fast);

module.exports = { dispatch };
