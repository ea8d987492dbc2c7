'use strict';
// sack: a WebSocket server for Node.js with a Rust engine.
// This file is the hand-written face; native.js is the loader napi-rs
// generates for the addon.

require('./lib/dispatch.js');
const { Server } = require('./lib/server.js');
const { Thread } = require('./lib/thread.js');
const { NUMERIC } = require('./lib/options.js');

const readyStates = Object.freeze({
  INITIALIZING: -1,
  CONNECTING: 0,
  OPEN: 1,
  CLOSING: 2,
  CLOSED: 3,
  LISTENING: 4,
});

const Websocket = {
  Server,
  Thread,
  readyStates,
  // The numeric options' defaults (bytes, milliseconds), from the engine.
  defaults: NUMERIC,
};

module.exports = { Websocket, WebSocket: Websocket };
