'use strict';
// The server-side connection object (`ws` in the contract).

const { defineEvents, emit } = require('./events.js');
const registry = require('./registry.js');
const { sackError, notOpen } = require('./errors.js');
const native = require('./native.js');

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

// Status numbers NativeConnection methods return (src/binding/contract.rs).
const {
  Ok: ST_OK,
  AlreadyDecided: ST_ALREADY_DECIDED,
  ProtocolNotOffered: ST_PROTOCOL_NOT_OFFERED,
  BadType: ST_BAD_TYPE,
  Gone: ST_GONE,
} = native.CallStatus;

// Close codes that may be sent (RFC 6455 §7.4): 1000–1003, 1007–1014, 3000–4999.
function isValidCloseCode(code) {
  return (
    Number.isInteger(code) &&
    ((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999))
  );
}

function toBytes(data, what) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer || (typeof SharedArrayBuffer !== 'undefined' && data instanceof SharedArrayBuffer)) {
    return new Uint8Array(data);
  }
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  throw sackError(
    TypeError,
    'ERR_INVALID_ARG_TYPE',
    `${what}: data must be a string, an ArrayBuffer or an ArrayBufferView; received ${data === null ? 'null' : typeof data}`,
  );
}

function family(address) {
  return address.includes(':') ? 'IPv6' : 'IPv4';
}

// The `connection` object of a ws or an HTTP request, from the engine's info
// array (see Connection below for its layout).
function connectionInfo(info, headers) {
  return {
    remoteAddress: info[2],
    remotePort: info[3],
    remoteFamily: family(info[2]),
    localAddress: info[4],
    localPort: info[5],
    localFamily: family(info[4]),
    // TLS: the SNI name the client asked for, the protocol version
    // ('TLSv1.3', 'TLSv1.2') and the cipher suite; null on plain text.
    hostname: info[9] ?? null,
    tlsVersion: info[10] ?? null,
    cipher: info[11] ?? null,
    headers,
  };
}

// The query string as an object: values decoded ('+' is a space), a key
// without '=' is null, a repeated key collects its values in an array.
function parseQuery(query, into = Object.create(null)) {
  if (!query) return into;
  for (const part of query.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = decode(eq < 0 ? part : part.slice(0, eq));
    const value = eq < 0 ? null : decode(part.slice(eq + 1));
    if (key in into) {
      // In place: a copy per repeat would make a long form quadratic.
      const prev = into[key];
      if (Array.isArray(prev)) prev.push(value);
      else into[key] = [prev, value];
    } else {
      into[key] = value;
    }
  }
  return into;
}

function decode(s) {
  s = s.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

// Headers whose repeats Node's http drops (the first line counts).
const FIRST_ONLY = new Set([
  'age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from',
  'host', 'if-modified-since', 'if-unmodified-since', 'last-modified', 'location',
  'max-forwards', 'proxy-authorization', 'referer', 'retry-after', 'server', 'user-agent',
]);

// Lower-case header names, repeats combined as Node's http does: set-cookie
// kept as an array, cookie joined with "; ", the fields above keep their
// first line, the others are joined with ", ".
function headersFromRaw(raw) {
  const h = Object.create(null);
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    const value = raw[i + 1];
    if (name === 'set-cookie') (h[name] || (h[name] = [])).push(value);
    else if (!(name in h)) h[name] = value;
    else if (name === 'cookie') h[name] += '; ' + value;
    else if (!FIRST_ONLY.has(name)) h[name] += ', ' + value;
  }
  return h;
}

