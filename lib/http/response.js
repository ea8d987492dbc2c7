'use strict';
// `res` of the `request` event: its headers, the parts it sends and its
// lifecycle ('finish', 'close', 'drain').

const { sackError } = require('../errors.js');
const native = require('../native.js');
const registry = require('../registry.js');
const { emitterWithHook } = require('./emitter.js');
const { lowerName, headerValue, headBlock } = require('./headers.js');
const { OK, FULL, NOT_OPEN, checkBody, send } = require('./wire.js');

// Native response calls (src/binding/response.rs), installed at start-up.
const fast = registry.fast;
// Responses waiting for a native notice (lib/dispatch.js delivers them).
const responses = registry.responses;

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

// A string chunk in another encoding than UTF-8, as bytes.
function encoded(chunk, encoding) {
  if (typeof chunk !== 'string' || encoding === undefined || encoding === null) return chunk;
  const e = String(encoding).toLowerCase();
  return e === 'utf8' || e === 'utf-8' ? chunk : Buffer.from(chunk, encoding);
}

function headersSent(what) {
  return sackError(Error, 'ERR_HTTP_HEADERS_SENT', `${what}: cannot change headers after they are sent`);
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

  // The header block for the native side (headBlock). Marks the head sent.
  _head() {
    this.headersSent = true;
    const h = this._headers;
    return h === null ? '' : headBlock(h);
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

emitterWithHook(Response);

module.exports = { Response, GONE };
