'use strict';
// Receives every engine event of this environment. The native side calls
// `dispatch` once per event, in order, all events of a wake in one go.

const native = require('./native.js');
const registry = require('./registry.js');
const { emit } = require('./events.js');
const { sackError, closeCodeOf } = require('./errors.js');
const { adopt } = require('./thread.js');

// The numbers are the addon's (src/binding/contract.rs), read once here.
const {
  Text: TEXT,
  Binary: BINARY,
  Close: CLOSE,
  Pong: PONG,
  Drain: DRAIN,
  Error: ERROR,
  Open: OPEN,
  Accept: ACCEPT,
  ServerError: SERVER_ERROR,
  ServerClose: SERVER_CLOSE,
  Adopt: ADOPT,
  Requests: REQUESTS,
  ResponseDrain: RESPONSE_DRAIN,
  ResponseClose: RESPONSE_CLOSE,
  PeerClose: PEER_CLOSE,
  Sent: SENT,
  LowError: LOW_ERROR,
  Backplane: BACKPLANE,
} = native.EventKind;

// Request groups (src/binding/request_group.rs, deliver_requests).
const METHODS = native.requestMethods();
const {
  Server: F_SERVER,
  Exchange: F_EXCHANGE,
  Flags: F_FLAGS,
  Method: F_METHOD,
  Remote: F_REMOTE,
  Local: F_LOCAL,
  TargetLength: F_TARGET_LENGTH,
  QueryAt: F_QUERY_AT,
  HeadersLength: F_HEADERS_LENGTH,
  Stride: STRIDE,
} = native.RequestField;
const { MethodInText: METHOD_IN_TEXT, HasExtra: HAS_EXTRA } = native.RequestFlag;
// Per request in `extra`: body, remote, local, TLS facts.
const EXTRA = 4;

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
    const flags = nums[o + F_FLAGS];
    let method;
    if (flags & METHOD_IN_TEXT) {
      const nl = text.indexOf('\n', at);
      method = text.slice(at, nl);
      at = nl + 1;
    } else {
      method = METHODS[nums[o + F_METHOD]];
    }
    const targetEnd = at + nums[o + F_TARGET_LENGTH];
    const headersEnd = targetEnd + 1 + nums[o + F_HEADERS_LENGTH];
    const target = text.slice(at, targetEnd);
    const headers = text.slice(targetEnd + 1, headersEnd);
    at = headersEnd + 1;
    let body;
    let remote = nums[o + F_REMOTE];
    let local = nums[o + F_LOCAL];
    let tls;
    if (flags & HAS_EXTRA) {
      body = extra[i * EXTRA];
      if (remote !== remote) remote = extra[i * EXTRA + 1];
      if (local !== local) local = extra[i * EXTRA + 2];
      tls = extra[i * EXTRA + 3];
    }
    if (nums[o + F_SERVER] !== serverId) {
      serverId = nums[o + F_SERVER];
      server = servers.get(serverId);
    }
    if (server === undefined) {
      registry.fast.abort(nums[o + F_EXCHANGE]);
      continue;
    }
    try {
      server._onRequest(nums[o + F_EXCHANGE], method, target, nums[o + F_QUERY_AT], flags, headers, body, remote, local, tls);
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
    case LOW_ERROR: {
      const server = servers.get(id);
      if (server !== undefined) server._onLowError(a, b, c, d);
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
    case BACKPLANE: {
      const server = servers.get(id);
      if (server !== undefined) server._onBackplane(a, b, c);
      return;
    }
    case SERVER_CLOSE: {
      const server = servers.get(id);
      if (server !== undefined) server._onClose();
      return;
    }
  }
}

native.init(dispatch, registry.fast);

module.exports = { dispatch };
