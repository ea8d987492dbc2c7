'use strict';
// Process lifetime, in child Node processes: a listening server keeps the
// process alive unless unref()ed; the process exits by itself once the
// server is closed and its clients are gone; a throwing event handler is an
// uncaught exception like an EventEmitter listener's.

const test = require('node:test');
const assert = require('node:assert/strict');

const { ROOT, scope, opened, clientClosed, delay, startNode, runNode } = require('./helpers.js');

const PRELUDE = `
  const sack = require(${JSON.stringify(ROOT)});
  const { Server } = sack.Websocket;
`;

// A stand-in server object for scope().client(): only address() is used.
const at = (port) => ({ address: () => ({ port }) });

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
    const child = startNode(`${PRELUDE}
      const s = new Server({ address: '127.0.0.1', port: 0 });
      s.on('connect', (ws) => {
        ws.on('message', (m) => { if (m === 'close-now') s.close(); });
        ws.on('close', (code) => console.log('ws closed ' + code));
      });
      s.on('close', () => console.log('server closed'));
      console.log('port ' + s.address().port);
    `);
    t.after(() => child.kill());
    const port = Number((await child.line(/port (\d+)/))[1]);
    const $ = scope(t);
    const c = $.client(at(port));
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
    const child = startNode(`${PRELUDE}
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
    t.after(() => child.kill());
    const port = Number((await child.line(/port (\d+)/))[1]);
    const $ = scope(t);
    const c = $.client(at(port));
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
    const child = startNode(`${PRELUDE}
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
    t.after(() => child.kill());
    const port = Number((await child.line(/port (\d+)/))[1]);
    const $ = scope(t);
    const c = $.client(at(port));
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
    const child = startNode(`${PRELUDE}
      const s = new Server({ address: '127.0.0.1', port: 0 });
      process.on('uncaughtException', (e) => { console.log('caught ' + e.message); s.close(); });
      s.on('accept', () => { throw new Error('boom-accept'); });
      console.log('port ' + s.address().port);
    `);
    t.after(() => child.kill());
    const port = Number((await child.line(/port (\d+)/))[1]);
    const $ = scope(t);
    const c = $.client(at(port));
    c.on('error', () => {});
    await child.line(/caught boom-accept/);
    const exit = await child.exited(6000);
    assert.equal(exit.code, 0, child.stderr);
  });

  test.it('without an uncaughtException handler a throwing handler ends the process with an error', async (t) => {
    const child = startNode(`${PRELUDE}
      const s = new Server({ address: '127.0.0.1', port: 0 });
      s.on('connect', () => { throw new Error('fatal-boom'); });
      console.log('port ' + s.address().port);
    `);
    t.after(() => child.kill());
    const port = Number((await child.line(/port (\d+)/))[1]);
    const $ = scope(t);
    const c = $.client(at(port));
    c.on('error', () => {});
    const exit = await child.exited(6000);
    assert.notEqual(exit.code, 0);
    assert.match(child.stderr, /fatal-boom/);
  });
});

