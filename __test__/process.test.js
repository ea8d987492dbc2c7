'use strict';
// Process lifetime, in child Node processes: a listening server keeps the
// process alive unless unref()ed; the process exits by itself once the
// server is closed and its clients are gone; a throwing event handler is an
// uncaught exception like an EventEmitter listener's; running out of file
// descriptors is survived.

const test = require('node:test');
const assert = require('node:assert/strict');

const fs = require('node:fs');
const net = require('node:net');

const { ROOT, scope, opened, clientClosed, delay, startNode, runNode, request, waitUntil } = require('./helpers.js');

const PRELUDE = `
  const sack = require(${JSON.stringify(ROOT)});
  const { Server } = sack.Websocket;
`;

// A stand-in server object for scope().client(): only address() is used.
const at = (port) => ({ address: () => ({ port }) });

/**
 * Runs `script` (after PRELUDE) in a child process, which prints
 * "port N" once its server listens, and connects a `ws` client to it.
 */
async function childServer(t, script) {
  const child = startNode(`${PRELUDE}${script}`);
  t.after(() => child.kill());
  const port = Number((await child.line(/port (\d+)/))[1]);
  const c = scope(t).client(at(port));
  return { child, c };
}

test.describe('process lifetime', () => {
  test.it('stays alive while a server listens', async () => {
    const r = await runNode(
      `${PRELUDE}
      const s = new Server({ address: '127.0.0.1', port: 0 });
      console.log('listening ' + s.address().port);
      setTimeout(() => { console.log('still alive'); process.exit(0); }, 700).unref();
      `,
      { ms: 8000 },
    );
    assert.equal(r.timedOut, false);
    assert.match(r.stdout, /listening \d+/);
    assert.match(r.stdout, /still alive/, `the process exited while listening; stderr: ${r.stderr}`);
  });

  test.it('exits while listening after server.unref(); the server did listen', async () => {
    const r = await runNode(
      `${PRELUDE}
      const s = new Server({ address: '127.0.0.1', port: 0 });
      const ret = s.unref();
      console.log('listening ' + s.address().port + ' ' + (ret === s));
      process.on('exit', () => console.log('exit'));
      `,
      { ms: 8000 },
    );
    assert.equal(r.timedOut, false, 'the process did not exit after unref()');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /listening [1-9]\d* true/);
    assert.match(r.stdout, /exit/);
  });

  test.it('unref() then ref() keeps the process alive again', async () => {
    const r = await runNode(
      `${PRELUDE}
      const s = new Server({ address: '127.0.0.1', port: 0 });
      s.unref();
      s.ref();
      setTimeout(() => { console.log('still alive'); process.exit(0); }, 700).unref();
      `,
      { ms: 8000 },
    );
    assert.equal(r.timedOut, false);
    assert.match(r.stdout, /still alive/, 'ref() did not keep the process alive');
  });

  test.it('exits by itself once server.close() is done and its clients are closed', async (t) => {
    const { child, c } = await childServer(t, `
      const s = new Server({ address: '127.0.0.1', port: 0 });
      s.on('connect', (ws) => {
        ws.on('message', (m) => { if (m === 'close-now') s.close(); });
        ws.on('close', (code) => console.log('ws closed ' + code));
      });
      s.on('close', () => console.log('server closed'));
      console.log('port ' + s.address().port);
    `);
    await opened(c);
    const closed = clientClosed(c);
    c.send('close-now');
    assert.equal((await closed).code, 1001);
    const exit = await child.exited(6000);
    assert.deepEqual(exit, { code: 0, signal: null }, child.stderr);
    assert.match(child.stdout, /ws closed 1001/);
    assert.match(child.stdout, /server closed/);
  });

  test.it('exits by itself after server.close() when its own ws client closes', async () => {
    const r = await runNode(
      `${PRELUDE}
      const WebSocket = require('ws');
      const s = new Server({ address: '127.0.0.1', port: 0 });
      s.on('connect', () => s.close(4000, 'done'));
      s.on('close', () => console.log('server closed'));
      const c = new WebSocket('ws://127.0.0.1:' + s.address().port + '/');
      c.on('close', (code) => console.log('client closed ' + code));
      `,
      { ms: 8000 },
    );
    assert.equal(r.timedOut, false, `the process did not exit; stdout: ${r.stdout}`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /client closed 4000/);
    assert.match(r.stdout, /server closed/);
  });

  test.it('an open connection keeps an unref()ed server\'s process alive until it closes', async (t) => {
    const { child, c } = await childServer(t, `
      const s = new Server({ address: '127.0.0.1', port: 0 });
      s.unref();
      // keeps the process up until the client is in; then only the connection does
      const keep = setTimeout(() => {}, 10000);
      s.on('connect', (ws) => {
        clearTimeout(keep);
        console.log('connected');
        ws.on('close', (code) => console.log('ws closed ' + code));
      });
      console.log('port ' + s.address().port);
    `);
    await opened(c);
    await child.line(/connected/);
    await delay(500);
    assert.equal(child.running(), true, 'the process exited with a connection open');
    c.close(1000);
    await clientClosed(c);
    const exit = await child.exited(6000);
    assert.deepEqual(exit, { code: 0, signal: null }, child.stderr);
    assert.match(child.stdout, /ws closed 1000/);
  });
});

