'use strict';
// This environment's live servers and connections, by engine id.
// `fast` receives the raw native fast-path functions (src/binding/fast.rs)
// when dispatch.js initializes the environment.
module.exports = { servers: new Map(), conns: new Map(), fast: {} };
