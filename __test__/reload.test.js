'use strict';
// sack's JavaScript loaded more than once in one environment, its addon
// once: what Jest does (every test file gets its modules afresh, native
// addons come from Node's own require) and what `delete require.cache[…]`
// does. Every copy must serve its own servers, while the others' go on,
// and under Jest the objects a test file's handlers get (errors among them)
// must come from that file's realm: the newest copy dispatches.
//
// The Jest test installs jest (SACK_JEST_VERSION, default below) into
// .cache/jest/ at the package root if it is not there (SACK_JEST_DIR
// overrides; SACK_NO_INSTALL=1 forbids it, and the test then skips). The
// default version installs the dependency tree pinned in jest-deps/
// (package-lock.json), so a registry's newer releases cannot break it.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { sack, ROOT, HOST, scope, opened, clientMessage, request, run, runNode, ensureNpmPackage } = require('./helpers.js');

const JEST_DIR = process.env.SACK_JEST_DIR || path.join(ROOT, '.cache', 'jest');
// The version jest-deps/package-lock.json pins.
const PINNED_JEST = require('./jest-deps/package.json').dependencies.jest;
const JEST_VERSION = process.env.SACK_JEST_VERSION || PINNED_JEST;

const LIB = path.join(ROOT, 'lib') + path.sep;
const INDEX = path.join(ROOT, 'index.js');

/** Forgets sack's JavaScript (index.js, lib/): the next require loads it
 * afresh; the addon stays. Also run in a child, from its source. */
const forget = (lib, index) => {
  for (const file of Object.keys(require.cache)) {
    if (file.startsWith(lib) || file === index) delete require.cache[file];
  }
};

/** A fresh copy of sack's JavaScript. */
function freshCopy() {
  forget(LIB, INDEX);
  return require(ROOT);
}

test.describe('two copies of the JavaScript in one environment', () => {
  test.it('each serves HTTP with its own headers, interleaved, and WebSocket', async (t) => {
    const s = scope(t);
    const copy = freshCopy();
    assert.notEqual(copy.Websocket.Server, sack.Websocket.Server, 'the copy is a copy');

    // One server per copy, alive together; each sets a header block of its
    // own, so a block kept natively for one copy must not go out for the other.
    const servers = [sack, copy].map((m, i) => {
      const server = s.track(m.Websocket.Server({ address: HOST, port: 0 }));
      server.onrequest = (req, res) => {
        res.setHeader('X-Copy', String(i));
        if (i === 1) res.setHeader('Cache-Control', 'no-store');
        res.end(`copy ${i} ${req.url}`);
      };
      server.onconnect = (ws) => {
        ws.onmessage = (data) => ws.send(`copy ${i}: ${data}`);
      };
      return server;
    });
    for (let round = 0; round < 3; round++) {
      for (const i of [0, 1]) {
        const r = await request(servers[i].address().port, { path: `/r${round}` });
        assert.equal(r.status, 200);
        assert.equal(r.text, `copy ${i} /r${round}`);
        assert.equal(r.headers['x-copy'], String(i));
        assert.equal(r.headers['cache-control'], i === 1 ? 'no-store' : undefined);
      }
    }
    for (const i of [1, 0]) {
      const c = s.client(servers[i]);
      await opened(c);
      c.send('hi');
      assert.equal(String((await clientMessage(c)).data), `copy ${i}: hi`);
      c.close();
    }
  });

  test.it('a third copy serves while the first copy’s server keeps serving', async (t) => {
    const s = scope(t);
    const first = s.track(sack.Websocket.Server({ address: HOST, port: 0 }));
    first.onrequest = (req, res) => res.end('first');
    const third = freshCopy();
    const server = s.track(third.Websocket.Server({ address: HOST, port: 0 }));
    server.onrequest = (req, res) => res.end('third');
    assert.equal((await request(server.address().port)).text, 'third');
    assert.equal((await request(first.address().port)).text, 'first');
  });

  test.it('Thread.accept of one copy takes a connection another copy posts', async () => {
    // In a child process: a registration that never receives keeps its
    // process alive, and there is no call to withdraw it.
    const code = `
      const root = ${JSON.stringify(ROOT)};
      const WebSocket = require(${JSON.stringify(require.resolve('ws'))});
      const first = require(root);
      let posted;
      first.Websocket.Thread.accept('here', (dest, ws) => {
        // The newest copy builds the connection (README: it takes the events).
        const sameClass = Object.getPrototypeOf(ws) === Object.getPrototypeOf(posted);
        ws.onmessage = (data) => ws.send('adopted by the first copy: ' + data + ', newest class: ' + sameClass);
      });
      (${forget})(${JSON.stringify(LIB)}, ${JSON.stringify(INDEX)});
      const copy = require(root);
      if (copy.Websocket.Server === first.Websocket.Server) throw new Error('not a copy');
      const server = copy.Websocket.Server({ address: '127.0.0.1', port: 0 });
      server.onconnect = (ws) => {
        posted = ws;
        ws.post('here');
      };
      const c = new WebSocket('ws://127.0.0.1:' + server.address().port + '/');
      c.on('open', () => c.send('x'));
      c.on('message', (data) => {
        console.log(String(data));
        c.close();
        server.close();
      });
    `;
    const r = await runNode(code, { ms: 8000 });
    assert.equal(r.timedOut, false, `child hung; stderr: ${r.stderr}`);
    assert.equal(r.stdout.trim(), 'adopted by the first copy: x, newest class: true', r.stderr);
    assert.equal(r.code, 0, r.stderr);
  });

  test.it('the addon loaded again too: both serve keep-alive HTTP on the JS thread', async () => {
    // Clearing the addon from require.cache as well makes Node load it
    // again, as an environment of its own on the same thread, with an HTTP
    // lane of its own. In a child: that cannot be undone.
    const code = `
            const root = ${JSON.stringify(ROOT)};
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const get = (port, path) => new Promise((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => resolve(body));
        });
        req.on('error', reject);
      });
      const load = (name) => {
        for (const f of Object.keys(require.cache)) if (f.startsWith(root)) delete require.cache[f];
        const server = require(root).Websocket.Server({ address: '127.0.0.1', port: 0 });
        server.onrequest = (req, res) => res.end(name + req.url);
        return server;
      };
      (async () => {
        const a = load('a');
        const b = load('b');
        const got = [];
        for (let i = 0; i < 4; i++) got.push(await get(a.address().port, '/' + i), await get(b.address().port, '/' + i));
        console.log(got.join(' '));
        console.log('lane', a._native.laneConnections(), b._native.laneConnections());
        agent.destroy();
        a.close();
        b.close();
      })();
    `;
    const r = await runNode(code, { ms: 8000 });
    assert.equal(r.timedOut, false, `child hung; stdout: ${r.stdout} stderr: ${r.stderr}`);
    const [got, lane] = r.stdout.trim().split('\n');
    assert.equal(got, 'a/0 b/0 a/1 b/1 a/2 b/2 a/3 b/3', r.stderr);
    // One kept-alive connection each, served by its own environment's lane
    // where there is one (Linux).
    if (process.platform === 'linux' && process.env.SACK_HTTP_LANE !== '0') assert.equal(lane, 'lane 1 1');
    assert.equal(r.code, 0, r.stderr);
  });
});