test.describe('exceptions in handlers', () => {
  test.it('a throwing connect handler reaches process "uncaughtException"; later events still arrive', async (t) => {
    const { child, c } = await childServer(t, `
      process.on('uncaughtException', (e) => console.log('caught ' + e.message));
      const s = new Server({ address: '127.0.0.1', port: 0 });
      s.on('connect', (ws) => {
        let n = 0;
        ws.on('message', (m) => {
          n++;
          if (n === 1) throw new Error('boom-message');
          console.log('second ' + m);
          s.close();
        });
        throw new Error('boom-connect');
      });
      console.log('port ' + s.address().port);
    `);
    await opened(c);
    await child.line(/caught boom-connect/);
    c.send('one');
    await child.line(/caught boom-message/);
    const closed = clientClosed(c);
    c.send('two');
    await child.line(/second two/);
    await closed;
    const exit = await child.exited(6000);
    assert.equal(exit.code, 0, child.stderr);
  });

  test.it('a throwing accept handler reaches process "uncaughtException"', async (t) => {
    const { child, c } = await childServer(t, `
      const s = new Server({ address: '127.0.0.1', port: 0 });
      process.on('uncaughtException', (e) => { console.log('caught ' + e.message); s.close(); });
      s.on('accept', () => { throw new Error('boom-accept'); });
      console.log('port ' + s.address().port);
    `);
    c.on('error', () => {});
    await child.line(/caught boom-accept/);
    const exit = await child.exited(6000);
    assert.equal(exit.code, 0, child.stderr);
  });

  test.it('without an uncaughtException handler a throwing handler ends the process with an error', async (t) => {
    const { child, c } = await childServer(t, `
      const s = new Server({ address: '127.0.0.1', port: 0 });
      s.on('connect', () => { throw new Error('fatal-boom'); });
      console.log('port ' + s.address().port);
    `);
    c.on('error', () => {});
    const exit = await child.exited(6000);
    assert.notEqual(exit.code, 0);
    assert.match(child.stderr, /fatal-boom/);
  });
});


test.describe('out of file descriptors', () => {
  // The listener's accept fails with EMFILE while the process has no file
  // descriptor left; the connections wait in the kernel's backlog. The
  // server must not crash, must not spin on the failing accept, and must
  // serve again as soon as descriptors are free.
  test.it('no crash, no busy loop, and served again once connections close', async (t) => {
    const h = startNode(
      `${PRELUDE}
      const s = new Server({ address: '127.0.0.1', port: 0 });
      s.onrequest = (req, res) => res.end('hi ' + req.url);
      s.on('error', () => {});
      console.log('listening ' + s.address().port);
      `,
      { maxFiles: 64 },
    );
    t.after(() => h.kill());
    const port = Number((await h.line(/listening (\d+)/))[1]);
    const get = (path) => request(port, { path, ms: 5000 });
    assert.equal((await get('/first')).text, 'hi /first');

    // More connections than the child has descriptors left (it uses about
    // 25 of its 64 for itself), each with a request.
    const held = [];
    t.after(() => held.forEach((c) => c.destroy()));
    for (let i = 0; i < 100; i++) {
      const c = net.connect({ host: '127.0.0.1', port });
      c.on('error', () => {});
      c.write('GET /held HTTP/1.1\r\nHost: a\r\n\r\n');
      held.push(c);
    }
    await waitUntil(() => held.filter((c) => c.bytesRead > 0).length >= 10, 5000, 'the first held requests answered');
    await delay(300);
    const answered = held.filter((c) => c.bytesRead > 0).length;
    assert.ok(answered < held.length, `all ${held.length} answered: the limit was not reached`);

    // While full: the process lives and sleeps between accept attempts.
    const cpuTicks = () => {
      const f = fs.readFileSync(`/proc/${h.child.pid}/stat`, 'utf8').split(') ')[1].split(' ');
      return Number(f[11]) + Number(f[12]); // utime + stime, 1/100 s
    };
    const before = cpuTicks();
    await delay(1000);
    const used = cpuTicks() - before;
    // Idle, it uses about 0; retrying accept without a pause, a whole core.
    assert.ok(used < 25, `the child used ${used}/100 of a CPU-second while out of descriptors`);
    assert.ok(h.running(), `the child exited: ${h.stderr.slice(0, 2000)}`);

    // Descriptors free again: the clients waiting in the backlog are
    // served, and new ones too.
    const waiting = held.filter((c) => c.bytesRead === 0);
    for (const c of held.filter((c) => c.bytesRead > 0)) c.destroy();
    await waitUntil(() => waiting.some((c) => c.bytesRead > 0), 5000, 'a client from the backlog answered');
    for (const c of held.splice(0)) c.destroy();
    assert.equal((await get('/after')).text, 'hi /after');
    assert.ok(h.running());
  });
});
