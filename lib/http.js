'use strict';
// The HTTP fallback: `req` and `res` of the `request` event.

const { sackError } = require('./errors.js');
const { parseQuery, headersFromRaw, connectionInfo } = require('./connection.js');
const registry = require('./registry.js');

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

// Native response calls (src/binding/exchange.rs), installed at start-up.
const fast = registry.fast;

// An address from the engine: IPv4 as ip * 65536 + port, IPv6 as
// "<ip> <port>" (src/binding/dispatch.rs).
function address(v) {
  if (typeof v === 'number') {
    const port = v % 65536;
    const ip = (v - port) / 65536;
    return [`${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`, port];
  }
  const sp = v.lastIndexOf(' ');
  return [v.slice(0, sp), Number(v.slice(sp + 1))];
}

// `flags`: bit 0 = HTTP/1.1, bit 1 = urlencoded form body. `headers`: names
// and values joined by "\n". Everything past the request line is built on
// first use: a handler that reads none of it pays nothing.
class Request {
  constructor(method, target, flags, headers, body, remote, local) {
    const q = target.indexOf('?');
    const v11 = (flags & 1) !== 0;
    this.method = method;
    this.url = q < 0 ? target : target.slice(0, q);
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

  get connection() {
    if (this._connection === undefined) {
      const [ra, rp] = address(this._remote);
      const [la, lp] = address(this._local);
      this._connection = connectionInfo([undefined, undefined, ra, rp, la, lp], this.headers);
    }
    return this._connection;
  }
}

// A body as the native side takes it: a string, binary, or undefined.
function checkBody(chunk, what) {
  if (chunk === undefined || chunk === null) return undefined;
  if (typeof chunk === 'string' || chunk instanceof ArrayBuffer || ArrayBuffer.isView(chunk)) return chunk;
  throw sackError(TypeError, 'ERR_INVALID_ARG_TYPE', `${what}: the body must be a string, an ArrayBuffer or an ArrayBufferView`);
}

function checkValue(name, v) {
  if (BAD_VALUE.test(v)) {
    throw sackError(TypeError, 'ERR_INVALID_CHAR', `setHeader: invalid character in the value of "${name}"`);
  }
}

function headersSent(what) {
  return sackError(Error, 'ERR_HTTP_HEADERS_SENT', `${what}: cannot change headers after they are sent`);
}

class Response {
  constructor(id) {
    this._id = id;
    this.statusCode = 200;
    this.statusMessage = undefined;
    this._headers = null; // lower-case name -> [name, value], once one is set
    this.headersSent = false;
    this.finished = false;
  }

  setHeader(name, value) {
    if (this.headersSent) throw headersSent('setHeader');
    if (typeof name !== 'string' || !TOKEN.test(name)) {
      throw sackError(TypeError, 'ERR_INVALID_HTTP_TOKEN', `setHeader: invalid header name ${JSON.stringify(String(name))}`);
    }
    let stored;
    if (Array.isArray(value)) {
      stored = value.map(String);
      for (const v of stored) checkValue(name, v);
    } else {
      stored = String(value);
      checkValue(name, stored);
    }
    if (this._headers === null) this._headers = new Map();
    this._headers.set(name.toLowerCase(), [name, stored]);
    return this;
  }

  getHeader(name) {
    const e = this._headers === null ? undefined : this._headers.get(String(name).toLowerCase());
    return e ? e[1] : undefined;
  }

  hasHeader(name) {
    return this._headers !== null && this._headers.has(String(name).toLowerCase());
  }

  removeHeader(name) {
    if (this.headersSent) throw headersSent('removeHeader');
    if (this._headers !== null) this._headers.delete(String(name).toLowerCase());
  }

  getHeaders() {
    const out = Object.create(null);
    if (this._headers !== null) for (const [lower, [, value]] of this._headers) out[lower] = value;
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
      headers = reason;
      reason = undefined;
    }
    this.statusCode = status;
    if (reason !== undefined) this.statusMessage = reason;
    if (Array.isArray(headers)) {
      for (let i = 0; i + 1 < headers.length; i += 2) this.setHeader(headers[i], headers[i + 1]);
    } else if (headers && typeof headers === 'object') {
      for (const [k, v] of Object.entries(headers)) this.setHeader(k, v);
    }
    return this;
  }

  // The headers for the native side: names and values joined by "\n"
  // (setHeader refuses both in names and values). Marks the head sent.
  _head() {
    this.headersSent = true;
    let block = '';
    if (this._headers !== null) {
      for (const [name, value] of this._headers.values()) {
        if (Array.isArray(value)) {
          for (const v of value) block = block === '' ? `${name}\n${v}` : `${block}\n${name}\n${v}`;
        } else {
          block = block === '' ? `${name}\n${value}` : `${block}\n${name}\n${value}`;
        }
      }
    }
    return block;
  }

  // Sends part of the body; without a Content-Length the body is chunked
  // (HTTP/1.1) or ends with the connection (HTTP/1.0).
  write(chunk) {
    if (this.finished) throw sackError(Error, 'ERR_STREAM_WRITE_AFTER_END', 'write after end');
    const body = checkBody(chunk, 'write');
    const head = this.headersSent ? undefined : this._head();
    fast.respond(this._id, this.statusCode, this.statusMessage ?? null, head, body, false);
    return true;
  }

  // Ends the response; with no earlier write, the body's length is known
  // and sent as Content-Length.
  end(body) {
    if (this.finished) return this;
    const bytes = checkBody(body, 'end');
    const head = this.headersSent ? undefined : this._head();
    this.finished = true;
    fast.respond(this._id, this.statusCode, this.statusMessage ?? null, head, bytes, true);
    return this;
  }

  // The handler threw: a 500 if nothing went out yet, else drop the
  // connection (the client cannot be told otherwise).
  _fail() {
    if (!this.headersSent) {
      this._headers = null;
      this.statusCode = 500;
      this.statusMessage = undefined;
      this.end('Internal Server Error');
    } else if (!this.finished) {
      this.finished = true;
      fast.abort(this._id);
    }
  }
}

module.exports = { Request, Response };
