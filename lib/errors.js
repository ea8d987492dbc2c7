'use strict';
// Errors with a stable `code` (and, for protocol failures, the close code
// they lead to).

function sackError(Ctor, code, message, extra) {
  const err = new Ctor(message);
  err.code = code;
  if (extra) Object.assign(err, extra);
  return err;
}

const closeCodeOf = {
  WS_ERR_PROTOCOL: 1002,
  WS_ERR_INVALID_UTF8: 1007,
  WS_ERR_INVALID_COMPRESSION: 1007,
  WS_ERR_MESSAGE_TOO_BIG: 1009,
  WS_ERR_BACKPRESSURE: 1008,
};

function notOpen(ws, what) {
  const names = ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'];
  return sackError(
    Error,
    'WS_ERR_NOT_OPEN',
    `${what}: WebSocket is not open: readyState ${ws.readyState} (${names[ws.readyState] || 'UNKNOWN'})`,
  );
}

function badOption(name, expected, value) {
  let shown;
  try {
    shown = typeof value === 'string' ? JSON.stringify(value) : String(value);
  } catch {
    shown = typeof value;
  }
  return sackError(
    TypeError,
    'ERR_INVALID_ARG_VALUE',
    `The "${name}" option must be ${expected}; received ${shown}`,
  );
}

module.exports = { sackError, notOpen, badOption, closeCodeOf };
