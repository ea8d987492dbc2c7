'use strict';
// The HTTP fallback: `req` and `res` of the `request` event.

const EventEmitter = require('events');
const { sackError } = require('./errors.js');
const { parseQuery, headersFromRaw, connectionInfo, native } = require('./connection.js');
const registry = require('./registry.js');

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

// Native response calls (src/binding/exchange.rs), installed at start-up.
const fast = registry.fast;
// Responses waiting for a native notice (lib/dispatch.js delivers them).
const responses = registry.responses;

// respond()'s and watch()'s results (src/binding/connection.rs, status).
const OK = 1;
const FULL = 0;
const NOT_OPEN = -1;

// An address from the engine (src/binding/dispatch.rs, address_number):
// IPv4 as ip * 65536 + port, IPv4-mapped IPv6 as -(that) - 1, others as
// "<ip> <port>".
function address(v) {
  if (typeof v === 'number') {
    const mapped = v < 0;
    if (mapped) v = -v - 1;
    const port = v % 65536;
    const ip = (v - port) / 65536;
    const dotted = `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`;
    return [mapped ? `::ffff:${dotted}` : dotted, port];
  }
  const sp = v.lastIndexOf(' ');
  return [v.slice(0, sp), Number(v.slice(sp + 1))];
}

// `q`: the position of "?" in `target` (-1: none). `flags`: bit 0 =
// HTTP/1.1, bit 1 = urlencoded form body. `headers`: names and values
// joined by "\n". Everything past the request line is built on first use:
// a handler that reads none of it pays nothing.
class Request {
  constructor(method, target, q, flags, headers, body, remote, local) {
    const v11 = (flags & 1) !== 0;
    this.method = method;
    // As Node's: the request target, query included (routers read it).
    this.url = target;
    // The path alone (the original addon's `url`).
    this.path = q < 0 ? target : target.slice(0, q);
    this.httpVersion = v11 ? '1.1' : '1.0';
    // The original addon's numbering: 101 = HTTP/1.1, 100 = HTTP/1.0.
    this.version = v11 ? 101 : 100;
    this.bytes = body === undefined ? null : body;
    this.redirect = false;
    this._target = target;
    this._q = q;
    this._isForm = (flags & 2) !== 0;
    this._block = headers;
    this._remote = remote;
    this._local = local;
    this._rawHeaders = undefined;
    this._headers = undefined;
    this._content = undefined;
    this._cgi = undefined;
    this._connection = undefined;
    // The Response (set by the server), for req's 'close'.
    this._res = undefined;
  }

  // The stream face, for handlers written for Node's `http`: the body is
  // here whole, so 'data' (once, if there is a body) and 'end' follow on
  // the next tick once a 'data' listener is added or resume() is called;
  // 'close' is the response's.
  _listening(name) {
    if (name === 'data') {
      if (this._paused !== true) this.resume();
    } else if (name === 'close' && this._res !== undefined && this._closeForwarded !== true) {
      this._closeForwarded = true;
      this._res.on('close', () => this.emit('close'));
    }
  }

  resume() {
    this._paused = false;
    if (this._scheduled !== true && (this._step | 0) < 2) {
      this._scheduled = true;
      process.nextTick(flow, this);
    }
    return this;
  }

  pause() {
    this._paused = true;
    return this;
  }

  isPaused() {
    return this._paused === true;
  }

  // The body into `dest` (a writable), ended unless `{ end: false }`.
  pipe(dest, { end = true } = {}) {
    const onData = (chunk) => dest.write(chunk);
    const onEnd = end ? () => dest.end() : null;
    this.on('data', onData);
    if (onEnd !== null) this.once('end', onEnd);
    (this._pipes ??= []).push({ dest, onData, onEnd });
    if (typeof dest.emit === 'function') dest.emit('pipe', this);
    // As Node's pipe(): a paused source starts flowing.
    this.resume();
    return dest;
  }

  // The response ended: a body not yet being read flows to no 'data'
  // listener and 'end' follows, as Node's IncomingMessage#_dump().
  _dump() {
    if (this._dumped === true || (this._step | 0) !== 0 || this._scheduled === true) return;
    this._dumped = true;
    this.removeAllListeners('data');
    this.resume();
  }

