'use strict';
// Run by Jest (../reload.test.js starts it), from first.spec.js and
// second.spec.js: each loads sack afresh, as Jest loads every test file's
// modules, while the addon is loaded once for the whole process.

const fs = require('node:fs');
const WebSocket = require('ws');
const sack = require('../..');
const native = require('../../native.js');
const { request } = require('../helpers.js');

// Kept on the addon's exports, which Jest does not load again: the copies
// of sack the test files had, in the order they ran.
const SEEN = Symbol.for('sack.test.jest-copies');

/** Sends a text frame that is not UTF-8; resolves with the close code. */
function badText(port) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    ws.on('open', () => ws.send(Buffer.from([0x68, 0xff]), { binary: false }));
    ws.on('close', (code) => resolve(code));
    ws.on('error', reject);
  });
}

function echo(port, text) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    ws.on('open', () => ws.send(text));
    ws.on('message', (data) => {
      resolve(String(data));
      ws.close();
    });
    ws.on('error', reject);
  });
}

/**
 * Serves HTTP and WebSocket from this file's copy of sack and checks both;
 * then appends what it saw to the file $SACK_JEST_OUT names, for
 * ../reload.test.js: the process, how many copies ran so far, and whether
 * this one is the first's.
 */
async function check(file) {
  const seen = native[SEEN] || (native[SEEN] = []);
  seen.push(sack.Websocket.Server);

  const server = sack.Websocket.Server({ address: '127.0.0.1', port: 0 });
  server.onrequest = (req, res) => {
    res.setHeader('X-File', file);
    res.end(`${file} ${req.url}`);
  };
  const errors = [];
  server.onconnect = (ws) => {
    ws.onmessage = (data) => ws.send(`${file} ${data}`);
    ws.onerror = (err) => errors.push(err);
  };
  const { port } = server.address();
  try {
    const r = await request(port, { path: '/one' });
    expect([r.status, r.headers['x-file'], r.text]).toEqual([200, file, `${file} /one`]);
    expect(await echo(port, 'hi')).toBe(`${file} hi`);
    // An error event's object comes from the copy that dispatches it: it
    // must be this file's (Jest runs each in a realm of its own).
    expect(await badText(port)).toBe(1007);
    expect(errors).toHaveLength(1);
    expect(errors[0].code).toBe('WS_ERR_INVALID_UTF8');
    expect(errors[0]).toBeInstanceOf(Error);
  } finally {
    await new Promise((resolve) => {
      server.onclose = resolve;
      server.close();
    });
  }
  const line = { file, pid: process.pid, copies: seen.length, sameAsFirst: seen[seen.length - 1] === seen[0] };
  fs.appendFileSync(process.env.SACK_JEST_OUT, `${JSON.stringify(line)}\n`);
}

module.exports = { check };
