'use strict';
// Websocket.Thread: hand live connections to other threads (worker_threads).
// The socket never leaves the engine; only where its events go changes
// (src/engine/registry.rs).

const native = require('../native.js');
const registry = require('./registry.js');
const { sackError } = require('./errors.js');

// token -> callback, for this environment's one-shot registrations.
const receivers = registry.receivers;

// Adopted connections have no Server object here; this stands in for it.
const threadHost = {
  _released(ws) {
    registry.conns.delete(ws._id);
    if (ws._held) {
      ws._held = false;
      native.keepAlive(false);
    }
  },
  _opened() {},
  _emitConnect() {},
};

function checkDestination(destination, what) {
  if (typeof destination !== 'string' || destination === '') {
    throw sackError(TypeError, 'ERR_INVALID_ARG_TYPE', `${what}: the destination must be a non-empty string`);
  }
}

const Thread = {
  // Registers once to receive one connection posted to `destination`; call
  // again to take another. Keeps this thread alive until one arrives.
  accept(destination, callback) {
    checkDestination(destination, 'Thread.accept');
    if (typeof callback !== 'function') {
      throw sackError(TypeError, 'ERR_INVALID_ARG_TYPE', 'Thread.accept: the callback must be a function');
    }
    const token = native.threadAccept(destination);
    receivers.set(token, callback);
    native.keepAlive(true);
  },

  // post(destination, socket) or post(socket, destination).
  post(a, b) {
    const [destination, socket] = typeof a === 'string' ? [a, b] : [b, a];
    if (!socket || typeof socket.post !== 'function') {
      throw sackError(TypeError, 'ERR_INVALID_ARG_TYPE', 'Thread.post: the socket must be a sack connection');
    }
    return socket.post(destination);
  },
};

// Engine event: a connection posted to this environment arrived.
function adopt(token, handle, info, id, destination) {
  const callback = receivers.get(token);
  receivers.delete(token);
  const { Connection } = require('./connection.js');
  const ws = new Connection(threadHost, handle, info, id, 1);
  ws.protocol = handle.protocol;
  registry.conns.set(id, ws);
  ws._held = true;
  native.keepAlive(true);
  if (callback) native.keepAlive(false); // the registration's hold
  if (!callback) {
    ws.close(1011, 'no receiver');
    return;
  }
  callback(destination, ws);
}

module.exports = { Thread, adopt, checkDestination };