// info: [target, rawHeaders, remoteAddress, remotePort, localAddress,
//        localPort, protocols, method, httpMinor, tlsHostname, tlsVersion,
//        cipher] (src/binding/dispatch.rs, conn_info)
class Connection {
  constructor(server, handle, info, id, state) {
    this._h = handle;
    this._id = id;
    this._server = server;
    // The upgrade request's facts (see below); made on first use when the
    // engine did not send them along (an open without an accept handler),
    // so a connection whose request is never looked at costs no strings.
    this._info = info === undefined ? null : info;
    this.readyState = state;
    this.protocol = '';
    this.extensions = handle.extensions;
    this._protocols = undefined;
    this._rawHeaders = undefined;
    this._url = undefined;
    this._query = undefined;
    this._cgi = undefined;
    this._headers = undefined;
    this._connection = undefined;
    this._held = false;
    this._deciding = false;
    this._connectPending = false;
    this._moved = false;
    this._sentCbs = null;
    // Handler slots exist from the start, so every connection object has
    // one shape and the message path stays monomorphic.
    this._on_message = null;
    this._ls_message = null;
    this._on_close = null;
    this._ls_close = null;
    this._on_error = null;
    this._ls_error = null;
    this._on_pong = null;
    this._ls_pong = null;
    this._on_drain = null;
    this._ls_drain = null;
  }

  _request() {
    if (this._info === null) this._info = this._h.info();
    return this._info;
  }

  // The request target, split once: `url` (the path) and the query.
  _target() {
    const target = this._request()[0];
    const q = target.indexOf('?');
    if (this._url === undefined) this._url = q < 0 ? target : target.slice(0, q);
    this._query = q < 0 ? '' : target.slice(q + 1);
  }

  get url() {
    if (this._url === undefined) this._target();
    return this._url;
  }

  set url(v) {
    this._url = v;
  }

  get protocols() {
    if (this._protocols === undefined) this._protocols = this._request()[6];
    return this._protocols;
  }

  set protocols(v) {
    this._protocols = v;
  }

  get rawHeaders() {
    if (this._rawHeaders === undefined) this._rawHeaders = this._request()[1];
    return this._rawHeaders;
  }

  set rawHeaders(v) {
    this._rawHeaders = v;
  }

  get CGI() {
    if (this._cgi === undefined) {
      if (this._query === undefined) this._target();
      this._cgi = parseQuery(this._query);
    }
    return this._cgi;
  }

  get headers() {
    if (this._headers === undefined) this._headers = headersFromRaw(this.rawHeaders);
    return this._headers;
  }

  get connection() {
    if (this._connection === undefined) this._connection = connectionInfo(this._request(), this.headers);
    return this._connection;
  }

  get bufferedAmount() {
    return this.readyState === CLOSED ? 0 : this._h.bufferedAmount;
  }

  // Strings go as text; ArrayBuffers and every view as binary (exactly the
  // view's bytes). The type check and the copy happen natively. Once a
  // close is under way (CLOSING) the data is dropped and false returned:
  // a handler still answering messages read before the close is no misuse.
  // Only a connection that never opened or has closed throws.
  send(data, cb) {
    if (cb !== undefined && cb !== null && typeof cb !== 'function') {
      throw sackError(TypeError, 'ERR_INVALID_ARG_TYPE', 'send: the callback must be a function');
    }
    if (this.readyState !== OPEN) {
      toBytes(data, 'send'); // the TypeError for bad data comes first
      if (this.readyState === CLOSING) {
        if (cb) process.nextTick(cb, notOpen(this, 'send'));
        return false;
      }
      throw notOpen(this, 'send');
    }
    const r = registry.fast.send(this._id, data);
    if (r === ST_BAD_TYPE) toBytes(data, 'send'); // throws the TypeError
    // r < 0 otherwise: the engine began closing (peer close, protocol error)
    // and the close event is on its way; JS still saw OPEN, so this is no
    // misuse. The data is dropped, as the RFC requires after a close frame.
    if (cb) {
      if (r < 0) process.nextTick(cb, notOpen(this, 'send'));
      else this._watchSent(cb);
    }
    return r === ST_OK;
  }

  // Send callbacks: each waits for the queue total after its send to be
  // with the socket ([target, cb, target, cb, …], in order).
  _watchSent(cb) {
    const [target, handed] = this._h.watchSent();
    const list = this._sentCbs || (this._sentCbs = []);
    list.push(target, cb);
    if (handed >= target) process.nextTick(sentDue, this, handed);
  }

