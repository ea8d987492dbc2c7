'use strict';
// The HTTP fallback: `req` and `res` of the `request` event.

const { sackError } = require('./errors.js');
const { parseQuery, headersFromRaw, connectionInfo } = require('./connection.js');

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

// info: [target, rawHeaders, remoteAddress, remotePort, localAddress,
//        localPort, protocols, method, httpMinor] (src/binding/dispatch.rs)
class Request {
  constructor(info, body, isForm) {
    const target = info[0];
    const q = target.indexOf('?');
    this.method = info[7];
    this.url = q < 0 ? target : target.slice(0, q);
    this.rawHeaders = info[1];
    this.httpVersion = info[8] === 0 ? '1.0' : '1.1';
    // The original addon's numbering: 101 = HTTP/1.1, 100 = HTTP/1.0.
    this.version = info[8] === 0 ? 100 : 101;
    this.bytes = body === undefined ? null : body;
    this.redirect = false;
    // Built on first use: a handler that reads none of them pays nothing.
    this._info = info;
    this._query = q < 0 ? '' : target.slice(q + 1);
    this._isForm = isForm;
    this._headers = undefined;
    this._content = undefined;
    this._cgi = undefined;
    this._connection = undefined;
  }

  get headers() {
    if (this._headers === undefined) this._headers = headersFromRaw(this.rawHeaders);
    return this._headers;
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
      this._cgi = parseQuery(this._query);
      if (this._isForm && this.content) parseQuery(this.content, this._cgi);
    }
    return this._cgi;
  }

  get connection() {
    if (this._connection === undefined) this._connection = connectionInfo(this._info, this.headers);
    return this._connection;
  }
}

function toBody(chunk, what) {
  if (chunk === undefined || chunk === null) return undefined;
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  if (chunk instanceof Uint8Array) return chunk;
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
  if (ArrayBuffer.isView(chunk)) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw sackError(TypeError, 'ERR_INVALID_ARG_TYPE', `${what}: the body must be a string, an ArrayBuffer or an ArrayBufferView`);
}

function headersSent(what) {
  return sackError(Error, 'ERR_HTTP_HEADERS_SENT', `${what}: cannot change headers after they are sent`);
}

class Response {
  constructor(handle) {
    this._h = handle;
    this.statusCode = 200;
    this.statusMessage = undefined;
    this._headers = new Map(); // lower-case name -> [name, value]
    this.headersSent = false;
    this.finished = false;
  }

  setHeader(name, value) {
    if (this.headersSent) throw headersSent('setHeader');
    if (typeof name !== 'string' || !TOKEN.test(name)) {
      throw sackError(TypeError, 'ERR_INVALID_HTTP_TOKEN', `setHeader: invalid header name ${JSON.stringify(String(name))}`);
    }
    const values = Array.isArray(value) ? value.map(String) : [String(value)];
    for (const v of values) {
      if (BAD_VALUE.test(v)) {
        throw sackError(TypeError, 'ERR_INVALID_CHAR', `setHeader: invalid character in the value of "${name}"`);
      }
    }
    this._headers.set(name.toLowerCase(), [name, Array.isArray(value) ? values : values[0]]);
    return this;
  }

  getHeader(name) {
    const e = this._headers.get(String(name).toLowerCase());
    return e ? e[1] : undefined;
  }

  hasHeader(name) {
    return this._headers.has(String(name).toLowerCase());
  }

  removeHeader(name) {
    if (this.headersSent) throw headersSent('removeHeader');
    this._headers.delete(String(name).toLowerCase());
  }

  getHeaders() {
    const out = Object.create(null);
    for (const [lower, [, value]] of this._headers) out[lower] = value;
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

  _sendHead(bodyLen) {
    const flat = [];
    for (const [name, value] of this._headers.values()) {
      if (Array.isArray(value)) for (const v of value) flat.push(name, v);
      else flat.push(name, value);
    }
    this.headersSent = true;
    this._h.writeHead(this.statusCode, this.statusMessage ?? null, flat, bodyLen);
  }

  // Sends part of the body; without a Content-Length the body is chunked
  // (HTTP/1.1) or ends with the connection (HTTP/1.0).
  write(chunk) {
    if (this.finished) throw sackError(Error, 'ERR_STREAM_WRITE_AFTER_END', 'write after end');
    const bytes = toBody(chunk, 'write');
    if (!this.headersSent) this._sendHead(-1);
    if (bytes && bytes.byteLength) this._h.write(bytes);
    return true;
  }

  // Ends the response; with no earlier write, the body's length is known
  // and sent as Content-Length.
  end(body) {
    if (this.finished) return this;
    const bytes = toBody(body, 'end');
    if (!this.headersSent) this._sendHead(bytes ? bytes.byteLength : 0);
    this.finished = true;
    this._h.end(bytes);
    return this;
  }
}

module.exports = { Request, Response };
