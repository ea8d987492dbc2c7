'use strict';
// Websocket.Thread: hand live connections to other threads (worker_threads).
// The socket never leaves the engine; only where its events go changes
// (src/engine/handoff.rs).

const v8 = require('node:v8');
const native = require('./native.js');
const registry = require('./registry.js');
const { sackError } = require('./errors.js');

// token -> { callback, destination, standing }: this environment's
// registrations (a one-shot one is forgotten when its connection comes).
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

// What Thread.accept returns: `cancel()` takes the registration back
// (true if it was still waiting), so a pool can stop without terminating
// its workers.
class Receiver {
  constructor(token) {
    this._token = token;
  }

  cancel() {
    return cancel(this._token);
  }
}

// A connection the engine routed here just before the cancel still
// arrives, and still reaches the callback: the entry stays for it (a
// one-shot one goes when it is used).
function cancel(token) {
  const r = receivers.get(token);
  if (r === undefined || r.cancelled || !native.threadCancel(token)) return false;
  r.cancelled = true;
  native.keepAlive(false);
  return true;
}

const Thread = {
  // Registers to receive one connection posted to `destination` (call
  // again to take another), or with `{ persistent: true }` every one until
  // cancelled: standing receivers of a destination take turns, so a burst
  // of connections is spread over a pool instead of finding most workers
  // between registrations. Keeps this thread alive until used or cancelled.
  accept(destination, callback, options) {
    checkDestination(destination, 'Thread.accept');
    if (typeof callback !== 'function') {
      throw sackError(TypeError, 'ERR_INVALID_ARG_TYPE', 'Thread.accept: the callback must be a function');
    }
    if (options !== undefined && (options === null || typeof options !== 'object')) {
      throw sackError(TypeError, 'ERR_INVALID_ARG_TYPE', 'Thread.accept: options must be an object');
    }
    const standing = options !== undefined && options.persistent === true;
    if (options !== undefined && options.persistent !== undefined && typeof options.persistent !== 'boolean') {
      throw sackError(TypeError, 'ERR_INVALID_ARG_VALUE', 'Thread.accept: options.persistent must be true or false');
    }
    const token = native.threadAccept(destination, standing);
    receivers.set(token, { callback, destination, standing, cancelled: false });
    native.keepAlive(true);
    return new Receiver(token);
  },

  // Cancels every registration of this thread for `destination`; returns
  // how many were still waiting.
  cancel(destination) {
    checkDestination(destination, 'Thread.cancel');
    let n = 0;
    for (const [token, r] of [...receivers]) {
      if (r.destination === destination && cancel(token)) n++;
    }
    return n;
  },

  // post(destination, socket, [data]) or post(socket, destination, [data]).
  post(a, b, data) {
    const [destination, socket] = typeof a === 'string' ? [a, b] : [b, a];
    if (!socket || typeof socket.post !== 'function') {
      throw sackError(TypeError, 'ERR_INVALID_ARG_TYPE', 'Thread.post: the socket must be a sack connection');
    }
    return socket.post(destination, data);
  },
};

// `data` for the receiver, as a structured clone (v8's serializer, the one
// worker_threads messages use).
function serialize(data) {
  if (data === undefined) return undefined;
  try {
    return v8.serialize(data);
  } catch (e) {
    throw sackError(TypeError, 'ERR_INVALID_ARG_VALUE', `post: the data cannot be cloned: ${e.message}`);
  }
}

// Engine event: a connection posted to this environment arrived.
function adopt(token, handle, info, id, destination, data) {
  const r = receivers.get(token);
  if (r !== undefined && !r.standing) receivers.delete(token);
  const { Connection } = require('./connection.js');
  const ws = new Connection(threadHost, handle, info, id, 1);
  ws.protocol = handle.protocol;
  registry.conns.set(id, ws);
  ws._held = true;
  native.keepAlive(true);
  if (r !== undefined && !r.standing && !r.cancelled) native.keepAlive(false); // the registration's hold
  if (r === undefined) {
    ws.close(1011, 'no receiver');
    return;
  }
  r.callback(destination, ws, data === undefined ? undefined : v8.deserialize(Buffer.from(data)));
}

module.exports = { Thread, adopt, checkDestination, serialize };
