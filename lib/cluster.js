'use strict';
// server.cluster: what every process sharing the server's backplane sees,
// from the nodes' heartbeats in Redis (src/engine/backplane/cluster.rs).
// Each method returns a Promise; this process's own figures are live.
// Without a backplane the cluster is this process alone.

const { sackError } = require('./errors.js');
const { checkTopic } = require('./topics.js');

const NODES = 0;
const CONNECTION_COUNT = 1;
const SUBSCRIBER_COUNT = 2;

class Cluster {
  constructor(server) {
    this._server = server;
    // Query id → { resolve, reject }.
    this._pending = new Map();
  }

  // This process's id among the nodes (a string), or null without a backplane.
  get nodeId() {
    const id = this._server._native.nodeId;
    return id === '' ? null : id;
  }

  // [{ id, self, connections, pid, started, lastSeen }] for every live node.
  nodes() {
    return this._ask(NODES, undefined, () => [
      { id: null, self: true, connections: this._server.connections, pid: process.pid, started: null, lastSeen: Date.now() },
    ]);
  }

  // Open connections on every node.
  connectionCount() {
    return this._ask(CONNECTION_COUNT, undefined, () => this._server.connections);
  }

  // Subscribers of `topic` on every node.
  subscriberCount(topic) {
    checkTopic(topic, 'cluster.subscriberCount');
    return this._ask(SUBSCRIBER_COUNT, topic, () => this._server.subscriberCount(topic));
  }

  _ask(kind, topic, alone) {
    const server = this._server;
    if (server.readyState !== server.LISTENING) {
      return Promise.reject(sackError(Error, 'ERR_SERVER_NOT_RUNNING', 'cluster: the server is closed'));
    }
    const id = server._native.clusterQuery(kind, topic);
    if (id < 0) return Promise.resolve(alone());
    return new Promise((resolve, reject) => this._pending.set(id, { resolve, reject }));
  }

  // The engine's answer (JSON: { value } or { error }).
  _answer(id, text) {
    const p = this._pending.get(id);
    if (p === undefined) return;
    this._pending.delete(id);
    const r = JSON.parse(text);
    if (r.error !== undefined) p.reject(sackError(Error, 'ERR_SACK_BACKPLANE', `cluster: Redis did not answer: ${r.error}`));
    else p.resolve(r.value);
  }

  // The server closed: unanswered questions fail.
  _closed() {
    for (const p of this._pending.values()) {
      p.reject(sackError(Error, 'ERR_SERVER_NOT_RUNNING', 'cluster: the server closed before Redis answered'));
    }
    this._pending.clear();
  }
}

module.exports = { Cluster };
