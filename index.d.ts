// Type definitions for sack: a WebSocket server for Node.js with a Rust engine.
// The reference these describe: docs/api.md (README.md has the short version).

import { EventEmitter } from 'node:events';

export type ReadyState = -1 | 0 | 1 | 2 | 3 | 4;

export interface ReadyStates {
  readonly INITIALIZING: -1;
  readonly CONNECTING: 0;
  readonly OPEN: 1;
  readonly CLOSING: 2;
  readonly CLOSED: 3;
  readonly LISTENING: 4;
}

/** Options of `Websocket.Server`. Every field is optional. */
export interface ServerOptions {
  /** `ws://host:port/`; host and port are taken from it (explicit `port` wins). `wss://` needs `cert` and `key` (or `hosts`). */
  url?: string;
  /** Bind address. Default `"::"` (dual-stack), `"0.0.0.0"` where IPv6 is missing. A host name is resolved once (`ENOTFOUND` when it does not resolve). */
  address?: string;
  /** Alias of `address`, as in `ws` and `net`. */
  host?: string;
  /** Accept upgrades only for this path (the target before any `?`); others are answered 400, as `ws` does. Default: every path. */
  path?: string;
  /** Bind nothing: connections come through `server.handleUpgrade(req, socket, head)` from a Node `http.Server`. Default `false`. */
  noServer?: boolean;
  /** The listen backlog. Default 511, as Node's. */
  backlog?: number;
  /** Accepted for `ws` compatibility; `server.clients` is always kept. */
  clientTracking?: boolean;
  /** Accepted for `ws` compatibility; no effect (messages are delivered in batches). */
  allowSynchronousEvents?: boolean;
  /** Port. Default 8080; 0 = any free port (see `address()`). Precedence: `port` argument > `options.port` > URL port > 8080. */
  port?: number;
  /** Mask the server's frames (non-standard; browsers refuse it). Default `false`. */
  masking?: boolean;
  /** permessage-deflate (RFC 7692): inflate incoming, deflate outgoing messages at or above `threshold`. Default `false`. Compression runs on the engine thread. */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;
  /** Negotiate permessage-deflate and inflate incoming, never deflate outgoing. Default `false`. */
  perMessageDeflateAllow?: boolean;
  /** TLS: the certificate chain (PEM). With `key`, every accepted connection speaks TLS 1.2/1.3. Bad material: `TypeError` (`ERR_SACK_TLS_MATERIAL`). */
  cert?: string | Uint8Array;
  /** TLS: the private key (PEM): RSA, ECDSA or Ed25519, in PKCS#8, PKCS#1 or SEC1; encrypted PKCS#8 with `passphrase`. */
  key?: string | Uint8Array;
  /** Passphrase of an encrypted PKCS#8 `key`. */
  passphrase?: string;
  /** Extra certificates appended to the chain sent to clients (PEM). */
  ca?: string | Uint8Array;
  /** 48 bytes (as Node's) sealing TLS session tickets; processes that share them resume each other's sessions. Default: random per server. */
  ticketKeys?: Uint8Array;
  /** Topics across processes and hosts through Redis: every `publish` also reaches the subscribers of the other servers sharing this Redis and `prefix`. A string is taken as `{ url }`. Bad values: `TypeError`. See `BackplaneOptions`. */
  backplane?: string | BackplaneOptions;
  /** Certificates chosen by SNI: exact names before `*.name` wildcards (one label); the top-level `cert` for other names. */
  hosts?: Array<TlsHost>;
  /** Largest incoming message in bytes; larger closes with 1009 (0 = no limit). Default 100 MiB. */
  maxPayload?: number;
  /** Largest HTTP request head in bytes; larger is answered 431 (0 = no limit). Default 16 KiB. */
  maxHeaderSize?: number;
  /** Largest HTTP request body (request handler); larger is answered 413 (0 = no limit). Default 10 MiB. */
  maxBodySize?: number;
  /** Bytes of HTTP request bodies the server holds at once while they arrive (0 = no limit). Past it, bodies are not read further until others are done, so TCP pushes back on their clients (each still bounded by `requestTimeout`). Default 64 MiB. */
  maxBodyBuffer?: number;
  /** Milliseconds for the request head to arrive; then the socket is dropped and `error` fires (`ETIMEDOUT`). A request body with no byte for as long is answered 408, with the same event. 0 = no limit. Default 10000. */
  handshakeTimeout?: number;
  /** Milliseconds for an HTTP request's whole body to arrive after its head (`handshakeTimeout` bounds each pause); then it is answered 408 and `error` fires (`ETIMEDOUT`). 0 = no limit. Default 300000, as Node's `requestTimeout`. */
  requestTimeout?: number;
  /** Milliseconds of silence before an automatic ping (0 = off); when the next interval passes with nothing received (a pong or anything else), the connection is closed (close event 1006, reason "ping timeout"). Finds peers that vanished without a FIN, and keeps NATs and proxies from cutting quiet connections. Default 30000. */
  pingInterval?: number;
  /** `send()` (and an HTTP response's `write()`) returns false once this many bytes wait to be written; `drain` fires when it falls back. While a connection is over it, the engine does not read from that client either (it is not reading what we send; TCP pushes back on it). Default 16 MiB. */
  maxBackpressure?: number;
  /** Bytes queued for one connection past which it is closed instead of queueing more (0 = no limit): the `error` event (`WS_ERR_BACKPRESSURE`, `closeCode` 1008), a close frame 1008, then `close`. For an app that ignores `send()`'s `false` while its client does not read. Default 64 MiB. */
  backpressureLimit?: number;
  /** Connections allowed at once, WebSocket and HTTP alike (0 = no limit). A new one past it closes an idle keep-alive HTTP connection to make room, or is answered 503 when none is idle. Default 0. */
  maxConnections?: number;
  /** Milliseconds to wait for the peer's close frame after ours, or for a peer that stopped reading to take what is queued once closing, before dropping the socket (close 1006); also how long the answer to a client's close frame waits for a busy JS thread. 0 = no limit. Default 10000. */
  closeTimeout?: number;
}

