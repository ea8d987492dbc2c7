#!/usr/bin/env node
'use strict';
// Writes the committed seed corpus of the fuzz targets: fuzz/seeds/<target>/.
// `node scripts/fuzz-seeds.js` replaces those directories with what is below.
//
// Each input has the layout its check in src/checks.rs reads: a few bytes of
// settings (limits, flags, a cut seed), then the bytes under test. The seeds
// are valid inputs and near-misses of each format, so that a fuzz run starts
// deep in the parsers instead of spending its first minutes finding
// "GET / HTTP/1.1" or a masked frame header. Kept small: libFuzzer mutates
// these, and a short run must get through them quickly.
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');

const root = path.join(__dirname, '..', 'fuzz', 'seeds');
const B = (...parts) =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));
const u16 = (n) => [n & 0xff, (n >> 8) & 0xff];

const seeds = {};
function add(target, name, bytes) {
  (seeds[target] ||= []).push([name, bytes]);
}

// --- http_head: 2 bytes of maxHeaderSize (n % 8192 + 1), then the request.
{
  const big = u16(8191); // the largest limit, 8192
  const small = u16(63); // 64 bytes: most heads are too large
  const key = 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
  const ws = (ext) =>
    'GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' + key +
    'Sec-WebSocket-Version: 13\r\n' + (ext ? `Sec-WebSocket-Extensions: ${ext}\r\n` : '') + '\r\n';
  const heads = {
    'get': 'GET / HTTP/1.1\r\nHost: a\r\n\r\n',
    'get-query': 'GET /p/a%20th?x=1&y=&z HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\n\r\n',
    'post-form': 'POST /f HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\nContent-Length: 3\r\n\r\na=b',
    'post-chunked': 'POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
    'te-list': 'PUT /u HTTP/1.1\r\nhost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n',
    'te-not-last': 'PUT /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n',
    'te-and-cl': 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n',
    'te-http10': 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n',
    'cl-twice-same': 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx',
    'cl-twice-differ': 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy',
    'cl-list': 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n',
    'cl-bad': 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +12\r\n\r\n',
    'cl-huge': 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n',
    'http10-keepalive': 'HEAD /x HTTP/1.0\r\nConnection: keep-alive\r\nX-Latin: caf\xe9\r\n\r\n',
    'connection-list': 'GET / HTTP/1.1\r\nHost: h\r\nConnection: close, TE\r\nConnection: keep-alive\r\n\r\n',
    'options-star': 'OPTIONS * HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Spaces:   v  \t\r\n\r\n',
    'absolute-form': 'GET http://example.com/x?y HTTP/1.1\r\nHost: example.com\r\n\r\n',
    'connect': 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n',
    'no-host': 'GET / HTTP/1.1\r\nAccept: */*\r\n\r\n',
    'two-hosts': 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n',
    'lone-lf': 'GET / HTTP/1.1\nHost: a\n\n',
    'obs-fold': 'GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n',
    'space-before-colon': 'GET / HTTP/1.1\r\nHost : a\r\n\r\n',
    'bad-method': 'G@T / HTTP/1.1\r\nHost: a\r\n\r\n',
    'bad-version': 'GET / HTTP/2.0\r\nHost: a\r\n\r\n',
    'ctl-in-value': 'GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\x7f\r\n\r\n',
    'incomplete': 'GET /incomplete HTTP/1.1\r\nHost: a\r\nX-Cut: yes\r\n',
    'pipelined': 'GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n',
    'leading-crlf': '\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n',
    'ws': ws(''),
    'ws-deflate': ws('permessage-deflate; client_max_window_bits'),
    'ws-deflate-params': ws('permessage-deflate; server_max_window_bits=10; client_max_window_bits=9; server_no_context_takeover; client_no_context_takeover'),
    'ws-deflate-offers': ws('x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=8, permessage-deflate'),
    'ws-deflate-quoted': ws('permessage-deflate; client_max_window_bits="15"; server_max_window_bits="7"'),
    'ws-deflate-dup-param': ws('permessage-deflate; server_no_context_takeover; server_no_context_takeover'),
    'ws-bad-key': 'GET / HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: short==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    'ws-http10': 'GET / HTTP/1.0\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' + key + 'Sec-WebSocket-Version: 13\r\n\r\n',
    'ws-post': 'POST / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' + key + 'Sec-WebSocket-Version: 8\r\n\r\n',
  };
  for (const [name, head] of Object.entries(heads)) add('http_head', name, B(big, head));
  add('http_head', 'small-limit', B(small, heads['get-query']));
  add('http_head', 'small-limit-fits', B(small, heads.get));
  let many = 'GET / HTTP/1.1\r\nHost: a\r\n';
  for (let i = 0; i < 128; i++) many += `x${i}: ${i}\r\n`;
  add('http_head', 'too-many-headers', B(big, many + '\r\n'));
}

