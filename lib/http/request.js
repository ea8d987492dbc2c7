'use strict';
// `req` of the `request` event, and its `socket`.

const { parseQuery, headersFromRaw, connectionInfo } = require('../connection.js');
const { emitterWithHook } = require('./emitter.js');
// GONE: RequestSocket reads its response's flags.
const { GONE } = require('./response.js');
const { Http11: HTTP_11, UrlencodedForm: URLENCODED_FORM, Redirect: REDIRECT } = require('../native.js').RequestFlag;

// An address from the engine (src/binding/request_group.rs, address_number):
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
  // `tls`: [hostname, version, cipher] on a TLS connection.
  constructor(method, target, q, flags, headers, body, remote, local, tls) {
    const v11 = (flags & HTTP_11) !== 0;
    this.method = method;
    // As Node's: the request target, query included (routers read it).
    this.url = target;
    // The path alone (the original addon's `url`).
    this.path = q < 0 ? target : target.slice(0, q);
    this.httpVersion = v11 ? '1.1' : '1.0';
    // The original addon's numbering: 101 = HTTP/1.1, 100 = HTTP/1.0.
    this.version = v11 ? 101 : 100;
    this.bytes = body === undefined ? null : body;
    // Plain HTTP on a TLS port, carried on by `server.disableSSL()`.
    this.redirect = (flags & REDIRECT) !== 0;
    this._target = target;
    this._q = q;
    this._isForm = (flags & URLENCODED_FORM) !== 0;
    this._block = headers;
    this._remote = remote;
    this._local = local;
    this._tls = tls;
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
      const t = this._tls;
      const info = [undefined, undefined, ra, rp, la, lp, undefined, undefined, undefined];
      if (t !== undefined) info.push(t[0], t[1], t[2]);
      this._connection = new RequestSocket(this, connectionInfo(info, this.headers));
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

emitterWithHook(Request);
emitterWithHook(RequestSocket);

module.exports = { Request };
