'use strict';
// This environment's live servers and connections, by engine id.
// `fast` receives the raw native fast-path functions (src/binding/raw_calls.rs)
// when dispatch.js initializes the environment.
//
// One registry per environment, kept on the addon's exports: the addon
// loads once per environment, but this JavaScript may load several times
// (Jest loads a package's modules afresh for every test file), and every
// copy must find the servers and connections of the others, since the
// newest copy's dispatcher receives all events (src/binding/lifecycle.rs, init).

const native = require('./native.js');

const KEY = Symbol.for('sack.registry');

if (native[KEY] === undefined) {
  Object.defineProperty(native, KEY, {
    value: {
      servers: new Map(),
      conns: new Map(),
      fast: {},
      // HTTP responses waiting for a native notice (drain, or their
      // connection going), by exchange id (lib/http/response.js).
      responses: new Map(),
      // Thread.accept's callbacks, by token (lib/thread.js).
      receivers: new Map(),
      // The header block last given to the native respond(), which keeps
      // one per environment (lib/http/wire.js).
      sentBlock: null,
    },
  });
}

module.exports = native[KEY];