// --- http_body: a kind byte (even: chunked; odd: Content-Length from the
// next 2 bytes), 2 bytes of maxBodySize, a cut seed, then the body.
{
  const chunked = (max, cut, body) => B([0], u16(0), u16(max), [cut], body);
  const length = (len, max, cut, body) => B([1], u16(len), u16(max), [cut], body);
  add('http_body', 'chunked', chunked(1000, 0, '5\r\nhello\r\n0\r\n\r\n'));
  add('http_body', 'chunked-cut', chunked(1000, 3, '5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n'));
  add('http_body', 'chunked-ext-trailer', chunked(1000, 7, '3;name=value;q="x\\"y"\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: t\r\nX: y\r\n\r\nNEXT'));
  add('http_body', 'chunked-hex-case', chunked(1000, 0, 'A\r\n0123456789\r\na\r\n0123456789\r\n0 ; e\r\n\r\n'));
  add('http_body', 'chunked-leading-zeros', chunked(1000, 1, '0005\r\nhello\r\n000\r\n\r\n'));
  add('http_body', 'chunked-ows-size', chunked(1000, 2, '5 \t;x\r\nhello\r\n0\r\n\r\n'));
  add('http_body', 'chunked-too-large', chunked(4, 0, '5\r\nhello\r\n0\r\n\r\n'));
  add('http_body', 'chunked-limit-exact', chunked(5, 5, '5\r\nhello\r\n0\r\n\r\n'));
  add('http_body', 'chunked-bad-hex', chunked(1000, 0, 'g\r\nhello\r\n0\r\n\r\n'));
  add('http_body', 'chunked-size-overflow', chunked(1000, 0, 'fffffffffffffffff\r\nx\r\n0\r\n\r\n'));
  add('http_body', 'chunked-no-crlf-after-data', chunked(1000, 0, '5\r\nhelloXX0\r\n\r\n'));
  add('http_body', 'chunked-lone-lf', chunked(1000, 0, '5\nhello\n0\n\n'));
  add('http_body', 'chunked-no-last', chunked(1000, 4, '5\r\nhello\r\n'));
  add('http_body', 'chunked-empty', chunked(0, 0, '0\r\n\r\n'));
  add('http_body', 'chunked-trailer-bad', chunked(1000, 0, '0\r\nBad Trailer\r\n\r\n'));
  add('http_body', 'length', length(11, 1000, 0, 'hello world'));
  add('http_body', 'length-cut', length(11, 1000, 9, 'hello world and the next request'));
  add('http_body', 'length-short', length(64, 1000, 2, 'only part'));
  add('http_body', 'length-too-large', length(600, 100, 0, 'x'.repeat(20)));
  add('http_body', 'length-zero', length(0, 0, 0, 'GET / HTTP/1.1\r\n'));
  add('http_body', 'binary', length(256, 4096, 11, Buffer.from(Array.from({ length: 256 }, (_, i) => i))));
}