export interface BackplaneOptions {
  /** `redis://[user:password@]host:port[/db]` (no TLS to Redis). */
  url: string;
  /** Put before every Redis key and channel, so apps can share one Redis. Default `'sack:'`. */
  prefix?: string;
  /** `'pubsub'` (the default without `history`): at most once, ordered per publisher and topic; every reconnect raises a `gap`. `'history'` (the default with `history`): each topic keeps an offset and a bounded Redis Stream; holes after a reconnect are filled from it and publishes wait for Redis, so within the window nothing is lost, duplicated or reordered; a `gap` only when Redis lost the data (a restart without persistence) or a hole is older than the stream. */
  mode?: 'pubsub' | 'history';
  /** History mode: `size` entries kept per topic (default 1000); `ttl` milliseconds after its last publish a topic's history expires (0: never; default 300000). */
  history?: { size?: number; ttl?: number };
  /** Milliseconds between this node's heartbeats to Redis (`cluster` figures of other nodes are this old at most; a node silent for three beats leaves `cluster.nodes()`). Default 1000. */
  heartbeat?: number;
  /** Bytes of publishes held while Redis is away; past it publishes are dropped for other processes with a `gap` event (local delivery goes on). Default 64 MiB. */
  maxPending?: number;
}

/** What a publish did in this process. */
export interface PublishResult {
  /** Subscribers the message was queued for. */
  sent: number;
  /** Subscribers skipped because more than `maxBackpressure` bytes waited for them. */
  dropped: number;
}

/** A node of the cluster (a server sharing the backplane). */
export interface ClusterNode {
  /** The node's id (random per server start). */
  id: string | null;
  /** This server. */
  self: boolean;
  /** Open connections, as of the node's last heartbeat (live for `self`). */
  connections: number;
  pid: number | null;
  /** Start and last heartbeat, ms since the epoch. */
  started: number | null;
  lastSeen: number | null;
}

/** `server.cluster`: figures across every server sharing the backplane, from their heartbeats (at most `heartbeat` ms old; this server's own are live). Without a backplane, this server alone. Rejects with `ERR_SACK_BACKPLANE` when Redis does not answer, `ERR_SERVER_NOT_RUNNING` after `close`. */
export interface Cluster {
  /** This server's node id, or `null` without a backplane. */
  readonly nodeId: string | null;
  nodes(): Promise<ClusterNode[]>;
  connectionCount(): Promise<number>;
  subscriberCount(topic: string): Promise<number>;
}

