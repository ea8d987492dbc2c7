'use strict';
// Makes a class an EventEmitter with a hook on listener additions: req,
// res and req.socket do work only once someone listens.

const EventEmitter = require('events');

// Makes `cls` an EventEmitter whose listener additions call
// `this._listening(name)` (once() and prependOnceListener() go through
// on() and prependListener()). No EventEmitter constructor runs: its
// methods create their state with the first listener.
function emitterWithHook(cls) {
  const proto = cls.prototype;
  Object.setPrototypeOf(proto, EventEmitter.prototype);
  proto.on = function on(name, fn) {
    EventEmitter.prototype.on.call(this, name, fn);
    this._listening(name);
    return this;
  };
  proto.addListener = proto.on;
  proto.prependListener = function prependListener(name, fn) {
    EventEmitter.prototype.prependListener.call(this, name, fn);
    this._listening(name);
    return this;
  };
}

module.exports = { emitterWithHook };