// --- response_head: flags (bit 0 HTTP/1.1, 1 HEAD, 2 keep-alive, 3 a body
// length, 4 a reason first), 2 bytes of status (% 1100), 2 bytes of body
// length, then names and values separated by 0xff.
{
  const sep = '\xff';
  const resp = (flags, status, len, ...items) => B([flags], u16(status), u16(len), items.join(sep));
  add('response_head', 'ok-length', resp(0b01101, 200, 5, 'Content-Type', 'text/plain'));
  add('response_head', 'ok-chunked', resp(0b00101, 200, 0, 'Content-Type', 'text/html; charset=utf-8', 'Cache-Control', 'no-store'));
  add('response_head', 'http10-keepalive', resp(0b01100, 200, 12, 'X-A', 'a'));
  add('response_head', 'http10-no-length', resp(0b00100, 200, 0, 'X-A', 'a'));
  add('response_head', 'head-request', resp(0b01111, 200, 1000, 'ETag', '"x"'));
  add('response_head', 'reason', resp(0b11101, 404, 9, 'Not Here', 'Content-Type', 'text/plain'));
  add('response_head', 'reason-injected', resp(0b10101, 200, 0, 'OK\r\nX-Evil: 1', 'X-A', 'b'));
  add('response_head', 'reason-empty', resp(0b10101, 418, 0, ''));
  add('response_head', 'no-content', resp(0b01101, 204, 3, 'X-A', 'a'));
  add('response_head', 'not-modified', resp(0b00101, 304, 0, 'ETag', 'W/"1"'));
  add('response_head', 'continue', resp(0b00101, 100, 0));
  add('response_head', 'switching', resp(0b00101, 101, 0, 'Upgrade', 'websocket', 'Connection', 'Upgrade', 'Sec-WebSocket-Accept', 's3pPLMBiTxaQ9kYGzzhZRbK+xOo='));
  add('response_head', 'status-low', resp(0b00101, 99, 0));
  add('response_head', 'status-high', resp(0b00101, 1000, 0));
  add('response_head', 'status-999', resp(0b01101, 999, 0));
  add('response_head', 'user-framing', resp(0b00101, 200, 0, 'Connection', 'close, x-opt', 'Transfer-Encoding', 'chunked', 'Date', 'yesterday'));
  add('response_head', 'user-lengths', resp(0b00101, 200, 0, 'Content-Length', '12', 'content-length', '12', 'X-A', 'a'));
  add('response_head', 'user-length-and-te', resp(0b01101, 200, 7, 'Content-Length', '5', 'Transfer-Encoding', 'gzip'));
  add('response_head', 'crlf-value', resp(0b00101, 200, 0, 'X-A', 'a\r\nb', 'X-B', 'c\nd', 'X-C', 'e\rf'));
  add('response_head', 'bad-names', resp(0b00101, 200, 0, 'Bad Name', 'v', '', 'empty', 'X:Y', 'z', 'Ok', 'v'));
  add('response_head', 'ows-values', resp(0b00101, 200, 0, 'X-A', '  padded\t ', 'X-B', '\t', 'X-C', ''));
  add('response_head', 'latin1-utf8', resp(0b00101, 200, 0, 'X-Latin', 'caf\xe9', 'X-Utf8', Buffer.from('κόσμε €', 'utf8').toString('latin1')));
  add('response_head', 'set-cookies', resp(0b00101, 200, 0, 'Set-Cookie', 'a=1; Path=/', 'Set-Cookie', 'b=2; HttpOnly', 'set-cookie', 'c=3'));
  add('response_head', 'odd-items', resp(0b00101, 200, 0, 'X-A', 'a', 'X-Lonely'));
  add('response_head', 'many', resp(0b01101, 201, 2, ...Array.from({ length: 40 }, (_, i) => [`X-${i}`, `${i}`]).flat()));
}