export interface PerMessageDeflateOptions {
  /** Outgoing messages smaller than this many bytes are sent uncompressed. Default 1024. */
  threshold?: number;
  /** Compress every message alone (keeps no 32 KiB history, worse ratio). Default `false` (agreed anyway if the client asks). */
  serverNoContextTakeover?: boolean;
  /** Ask the client to reset its compressor after every message. Default `false`. */
  clientNoContextTakeover?: boolean;
  /** Our compression window, 8–15 (9 is used for 8): a connection keeps the last 2^bits bytes it compressed. Default 15. */
  serverMaxWindowBits?: number;
  /** The client's window we ask for when it offers `client_max_window_bits`, 8–15. Default 15. */
  clientMaxWindowBits?: number;
  /** zlib-rs level 0–9. Default 7: zlib-rs's 3–6 compress JSON about 5 % worse than zlib's 6 (`ws`'s default), its 7 slightly better. */
  level?: number;
}

export interface AddressInfo {
  address: string;
  family: 'IPv4' | 'IPv6';
  port: number;
}

/** A certificate for `hosts` and `addHost()`. */
export interface TlsHost extends TlsContext {
  /** A name, `*.name`, or an array of them. */
  host: string | string[];
}

/** A certificate and its key, for `setSecureContext()`. */
export interface TlsContext {
  cert: string | Uint8Array;
  key: string | Uint8Array;
  passphrase?: string;
  ca?: string | Uint8Array;
}

export interface ConnectionInfo {
  remoteAddress: string;
  remotePort: number;
  remoteFamily: 'IPv4' | 'IPv6';
  localAddress: string;
  localPort: number;
  localFamily: 'IPv4' | 'IPv6';
  /** SNI host name on TLS connections, else `null`. */
  hostname: string | null;
  /** `'TLSv1.3'` or `'TLSv1.2'` on TLS connections, else `null`. */
  tlsVersion: string | null;
  /** The cipher suite's IANA name on TLS connections, else `null`. */
  cipher: string | null;
  headers: Record<string, string | string[]>;
}

/**
 * An HTTP request's `connection` (= `req.socket`, `res.socket`): the connection's info and what
 * libraries written for Node's `http` use of a `net.Socket`. An EventEmitter: `'close'` when the
 * connection goes before the response ends (not after a keep-alive response).
 */
export interface RequestConnectionInfo extends ConnectionInfo, EventEmitter {
  /** Drops the connection, as `res.destroy()` (for Node's `req.socket.destroy()`). */
  destroy(): this;
  /** The connection went, or was dropped (the response's `destroyed`). */
  readonly destroyed: boolean;
  /** True until the connection goes. */
  readonly readable: boolean;
  /** True until the connection goes. */
  readonly writable: boolean;
}

export interface SocketInfo {
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  localPort: number;
  /** On TLS: the SNI name (for `lowError` 7, the unknown name), else `null`. */
  hostname: string | null;
  /** On an established TLS session: `'TLSv1.3'` or `'TLSv1.2'`, else `null`. */
  tlsVersion: string | null;
  /** On an established TLS session: the cipher suite's IANA name, else `null`. */
  cipher: string | null;
  /** For the `error` event. */
  error: { code: string; message: string };
}

/** An Error with a stable `code` (`WS_ERR_*`, `ERR_*`, or Node's `E*` socket codes). */
export interface SackError extends Error {
  code: string;
  /** For protocol failures: the close code the connection was closed with (1002, 1007, 1009). */
  closeCode?: number;
}

type Handler<A extends unknown[], T> = (this: T, ...args: A) => void;
/** A property handler: assign it (`obj.onx = fn`) or call it (`obj.onx(fn)`); both set the single property handler (TypeScript >= 5.1 for the differing get/set types). */
type HandlerProperty<A extends unknown[], T> = ((fn: Handler<A, T> | null) => void);

export interface ConnectionEvents {
  /** A message: a `string` for text, an `ArrayBuffer` for binary. */
  message: [data: string | ArrayBuffer];
  /** The connection closed: the peer's close code (1005 when it sent none, 1006 when the connection dropped). Fires once. */
  close: [code: number, reason: string];
  /** A protocol failure (`WS_ERR_PROTOCOL`, `WS_ERR_INVALID_UTF8`, `WS_ERR_MESSAGE_TOO_BIG`); `close` follows. */
  error: [err: SackError];
  /** A pong from the client. */
  pong: [data: ArrayBuffer];
  /** `bufferedAmount` fell back under `maxBackpressure`. */
  drain: [];
}

