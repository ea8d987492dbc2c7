'use strict';
// The response wire format: how a part of a response is handed to the
// native respond(), and the results it gives.

const { sackError } = require('../errors.js');
const registry = require('../registry.js');

// Native response calls (src/binding/response.rs), installed at start-up.
const fast = registry.fast;

// respond()'s and watch()'s results, and respond()'s `code`: the status
// (below 1024) plus part flags, so the native side need not ask for any
// argument's type. Both are the addon's (src/binding/contract.rs).
const native = require('../native.js');
const { Ok: OK, Full: FULL, NotOpen: NOT_OPEN } = native.CallStatus;
const {
  Last: LAST, // this part ends the response
  NewHead: NEW_HEAD, // `head` is the header block (a string)
  SameHead: SAME_HEAD, // the head, with the block last given again
  Reason: REASON, // `reason` is a string
  TextBody: TEXT_BODY, // `body` is a string
  BinaryBody: BINARY_BODY, // `body` is an ArrayBuffer or a view
} = native.ResponsePart;

// A body as the native side takes it: a string, binary, or undefined.
function checkBody(chunk, what) {
  if (chunk === undefined || chunk === null) return undefined;
  if (typeof chunk === 'string' || chunk instanceof ArrayBuffer || ArrayBuffer.isView(chunk)) return chunk;
  throw sackError(TypeError, 'ERR_INVALID_ARG_TYPE', `${what}: the body must be a string, an ArrayBuffer or an ArrayBufferView`);
}

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

module.exports = { OK, FULL, NOT_OPEN, checkBody, send };