/** Jest's directory (installed on first use), or undefined after t.skip(). */
async function jestDir(t) {
  try {
    const lock = JEST_VERSION === PINNED_JEST ? path.join(__dirname, 'jest-deps') : undefined;
    return await ensureNpmPackage({ name: 'jest', version: JEST_VERSION, dir: JEST_DIR, log: (m) => t.diagnostic(m), lock });
  } catch (e) {
    t.skip(`jest unavailable: ${e.message}`);
    return undefined;
  }
}

/** Runs Jest on __test__/jest/ with `flags`; { r, tmp, out, report }. */
async function runJest(t, dir, flags = []) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sack-jest-'));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const out = path.join(tmp, 'seen.jsonl');
  const report = path.join(tmp, 'report.json');
  const r = await run(
    process.execPath,
    [
      path.join(dir, 'bin', 'jest.js'),
      '--runInBand',
      '--ci',
      '--rootDir',
      path.join(__dirname, 'jest'),
      '--config',
      JSON.stringify({ transform: {}, cacheDirectory: path.join(tmp, 'cache') }),
      '--json',
      '--outputFile',
      report,
      ...flags,
    ],
    { env: { SACK_JEST_OUT: out }, ms: 120000 },
  );
  return { r, out, report };
}

test.describe('Jest', () => {
  test.it('runs two test files that each load sack, in one process', { timeout: 10 * 60000 }, async (t) => {
    const dir = await jestDir(t);
    if (!dir) return;
    const { r, out, report } = await runJest(t, dir);
    assert.equal(r.code, 0, `jest failed:\n${r.out}`);
    const { numTotalTests, numPassedTests, numTotalTestSuites } = JSON.parse(fs.readFileSync(report, 'utf8'));
    assert.deepEqual({ numTotalTestSuites, numTotalTests, numPassedTests }, { numTotalTestSuites: 2, numTotalTests: 2, numPassedTests: 2 });
    // What the two files saw (jest/check.js): one process, the second file
    // with a copy of sack other than the first's.
    const seen = fs.readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(seen.map((l) => l.file).sort(), ['first', 'second']);
    assert.equal(seen[0].pid, seen[1].pid);
    assert.deepEqual(seen.map((l) => [l.copies, l.sameAsFirst]), [[1, true], [2, false]]);
  });

  test.it('--detectOpenHandles reports no open handle once the test files have closed their servers', { timeout: 10 * 60000 }, async (t) => {
    const dir = await jestDir(t);
    if (!dir) return;
    const { r } = await runJest(t, dir, ['--detectOpenHandles']);
    assert.equal(r.code, 0, `jest failed:\n${r.out}`);
    assert.doesNotMatch(r.out, /open handle/i, r.out);
  });
});