/** A server-side WebSocket connection. */
export interface Connection {
  /** Request path without the query string. */
  readonly url: string;
  /** Decoded query: a key without value is `null`; a repeated key gives an array. */
  readonly CGI: Record<string, string | null | Array<string | null>>;
  /** Request headers with lower-case names (repeats joined with ", "; `set-cookie` an array). */
  readonly headers: Record<string, string | string[]>;
  /** Request headers as sent: `[name, value, name, value, …]`. */
  readonly rawHeaders: string[];
  /** Subprotocols offered by the client. */
  readonly protocols: string[];
  /** The accepted subprotocol, or `""`. */
  readonly protocol: string;
  /** The agreed extensions (`Sec-WebSocket-Extensions` of the response), or `""`. */
  readonly extensions: string;
  readonly connection: ConnectionInfo;
  /** OPEN, then CLOSING after `close()` or once the client's close frame is being answered (after the handlers of the messages before it ran), CLOSED at the `close` event. */
  readonly readyState: ReadyState;
  /** Bytes queued and not yet written to the socket. */
  readonly bufferedAmount: number;
  /** TCP_NODELAY (default `true`). */
  noDelay: boolean;

  /** Sends a text (string) or binary (ArrayBuffer or any view: exactly its bytes) message. Returns `false` above `maxBackpressure`, and `false` (the data dropped) once a close is under way (CLOSING). Throws `WS_ERR_NOT_OPEN` before the connection opened or once it is CLOSED, `TypeError` for other data. */
  send(data: string | ArrayBuffer | ArrayBufferView, callback?: (err?: Error) => void): boolean;
  /** Starts the closing handshake. Default code 1000. `RangeError` for an invalid code or a reason over 123 UTF-8 bytes. */
  close(code?: number, reason?: string): void;
  /** Sends a ping (at most 125 bytes); `false` (dropped) once a close is under way. Client pings are answered automatically. */
  ping(data?: string | ArrayBuffer | ArrayBufferView): boolean;
  /** Drops the connection without a closing handshake (the close event reports 1006). */
  terminate(): void;
  /** Stops reading from the socket (TCP backpressure reaches the client). */
  block(): void;
  /** Reads again after `block()`. */
  resume(): void;
  /** Accepts this pending connection (during or after the server's `accept` event). `true` when accepted; `false` when the client left meanwhile (its `close` event comes). Throws `WS_ERR_ALREADY_DECIDED` when it was accepted or rejected already. */
  accept(protocol?: string): boolean;
  /** Refuses this pending connection with an HTTP status (default 403). `true` when refused; `false` when the client left meanwhile. */
  reject(status?: number, reason?: string): boolean;
  /** Ending TLS on an open connection (sack to sack) is not in this build: throws. */
  disableSSL(): void;
  /** Hands this connection to a thread that called `Thread.accept(destination)`. `true` when one took it (this object is then CLOSED here); `false` when none is registered. During `accept` it also accepts the connection. Subscriptions go along. */
  post(destination: string, data?: unknown): boolean;
  /** Subscribes to `topic` (any string): `server.publish` and other connections' `publish` reach it. `true` when newly subscribed, `false` when it already was or the connection is closing; throws `WS_ERR_NOT_OPEN` once closed. Allowed from the `accept` event on. A closed connection leaves its topics. */
  subscribe(topic: string): boolean;
  /** `true` when it was subscribed. */
  unsubscribe(topic: string): boolean;
  isSubscribed(topic: string): boolean;
  /** The topics subscribed to, oldest first. */
  readonly subscriptions: string[];
  /** Sends `data` (as `send` types it) to every subscriber of `topic` but this connection, here and, with a backplane, in every other process. Returns what happened here. */
  publish(topic: string, data: string | ArrayBuffer | ArrayBufferView): PublishResult;

  on<K extends keyof ConnectionEvents>(event: K, fn: Handler<ConnectionEvents[K], Connection>): this;
  once<K extends keyof ConnectionEvents>(event: K, fn: Handler<ConnectionEvents[K], Connection>): this;
  off<K extends keyof ConnectionEvents>(event: K, fn: Handler<ConnectionEvents[K], Connection>): this;