// --- ws_frames: flags (bit 0 mask required, 1 RSV1 allowed, 2 a small
// maxPayload of (flags >> 3) * 8), a cut seed, then client frames.
{
  // A frame as a client sends it: `mask` null for an unmasked one.
  function frame({ fin = true, rsv = 0, op, payload = '', mask = [0x37, 0xfa, 0x21, 0x3d], len }) {
    const data = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : Buffer.from(payload);
    const n = len ?? data.length;
    const head = [(fin ? 0x80 : 0) | (rsv << 4) | op];
    const m = mask ? 0x80 : 0;
    if (n < 126 && len === undefined) head.push(m | n);
    else if (n < 65536 && len === undefined) head.push(m | 126, n >> 8, n & 0xff);
    else {
      // 64-bit form (also forced for a small n by `len`, as a near-miss).
      head.push(m | 127);
      const big = BigInt(n);
      for (let i = 7; i >= 0; i--) head.push(Number((big >> BigInt(i * 8)) & 0xffn));
    }
    if (!mask) return B(head, data);
    const masked = Buffer.from(data.map((b, i) => b ^ mask[i % 4]));
    return B(head, mask, masked);
  }
  const ws = (flags, cut, ...frames) => B([flags, cut], ...frames);
  const T = 1, BIN = 2, CLOSE = 8, PING = 9, PONG = 10, CONT = 0;
  const M = 1, RSV1 = 2;
  const utf8 = (s) => Buffer.from(s, 'utf8');
  const close = (code, reason = '') => B([code >> 8, code & 0xff], utf8(reason));
  const deflated = zlib.deflateRawSync('Hello, hello, hello!', { finishFlush: zlib.constants.Z_SYNC_FLUSH }).subarray(0, -4);

  add('ws_frames', 'text', ws(M, 0, frame({ op: T, payload: 'Hello' })));
  add('ws_frames', 'text-utf8', ws(M, 3, frame({ op: T, payload: utf8('κόσμε a€𝄞') })));
  add('ws_frames', 'binary-16bit', ws(M, 5, frame({ op: BIN, payload: Buffer.alloc(300, 0xa5) })));
  add('ws_frames', 'binary-64bit-small', ws(M, 0, frame({ op: BIN, payload: 'abcd', len: 4 })));
  add('ws_frames', 'length-huge', ws(M, 0, frame({ op: BIN, payload: 'abcd', len: 2 ** 53 })));
  add('ws_frames', 'length-top-bit', B([M, 0, 0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]));
  add('ws_frames', 'fragments-ping', ws(M, 2,
    frame({ fin: false, op: T, payload: 'Hel' }),
    frame({ op: PING, payload: 'p' }),
    frame({ fin: false, op: CONT, payload: 'l' }),
    frame({ op: CONT, payload: 'o' })));
  add('ws_frames', 'fragments-split-utf8', ws(M, 1,
    frame({ fin: false, op: T, payload: utf8('€').subarray(0, 1) }),
    frame({ op: CONT, payload: utf8('€').subarray(1) })));
  add('ws_frames', 'fragments-empty', ws(M, 0,
    frame({ fin: false, op: BIN }), frame({ fin: false, op: CONT }), frame({ op: CONT })));
  add('ws_frames', 'ping-pong', ws(M, 0, frame({ op: PING, payload: 'x'.repeat(125) }), frame({ op: PONG })));
  add('ws_frames', 'ping-too-long', ws(M, 0, frame({ op: PING, payload: 'x'.repeat(126) })));
  add('ws_frames', 'ping-fragmented', ws(M, 0, frame({ fin: false, op: PING, payload: 'p' })));
  add('ws_frames', 'close', ws(M, 0, frame({ op: CLOSE, payload: close(1000, 'bye') }), frame({ op: T, payload: 'after' })));
  add('ws_frames', 'close-empty', ws(M, 0, frame({ op: CLOSE })));
  add('ws_frames', 'close-one-byte', ws(M, 0, frame({ op: CLOSE, payload: [3] })));
  add('ws_frames', 'close-bad-code', ws(M, 0, frame({ op: CLOSE, payload: close(1005) })));
  add('ws_frames', 'close-private-code', ws(M, 0, frame({ op: CLOSE, payload: close(4999, 'private') })));
  add('ws_frames', 'close-bad-utf8', ws(M, 0, frame({ op: CLOSE, payload: B(close(1001), [0xc3, 0x28]) })));
  add('ws_frames', 'text-bad-utf8', ws(M, 0, frame({ op: T, payload: [0x61, 0xed, 0xa0, 0x80] })));
  add('ws_frames', 'text-truncated-utf8', ws(M, 0, frame({ op: T, payload: [0xf0, 0x9f, 0x98] })));
  add('ws_frames', 'unmasked', ws(M, 0, frame({ op: T, payload: 'Hello', mask: null })));
  add('ws_frames', 'unmasked-allowed', ws(0, 0, frame({ op: BIN, payload: 'Hello', mask: null })));
  add('ws_frames', 'compressed', ws(M | RSV1, 0, frame({ rsv: 4, op: T, payload: deflated })));
  add('ws_frames', 'compressed-fragmented', ws(M | RSV1, 4,
    frame({ fin: false, rsv: 4, op: BIN, payload: deflated.subarray(0, 5) }),
    frame({ op: CONT, payload: deflated.subarray(5) })));
  add('ws_frames', 'rsv1-not-agreed', ws(M, 0, frame({ rsv: 4, op: T, payload: deflated })));
  add('ws_frames', 'rsv1-on-continuation', ws(M | RSV1, 0, frame({ fin: false, op: T, payload: 'a' }), frame({ rsv: 4, op: CONT, payload: 'b' })));
  add('ws_frames', 'rsv2-rsv3', ws(M | RSV1, 0, frame({ rsv: 3, op: T, payload: 'a' })));
  add('ws_frames', 'reserved-opcodes', ws(M, 0, frame({ op: 3, payload: 'a' }), frame({ op: 0xb, payload: 'b' })));
  add('ws_frames', 'continuation-first', ws(M, 0, frame({ op: CONT, payload: 'orphan' })));
  add('ws_frames', 'new-message-mid-fragments', ws(M, 0, frame({ fin: false, op: T, payload: 'a' }), frame({ op: BIN, payload: 'b' })));
  add('ws_frames', 'max-payload', ws(M | 4 | (2 << 3), 0, frame({ op: BIN, payload: 'x'.repeat(16) }), frame({ op: BIN, payload: 'x'.repeat(17) })));
  add('ws_frames', 'max-payload-fragments', ws(M | 4 | (1 << 3), 6, frame({ fin: false, op: T, payload: 'abcde' }), frame({ op: CONT, payload: 'fghij' })));
  add('ws_frames', 'header-only', ws(M, 0, B([0x81, 0xfe, 0x01])));
}