  // `upto` bytes are with the socket (engine event, or seen when watching).
  _sent(upto) {
    const list = this._sentCbs;
    if (list === null) return;
    let i = 0;
    while (i < list.length && list[i] <= upto) i += 2;
    if (i === 0) return;
    const due = list.splice(0, i);
    if (list.length > 0) {
      const handed = this._h.watchSentAt(list[0]);
      if (handed >= list[0]) process.nextTick(sentDue, this, handed);
    }
    for (let k = 1; k < due.length; k += 2) due[k]();
  }

  // The connection leaves this thread (closed, or posted): callbacks whose
  // data reached the socket succeed; the others get `err` (on close), or
  // succeed too after a post (the data still goes out, in order, but this
  // thread no longer hears when).
  _endSent(err) {
    if (this._sentCbs === null) return;
    this._sent(this._h.sentTotal);
    const rest = this._sentCbs;
    this._sentCbs = null;
    for (let k = 1; k < rest.length; k += 2) process.nextTick(rest[k], err);
  }

  // True when the ping was queued; false (dropped) once a close is under
  // way, as send().
  ping(data) {
    const bytes = data === undefined ? undefined : toBytes(data, 'ping');
    if (bytes && bytes.byteLength > 125) {
      throw sackError(RangeError, 'ERR_OUT_OF_RANGE', 'ping: the payload must not be longer than 125 bytes');
    }
    if (this.readyState === CLOSING) return false;
    if (this.readyState !== OPEN) throw notOpen(this, 'ping');
    return this._h.ping(bytes) === ST_OK; // < 0: closing in the engine already (see send)
  }

  close(code, reason) {
    if (code === undefined || code === null) code = 1000;
    if (typeof code !== 'number') {
      throw sackError(TypeError, 'ERR_INVALID_ARG_TYPE', `close: the code must be a number; received ${typeof code} ${JSON.stringify(code)}`);
    }
    if (!isValidCloseCode(code)) {
      throw sackError(
        RangeError,
        'WS_ERR_INVALID_CLOSE_CODE',
        `close: invalid close code ${String(code)} (use 1000–1003, 1007–1014 or 3000–4999)`,
      );
    }
    if (reason === undefined || reason === null) reason = '';
    if (typeof reason !== 'string') {
      throw sackError(TypeError, 'ERR_INVALID_ARG_TYPE', 'close: the reason must be a string');
    }
    if (Buffer.byteLength(reason) > 123) {
      throw sackError(RangeError, 'ERR_OUT_OF_RANGE', 'close: the reason must not be longer than 123 UTF-8 bytes');
    }
    if (this.readyState === CONNECTING) {
      this.reject(403);
      return;
    }
    if (this.readyState !== OPEN) return;
    this.readyState = CLOSING;
    this._h.close(code, reason);
  }

  terminate() {
    if (this.readyState === CLOSED) return;
    if (this.readyState === OPEN) this.readyState = CLOSING;
    this._h.terminate();
  }

  // After post() the socket is another thread's: this object no longer
  // acts on it (as send() and close() do not).
  block() {
    if (!this._moved) this._h.setBlocked(true);
  }

  resume() {
    if (!this._moved) this._h.setBlocked(false);
  }

  get noDelay() {
    return this._noDelay !== false;
  }

  set noDelay(on) {
    if (this._moved) return;
    this._noDelay = !!on;
    this._h.setNoDelay(!!on);
  }