  get onmessage(): HandlerProperty<ConnectionEvents['message'], Connection>;
  set onmessage(fn: Handler<ConnectionEvents['message'], Connection> | null);
  get onclose(): HandlerProperty<ConnectionEvents['close'], Connection>;
  set onclose(fn: Handler<ConnectionEvents['close'], Connection> | null);
  get onerror(): HandlerProperty<ConnectionEvents['error'], Connection>;
  set onerror(fn: Handler<ConnectionEvents['error'], Connection> | null);
  get onpong(): HandlerProperty<ConnectionEvents['pong'], Connection>;
  set onpong(fn: Handler<ConnectionEvents['pong'], Connection> | null);
  get ondrain(): HandlerProperty<ConnectionEvents['drain'], Connection>;
  set ondrain(fn: Handler<ConnectionEvents['drain'], Connection> | null);
}

export interface ServerEvents {
  /** An upgrade request, before the 101. Decide with `server.accept/reject` now or `ws.accept/reject` later, within `handshakeTimeout` (then the client gets 503, the ws its `close` event and the server an `error` event, `ETIMEDOUT`). A handler that throws before deciding, or an async one that rejects before deciding, answers 500. No handler: accepted. `this` is the server. */
  accept: [ws: Connection];
  /** The connection is open; `this` is the connection. */
  connect: [ws: Connection];
  /** A plain HTTP request (not an upgrade). Without a handler such requests get 426. */
  request: [req: HttpRequest, res: HttpResponse];
  /** A failure before HTTP on a TLS server: 1 plain text on the TLS port (`data`: the bytes read; decide with `disableSSL()` / `rejectSSL()` during the event), 2 handshake failed or timed out, 3 the client refused the certificate, 4 the connection failed, 7 unknown SNI name and no default certificate (`data`: the name). */
  lowError: [code: number, socketInfo: SocketInfo, data: ArrayBuffer | string];
  /** A connection failed before it was upgraded (bad request, handshake or body timeout, reset). */
  error: [socketInfo: SocketInfo];
  /** The listener closed and every connection ended. */
  close: [];
  /** The backplane: `'up'` (connected to Redis, subscriptions restored; `info` `{}`), `'down'` (`info.error`), `'gap'` (messages may have been lost for `info.topics`; `info.reason`: `'reconnect'` (pubsub mode), `'epoch'` (Redis lost the topic's history), `'trimmed'` (a hole older than the history), `'fetch'` (the history could not be read), `'publish'` (pubsub-mode publishes Redis did not take), `'overflow'` (over `maxPending`)). */
  backplane: [state: 'up' | 'down' | 'gap', info: { error?: string; topics?: string[]; reason?: string }];
}

export interface Server {
  readonly readyState: ReadyState;
  /** Open connections of this server. */
  readonly connections: number;
  /** The bound port. */
  readonly port: number;
  address(): AddressInfo;
  /** During `accept` only: accept with an optional subprotocol (`TypeError` if the client did not offer it); as `ws.accept()`. */
  accept(protocol?: string): boolean;
  /** During `accept` only: refuse with an HTTP status (default 403) and reason; as `ws.reject()`. */
  reject(status?: number, reason?: string): boolean;
  /** Stops listening and closes every connection with `code` (default 1001); `close` fires when done, and `callback` with it (or with an `ERR_SERVER_NOT_RUNNING` error when not listening). */
  close(code?: number, reason?: string, callback?: (err?: Error) => void): void;
  close(callback: (err?: Error) => void): void;
  /** Takes over an upgrade request that arrived on a Node `http.Server` ('upgrade' event): the engine owns the connection from then on (Linux, macOS). `callback(ws, req)` once it is open. */
  handleUpgrade(req: import('node:http').IncomingMessage, socket: import('node:stream').Duplex, head: Buffer, callback?: (ws: Connection, req: import('node:http').IncomingMessage) => void): void;
  /** The open connections. */
  readonly clients: Set<Connection>;
  /** Keeps the process alive while listening (the default). */
  ref(): this;
  /** Lets the process exit while listening. */
  unref(): this;
  /** During `lowError` code 1 only: serves that connection as plain HTTP (`req.redirect === true`; plain upgrades work too). Elsewhere throws `ERR_SACK_NOT_TLS`. */
  disableSSL(): void;
  /** During `lowError` code 1 only: drops that connection (as no choice does). */
  rejectSSL(): void;
  /** Replaces the default certificate from the next handshake on; open connections keep theirs. Throws before changing anything on bad material. */
  setSecureContext(context: TlsContext): void;
  /** Adds or replaces the certificate of a host (SNI) from the next handshake on. */
  addHost(host: TlsHost): void;
  /** Removes a host's certificate; `true` when there was one. */
  removeHost(name: string): boolean;
  /** The 48-byte session-ticket key, to share with other processes. */
  getTicketKeys(): Buffer;
  /** Seals new tickets with `keys` (48 bytes); tickets of the key before still resume. */
  setTicketKeys(keys: Uint8Array): void;
  /** Sends `data` to every subscriber of `topic`: the frame is built once and written to each by the engine, no JS per subscriber. With a backplane it also goes to the other processes, unless `options.local`. Returns what happened here. */
  publish(topic: string, data: string | ArrayBuffer | ArrayBufferView, options?: { local?: boolean }): PublishResult;
  /** Subscribers of `topic` on this server. */
  subscriberCount(topic: string): number;
  /** Figures across every process sharing the backplane. */
  readonly cluster: Cluster;