// --- mask: a 4-byte mask, an offset byte, then data (lengths around the
// word sizes the masking loops use).
{
  const data = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/0123456789abcdef');
  const cases = [
    [[0x37, 0xfa, 0x21, 0x3d], 0, 0], [[1, 2, 3, 4], 0, 1], [[1, 2, 3, 4], 1, 3],
    [[0xff, 0, 0xff, 0], 2, 4], [[0x12, 0x34, 0x56, 0x78], 3, 7], [[0x12, 0x34, 0x56, 0x78], 5, 8],
    [[0, 0, 0, 0], 0, 15], [[0xaa, 0xbb, 0xcc, 0xdd], 255, 16], [[0xaa, 0xbb, 0xcc, 0xdd], 6, 17],
    [[0x80, 0x01, 0x80, 0x01], 7, 31], [[0x80, 0x01, 0x80, 0x01], 9, 33], [[0xde, 0xad, 0xbe, 0xef], 4, 64],
    [[0xde, 0xad, 0xbe, 0xef], 130, data.length],
  ];
  for (const [m, off, n] of cases) add('mask', `len${n}-off${off}`, B(m, [off], data.subarray(0, n)));
}

// --- utf8: a cut seed, then bytes: every sequence length at its edges,
// and the ways UTF-8 goes wrong, some placed after runs of ASCII so that
// the word-at-a-time paths meet them.
{
  const u = (s) => Buffer.from(s, 'utf8');
  const cases = {
    'ascii': u('plain ASCII text'),
    'mixed': u('κόσμε a€𝄞'),
    'edges': u('\u007f\u0080\u07ff\u0800\ud7ff\ue000\uffff\u{10000}\u{10ffff}'),
    'bom-nul': B([0xef, 0xbb, 0xbf, 0x00, 0x41]),
    'surrogate': B([0xed, 0xa0, 0x80]),
    'surrogate-low': B([0xed, 0xbf, 0xbf]),
    'over-max': B([0xf4, 0x90, 0x80, 0x80]),
    'overlong-2': B([0xc0, 0x80]),
    'overlong-2b': B([0xc1, 0xbf]),
    'overlong-3': B([0xe0, 0x80, 0xaf]),
    'overlong-4': B([0xf0, 0x80, 0x80, 0xaf]),
    'truncated-4': B([0xf0, 0x9f, 0x98]),
    'truncated-then-ascii': B([0xe2, 0x82, 0x41]),
    'stray-continuation': B([0x61, 0x80, 0x62]),
    'bytes-f5-ff': B([0xf5, 0xf8, 0xfc, 0xfe, 0xff]),
  };
  const ascii = (n) => 'a'.repeat(n);
  for (const n of [7, 8, 15, 16, 31, 32, 63, 64]) {
    cases[`ascii${n}-then-bad`] = B(ascii(n), [0xed, 0xa0, 0x80], ascii(5));
    cases[`ascii${n}-then-4byte`] = B(ascii(n), u('𝄞'), ascii(3));
  }
  cases['long-valid'] = u('The quick brown fox — κόσμε — 𝄞 '.repeat(8));
  cases['long-bad-end'] = B(u('The quick brown fox — κόσμε — '.repeat(6)), [0xf0, 0x9f]);
  let i = 0;
  for (const [name, bytes] of Object.entries(cases)) add('utf8', name, B([(i++ * 37) % 256], bytes));
}