  // Accepts this pending connection (from the accept event, or any time
  // later). True when accepted; false when the client has gone meanwhile
  // (nothing to accept: its 'close' event comes, or came).
  accept(protocol) {
    if (protocol !== undefined && protocol !== null && typeof protocol !== 'string') {
      throw sackError(TypeError, 'ERR_INVALID_ARG_TYPE', 'accept: the protocol must be a string');
    }
    if (protocol && !this.protocols.includes(protocol)) {
      throw sackError(
        TypeError,
        'WS_ERR_PROTOCOL_NOT_OFFERED',
        `accept: the client did not offer the subprotocol "${protocol}" (offered: ${this.protocols.join(', ') || 'none'})`,
      );
    }
    if (this.readyState === CLOSED && !this._moved) return false;
    const r = this._h.accept(protocol || null);
    if (r === ST_GONE) return false;
    if (r === ST_PROTOCOL_NOT_OFFERED) {
      throw sackError(TypeError, 'WS_ERR_PROTOCOL_NOT_OFFERED', `accept: the client did not offer "${protocol}"`);
    }
    if (r !== ST_OK) throw decided(this, 'accept');
    this.protocol = protocol || '';
    this.readyState = OPEN;
    this._server._opened(this);
    if (this._deciding) this._connectPending = true;
    else this._server._emitConnect(this);
    return true;
  }

  // Refuses this pending connection with an HTTP status (default 403).
  // True when refused; false when the client has gone meanwhile.
  reject(status, reason) {
    if (status === undefined || status === null) status = 403;
    if (!Number.isInteger(status) || status < 400 || status > 599) {
      throw sackError(RangeError, 'ERR_OUT_OF_RANGE', `reject: the status must be an integer from 400 to 599; received ${status}`);
    }
    if (reason !== undefined && reason !== null && typeof reason !== 'string') {
      throw sackError(TypeError, 'ERR_INVALID_ARG_TYPE', 'reject: the reason must be a string');
    }
    if (this.readyState === CLOSED && !this._moved) return false;
    const r = this._h.reject(status, reason || null);
    if (r === ST_GONE) return false;
    if (r !== ST_OK) throw decided(this, 'reject');
    this.readyState = CLOSING;
    return true;
  }

  disableSSL() {
    throw sackError(Error, 'ERR_SACK_NOT_TLS', 'disableSSL: this connection does not use TLS');
  }

  // Hands this connection to a thread that called Thread.accept(destination),
  // with `data` (a structured clone: per-connection state such as the
  // authenticated user) for the receiver's callback.
  // True when a receiver took it: this object is then closed for good here
  // (readyState CLOSED, no close event), and the receiver gets a new one.
  // During the accept event it also accepts the connection for the receiver.
  post(destination, data) {
    const { checkDestination, serialize } = require('./thread.js');
    checkDestination(destination, 'post');
    if (this.readyState !== OPEN && this.readyState !== CONNECTING) throw notOpen(this, 'post');
    if (!native.threadPost(destination, this._h, serialize(data))) return false;
    this._endSent(undefined);
    this._server._released(this);
    this.readyState = CLOSED;
    this._moved = true;
    this._connectPending = false;
    return true;
  }

  // Engine events (called by dispatch.js).
  _message(data) {
    const p = this._on_message;
    if (p !== null) p.call(this, data);
    const l = this._ls_message;
    if (l !== null) {
      if (l.length === 1) l[0].call(this, data);
      else for (const fn of l.slice()) fn.call(this, data);
    }
  }

  _closed(code, reason) {
    this._endSent(sackError(Error, 'WS_ERR_NOT_OPEN', 'send: the connection closed before the data reached the socket'));
    this.readyState = CLOSED;
    this._server._released(this);
    emit(this, 'close', this, code, reason);
  }
}

function sentDue(ws, upto) {
  ws._sent(upto);
}

function decided(ws, what) {
  return sackError(
    Error,
    'WS_ERR_ALREADY_DECIDED',
    `${what}: the connection was already ${ws.readyState === CONNECTING ? 'decided' : 'accepted or rejected'}`,
  );
}

defineEvents(Connection.prototype, {
  message: ['onmessage'],
  close: ['onclose'],
  error: ['onerror'],
  pong: ['onpong'],
  drain: ['ondrain'],
});

require('./topics.js').connectionMethods(Connection.prototype, toBytes);

Connection.prototype.CONNECTING = CONNECTING;
Connection.prototype.OPEN = OPEN;
Connection.prototype.CLOSING = CLOSING;
Connection.prototype.CLOSED = CLOSED;

module.exports = { Connection, parseQuery, headersFromRaw, connectionInfo, isValidCloseCode, toBytes, native };