  on<K extends keyof ServerEvents>(event: K, fn: Handler<ServerEvents[K], K extends 'connect' ? Connection : Server>): this;
  once<K extends keyof ServerEvents>(event: K, fn: Handler<ServerEvents[K], K extends 'connect' ? Connection : Server>): this;
  off<K extends keyof ServerEvents>(event: K, fn: Handler<ServerEvents[K], K extends 'connect' ? Connection : Server>): this;

  get onaccept(): HandlerProperty<ServerEvents['accept'], Server>;
  set onaccept(fn: Handler<ServerEvents['accept'], Server> | null);
  get onconnect(): HandlerProperty<ServerEvents['connect'], Connection>;
  set onconnect(fn: Handler<ServerEvents['connect'], Connection> | null);
  get onrequest(): HandlerProperty<ServerEvents['request'], Server>;
  set onrequest(fn: Handler<ServerEvents['request'], Server> | null);
  get onerrorlow(): HandlerProperty<ServerEvents['lowError'], Server>;
  set onerrorlow(fn: Handler<ServerEvents['lowError'], Server> | null);
  get onlowerror(): HandlerProperty<ServerEvents['lowError'], Server>;
  set onlowerror(fn: Handler<ServerEvents['lowError'], Server> | null);
  get onerror(): HandlerProperty<ServerEvents['error'], Server>;
  set onerror(fn: Handler<ServerEvents['error'], Server> | null);
  get onclose(): HandlerProperty<ServerEvents['close'], Server>;
  set onclose(fn: Handler<ServerEvents['close'], Server> | null);
  get onbackplane(): HandlerProperty<ServerEvents['backplane'], Server>;
  set onbackplane(fn: Handler<ServerEvents['backplane'], Server> | null);
}

/**
 * The `req` of the `request` event. The body is here whole (`content`, `bytes`); for
 * handlers written for Node's `http`, `req` is also an EventEmitter: a `'data'` listener
 * (or `resume()`) brings the body as one `'data'` chunk (a Buffer, a string after
 * `setEncoding`) and then `'end'`, on the next tick; `for await (const chunk of req)`
 * works; `'close'` is the response's.
 */
