'use strict';
// sack-style handlers: `obj.on(name, fn)` adds a listener; `obj.onname = fn`
// and `obj.onname(fn)` set the single property handler. Both kinds run, the
// property handler first. Kept apart from EventEmitter so the hot path
// (`message`) is one property read and a direct call.

function defineEvents(proto, events) {
  // events: { name: [propertyNames...] }
  proto._names = Object.keys(events);
  for (const [name, props] of Object.entries(events)) {
    const slot = '_on_' + name;
    for (const prop of props) {
      Object.defineProperty(proto, prop, {
        configurable: true,
        enumerable: false,
        get() {
          // Reading the property gives a setter, so `obj.onname(fn)` works.
          const self = this;
          return function setHandler(fn) {
            setProperty(self, name, slot, fn);
          };
        },
        set(fn) {
          setProperty(this, name, slot, fn);
        },
      });
    }
  }
  proto.on = function on(name, fn) {
    if (typeof fn !== 'function') {
      throw new TypeError(`The "listener" argument must be a function (event "${name}")`);
    }
    if (!this._names.includes(name)) {
      throw new TypeError(`Unknown event "${name}"; known events: ${this._names.join(', ')}`);
    }
    if (this._checkHandler) this._checkHandler(name, fn);
    const key = '_ls_' + name;
    (this[key] || (this[key] = [])).push(fn);
    if (this._handlersChanged) this._handlersChanged();
    return this;
  };
  proto.addListener = proto.on;
  proto.off = function off(name, fn) {
    const list = this['_ls_' + name];
    if (list) {
      const i = list.lastIndexOf(fn);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) this['_ls_' + name] = null;
    }
    if (this._handlersChanged) this._handlersChanged();
    return this;
  };
  proto.removeListener = proto.off;
  proto.once = function once(name, fn) {
    const self = this;
    function wrapper(...args) {
      self.off(name, wrapper);
      return fn.apply(this, args);
    }
    return this.on(name, wrapper);
  };
  proto.listenerCount = function listenerCount(name) {
    const list = this['_ls_' + name];
    return (list ? list.length : 0) + (this['_on_' + name] ? 1 : 0);
  };
}

function setProperty(obj, name, slot, fn) {
  if (fn != null && typeof fn !== 'function') {
    throw new TypeError(`The "${name}" handler must be a function`);
  }
  if (fn != null && obj._checkHandler) obj._checkHandler(name, fn);
  obj[slot] = fn || null;
  if (obj._handlersChanged) obj._handlersChanged();
}

function hasHandler(obj, name) {
  return !!(obj['_on_' + name] || obj['_ls_' + name]);
}

// Calls every handler of `name` with `self` as `this` and exactly `args`.
// Exceptions propagate like an EventEmitter listener's. (The per-message
// path does not come through here: see Connection#_message.)
function emit(obj, name, self, ...args) {
  const prop = obj['_on_' + name];
  const list = obj['_ls_' + name];
  if (prop) prop.apply(self, args);
  if (list) {
    if (list.length === 1) list[0].apply(self, args);
    else for (const fn of list.slice()) fn.apply(self, args);
  }
  return !!(prop || list);
}

module.exports = { defineEvents, emit, hasHandler };
