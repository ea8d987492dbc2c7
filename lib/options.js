'use strict';
// Server(url?, port?, options?, connectCallback?) in every form of the
// contract, and the checks that turn a bad option into a TypeError naming it.

const { badOption, sackError } = require('./errors.js');
const native = require('../native.js');

const DEFAULT_PORT = 8080;

// Sizes and times with their defaults, as the engine declares them
// (src/engine/config.rs says why each is what it is).
const NUMERIC = Object.freeze(
  Object.fromEntries(
    Object.entries(native.optionDefaults()).filter(([, v]) => typeof v === 'number'),
  ),
);

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function checkPort(name, v) {
  if (typeof v === 'string' && /^\d+$/.test(v)) v = Number(v);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 65535) {
    throw badOption(name, 'an integer from 0 to 65535', v);
  }
  return v;
}

// "ws://host:port/path", "wss://…", "host:port", "[::1]:port" or a bare address.
function parseUrl(url) {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    let u;
    try {
      u = new URL(url);
    } catch {
      throw badOption('url', 'a valid URL such as "ws://0.0.0.0:8080/"', url);
    }
    if (!['ws:', 'wss:', 'http:', 'https:'].includes(u.protocol)) {
      throw badOption('url', 'a ws://, wss://, http:// or https:// URL', url);
    }
    const host = u.hostname.replace(/^\[|\]$/g, '');
    return {
      address: host || undefined,
      port: u.port ? Number(u.port) : undefined,
      secure: u.protocol === 'wss:' || u.protocol === 'https:',
    };
  }
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(url);
  if (bracketed) {
    return { address: bracketed[1], port: bracketed[2] ? Number(bracketed[2]) : undefined };
  }
  const hostPort = /^([^:]+):(\d+)$/.exec(url);
  if (hostPort) return { address: hostPort[1], port: Number(hostPort[2]) };
  if (url === '') throw badOption('url', 'a non-empty string', url);
  return { address: url, port: undefined };
}

function parseArgs(args) {
  args = Array.from(args);
  let connect;
  if (typeof args[args.length - 1] === 'function') connect = args.pop();
  while (args.length && args[args.length - 1] === undefined) args.pop();
  let url;
  let port;
  let options = {};
  let i = 0;
  if (typeof args[i] === 'string') url = args[i++];
  if (typeof args[i] === 'number') port = args[i++];
  if (i < args.length && (isPlainObject(args[i]) || args[i] === null)) options = args[i++] || {};
  if (i < args.length) {
    throw sackError(
      TypeError,
      'ERR_INVALID_ARG_TYPE',
      `Server(url?, port?, options?, connect?): unexpected argument ${i + 1} of type ${typeof args[i]}`,
    );
  }
  if (url === undefined && options.url !== undefined) {
    if (typeof options.url !== 'string') throw badOption('url', 'a string', options.url);
    url = options.url;
  }
  return { url, port, options, connect };
}

// perMessageDeflate (true or an options object) and perMessageDeflateAllow,
// as the engine's flat fields. Defaults: see index.d.ts.
function deflateOptions(options) {
  const pmd = options.perMessageDeflate;
  const allow = options.perMessageDeflateAllow === true;
  if (pmd !== undefined && pmd !== null && typeof pmd !== 'boolean' && !isPlainObject(pmd)) {
    throw badOption('perMessageDeflate', 'true, false or an options object', pmd);
  }
  if (!pmd && !allow) return {};
  const o = isPlainObject(pmd) ? pmd : {};
  const out = { deflate: true, deflateCompress: !!pmd };
  const bool = (name, key) => {
    if (o[name] === undefined) return;
    if (typeof o[name] !== 'boolean') throw badOption(`perMessageDeflate.${name}`, 'true or false', o[name]);
    out[key] = o[name];
  };
  const int = (name, key, min, max) => {
    if (o[name] === undefined) return;
    const v = o[name];
    if (!Number.isInteger(v) || v < min || v > max) {
      throw badOption(`perMessageDeflate.${name}`, `an integer from ${min} to ${max}`, v);
    }
    out[key] = v;
  };
  bool('serverNoContextTakeover', 'deflateServerNoContextTakeover');
  bool('clientNoContextTakeover', 'deflateClientNoContextTakeover');
  int('serverMaxWindowBits', 'deflateServerMaxWindowBits', 8, 15);
  int('clientMaxWindowBits', 'deflateClientMaxWindowBits', 8, 15);
  int('level', 'deflateLevel', 0, 9);
  int('threshold', 'deflateThreshold', 0, 2 ** 31);
  return out;
}

// Returns { address, port, native: options for the engine, tls, deflate }.
function normalize(args) {
  const { url, port, options, connect } = parseArgs(args);
  const fromUrl = url !== undefined ? parseUrl(url) : {};

  let address = fromUrl.address;
  if (options.address !== undefined) {
    if (typeof options.address !== 'string' || options.address === '') {
      throw badOption('address', 'a non-empty string', options.address);
    }
    address = options.address;
  }
  if (address === undefined) address = '::';

  // Explicit port argument > options.port > URL port > 8080.
  let p = DEFAULT_PORT;
  if (fromUrl.port !== undefined) p = checkPort('url', fromUrl.port);
  if (options.port !== undefined) p = checkPort('port', options.port);
  if (port !== undefined) p = checkPort('port', port);

  const native = {};
  for (const [name] of Object.entries(NUMERIC)) {
    const v = options[name];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !(v >= 0) || v === Infinity) {
      throw badOption(name, 'a non-negative finite number', v);
    }
    native[name] = v;
  }
  for (const name of ['masking', 'perMessageDeflateAllow']) {
    const v = options[name];
    if (v !== undefined && typeof v !== 'boolean') throw badOption(name, 'true or false', v);
  }
  if (options.masking !== undefined) native.masking = options.masking;
  Object.assign(native, deflateOptions(options));

  const tls =
    fromUrl.secure ||
    ['cert', 'key', 'ca', 'hosts'].some((k) => options[k] !== undefined && options[k] !== null);
  if (tls) {
    // Refuse rather than serve plain text to someone who asked for TLS.
    throw sackError(
      Error,
      'ERR_SACK_TLS_UNAVAILABLE',
      'TLS (wss://, cert/key/hosts options) is not available in this build of sack yet',
    );
  }
  return { address, port: p, native, connect, options };
}

module.exports = { normalize, parseUrl, NUMERIC, DEFAULT_PORT };