export interface HttpRequest extends EventEmitter, AsyncIterable<Buffer | string> {
  readonly method: string;
  /** Path without the query string. */
  readonly url: string;
  /** Decoded query, with an urlencoded form body merged in. */
  readonly CGI: Record<string, string | null | Array<string | null>>;
  /** 101 for HTTP/1.1, 100 for HTTP/1.0 (the original addon's numbering). */
  readonly version: 100 | 101;
  readonly httpVersion: '1.0' | '1.1';
  readonly headers: Record<string, string | string[]>;
  readonly rawHeaders: string[];
  /** The body as a string, or `null` when the request had none. */
  readonly content: string | null;
  /** The body's bytes, or `null`. */
  readonly bytes: ArrayBuffer | null;
  /** True for requests that came as plain text to a TLS port and were carried on by `server.disableSSL()`. */
  readonly redirect: boolean;
  readonly connection: RequestConnectionInfo;
  /** The same as `connection` (for `req.socket.remoteAddress`, `req.socket.destroy()`). */
  readonly socket: RequestConnectionInfo;
  /**
   * As Node's `req.destroy()`: drops the connection (as `res.destroy()`) unless the body was
   * read to its `'end'`; `error` goes to the request's `'error'` listeners, if there are any.
   */
  destroy(error?: Error): this;
  /** True after `destroy()`, or once the connection went (the response's `destroyed`). */
  readonly destroyed: boolean;
  /** Always true: the whole request was read before the handler. */
  readonly complete: boolean;
  /** True once `'end'` was emitted. */
  readonly readableEnded: boolean;
  setEncoding(encoding: BufferEncoding): this;
  /** Starts (or restarts) `'data'` and `'end'`. */
  resume(): this;
  /** Holds `'data'`/`'end'` until `resume()`. */
  pause(): this;
  isPaused(): boolean;
  /** Writes the body to `dest` and ends it (unless `{ end: false }`). */
  pipe<T extends NodeJS.WritableStream>(dest: T, options?: { end?: boolean }): T;
  /** Undoes `pipe(dest)`, or every pipe without `dest`. */
  unpipe(dest?: NodeJS.WritableStream): this;
  /** True until `'end'` (or `destroy()`), as a Readable's. */
  readonly readable: boolean;
}

/**
 * The `res` of the `request` event. The head is sent with the first `write()` or `end()`.
 * An EventEmitter: `'drain'` (after `write()` returned false), `'finish'` (after `end()`,
 * on the next tick), `'close'` (after `'finish'`, or alone when the connection went first),
 * and what `readable.pipe(res)` needs.
 */
export interface HttpResponse extends EventEmitter {
  /** Default 200. Checked when the head goes out: outside 100–999, `write()`/`end()` throw `RangeError` (`ERR_HTTP_INVALID_STATUS_CODE`). */
  statusCode: number;
  /**
   * The reason phrase. As Node's: what was set (or `undefined`) until `writeHead()` or the head
   * going out fixes the status; then the phrase the head carries: a string set here or given to
   * `writeHead()` when it is non-empty and sendable (no CR, LF or other controls, nothing past
   * U+00FF), else the standard phrase (`"Unknown"` for a code without one, where Node says
   * `"unknown"`). Node throws `ERR_INVALID_CHAR` for an unsendable reason; sack sends the
   * standard phrase instead.
   */
  statusMessage: string | undefined;
  readonly headersSent: boolean;
  readonly finished: boolean;
  /**
   * As Node's: `headers` as an object, or a flat `[name, value, …]` array whose names replace
   * headers set before and may repeat (each pair is a line; an odd length throws
   * `ERR_INVALID_ARG_VALUE`).
   */
  writeHead(status: number, reason?: string, headers?: Record<string, string | number | string[]> | string[]): this;
  writeHead(status: number, headers?: Record<string, string | number | string[]> | string[]): this;
  /** An `undefined` value (alone or in the array) throws `ERR_HTTP_INVALID_HEADER_VALUE`, as in Node. */
  setHeader(name: string, value: string | number | string[]): this;
  /** As Node's: adds to the header's values instead of replacing them. */
  appendHeader(name: string, value: string | number | string[]): this;
  /** As Node's: every entry of a `Headers` or a `Map` (each `Set-Cookie` of a `Headers` kept). */
  setHeaders(headers: Headers | Map<string, string | number | string[]>): this;
  /** The request this answers (Node's `res.req`). */
  readonly req: HttpRequest;
  /** The request's `socket` (Node's `res.socket`); `connection` is the same. */
  readonly socket: RequestConnectionInfo;
  readonly connection: RequestConnectionInfo;
  getHeader(name: string): string | string[] | undefined;
  hasHeader(name: string): boolean;
  removeHeader(name: string): void;
  getHeaders(): Record<string, string | string[]>;
  /** Lower-case names of the headers set. */
  getHeaderNames(): string[];
  /** Sends the head now, before any body (the body that follows is chunked, or ends with the connection on HTTP/1.0). */
  flushHeaders(): void;
  /** True once `end()` was called. */
  readonly writableEnded: boolean;
  /** True until `end()` (also once the connection is gone, so that a `'close'` without `'finish'` reads as premature). */
  readonly writable: boolean;
  /** True once the whole response is handed to sack (`'finish'` emitted, or due with no listener). */
  readonly writableFinished: boolean;
  /** True once the connection went before the end, or after `destroy()`. */
  readonly destroyed: boolean;
  /**
   * Sends part of the body (chunked on HTTP/1.1 when no Content-Length was set). Returns
   * false once the response's queue is over the server's `maxBackpressure` (`'drain'`
   * follows when it falls back), and when the connection is gone (the part is dropped;
   * `'close'` follows). Throws `ERR_STREAM_WRITE_AFTER_END` after `end()`.
   */
  write(chunk: string | ArrayBuffer | ArrayBufferView, callback?: (err?: Error) => void): boolean;
  /** `encoding` applies to a string chunk; `callback` runs once the part is queued (`ERR_STREAM_DESTROYED` when the connection is gone). */
  write(chunk: string | ArrayBuffer | ArrayBufferView, encoding: BufferEncoding, callback?: (err?: Error) => void): boolean;
  /** Ends the response; a body given here with no earlier `write` gets an exact Content-Length. `callback` runs on `'finish'`. */
  end(callback?: (err?: Error) => void): this;
  end(body: string | ArrayBuffer | ArrayBufferView, callback?: (err?: Error) => void): this;
  end(body: string | ArrayBuffer | ArrayBufferView, encoding: BufferEncoding, callback?: (err?: Error) => void): this;
  /** Drops the connection unless the response has ended (as Node's `res.destroy()`); `'close'` follows. */
  destroy(): this;
}

