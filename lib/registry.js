'use strict';
// This environment's live servers and connections, by engine id.
module.exports = { servers: new Map(), conns: new Map() };
