'use strict';
// Topics: `subscribe` / `publish` on connections and on the server. The
// engine keeps the subscriber lists and queues one frame for each
// subscriber; JS crosses into it once per call, whatever the count.

const { sackError, notOpen } = require('./errors.js');

const CLOSING = 2;
const CLOSED = 3;

function checkTopic(topic, what) {
  if (typeof topic !== 'string') {
    throw sackError(
      TypeError,
      'ERR_INVALID_ARG_TYPE',
      `${what}: the topic must be a string; received ${topic === null ? 'null' : typeof topic}`,
    );
  }
}

// `[sent, dropped]` from the engine, as the object the methods return.
function result(r) {
  return { sent: r[0], dropped: r[1] };
}

// Publishes through `h` (a native connection or server): strings as text,
// ArrayBuffers and views as binary, as send() does.
// `local`: not to other processes (with a backplane).
function publishThrough(h, topic, data, what, toBytes, local) {
  checkTopic(topic, what);
  if (typeof data === 'string') return result(h.publishText(topic, data, local));
  return result(h.publishBinary(topic, toBytes(data, what), local));
}

// Methods of the server-side connection (lib/connection.js).
function connectionMethods(proto, toBytes) {
  // True when newly subscribed, false when it already was or the
  // connection is closing; throws once it has closed.
  proto.subscribe = function subscribe(topic) {
    checkTopic(topic, 'subscribe');
    if (this.readyState === CLOSED || this._moved) throw notOpen(this, 'subscribe');
    if (this.readyState === CLOSING) return false;
    return this._h.subscribe(topic) === 1;
  };
  proto.unsubscribe = function unsubscribe(topic) {
    checkTopic(topic, 'unsubscribe');
    if (this._moved) return false;
    return this._h.unsubscribe(topic);
  };
  proto.isSubscribed = function isSubscribed(topic) {
    checkTopic(topic, 'isSubscribed');
    if (this._moved) return false;
    return this._h.isSubscribed(topic);
  };
  Object.defineProperty(proto, 'subscriptions', {
    get() {
      return this._moved ? [] : this._h.subscriptions();
    },
    enumerable: true,
    configurable: true,
  });
  // To every subscriber of `topic` but this connection; also once it has
  // closed (a "left" notice from the close handler), not after post():
  // the connection is another thread's then.
  proto.publish = function publish(topic, data) {
    if (this._moved) throw notOpen(this, 'publish');
    return publishThrough(this._h, topic, data, 'publish', toBytes, false);
  };
}

module.exports = { checkTopic, publishThrough, connectionMethods };