/** Moving live connections between threads (`worker_threads`). */
/** A registration of `Thread.accept`. */
export interface ThreadReceiver {
  /** Takes the registration back (a connection already on its way still arrives); `true` if it was still waiting. */
  cancel(): boolean;
}

export interface ThreadNamespace {
  /** Registers to receive one connection posted to `destination` (register again to take another), or with `{ persistent: true }` every one until cancelled: standing receivers take turns, so a burst spreads over a pool. `data` is what the poster sent along (a structured clone). */
  accept(destination: string, callback: (destination: string, socket: Connection, data?: unknown) => void, options?: { persistent?: boolean }): ThreadReceiver;
  /** Cancels this thread's registrations for `destination`; returns how many were waiting. */
  cancel(destination: string): number;
  /** Posts `socket` to a receiver of `destination`, with `data` (a structured clone); `false` when none is registered. */
  post(destination: string, socket: Connection, data?: unknown): boolean;
  post(socket: Connection, destination: string, data?: unknown): boolean;
}

type ConnectHandler = (this: Connection, ws: Connection) => void;

export interface ServerConstructor {
  new (options?: ServerOptions, connect?: ConnectHandler): Server;
  new (port: number, options?: ServerOptions, connect?: ConnectHandler): Server;
  new (url: string, port?: number, options?: ServerOptions, connect?: ConnectHandler): Server;
  new (url: string, options?: ServerOptions, connect?: ConnectHandler): Server;
  (options?: ServerOptions, connect?: ConnectHandler): Server;
  (port: number, options?: ServerOptions, connect?: ConnectHandler): Server;
  (url: string, port?: number, options?: ServerOptions, connect?: ConnectHandler): Server;
  (url: string, options?: ServerOptions, connect?: ConnectHandler): Server;
}

/** The numeric options' defaults (bytes, milliseconds), as the engine declares them. */
export interface OptionDefaults {
  readonly maxPayload: number;
  readonly maxHeaderSize: number;
  readonly maxBodySize: number;
  readonly maxBodyBuffer: number;
  readonly handshakeTimeout: number;
  readonly requestTimeout: number;
  readonly maxBackpressure: number;
  readonly backpressureLimit: number;
  readonly closeTimeout: number;
  readonly pingInterval: number;
  readonly maxConnections: number;
}

export interface WebsocketNamespace {
  Server: ServerConstructor;
  Thread: ThreadNamespace;
  readyStates: ReadyStates;
  /** The numeric options' defaults, frozen. */
  defaults: OptionDefaults;
}

export declare const Websocket: WebsocketNamespace;
export declare const WebSocket: WebsocketNamespace;
