'use strict';
// Receives every engine event of this environment. The native side calls
// `dispatch` once per event, in order, all events of a wake in one go
// (src/binding/dispatch.rs holds the numbering).

const native = require('./native.js');
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
const REQUESTS = 12;
const RESPONSE_DRAIN = 13;
const RESPONSE_CLOSE = 14;
const PEER_CLOSE = 15;
const SENT = 16;

// Request groups (src/binding/dispatch.rs, deliver_requests).
const METHODS = ['GET', 'POST', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'PATCH'];
const STRIDE = 9;
const METHOD_IN_TEXT = 4;
const HAS_EXTRA = 8;

const conns = registry.conns;
const servers = registry.servers;

// `count` requests: numbers in `nums`, text in `text`, bodies and unusual
// addresses in `extra`. A handler that throws does not keep the rest of
// the group from being handled: the first exception is rethrown at the
// end (reaching the process like any handler's), later ones on the next tick.
function requests(count, nums, text, extra) {
  let failed = false;
  let failure;
  // A group's requests are mostly for one server.
  let serverId = -1;
  let server;
  // Where request i starts in `text`: lengths come in `nums`, so the text
  // is cut without searching it.
  let at = 0;
  for (let i = 0; i < count; i++) {
    const o = i * STRIDE;
    const flags = nums[o + 2];
    let method;
    if (flags & METHOD_IN_TEXT) {
      const nl = text.indexOf('\n', at);
      method = text.slice(at, nl);
      at = nl + 1;
    } else {
      method = METHODS[nums[o + 3]];
    }
    const targetEnd = at + nums[o + 6];
    const headersEnd = targetEnd + 1 + nums[o + 8];
    const target = text.slice(at, targetEnd);
    const headers = text.slice(targetEnd + 1, headersEnd);
    at = headersEnd + 1;
    let body;
    let remote = nums[o + 4];
    let local = nums[o + 5];
    if (flags & HAS_EXTRA) {
      body = extra[i * 3];
      if (remote !== remote) remote = extra[i * 3 + 1];
      if (local !== local) local = extra[i * 3 + 2];
    }
    if (nums[o] !== serverId) {
      serverId = nums[o];
      server = servers.get(serverId);
    }
    if (server === undefined) {
      registry.fast.abort(nums[o + 1]);
      continue;
    }
    try {
      server._onRequest(nums[o + 1], method, target, nums[o + 7], flags, headers, body, remote, local);
    } catch (err) {
      if (!failed) {
        failed = true;
        failure = err;
      } else {
        process.nextTick(() => {
          throw err;
        });
      }
    }
  }
  if (failed) throw failure;
}

function dispatch(kind, id, a, b, c, d, e) {
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
    case PEER_CLOSE: {
      // The client's close frame came and is being answered: no more sends.
      const ws = conns.get(id);
      if (ws !== undefined && ws.readyState === ws.OPEN) ws.readyState = ws.CLOSING;
      return;
    }
    case PONG: {
      const ws = conns.get(id);
      if (ws !== undefined) emit(ws, 'pong', ws, a);
      return;
    }
    case SENT: {
      const ws = conns.get(id);
      if (ws !== undefined) ws._sent(a);
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
    case REQUESTS:
      requests(id, a, b, c);
      return;
    case RESPONSE_DRAIN:
    case RESPONSE_CLOSE: {
      const res = registry.responses.get(id);
      if (res !== undefined) res._notice(kind === RESPONSE_DRAIN);
      return;
    }
    case ADOPT:
      adopt(id, a, b, c, d, e);
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
