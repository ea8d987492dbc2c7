'use strict';
// Response header names and values: Node's checks on them, and the block
// they go to the native side as.

const { sackError } = require('../errors.js');

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

// The last value that passed: handlers set the same values (often the very
// same string) on every response, and an identity check is cheaper than
// the pattern.
let lastGood = '';

function checkValue(name, v) {
  if (v === lastGood) return;
  if (BAD_VALUE.test(v)) {
    throw sackError(TypeError, 'ERR_INVALID_CHAR', `setHeader: invalid character in the value of "${name}"`);
  }
  if (v.length <= 256) lastGood = v;
}

// A header value as stored: a string, or an array of strings for
// repeated lines. `undefined` (alone or in an array) throws, as in Node.
function headerValue(name, value) {
  return Array.isArray(value) ? value.map((v) => oneValue(name, v)) : oneValue(name, value);
}

function oneValue(name, value) {
  if (value === undefined) {
    throw sackError(TypeError, 'ERR_HTTP_INVALID_HEADER_VALUE', `setHeader: invalid value "undefined" for header "${name}"`);
  }
  const stored = typeof value === 'string' ? value : String(value);
  checkValue(name, stored);
  return stored;
}

// Header names that passed the token check, with their lower-case form:
// handlers set the same few names on every response.
const knownNames = new Map();
const KNOWN_MAX = 256;

function lowerName(name) {
  let lower = knownNames.get(name);
  if (lower !== undefined) return lower;
  if (typeof name !== 'string' || !TOKEN.test(name)) {
    throw sackError(TypeError, 'ERR_INVALID_HTTP_TOKEN', `setHeader: invalid header name ${JSON.stringify(String(name))}`);
  }
  lower = name.toLowerCase();
  if (knownNames.size < KNOWN_MAX) knownNames.set(name, lower);
  return lower;
}

// The last head block built, with the headers it came from: handlers tend
// to set the same few headers on every response, and reusing the block
// saves building it and, on the native side, flattening it again.
const LAST_MAX = 8 * 3;
let lastHeaders = null;
let lastBlock = '';

function sameAsLast(h) {
  const last = lastHeaders;
  if (last === null || last.length !== h.length) return false;
  for (let i = 0; i < h.length; i += 3) {
    if (last[i + 1] !== h[i + 1] || last[i + 2] !== h[i + 2]) return false;
  }
  return true;
}

// The block for headers `h` (a Response's `_headers`, not null): names
// and values joined by "\n" (lowerName and checkValue refuse both).
function headBlock(h) {
  if (sameAsLast(h)) return lastBlock;
  let block = '';
  let plain = true;
  for (let i = 0; i < h.length; i += 3) {
    const name = h[i + 1];
    const value = h[i + 2];
    if (Array.isArray(value)) {
      plain = false;
      for (const v of value) block = block === '' ? `${name}\n${v}` : `${block}\n${name}\n${v}`;
    } else {
      block = block === '' ? `${name}\n${value}` : `${block}\n${name}\n${value}`;
    }
  }
  if (plain && h.length <= LAST_MAX) {
    lastHeaders = h.slice();
    lastBlock = block;
  }
  return block;
}

module.exports = { lowerName, headerValue, headBlock };
