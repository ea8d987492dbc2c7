'use strict';
// TLS: certificates and keys made at test time with the openssl CLI (a
// test CA and leaves signed by it), real clients (`ws`, Node's `https` and
// `tls`), loopback only.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');
const tls = require('node:tls');
const https = require('node:https');
const { execFileSync } = require('node:child_process');
const { HOST, WebSocket, scope, opened, clientMessage, withTimeout, sack, testPki } = require('./helpers.js');

// A CA, and leaves it signs: for localhost and 127.0.0.1 with every key
// kind the server takes, and for SNI. Made once per run.
function makePki() {
  return testPki('sack test CA', ({ ssl, file, leaf, ca }) => {
    const pki = {
      ca,
      ecdsa: leaf('ecdsa'),
      rsa: leaf('rsa', { key: ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'] }),
      ed25519: leaf('ed25519', { key: ['-algorithm', 'ED25519'] }),
      // Leaves for SNI: two names, a wildcard, and a second localhost one.
      a: leaf('a', { cn: 'a.example.test', san: 'DNS:a.example.test' }),
      b: leaf('b', { cn: 'b.example.test', san: 'DNS:b.example.test,DNS:b2.example.test' }),
      wild: leaf('wild', { cn: '*.wild.test', san: 'DNS:*.wild.test' }),
      other: leaf('other', { cn: 'localhost-2' }),
    };
    // The same keys in their other encodings: PKCS#1 (RSA), SEC1 (EC).
    ssl('rsa', '-in', file('rsa.key'), '-traditional', '-out', file('rsa1.key'));
    pki.rsaPkcs1 = fs.readFileSync(file('rsa1.key'));
    ssl('ec', '-in', file('ecdsa.key'), '-out', file('sec1.key'));
    pki.ecSec1 = fs.readFileSync(file('sec1.key'));
    // Encrypted PKCS#8, and the older OpenSSL encryption of a PEM.
    ssl('pkcs8', '-topk8', '-in', file('ecdsa.key'), '-out', file('enc.key'), '-passout', 'pass:open sesame', '-v2', 'aes-256-cbc');
    pki.encrypted = fs.readFileSync(file('enc.key'));
    ssl('rsa', '-in', file('rsa.key'), '-traditional', '-aes128', '-passout', 'pass:open sesame', '-out', file('legacy.key'));
    pki.legacy = fs.readFileSync(file('legacy.key'));
    return pki;
  });
}

const pki = makePki();

function wssClient(t, server, options = {}) {
  const c = new WebSocket(`wss://localhost:${server.address().port}/`, { ca: pki.ca, ...options });
  c.on('error', (e) => {
    c.lastError = e;
  });
  t.after(() => c.terminate());
  return c;
}

async function echoOnce(c, data) {
  const got = clientMessage(c);
  c.send(data);
  return (await got).data;
}

function httpsGet(server, pathName, agent) {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: HOST, servername: 'localhost', port: server.address().port, path: pathName, ca: pki.ca, agent, ALPNProtocols: ['http/1.1'] }, (res) => {
      const socket = res.socket;
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString(), socket }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

test.describe('TLS', { skip: pki.error }, () => {
  test.it('wss:// echo with the ws client trusting the test CA, for every key kind and encoding', async (t) => {
    const $ = scope(t);
    const keys = [
      ['ECDSA, PKCS#8', pki.ecdsa.cert, pki.ecdsa.key],
      ['ECDSA, SEC1', pki.ecdsa.cert, pki.ecSec1],
      ['RSA, PKCS#8', pki.rsa.cert, pki.rsa.key],
      ['RSA, PKCS#1', pki.rsa.cert, pki.rsaPkcs1],
      ['Ed25519', pki.ed25519.cert, pki.ed25519.key],
    ];
    for (const [what, cert, key] of keys) {
      const s = $.server({ cert, key: key.toString() });
      s.on('connect', (ws) => ws.on('message', (m) => ws.send(`tls:${m}`)));
      const c = wssClient(t, s);
      await opened(c);
      assert.equal((await echoOnce(c, 'secure')).toString(), 'tls:secure', what);
      c.close();
    }
  });

  test.it('ws.connection tells the SNI name, the TLS version and the cipher', async (t) => {
    const $ = scope(t);
    const s = $.server({ cert: pki.ecdsa.cert, key: pki.ecdsa.key });
    const seen = [];
    s.on('connect', (ws) => {
      seen.push(ws.connection);
      ws.send('hi');
    });
    const c = wssClient(t, s);
    await clientMessage(c);
    assert.equal(seen[0].hostname, 'localhost');
    assert.equal(seen[0].tlsVersion, 'TLSv1.3');
    assert.match(seen[0].cipher, /^TLS13_/);
    // Without SNI (an IP address): no name. TLS 1.2 is still spoken.
    const c2 = new WebSocket(`wss://${HOST}:${s.address().port}/`, { ca: pki.ca, maxVersion: 'TLSv1.2' });
    t.after(() => c2.terminate());
    await clientMessage(c2);
    assert.equal(seen[1].hostname, null);
    assert.equal(seen[1].tlsVersion, 'TLSv1.2');
    // A plain server says null for all three.
    const plain = $.server();
    plain.on('connect', (ws) => {
      seen.push(ws.connection);
      ws.send('hi');
    });
    const c3 = $.client(plain);
    await clientMessage(c3);
    assert.deepEqual([seen[2].hostname, seen[2].tlsVersion, seen[2].cipher], [null, null, null]);
  });

  test.it('large messages both ways, and a burst of small ones, arrive whole and in order', async (t) => {
    const $ = scope(t);
    const s = $.server({ cert: pki.ecdsa.cert, key: pki.ecdsa.key });
    s.on('connect', (ws) => ws.on('message', (m) => ws.send(m)));
    const c = wssClient(t, s);
    await opened(c);
    for (const size of [16 * 1024, 1 << 20, 5 * (1 << 20)]) {
      const data = Buffer.alloc(size);
      for (let i = 0; i < size; i++) data[i] = (i * 7) & 0xff;
      assert.ok(Buffer.from(await echoOnce(c, data)).equals(data), `${size} bytes`);
    }
    const got = [];
    const all = new Promise((resolve) => {
      c.on('message', (m) => {
        got.push(m.toString());
        if (got.length === 1000) resolve();
      });
    });
    for (let i = 0; i < 1000; i++) c.send(`m${i}`);
    await withTimeout(all, 10000, '1000 echoes');
    assert.deepEqual(got, Array.from({ length: 1000 }, (_, i) => `m${i}`));
  });

  test.it('permessage-deflate, ping and a close without status code (1005) over TLS', async (t) => {
    const $ = scope(t);
    const s = $.server({ cert: pki.ecdsa.cert, key: pki.ecdsa.key, perMessageDeflate: true });
    const closed = new Promise((resolve) => {
      s.on('connect', (ws) => {
        ws.on('message', (m) => ws.send(m));
        ws.on('close', (code) => resolve(code));
        ws.ping('p');
      });
    });
    const c = wssClient(t, s, { perMessageDeflate: true });
    const pinged = new Promise((resolve) => c.on('ping', (d) => resolve(d.toString())));
    await opened(c);
    assert.match(c.extensions, /permessage-deflate/);
    const text = 'compress me '.repeat(1000);
    assert.equal((await echoOnce(c, text)).toString(), text);
    assert.equal(await pinged, 'p');
    c.close();
    assert.equal(await withTimeout(closed, 5000, 'close event'), 1005);
  });

  test.it('HTTPS requests with Node\'s client: keep-alive and pipelined on one TLS connection', async (t) => {
    const $ = scope(t);
    const s = $.server({ cert: pki.rsa.cert, key: pki.rsa.key });
    const infos = [];
    s.on('request', (req, res) => {
      infos.push(req.socket);
      res.end(`hello ${req.url}`);
    });
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    t.after(() => agent.destroy());
    const first = await httpsGet(s, '/a', agent);
    assert.equal(first.status, 200);
    assert.equal(first.text, 'hello /a');
    assert.equal(first.socket.alpnProtocol, 'http/1.1');
    const second = await httpsGet(s, '/b?x=1', agent);
    assert.equal(second.text, 'hello /b?x=1');
    assert.equal(second.socket, first.socket, 'the same TLS connection served both');
    // req.socket tells the TLS facts, as ws.connection does.
    assert.equal(infos[0].hostname, 'localhost');
    assert.equal(infos[0].tlsVersion, 'TLSv1.3');
    assert.match(infos[0].cipher, /^TLS13_/);
    assert.equal(infos[1].tlsVersion, 'TLSv1.3');
    // Two requests in one write on a raw TLS socket: both answered, in order.
    const sock = tls.connect({ host: HOST, port: s.address().port, servername: 'localhost', ca: pki.ca });
    t.after(() => sock.destroy());
    await new Promise((resolve, reject) => sock.once('secureConnect', resolve).once('error', reject));
    sock.write('GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
    const chunks = [];
    sock.on('data', (d) => chunks.push(d));
    await new Promise((resolve) => sock.on('end', resolve));
    const text = Buffer.concat(chunks).toString();
    assert.ok(text.indexOf('hello /1') >= 0 && text.indexOf('hello /1') < text.indexOf('hello /2'), text);
  });

  test.it('plain HTTP on the TLS port is dropped, with no byte of an answer', async (t) => {
    const $ = scope(t);
    const s = $.server({ cert: pki.ecdsa.cert, key: pki.ecdsa.key });
    s.on('request', () => assert.fail('a plain request reached the handler'));
    const sock = net.connect(s.address().port, HOST);
    t.after(() => sock.destroy());
    // Dropped with unread bytes: a reset, or a FIN.
    sock.on('error', () => {});
    sock.write('GET / HTTP/1.1\r\nHost: h\r\n\r\n');
    const chunks = [];
    sock.on('data', (d) => chunks.push(d));
    await withTimeout(new Promise((resolve) => sock.on('close', resolve)), 5000, 'the server to drop it');
    assert.equal(Buffer.concat(chunks).length, 0);
    // The server still serves TLS.
    const c = wssClient(t, s);
    await opened(c);
  });

  test.it('a client that stalls in the handshake holds only itself, and is dropped after handshakeTimeout', async (t) => {
    const $ = scope(t);
    const s = $.server({ cert: pki.ecdsa.cert, key: pki.ecdsa.key, handshakeTimeout: 300 });
    s.on('connect', (ws) => ws.send('hi'));
    // The first byte of a TLS record, then nothing.
    const stalled = net.connect(s.address().port, HOST);
    t.after(() => stalled.destroy());
    stalled.write(Buffer.from([0x16, 0x03, 0x01]));
    const c = wssClient(t, s);
    assert.equal((await clientMessage(c)).data.toString(), 'hi');
    await withTimeout(new Promise((resolve) => stalled.on('close', resolve)), 3000, 'the stalled client to be dropped');
  });

  test.it('encrypted PKCS#8 keys open with the right passphrase; a wrong or missing one is a TypeError naming it', async (t) => {
    const $ = scope(t);
    const s = $.server({ cert: pki.ecdsa.cert, key: pki.encrypted, passphrase: 'open sesame' });
    s.on('connect', (ws) => ws.send('unlocked'));
    const c = wssClient(t, s);
    assert.equal((await clientMessage(c)).data.toString(), 'unlocked');
    const make = (opts) => () => sack.Websocket.Server({ address: HOST, port: 0, cert: pki.ecdsa.cert, ...opts });
    assert.throws(make({ key: pki.encrypted, passphrase: 'wrong' }), (e) => e instanceof TypeError && /passphrase: wrong passphrase/.test(e.message) && !e.message.includes('wrong"'));
    assert.throws(make({ key: pki.encrypted }), (e) => e instanceof TypeError && /passphrase: the key is encrypted/.test(e.message));
    assert.throws(make({ key: pki.legacy, passphrase: 'open sesame' }), (e) => e instanceof TypeError && /openssl pkcs8 -topk8/.test(e.message));
  });

  test.it('bad material is a TypeError from the constructor naming the option and the reason', () => {
    const make = (opts) => () => sack.Websocket.Server({ address: HOST, port: 0, ...opts });
    const cases = [
      [{ cert: 'not a pem', key: pki.ecdsa.key }, /cert: no "BEGIN CERTIFICATE"/],
      [{ cert: pki.ecdsa.cert, key: 'not a pem' }, /key: no private key/],
      [{ cert: pki.ecdsa.cert, key: pki.rsa.key }, /key: does not match the certificate/],
      [{ cert: pki.ecdsa.cert, key: pki.ecdsa.key, ca: 'junk' }, /ca: no "BEGIN CERTIFICATE"/],
      [{ cert: pki.ecdsa.cert }, /"key" option is needed/],
      [{ key: pki.ecdsa.key }, /"cert" option is needed/],
      [{ url: 'wss://127.0.0.1:0/' }, /"cert" option is needed \(with key, or hosts\) for a wss:\/\/ URL/],
      [{ cert: 42, key: pki.ecdsa.key }, /"cert" option must be PEM/],
      [{ passphrase: 'x' }, /"passphrase" option is given only with cert and key/],
    ];
    for (const [opts, message] of cases) {
      assert.throws(make(opts), (e) => e instanceof TypeError && message.test(e.message), String(message));
    }
    // No key material is ever echoed in a message.
    try {
      make({ cert: pki.ecdsa.cert, key: pki.rsa.key })();
    } catch (e) {
      assert.ok(!e.message.includes('PRIVATE KEY'));
    }
  });

  test.it('a wss:// URL with cert and key serves TLS on the URL\'s port', async (t) => {
    const $ = scope(t);
    const s = $.track(sack.Websocket.Server(`wss://${HOST}:0/`, { cert: pki.ecdsa.cert, key: pki.ecdsa.key }));
    s.on('connect', (ws) => ws.send('from url'));
    const c = wssClient(t, s);
    assert.equal((await clientMessage(c)).data.toString(), 'from url');
  });

  test.it('no plaintext byte of a TLS connection reaches the wire (a recording relay between client and server)', async (t) => {
    const $ = scope(t);
    const s = $.server({ cert: pki.ecdsa.cert, key: pki.ecdsa.key });
    s.on('connect', (ws) => ws.on('message', (m) => ws.send(`reply ${m} SERVER-SECRET-7q`)));
    s.on('request', (req, res) => res.end('HTTP-SECRET-3z'));
    const recorded = [];
    const relay = net.createServer((client) => {
      const upstream = net.connect(s.address().port, HOST);
      client.on('data', (d) => {
        recorded.push(d);
        upstream.write(d);
      });
      upstream.on('data', (d) => {
        recorded.push(d);
        client.write(d);
      });
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise((resolve) => relay.listen(0, HOST, resolve));
    t.after(() => relay.close());
    const c = new WebSocket(`wss://localhost:${relay.address().port}/`, { ca: pki.ca });
    t.after(() => c.terminate());
    await opened(c);
    const got = clientMessage(c);
    c.send('CLIENT-SECRET-9x');
    assert.equal((await got).data.toString(), 'reply CLIENT-SECRET-9x SERVER-SECRET-7q');
    const r = await httpsGet({ address: () => relay.address() }, '/SECRET-PATH');
    assert.equal(r.text, 'HTTP-SECRET-3z');
    const wire = Buffer.concat(recorded).toString('latin1');
    for (const secret of ['CLIENT-SECRET', 'SERVER-SECRET', 'HTTP-SECRET', 'SECRET-PATH', 'Upgrade', 'websocket', 'HTTP/1.1']) {
      assert.ok(!wire.includes(secret), `"${secret}" went over the wire in plain text`);
    }
    assert.ok(wire.length > 1000, 'the relay carried the traffic');
  });

  test.it('a TLS connection posted to a worker thread goes on there (the session stays in the engine)', async (t) => {
    const { Worker } = require('node:worker_threads');
    const root = path.join(__dirname, '..');
    const w = new Worker(
      `const { parentPort } = require('node:worker_threads');
       const sack = require(${JSON.stringify(root)});
       sack.Websocket.Thread.accept('tls-echo', (d, ws) => {
         ws.onmessage = (m) => ws.send('worker:' + m + ':' + ws.connection.tlsVersion);
         parentPort.postMessage('arrived');
       });
       parentPort.postMessage('ready');`,
      { eval: true },
    );
    t.after(() => w.terminate());
    const messages = [];
    w.on('message', (m) => messages.push(m));
    await withTimeout(new Promise((resolve) => w.on('message', (m) => m === 'ready' && resolve())), 10000, 'worker ready');
    const $ = scope(t);
    const s = $.server({ cert: pki.ecdsa.cert, key: pki.ecdsa.key });
    s.on('connect', (ws) => assert.equal(ws.post('tls-echo'), true));
    const c = wssClient(t, s);
    await opened(c);
    await withTimeout(new Promise((resolve) => w.on('message', (m) => m === 'arrived' && resolve())), 10000, 'the connection to arrive');
    assert.equal((await echoOnce(c, 'hi')).toString(), 'worker:hi:TLSv1.3');
  });

  // The subject CN of the certificate a handshake with `servername` gets
  // (undefined: no SNI), or the error that ended it.
  function peerCN(server, servername) {
    return new Promise((resolve) => {
      const sock = tls.connect({ host: HOST, port: server.address().port, servername, rejectUnauthorized: false });
      sock.once('secureConnect', () => {
        resolve(sock.getPeerCertificate().subject.CN);
        sock.destroy();
      });
      sock.once('error', (e) => resolve(`error: ${e.code || e.message}`));
    });
  }

  test.it('SNI: exact names before wildcards, one label per wildcard, case and trailing dot ignored, the default otherwise', async (t) => {
    const $ = scope(t);
    const s = $.server({
      cert: pki.ecdsa.cert,
      key: pki.ecdsa.key,
      hosts: [
        { host: 'a.example.test', ...pki.a },
        { host: ['b.example.test', 'b2.example.test'], ...pki.b },
        { host: '*.wild.test', ...pki.wild },
        // Exact beats wildcard, whatever the order.
        { host: 'exact.wild.test', ...pki.a },
      ],
    });
    const cases = [
      ['a.example.test', 'a.example.test'],
      ['A.Example.TEST.', 'a.example.test'],
      ['b2.example.test', 'b.example.test'],
      ['x.wild.test', '*.wild.test'],
      ['exact.wild.test', 'a.example.test'],
      ['x.y.wild.test', 'localhost'],
      ['wild.test', 'localhost'],
      ['unknown.test', 'localhost'],
      [undefined, 'localhost'],
    ];
    for (const [name, cn] of cases) assert.equal(await peerCN(s, name), cn, `servername ${name}`);
    // The same with openssl s_client -servername.
    const out = execFileSync('openssl', ['s_client', '-connect', `${HOST}:${s.address().port}`, '-servername', 'b.example.test'], {
      input: '',
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'ignore'],
      timeout: 10000,
    });
    assert.match(out, /subject=\s*CN\s*=\s*b\.example\.test/);
    // A wss client that checks the name against the test CA.
    s.on('connect', (ws) => ws.send(ws.connection.hostname));
    const c = new WebSocket(`wss://a.example.test:${s.address().port}/`, { ca: pki.ca, lookup: (h, o, cb) => cb(null, [{ address: HOST, family: 4 }]) });
    t.after(() => c.terminate());
    assert.equal((await clientMessage(c)).data.toString(), 'a.example.test');
  });

  test.it('hosts and no default: an unknown name or no SNI fails the handshake; known names work', async (t) => {
    const $ = scope(t);
    const s = $.server({ hosts: [{ host: 'a.example.test', ...pki.a }] });
    assert.equal(await peerCN(s, 'a.example.test'), 'a.example.test');
    assert.match(await peerCN(s, 'unknown.test'), /^error: /);
    assert.match(await peerCN(s, undefined), /^error: /);
  });

  test.it('setSecureContext, addHost and removeHost apply from the next handshake; open connections keep theirs; bad material changes nothing', async (t) => {
    const $ = scope(t);
    const s = $.server({ cert: pki.ecdsa.cert, key: pki.ecdsa.key });
    s.on('connect', (ws) => ws.on('message', (m) => ws.send(`${m}`)));
    const before = wssClient(t, s);
    await opened(before);
    assert.equal(await peerCN(s, 'localhost'), 'localhost');
    s.setSecureContext({ cert: pki.other.cert, key: pki.other.key });
    assert.equal(await peerCN(s, 'localhost'), 'localhost-2');
    assert.equal((await echoOnce(before, 'still')).toString(), 'still', 'the open connection goes on');
    s.addHost({ host: '*.wild.test', cert: pki.wild.cert, key: pki.wild.key });
    assert.equal(await peerCN(s, 'q.wild.test'), '*.wild.test');
    // The last definition of a name wins.
    s.addHost({ host: ['q.wild.test'], cert: pki.a.cert, key: pki.a.key });
    assert.equal(await peerCN(s, 'q.wild.test'), 'a.example.test');
    assert.equal(s.removeHost('q.wild.test'), true);
    assert.equal(s.removeHost('q.wild.test'), false);
    assert.equal(await peerCN(s, 'q.wild.test'), '*.wild.test');
    // Bad material throws, and the certificates stay as they were.
    assert.throws(() => s.setSecureContext({ cert: pki.a.cert, key: pki.rsa.key }), (e) => e instanceof TypeError && /does not match/.test(e.message));
    assert.throws(() => s.addHost({ host: 'a..b', cert: pki.a.cert, key: pki.a.key }), (e) => e instanceof TypeError && /host/.test(e.message));
    assert.throws(() => s.addHost({ cert: pki.a.cert, key: pki.a.key }), TypeError);
    assert.equal(await peerCN(s, 'localhost'), 'localhost-2');
    // A plain server has none of this.
    const plain = $.server();
    assert.throws(() => plain.setSecureContext({ cert: pki.a.cert, key: pki.a.key }), { code: 'ERR_SACK_NOT_TLS' });
  });

  test.it('certificates reloaded in a loop while 200 handshakes run: none fails', async (t) => {
    const $ = scope(t);
    const s = $.server({ cert: pki.ecdsa.cert, key: pki.ecdsa.key });
    s.on('connect', (ws) => ws.close());
    let reloads = 0;
    let stop = false;
    const reloader = (async () => {
      while (!stop) {
        s.setSecureContext(reloads % 2 ? { cert: pki.ecdsa.cert, key: pki.ecdsa.key } : { cert: pki.other.cert, key: pki.other.key });
        reloads++;
        await new Promise((r) => setImmediate(r));
      }
    })();
    let failed = 0;
    const one = () =>
      new Promise((resolve) => {
        const c = new WebSocket(`wss://localhost:${s.address().port}/`, { ca: pki.ca });
        c.on('error', () => {
          failed++;
          resolve();
        });
        c.on('close', resolve);
      });
    for (let round = 0; round < 10; round++) await Promise.all(Array.from({ length: 20 }, one));
    stop = true;
    await reloader;
    assert.equal(failed, 0);
    assert.ok(reloads > 10, `${reloads} reloads ran meanwhile`);
  });

  // Connects with `session` (a previous one's), returns whether it was
  // resumed and the session to resume next time.
  function resumeWith(port, session) {
    return new Promise((resolve, reject) => {
      let next;
      const sock = tls.connect({ host: HOST, port, servername: 'localhost', ca: pki.ca, session });
      sock.on('session', (s) => {
        next = s;
      });
      sock.once('secureConnect', () => {
        const reused = sock.isSessionReused();
        // TLS 1.3 tickets come after the handshake: wait for one.
        const done = () => {
          sock.destroy();
          resolve({ reused, session: next });
        };
        if (next) done();
        else sock.once('session', () => setImmediate(done));
      });
      sock.once('error', reject);
    });
  }

  test.it('session resumption by ticket: a second connection resumes (TLS 1.3)', async (t) => {
    const $ = scope(t);
    const s = $.server({ cert: pki.ecdsa.cert, key: pki.ecdsa.key });
    const first = await resumeWith(s.address().port);
    assert.equal(first.reused, false);
    assert.ok(first.session, 'the server sent a ticket');
    const second = await resumeWith(s.address().port, first.session);
    assert.equal(second.reused, true);
    // After setTicketKeys, tickets of the key before still resume once
    // (one rotation back); two rotations later they do not.
    s.setTicketKeys(Buffer.alloc(48, 1));
    assert.equal((await resumeWith(s.address().port, first.session)).reused, true);
    s.setTicketKeys(Buffer.alloc(48, 2));
    assert.equal((await resumeWith(s.address().port, first.session)).reused, false);
    assert.deepEqual(s.getTicketKeys(), Buffer.alloc(48, 2));
    assert.throws(() => s.setTicketKeys(Buffer.alloc(47)), TypeError);
    assert.throws(() => $.server({ cert: pki.ecdsa.cert, key: pki.ecdsa.key, ticketKeys: 'x' }), TypeError);
  });

  test.it('two server processes with shared ticketKeys resume each other\'s sessions; with their own keys they do not', async (t) => {
    const { spawn } = require('node:child_process');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sack-tls-proc-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    fs.writeFileSync(path.join(dir, 'cert.pem'), pki.ecdsa.cert);
    fs.writeFileSync(path.join(dir, 'key.pem'), pki.ecdsa.key);
    const shared = require('node:crypto').randomBytes(48).toString('hex');
    const start = (keys) =>
      new Promise((resolve, reject) => {
        const script = `
          const fs = require('node:fs');
          const sack = require(${JSON.stringify(path.join(__dirname, '..'))});
          const opts = { address: '127.0.0.1', port: 0, cert: fs.readFileSync(${JSON.stringify(path.join(dir, 'cert.pem'))}), key: fs.readFileSync(${JSON.stringify(path.join(dir, 'key.pem'))}) };
          if (${JSON.stringify(keys)}) opts.ticketKeys = Buffer.from(${JSON.stringify(keys)}, 'hex');
          const s = sack.Websocket.Server(opts);
          console.log('LISTENING ' + s.address().port);
          process.stdin.on('end', () => process.exit(0));
          process.stdin.resume();`;
        const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
        t.after(() => child.kill());
        let out = '';
        child.stdout.on('data', (d) => {
          out += d;
          const m = /LISTENING (\d+)/.exec(out);
          if (m) resolve(Number(m[1]));
        });
        child.once('exit', (code) => reject(new Error(`server process exited (${code})`)));
      });
    const [a, b, c] = await Promise.all([start(shared), start(shared), start(null)]);
    const first = await resumeWith(a);
    assert.equal(first.reused, false);
    assert.equal((await resumeWith(b, first.session)).reused, true, 'process B resumed process A\'s session');
    assert.equal((await resumeWith(c, first.session)).reused, false, 'a process with its own keys did not');
  });

  test.it('plain HTTP on the TLS port: lowError 1 with the bytes seen, disableSSL() serves it as plain HTTP (req.redirect), a redirect to https', async (t) => {
    const $ = scope(t);
    const s = $.server({ cert: pki.ecdsa.cert, key: pki.ecdsa.key });
    const low = [];
    s.on('lowError', function (code, info, data) {
      low.push({ code, info, data: Buffer.from(data).toString(), self: this });
      if (Buffer.from(data).toString().includes('reject')) this.rejectSSL();
      else this.disableSSL();
    });
    s.on('request', (req, res) => {
      res.writeHead(301, { Location: `https://localhost:${s.address().port}${req.url}`, 'X-Redirect': String(req.redirect) });
      res.end();
    });
    const raw = (chunks, gap) =>
      new Promise((resolve) => {
        const sock = net.connect(s.address().port, HOST);
        sock.on('error', () => {});
        const got = [];
        sock.on('data', (d) => got.push(d));
        sock.on('close', () => resolve(Buffer.concat(got).toString()));
        (async () => {
          for (const c of chunks) {
            sock.write(c);
            await new Promise((r) => setTimeout(r, gap));
          }
        })();
        setTimeout(() => sock.end(), 1500);
      });
    const whole = await raw(['GET /path?q=1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n'], 0);
    assert.match(whole, /^HTTP\/1\.1 301 /);
    assert.match(whole, /location: https:\/\/localhost:\d+\/path\?q=1/i);
    assert.match(whole, /x-redirect: true/i);
    assert.equal(low[0].code, 1);
    assert.equal(low[0].self, s);
    assert.equal(low[0].info.remoteAddress, HOST);
    assert.deepEqual([low[0].info.hostname, low[0].info.tlsVersion, low[0].info.cipher], [null, null, null]);
    assert.match(low[0].data, /^GET \/path\?q=1/);
    // The request line split across segments: no byte lost.
    const split = await raw(['G', 'ET /sp', 'lit HTTP/1.1\r\nHo', 'st: h\r\nConnection: close\r\n\r\n'], 60);
    assert.match(split, /location: https:\/\/localhost:\d+\/split/i);
    assert.equal(low[1].data, 'G', 'the event came with the first byte alone');
    // rejectSSL(): dropped, nothing answered.
    assert.equal(await raw(['GET /reject HTTP/1.1\r\nHost: h\r\n\r\n'], 0), '');
    // A plain WebSocket upgrade on the TLS port after disableSSL().
    s.on('connect', (ws) => ws.send(`plain ${ws.url}`));
    const c = new WebSocket(`ws://${HOST}:${s.address().port}/ws`);
    t.after(() => c.terminate());
    assert.equal((await clientMessage(c)).data.toString(), 'plain /ws');
    // TLS still works beside it.
    const tlsClient = wssClient(t, s);
    assert.equal((await clientMessage(tlsClient)).data.toString(), 'plain /');
    // Outside the event, both throw.
    assert.throws(() => s.disableSSL(), { code: 'ERR_SACK_NOT_TLS' });
    assert.throws(() => s.rejectSSL(), { code: 'ERR_SACK_NOT_TLS' });
  });

  test.it('lowError 7 for an unknown SNI name with no default certificate (data: the name); 3 when the client refuses the certificate', async (t) => {
    const $ = scope(t);
    const s = $.server({ hosts: [{ host: 'a.example.test', ...pki.a }] });
    const low = [];
    s.on('lowError', (code, info, data) => low.push([code, data, info.hostname]));
    assert.match(await peerCN(s, 'nobody.test'), /^error: /);
    await waitFor(() => low.length === 1);
    assert.deepEqual(low[0], [7, 'nobody.test', 'nobody.test']);
    // A client that does not trust the certificate sends an alert
    // (openssl's unknown_ca; Node's client checks only after the
    // handshake, and just closes).
    try {
      execFileSync('openssl', ['s_client', '-connect', `${HOST}:${s.address().port}`, '-servername', 'a.example.test', '-verify_return_error'], {
        input: '',
        stdio: ['pipe', 'ignore', 'ignore'],
        timeout: 10000,
      });
    } catch {
      // s_client exits non-zero when verification fails
    }
    await waitFor(() => low.length === 2);
    assert.equal(low[1][0], 3);
    assert.equal(typeof low[1][1], 'string');
  });

  test.it('backpressure over TLS: send() turns false for a client that does not read, drain follows when it reads again', async (t) => {
    const $ = scope(t);
    const s = $.server({ cert: pki.ecdsa.cert, key: pki.ecdsa.key, maxBackpressure: 64 * 1024 });
    const result = new Promise((resolve) => {
      s.on('connect', (ws) => {
        const chunk = 'x'.repeat(16 * 1024);
        let sent = 0;
        while (ws.send(chunk) && sent < 10000) sent++;
        ws.on('drain', () => resolve({ sent, buffered: ws.bufferedAmount }));
        ws.send('last');
      });
    });
    const sock = tls.connect({ host: HOST, port: s.address().port, servername: 'localhost', ca: pki.ca });
    t.after(() => sock.destroy());
    await new Promise((resolve, reject) => sock.once('secureConnect', resolve).once('error', reject));
    sock.write(
      'GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    // Not reading for a while: the server's queue fills past the limit.
    sock.pause();
    await new Promise((r) => setTimeout(r, 300));
    let got = 0;
    sock.on('data', (d) => {
      got += d.length;
    });
    sock.resume();
    const r = await withTimeout(result, 10000, 'drain');
    assert.ok(r.sent < 10000, `send() turned false after ${r.sent} messages`);
    await waitFor(() => got > r.sent * 16 * 1024, 10000);
    sock.destroy();
  });

  test.it('a peer that drops mid-record or mid-handshake costs nothing: the server goes on', async (t) => {
    const $ = scope(t);
    const s = $.server({ cert: pki.ecdsa.cert, key: pki.ecdsa.key });
    const closes = [];
    s.on('connect', (ws) => {
      ws.on('close', (code) => closes.push(code));
      ws.on('message', (m) => ws.send(m));
    });
    // Open over a TLS socket whose TCP socket is ours, then a record cut
    // short on the TCP socket, then a reset.
    const tcp = net.connect(s.address().port, HOST);
    tcp.on('error', () => {});
    const sock = tls.connect({ socket: tcp, servername: 'localhost', ca: pki.ca });
    sock.on('error', () => {});
    await new Promise((resolve, reject) => sock.once('secureConnect', resolve).once('error', reject));
    sock.write(
      'GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    await new Promise((resolve) => sock.once('data', resolve));
    tcp.write(Buffer.from([0x17, 0x03, 0x03, 0x40, 0x00, 1, 2, 3]));
    await new Promise((r) => setTimeout(r, 50));
    tcp.resetAndDestroy();
    await waitFor(() => closes.length === 1);
    assert.equal(closes[0], 1006);
    // A handshake cut after the ClientHello's first bytes.
    const half = net.connect(s.address().port, HOST);
    half.on('error', () => {});
    half.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]));
    await new Promise((r) => setTimeout(r, 50));
    half.destroy();
    const c2 = wssClient(t, s);
    await opened(c2);
    assert.equal((await echoOnce(c2, 'still here')).toString(), 'still here');
  });

  test.it('the server\'s error event on a TLS connection: socketInfo carries the SNI name, the version and the cipher', async (t) => {
    const $ = scope(t);
    const s = $.server({ cert: pki.ecdsa.cert, key: pki.ecdsa.key });
    const errors = [];
    s.on('error', (info) => errors.push(info));
    const sock = tls.connect({ host: HOST, port: s.address().port, servername: 'localhost', ca: pki.ca });
    sock.on('error', () => {});
    t.after(() => sock.destroy());
    await new Promise((resolve, reject) => sock.once('secureConnect', resolve).once('error', reject));
    sock.write('BROKEN\r\n\r\n');
    await waitFor(() => errors.length === 1);
    assert.equal(errors[0].error.code, 'HPE_INVALID');
    assert.equal(errors[0].hostname, 'localhost');
    assert.equal(errors[0].tlsVersion, 'TLSv1.3');
    assert.match(errors[0].cipher, /^TLS13_/);
  });
});

async function waitFor(cond, ms = 5000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}