'use strict';
// Server(url?, port?, options?, connectCallback?) in every form of the
// contract, and the checks that turn a bad option into a TypeError naming it.

const { badOption, sackError } = require('./errors.js');
const native = require('./native.js');

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
    if (!['ws:', 'wss:'].includes(u.protocol)) {
      throw badOption('url', 'a ws:// or wss:// URL', url);
    }
    const host = u.hostname.replace(/^\[|\]$/g, '');
    return {
      address: host || undefined,
      port: u.port ? Number(u.port) : undefined,
      secure: u.protocol === 'wss:',
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

// The options sack takes (NUMERIC's too).
const KNOWN = new Set([
  'url', 'address', 'host', 'port', 'path', 'noServer', 'backlog', 'masking',
  'perMessageDeflate', 'perMessageDeflateAllow', 'cert', 'key', 'passphrase', 'ca',
  'hosts', 'ticketKeys', 'backplane', 'clientTracking', 'allowSynchronousEvents',
  'autoPong', 'skipUTF8Validation', ...Object.keys(NUMERIC),
]);

// Options `ws` users write whose sack way differs: a TypeError saying it,
// rather than a server that quietly does something else (a `verifyClient`
// ignored would accept every client). `when(v)`: whether the value given
// asks for what sack does not do.
const WS_ONLY = {
  verifyClient: {
    when: () => true,
    how: 'decide in the "accept" event instead: server.onaccept = (ws) => { … server.accept() or server.reject(401) } (ws.headers, ws.url, ws.connection.remoteAddress are set)',
  },
  handleProtocols: {
    when: () => true,
    how: 'choose the subprotocol in the "accept" event instead: server.accept(ws.protocols.includes("chat") ? "chat" : undefined)',
  },
  server: {
    when: () => true,
    how: 'sack binds its own port; to share an http.Server\'s port, pass { noServer: true } and call sackServer.handleUpgrade(req, socket, head) from its "upgrade" event',
  },
  WebSocket: {
    when: () => true,
    how: 'sack\'s connection class cannot be replaced; add what you need to the connection in the "connect" event',
  },
  skipUTF8Validation: {
    when: (v) => v !== false,
    how: 'sack always validates UTF-8 (RFC 6455 §8.1), with SIMD, at little cost',
  },
  autoPong: {
    when: (v) => v !== true,
    how: 'sack always answers pings (RFC 6455 §5.5.2); the "pong" event reports pongs',
  },
};

function checkNames(options) {
  for (const name of Object.keys(options)) {
    const ws = WS_ONLY[name];
    if (ws !== undefined && options[name] !== undefined && ws.when(options[name])) {
      throw sackError(TypeError, 'ERR_INVALID_ARG_VALUE', `The "${name}" option of ws is not supported by sack: ${ws.how}`);
    }
    if (!KNOWN.has(name) && ws === undefined) {
      const near = closest(name);
      process.emitWarning(
        `sack: unknown option "${name}" is ignored${near ? ` (did you mean "${near}"?)` : ''}`,
        { type: 'Warning', code: 'SACK_UNKNOWN_OPTION' },
      );
    }
  }
}

// The known option nearest to `name` (case and a few typos aside), if any.
function closest(name) {
  let best;
  let bestD = Math.max(2, Math.floor(name.length / 3)) + 1;
  for (const k of KNOWN) {
    const d = k.toLowerCase() === name.toLowerCase() ? 0 : distance(k.toLowerCase(), name.toLowerCase());
    if (d < bestD) {
      best = k;
      bestD = d;
    }
  }
  return best;
}

// Levenshtein distance.
function distance(a, b) {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

// The bytes of an ArrayBuffer or a view (a Buffer over the same memory),
// or undefined for anything else.
function bytesOf(v) {
  if (v instanceof ArrayBuffer) return Buffer.from(v);
  if (ArrayBuffer.isView(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return undefined;
}

// PEM as the engine takes it: a Buffer.
function pem(name, v) {
  const b = typeof v === 'string' ? Buffer.from(v) : bytesOf(v);
  if (b === undefined) {
    throw sackError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "${name}" option must be PEM as a string or a Buffer (got ${typeof v})`);
  }
  return b;
}

// cert/key/passphrase/ca: TLS on every connection. `wss://` without a
// certificate is refused rather than served as plain text. SNI hosts and
// shared ticket keys are not in this build yet.
function tlsOptions(options, secureUrl) {
  const given = (k) => options[k] !== undefined && options[k] !== null;
  // Never the value: it may be a key or a passphrase.
  const bad = (name, why) => sackError(TypeError, 'ERR_INVALID_ARG_VALUE', `The "${name}" option ${why}`);
  let ticketKeys;
  if (given('ticketKeys')) {
    ticketKeys = ticketKeyBytes(options.ticketKeys, 'The "ticketKeys" option');
  }
  let hosts;
  if (given('hosts')) {
    if (!Array.isArray(options.hosts)) throw bad('hosts', 'must be an array of { host, cert, key, passphrase?, ca? }');
    if (options.noServer === true) throw bad('hosts', 'is not taken with noServer: the server that hands over upgrades does TLS');
    hosts = options.hosts.map((h, i) => hostMaterial(h, `hosts[${i}]`, true));
  }
  if (!given('cert') && !given('key')) {
    if (hosts && hosts.length) {
      for (const name of ['ca', 'passphrase']) {
        if (given(name)) throw bad(name, 'is given only with cert and key');
      }
      return ticketKeys ? { tlsHosts: hosts, tlsTicketKeys: ticketKeys } : { tlsHosts: hosts };
    }
    if (ticketKeys) throw bad('ticketKeys', 'is given only with cert and key, or hosts');
    if (secureUrl) throw bad('cert', 'is needed (with key, or hosts) for a wss:// URL');
    if (hosts) throw bad('hosts', 'is empty, and there is no cert: that would be no TLS at all');
    for (const name of ['ca', 'passphrase']) {
      if (given(name)) throw bad(name, 'is given only with cert and key');
    }
    return {};
  }
  if (!given('cert')) throw bad('cert', 'is needed to go with key (a certificate chain, PEM)');
  if (!given('key')) throw bad('key', 'is needed to go with cert (a private key, PEM)');
  if (options.noServer === true) throw bad('cert', 'is not taken with noServer: the server that hands over upgrades does TLS');
  const out = { tlsCert: pem('cert', options.cert), tlsKey: pem('key', options.key) };
  if (given('ca')) out.tlsCa = pem('ca', options.ca);
  if (given('passphrase')) {
    if (typeof options.passphrase !== 'string') throw bad('passphrase', 'must be a string');
    out.tlsPassphrase = options.passphrase;
  }
  if (hosts) out.tlsHosts = hosts;
  if (ticketKeys) out.tlsTicketKeys = ticketKeys;
  return out;
}

// Session-ticket keys as Node's: 48 bytes (a 16-byte name, 32 of key).
const TICKET_KEYS_LEN = 48;
function ticketKeyBytes(v, what) {
  const b = bytesOf(v);
  if (b === undefined) {
    throw sackError(TypeError, 'ERR_INVALID_ARG_TYPE', `${what} must be a Buffer of ${TICKET_KEYS_LEN} bytes`);
  }
  if (b.length !== TICKET_KEYS_LEN) {
    throw sackError(TypeError, 'ERR_INVALID_ARG_VALUE', `${what} must be ${TICKET_KEYS_LEN} bytes (got ${b.length})`);
  }
  return Buffer.from(b);
}

// { host, cert, key, passphrase?, ca? } as the engine takes it ({ names,
// … }); `named`: host is required (hosts, addHost), else not taken
// (setSecureContext).
function hostMaterial(h, what, named) {
  const bad = (why) => sackError(TypeError, 'ERR_INVALID_ARG_VALUE', `${what} ${why}`);
  if (h === null || typeof h !== 'object' || Array.isArray(h)) throw bad('must be an object { cert, key, … }');
  let names = [];
  if (named) {
    names = typeof h.host === 'string' ? [h.host] : h.host;
    if (!Array.isArray(names) || !names.length || !names.every((n) => typeof n === 'string' && n !== '')) {
      throw bad('.host must be a host name or a non-empty array of them');
    }
  } else if (h.host !== undefined) {
    throw bad('takes no host (the default certificate): use addHost() for a host');
  }
  if (h.cert === undefined || h.cert === null) throw bad('.cert is needed (a certificate chain, PEM)');
  if (h.key === undefined || h.key === null) throw bad('.key is needed (a private key, PEM)');
  const out = { names, cert: pem(`${what}.cert`, h.cert), key: pem(`${what}.key`, h.key) };
  if (h.ca !== undefined && h.ca !== null) out.ca = pem(`${what}.ca`, h.ca);
  if (h.passphrase !== undefined && h.passphrase !== null) {
    if (typeof h.passphrase !== 'string') throw bad('.passphrase must be a string');
    out.passphrase = h.passphrase;
  }
  return out;
}

// Returns { address, port, native: options for the engine, tls, deflate }.
function normalize(args) {
  const { url, port, options, connect } = parseArgs(args);
  const fromUrl = url !== undefined ? parseUrl(url) : {};

  checkNames(options);
  let address = fromUrl.address;
  // `host` is `address` by its `ws` and `net` name.
  for (const name of ['host', 'address']) {
    const v = options[name];
    if (v === undefined) continue;
    if (typeof v !== 'string' || v === '') throw badOption(name, 'a non-empty string', v);
    if (address !== undefined && name === 'address' && options.host !== undefined && v !== options.host) {
      throw badOption('address', `the same as "host" (${JSON.stringify(options.host)}) when both are given`, v);
    }
    address = v;
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
  if (options.path !== undefined) {
    if (typeof options.path !== 'string' || !options.path.startsWith('/')) {
      throw badOption('path', 'a string starting with "/"', options.path);
    }
    native.path = options.path;
  }
  if (options.backlog !== undefined) {
    if (!Number.isInteger(options.backlog) || options.backlog < 1) throw badOption('backlog', 'a positive integer', options.backlog);
    native.backlog = options.backlog;
  }
  for (const name of ['clientTracking', 'allowSynchronousEvents', 'noServer']) {
    const v = options[name];
    if (v !== undefined && typeof v !== 'boolean') throw badOption(name, 'true or false', v);
  }

  Object.assign(native, tlsOptions(options, fromUrl.secure === true));
  Object.assign(native, backplaneOptions(options.backplane));
  return { address, port: p, native, connect, options };
}

const BACKPLANE_KEYS = new Set(['url', 'prefix', 'mode', 'history', 'heartbeat', 'maxPending']);

// backplane: { url: 'redis://…', prefix = 'sack:', mode = 'pubsub' | 'history',
// history: { size = 1000, ttl = 300000 ms }, heartbeat = 1000 ms, maxPending = 64 MiB }.
function backplaneOptions(bp) {
  if (bp === undefined || bp === null) return {};
  const bad = (what, expected, v) => badOption(`backplane${what}`, expected, v);
  if (typeof bp === 'string') bp = { url: bp };
  if (typeof bp !== 'object') throw bad('', "an object { url: 'redis://…', … } or a redis:// URL", bp);
  for (const k of Object.keys(bp)) {
    if (!BACKPLANE_KEYS.has(k)) throw bad(`.${k}`, `one of the known keys (${[...BACKPLANE_KEYS].join(', ')})`, bp[k]);
  }
  if (typeof bp.url !== 'string' || !/^redis:\/\//.test(bp.url)) throw bad('.url', 'a redis:// URL', bp.url);
  const out = { backplaneUrl: bp.url };
  if (bp.prefix !== undefined) {
    if (typeof bp.prefix !== 'string') throw bad('.prefix', 'a string', bp.prefix);
    out.backplanePrefix = bp.prefix;
  }
  const mode = bp.mode === undefined ? (bp.history !== undefined ? 'history' : 'pubsub') : bp.mode;
  if (mode !== 'pubsub' && mode !== 'history') throw bad('.mode', '"pubsub" or "history"', bp.mode);
  if (mode === 'pubsub' && bp.history !== undefined) throw bad('.history', 'given only with mode "history"', bp.history);
  if (mode === 'history') {
    const h = bp.history === undefined ? {} : bp.history;
    if (typeof h !== 'object' || h === null) throw bad('.history', 'an object { size, ttl }', h);
    const size = h.size === undefined ? 1000 : h.size;
    if (!Number.isInteger(size) || size < 1) throw bad('.history.size', 'a positive integer', h.size);
    const ttl = h.ttl === undefined ? 300000 : h.ttl;
    if (typeof ttl !== 'number' || !(ttl >= 0) || ttl === Infinity) throw bad('.history.ttl', 'a non-negative number of milliseconds (0: never expires)', h.ttl);
    out.backplaneHistorySize = size;
    out.backplaneHistoryTtl = ttl;
  }
  for (const [key, name] of [['heartbeat', 'backplaneHeartbeat'], ['maxPending', 'backplaneMaxPending']]) {
    const v = bp[key];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !(v > 0) || v === Infinity) throw bad(`.${key}`, 'a positive number', v);
    out[name] = v;
  }
  return out;
}

module.exports = { normalize, parseUrl, hostMaterial, ticketKeyBytes, NUMERIC, DEFAULT_PORT };