// --- deflate: flags (bit 0 server_no_context_takeover, 1 client_no_...,
// window bits 8 + (flags >> 2) % 8, flags >> 5 the level), a limit byte
// (limit * 64 bytes), a cut seed, then bytes: read both as a client's
// compressed payload and as messages to compress.
{
  const { Z_SYNC_FLUSH } = zlib.constants;
  // As permessage-deflate sends a message: a sync flush, its 00 00 ff ff
  // left off (§7.2.1).
  const msg = (text, opts = {}) =>
    zlib.deflateRawSync(Buffer.from(text), { finishFlush: Z_SYNC_FLUSH, ...opts }).subarray(0, -4);
  const final = (text, opts = {}) => zlib.deflateRawSync(Buffer.from(text), opts);
  const text = 'Hello hello hello hello, a message that repeats and repeats and repeats';
  const bits = (b) => ((b - 8) << 2) | (3 << 5); // window bits b, level 4
  const d = (flags, limit, cut, bytes) => B([flags, limit, cut], bytes);
  add('deflate', 'sync', d(bits(15), 255, 0, msg('Hello')));
  add('deflate', 'sync-cut', d(bits(15), 255, 7, msg(text)));
  add('deflate', 'final-block', d(bits(15), 255, 0, final(text)));
  add('deflate', 'stored', d(bits(15), 255, 0, msg(text, { level: 0 })));
  add('deflate', 'fixed-huffman', d(bits(15), 255, 0, msg('abcabcabcabc', { strategy: zlib.constants.Z_FIXED })));
  add('deflate', 'huffman-only', d(bits(15), 255, 3, msg(text, { strategy: zlib.constants.Z_HUFFMAN_ONLY })));
  add('deflate', 'window9', d(bits(9), 255, 0, msg(text.repeat(12), { windowBits: 9 })));
  add('deflate', 'window8-far-back', d(bits(8), 255, 0, msg('0123456789'.repeat(20) + 'x'.repeat(300) + '0123456789'.repeat(20), { windowBits: 15 })));
  add('deflate', 'no-takeover', d(bits(12) | 3, 255, 5, msg(text)));
  add('deflate', 'over-limit', d(bits(15), 1, 0, msg('z'.repeat(4000))));
  add('deflate', 'limit-zero', d(bits(15), 0, 0, msg('a')));
  add('deflate', 'empty-message', d(bits(15), 16, 0, B([0x00])));
  add('deflate', 'sync-marker-kept', d(bits(15), 255, 0, zlib.deflateRawSync('abc', { finishFlush: Z_SYNC_FLUSH })));
  add('deflate', 'bad-block-type', d(bits(15), 255, 0, B([0x07, 0xff, 0x00])));
  add('deflate', 'bad-stored-length', d(bits(15), 255, 0, B([0x00, 0x05, 0x00, 0xfa, 0xfe, 0x41])));
  add('deflate', 'after-final', d(bits(15), 255, 0, B(final('abc'), [0x4b, 0x4c])));
  add('deflate', 'plain-text', d(bits(11) | (7 << 5), 40, 11, text));
  add('deflate', 'binary', d(bits(14), 200, 13, Buffer.from(Array.from({ length: 200 }, (_, i) => (i * 7) & 0xff))));
}

fs.rmSync(root, { recursive: true, force: true });
let files = 0;
let bytes = 0;
for (const [target, list] of Object.entries(seeds)) {
  const dir = path.join(root, target);
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, data] of list) {
    fs.writeFileSync(path.join(dir, name), data);
    files++;
    bytes += data.length;
  }
  console.log(`${target}: ${list.length} seeds`);
}
console.log(`${files} files, ${bytes} bytes in ${path.relative(process.cwd(), root) || root}`);