  // Undoes pipe(dest), or every pipe without `dest`, as Node's.
  unpipe(dest) {
    const pipes = this._pipes;
    if (pipes === undefined) return this;
    for (let i = pipes.length - 1; i >= 0; i--) {
      const p = pipes[i];
      if (dest !== undefined && p.dest !== dest) continue;
      pipes.splice(i, 1);
      this.removeListener('data', p.onData);
      if (p.onEnd !== null) this.removeListener('end', p.onEnd);
      if (typeof p.dest.emit === 'function') p.dest.emit('unpipe', this);
    }
    return this;
  }

  // As a Readable's: true until 'end' or destroy(). Libraries read it to
  // tell a body still to come (on-finished, body-parser).
  get readable() {
    return this._ended !== true && !this.destroyed;
  }

  setEncoding(encoding) {
    this._encoding = encoding;
    return this;
  }

  get complete() {
    return true;
  }

  get readableEnded() {
    return this._ended === true;
  }

  async *[Symbol.asyncIterator]() {
    const chunk = this._chunk();
    if (chunk !== null) yield chunk;
  }

  // The body as one 'data' chunk: a Buffer, or a string after setEncoding.
  _chunk() {
    if (this.bytes === null || this.bytes.byteLength === 0) return null;
    const buf = Buffer.from(this.bytes);
    return this._encoding ? buf.toString(this._encoding) : buf;
  }

  get rawHeaders() {
    if (this._rawHeaders === undefined) this._rawHeaders = this._block === '' ? [] : this._block.split('\n');
    return this._rawHeaders;
  }

  set rawHeaders(value) {
    this._rawHeaders = value;
  }

  get headers() {
    if (this._headers === undefined) this._headers = headersFromRaw(this.rawHeaders);
    return this._headers;
  }

  set headers(value) {
    this._headers = value;
  }

  // The body as a string, or null when the request had none.
  get content() {
    if (this._content === undefined) {
      this._content = this.bytes === null ? null : Buffer.from(this.bytes).toString('utf8');
    }
    return this._content;
  }

  // The query, with an urlencoded form body merged in.
  get CGI() {
    if (this._cgi === undefined) {
      this._cgi = parseQuery(this._q < 0 ? '' : this._target.slice(this._q + 1));
      if (this._isForm && this.content) parseQuery(this.content, this._cgi);
    }
    return this._cgi;
  }

  // As Node's `req.destroy([error])`: drops the connection (as
  // `res.destroy()`, which see) unless the body was read to its 'end';
  // `error` goes to the request's 'error' listeners, if any.
  destroy(error) {
    if (this._destroyed !== true) {
      this._destroyed = true;
      if (!this.readableEnded && this._res !== undefined) this._res.destroy();
      if (error != null && this.listenerCount('error') > 0) process.nextTick(() => this.emit('error', error));
    }
    return this;
  }

  get destroyed() {
    return this._destroyed === true || (this._res !== undefined && this._res.destroyed);
  }

  // Node's `req.socket.remoteAddress` and friends: the connection's info,
  // with what libraries use of a net.Socket (RequestSocket, below).
  get socket() {
    return this.connection;
  }

  get connection() {
    if (this._connection === undefined) {
      const [ra, rp] = address(this._remote);
      const [la, lp] = address(this._local);
      this._connection = new RequestSocket(this, connectionInfo([undefined, undefined, ra, rp, la, lp], this.headers));
    }
    return this._connection;
  }
}

// `req.socket` (= `req.connection`, `res.socket`): the connection's info
// (remoteAddress, …) and as much of a net.Socket as libraries written for
// Node's http use: destroy(), destroyed, readable and writable (true until
// the connection goes), and 'close' when it goes before the response has
// ended (on-finished listens for it). After a response the connection may
// stay open for the next request: no 'close' then.
class RequestSocket {
  constructor(req, info) {
    Object.assign(this, info);
    Object.defineProperty(this, '_req', { value: req });
  }

  _listening(name) {
    const res = this._req._res;
    if (name !== 'close' || res === undefined || this._closeWatched === true) return;
    Object.defineProperty(this, '_closeWatched', { value: true });
    res.on('close', () => {
      if ((res._flags & GONE) !== 0) this.emit('close', false);
    });
  }

  destroy() {
    this._req._res?.destroy();
    return this;
  }

  get destroyed() {
    return this._req._res?.destroyed ?? false;
  }

  get readable() {
    return !this.destroyed;
  }

  get writable() {
    return !this.destroyed;
  }
}

// Emits the body's 'data' and then 'end', stopping while paused.
function flow(req) {
  req._scheduled = false;
  while (req._paused !== true && (req._step | 0) < 2) {
    if ((req._step | 0) === 0) {
      req._step = 1;
      const chunk = req._chunk();
      if (chunk !== null) req.emit('data', chunk);
    } else {
      req._step = 2;
      req._ended = true;
      req.emit('end');
    }
  }
}

// A string chunk in another encoding than UTF-8, as bytes.
function encoded(chunk, encoding) {
  if (typeof chunk !== 'string' || encoding === undefined || encoding === null) return chunk;
  const e = String(encoding).toLowerCase();
  return e === 'utf8' || e === 'utf-8' ? chunk : Buffer.from(chunk, encoding);
}

// A body as the native side takes it: a string, binary, or undefined.
function checkBody(chunk, what) {
  if (chunk === undefined || chunk === null) return undefined;
  if (typeof chunk === 'string' || chunk instanceof ArrayBuffer || ArrayBuffer.isView(chunk)) return chunk;
  throw sackError(TypeError, 'ERR_INVALID_ARG_TYPE', `${what}: the body must be a string, an ArrayBuffer or an ArrayBufferView`);
}

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

function headersSent(what) {
  return sackError(Error, 'ERR_HTTP_HEADERS_SENT', `${what}: cannot change headers after they are sent`);
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

// respond(id, code, reason, head, body) (src/binding/exchange.rs): `code`
// is the status (below 1024) plus these flags, so the native side need not
// ask for any argument's type.
const LAST = 1 << 10; // this part ends the response
const NEW_HEAD = 1 << 11; // `head` is the header block (a string)
const SAME_HEAD = 1 << 12; // the head, with the block last given again
const REASON = 1 << 13; // `reason` is a string
const TEXT_BODY = 1 << 14; // `body` is a string
const BINARY_BODY = 1 << 15; // `body` is an ArrayBuffer or a view

// Queues part of `res` (the head with the first part); `body` as checkBody
// returns it. SAME_HEAD asks for the block last given, which the native
// side keeps per environment, as `registry.sentBlock` is (not per copy).
// Returns respond()'s result: undefined when queued, FULL when queued
// over `maxBackpressure`, NOT_OPEN when the connection is gone.
function send(res, last, body) {
  let code = last ? LAST : 0;
  let block;
  let reason = null;
  if (!res.headersSent) {
    const status = res._status();
    code += status;
    res._sentStatus = status;
    block = res._head();
    if (block === registry.sentBlock) {
      code |= SAME_HEAD;
      block = undefined;
    } else {
      registry.sentBlock = block;
      code |= NEW_HEAD;
    }
    if (typeof res._reason === 'string') {
      code |= REASON;
      reason = res._reason;
    }
  }
  if (typeof body === 'string') code |= TEXT_BODY;
  else if (body !== undefined) code |= BINARY_BODY;
  return fast.respond(res._id, code, reason, block, body);
}

// `_flags` of a Response.
const WATCHED = 1; // the native side sends a close notice
const CLOSED = 2; // 'close' emitted or on its way
const GONE = 4; // the connection went (or destroy()) before the end
const FINISHING = 8; // 'finish' emitted or on its way
const FINISHED = 16; // 'finish' emitted
const DESTROYED = 32; // destroy() was called
const LISTED = 64; // in `responses`, for a native notice
const HEADED = 128; // writeHead() was called

function emitFinish(res) {
  res._flags |= FINISHED;
  res.emit('finish');
  res._close(true);
}

function destroyedError(what) {
  return sackError(Error, 'ERR_STREAM_DESTROYED', `${what}: the connection is gone`);
}

function emitClose(res) {
  res.emit('close');
}

// `res` is an EventEmitter for the few handlers that listen ('close',
// 'finish', 'drain', and what `readable.pipe(res)` uses), but none of its
// state exists until the first listener: EventEmitter's methods create it
// then, so a response nobody listens to costs nothing for it.

class Response {
  constructor(id) {
    this._id = id;
    this.statusCode = 200;
    // `statusMessage` as set; the getter below gives the standard phrase
    // once the status is fixed.
    this._reason = undefined;
    // The status the head went out with.
    this._sentStatus = 0;
    // [lower-case name, name, value, …] in the order set: a response has
    // few headers, and a flat array beats a Map at that size.
    this._headers = null;
    this.headersSent = false;
    this.finished = false;
    this._flags = 0;
    // The Request (set by the server), as Node's `res.req`.
    this.req = undefined;
  }

  // As Node's `res.socket`: the request's (a RequestSocket).
  get socket() {
    return this.req === undefined ? null : this.req.socket;
  }

  get connection() {
    return this.socket;
  }

  // Listening for 'close' asks the native side to say when the connection
  // goes before the response ends (the other events need no asking). A
  // response that ended with nobody listening has 'finish' and 'close'
  // still to come: the first listener for either brings them.
  _listening(name) {
    if (name !== 'close' && name !== 'finish') return;
    if (name === 'close') this._watch();
    if (this.finished && (this._flags & (GONE | FINISHING | CLOSED)) === 0) {
      this._flags |= FINISHING;
      process.nextTick(emitFinish, this);
    }
  }

  _watch() {
    if ((this._flags & (WATCHED | CLOSED)) !== 0 || this.finished) return;
    this._flags |= WATCHED;
    if (fast.watch(this._id) === OK) this._list();
    else this._gone(false);
  }

  // Into `responses`, where lib/dispatch.js finds it for a native notice.
  _list() {
    this._flags |= LISTED;
    responses.set(this._id, this);
  }

  _unlist() {
    if ((this._flags & LISTED) === 0) return;
    this._flags &= ~LISTED;
    responses.delete(this._id);
  }

  // respond()'s result for a part: true when it is queued under the
  // limit; FULL waits for a drain notice, NOT_OPEN means the connection
  // is gone.
  _queued(r) {
    if (r === FULL) {
      this._list();
      return false;
    }
    if (r === NOT_OPEN) {
      this._gone(false);
      return false;
    }
    return true;
  }

  // The connection went before the end: 'close' (now or next tick).
  _gone(now) {
    this._flags |= GONE;
    this._close(now);
  }

  // The response is over (ended, or its connection gone): 'close', once,
  // now (`now`) or on the next tick.
  _close(now) {
    if ((this._flags & CLOSED) !== 0) return;
    this._flags |= CLOSED;
    this._unlist();
    if (now) this.emit('close');
    else process.nextTick(emitClose, this);
  }

  // A native notice (lib/dispatch.js).
  _notice(drain) {
    if (drain) {
      if ((this._flags & WATCHED) === 0) this._unlist();
      this.emit('drain');
    } else {
      this._gone(true);
    }
  }

  _find(lower) {
    const h = this._headers;
    if (h !== null) for (let i = 0; i < h.length; i += 3) if (h[i] === lower) return i;
    return -1;
  }

  setHeader(name, value) {
    if (this.headersSent) throw headersSent('setHeader');
    return this._set(lowerName(name), name, headerValue(name, value));
  }

  _set(lower, name, stored) {
    const i = this._find(lower);
    if (i >= 0) {
      this._headers[i + 1] = name;
      this._headers[i + 2] = stored;
    } else if (this._headers === null) {
      this._headers = [lower, name, stored];
    } else {
      this._headers.push(lower, name, stored);
    }
    return this;
  }

  // As Node's: adds to a header's values instead of replacing them.
  appendHeader(name, value) {
    if (this.headersSent) throw headersSent('appendHeader');
    return this._append(lowerName(name), name, headerValue(name, value));
  }

  // Adds checked value(s) `stored` to header `lower`, set as `name` if new.
  _append(lower, name, stored) {
    const i = this._find(lower);
    if (i < 0) return this._set(lower, name, stored);
    this._headers[i + 2] = [].concat(this._headers[i + 2], stored);
    return this;
  }

  // As Node's: every [name, value] of a Headers or a Map.
  setHeaders(headers) {
    if (this.headersSent) throw headersSent('setHeaders');
    if (!headers || Array.isArray(headers) || typeof headers.keys !== 'function' || typeof headers.get !== 'function') {
      throw sackError(TypeError, 'ERR_INVALID_ARG_TYPE', 'setHeaders: headers must be a Headers or a Map');
    }
    // A Headers gives each Set-Cookie apart (its get() would join them
    // with commas): they are gathered into one array, as Node does.
    let cookies = null;
    for (const [name, value] of headers) {
      if (name === 'set-cookie') (cookies ??= []).push(...[].concat(value));
      else this.setHeader(name, value);
    }
    if (cookies !== null) this.setHeader('set-cookie', cookies);
    return this;
  }

  getHeader(name) {
    const i = this._find(String(name).toLowerCase());
    return i < 0 ? undefined : this._headers[i + 2];
  }

  hasHeader(name) {
    return this._find(String(name).toLowerCase()) >= 0;
  }

  removeHeader(name) {
    if (this.headersSent) throw headersSent('removeHeader');
    const i = this._find(String(name).toLowerCase());
    if (i >= 0) this._headers.splice(i, 3);
  }

  getHeaderNames() {
    const out = [];
    const h = this._headers;
    if (h !== null) for (let i = 0; i < h.length; i += 3) out.push(h[i]);
    return out;
  }

  // Sends the head now, before any body (server-sent events do this):
  // the body that follows is chunked, or ends with the connection.
  flushHeaders() {
    if (!this.headersSent && !this.finished && (this._flags & GONE) === 0) {
      this._queued(send(this, false, undefined));
    }
  }

  getHeaders() {
    const out = Object.create(null);
    const h = this._headers;
    if (h !== null) for (let i = 0; i < h.length; i += 3) out[h[i]] = h[i + 2];
    return out;
  }

  // writeHead(status, [reason], [headers]): headers as an object or a flat
  // [name, value, …] array. Sent with the first write() or end().
  writeHead(status, reason, headers) {
    if (this.headersSent) throw headersSent('writeHead');
    if (!Number.isInteger(status) || status < 100 || status > 999) {
      throw sackError(RangeError, 'ERR_HTTP_INVALID_STATUS_CODE', `writeHead: invalid status code ${status}`);
    }
    if (typeof reason !== 'string') {
      // writeHead(status, headers), or a reason left undefined or null.
      headers ??= reason;
      reason = undefined;
    }
    if (Array.isArray(headers) && headers.length % 2 !== 0) {
      throw sackError(TypeError, 'ERR_INVALID_ARG_VALUE', 'writeHead: a headers array must hold name, value pairs');
    }
    this.statusCode = status;
    if (reason !== undefined) this._reason = reason;
    this._flags |= HEADED;
    if (Array.isArray(headers)) {
      // As in Node: these replace headers set before, and a name given
      // twice here is sent twice.
      const names = [];
      const values = [];
      for (let i = 0; i < headers.length; i += 2) {
        names.push(lowerName(headers[i]));
        values.push(headerValue(headers[i], headers[i + 1]));
      }
      for (const lower of names) {
        const at = this._find(lower);
        if (at >= 0) this._headers.splice(at, 3);
      }
      for (let k = 0; k < names.length; k++) this._append(names[k], headers[2 * k], values[k]);
    } else if (headers && typeof headers === 'object') {
      for (const [k, v] of Object.entries(headers)) this.setHeader(k, v);
    }
    return this;
  }

  // The status for the head; one set through `statusCode` is checked
  // here, as writeHead checks its own.
  _status() {
    const status = this.statusCode;
    if (!Number.isInteger(status) || status < 100 || status > 999) {
      throw sackError(RangeError, 'ERR_HTTP_INVALID_STATUS_CODE', `invalid status code ${status}`);
    }
    return status;
  }

  // The headers for the native side: names and values joined by "\n"
  // (setHeader refuses both in names and values). Marks the head sent.
  _head() {
    this.headersSent = true;
    const h = this._headers;
    if (h === null) return '';
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

  // Sends part of the body; without a Content-Length the body is chunked
  // (HTTP/1.1) or ends with the connection (HTTP/1.0).
  // Returns false when the part took the response's queue over the
  // server's `maxBackpressure` ('drain' follows when it falls back), and
  // when the connection is gone (the part is dropped; 'close' follows).
  // write(chunk, [encoding], [callback]), as Node's: `encoding` applies
  // to a string chunk; `callback` runs once the part is queued (with an
  // error when the connection is gone).
  write(chunk, encoding, cb) {
    if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    if (this.finished) throw sackError(Error, 'ERR_STREAM_WRITE_AFTER_END', 'write after end');
    const body = checkBody(encoded(chunk, encoding), 'write');
    const ok = (this._flags & GONE) === 0 && this._queued(send(this, false, body));
    if (typeof cb === 'function') {
      if ((this._flags & GONE) !== 0) process.nextTick(cb, destroyedError('write'));
      else process.nextTick(cb);
    }
    return ok;
  }

  // Ends the response: end([body], [encoding], [callback]), as Node's.
  // With no earlier write, the body's length is known and sent as
  // Content-Length. 'finish' and 'close' follow on the next tick (only
  // 'close' if the connection is gone); `callback` runs on 'finish' (with
  // an error when the connection is gone).
  end(body, encoding, cb) {
    if (typeof body === 'function') {
      cb = body;
      body = undefined;
    } else if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    if (this.finished) {
      if (typeof cb === 'function') this._whenFinished(cb);
      return this;
    }
    body = checkBody(encoded(body, encoding), 'end');
    if ((this._flags & GONE) === 0) {
      // A bad status throws here, leaving the response open for the 500
      // (and `cb` for the end that succeeds).
      this._queued(send(this, true, body));
    }
    this.finished = true;
    // As Node's: a body nobody began to read is read out, so the request's
    // 'end' comes (on-finished waits for it). Only a request with
    // listeners needs it; the common one has none.
    const req = this.req;
    if (req !== undefined && req._events !== undefined) req._dump();
    if (typeof cb === 'function') this._whenFinished(cb);
    // Gone, or 'finish' already on its way (the callback's listener).
    if ((this._flags & (GONE | FINISHING)) !== 0) return this;
    if (this._events !== undefined) {
      this._flags |= FINISHING;
      process.nextTick(emitFinish, this);
    } else {
      this._unlist();
    }
    return this;
  }

  // end()'s callback, for a response that has ended: on 'finish', or at
  // once with the error Node gives.
  _whenFinished(cb) {
    if ((this._flags & GONE) !== 0) {
      process.nextTick(cb, destroyedError('end'));
    } else if ((this._flags & FINISHED) !== 0) {
      process.nextTick(cb, sackError(Error, 'ERR_STREAM_ALREADY_FINISHED', 'end: the response has finished'));
    } else {
      this.once('finish', () => cb());
    }
  }

  // Drops the connection unless the response has ended (as Node's
  // `res.destroy()` destroys the socket); 'close' follows.
  destroy() {
    if (!this.finished && (this._flags & GONE) === 0) {
      this._flags |= GONE;
      fast.abort(this._id);
    }
    this._flags |= DESTROYED;
    this._close(false);
    return this;
  }

  // As Node's: what was set, or undefined, until writeHead() or the head
  // going out fixes the status; then the phrase the head carries (the
  // native side decides it, so the two cannot differ): a string set when
  // it can be sent, else the standard one.
  get statusMessage() {
    const set = this._reason;
    let status;
    if (this.headersSent) status = this._sentStatus;
    else if ((this._flags & HEADED) !== 0) status = this.statusCode;
    else return set;
    return native.reasonPhrase(typeof status === 'number' ? status : 0, typeof set === 'string' ? set : undefined);
  }

  set statusMessage(value) {
    this._reason = value;
  }

  get writableEnded() {
    return this.finished;
  }

  // As a Writable's, for stream.finished() and pipeline(): true until
  // end(), even once the connection is gone, so that a 'close' without
  // 'finish' reads as a premature close (as with Node's res).
  get writable() {
    return !this.finished;
  }

  // Handed to sack whole: 'finish' emitted, or due with nobody to hear it.
  get writableFinished() {
    const f = this._flags;
    return (f & FINISHED) !== 0 || (this.finished && (f & (GONE | FINISHING)) === 0);
  }

  get destroyed() {
    return (this._flags & (GONE | DESTROYED)) !== 0;
  }

  // The handler threw: a 500 if nothing went out yet, else drop the
  // connection (the client cannot be told otherwise).
  _fail() {
    if (!this.headersSent) {
      this._headers = null;
      this.statusCode = 500;
      this._reason = undefined;
      this._flags &= ~HEADED;
      this.end('Internal Server Error');
    } else if (!this.finished) {
      this.destroy();
      this.finished = true;
    }
  }
}

// Makes `cls` an EventEmitter whose listener additions call
// `this._listening(name)` (once() and prependOnceListener() go through
// on() and prependListener()). No EventEmitter constructor runs: its
// methods create their state with the first listener.
function emitterWithHook(cls) {
  const proto = cls.prototype;
  Object.setPrototypeOf(proto, EventEmitter.prototype);
  proto.on = function on(name, fn) {
    EventEmitter.prototype.on.call(this, name, fn);
    this._listening(name);
    return this;
  };
  proto.addListener = proto.on;
  proto.prependListener = function prependListener(name, fn) {
    EventEmitter.prototype.prependListener.call(this, name, fn);
    this._listening(name);
    return this;
  };
}

emitterWithHook(Request);
emitterWithHook(Response);
emitterWithHook(RequestSocket);

module.exports = { Request, Response };
