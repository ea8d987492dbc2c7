'use strict';
// Installing the package as a user does: `npm pack` (plus the optional
// dependencies the release adds), then `npm install` of the tarball into an
// empty directory, under the name `sack` (an alias, as `npm install
// sack@npm:sack-ws`), with this platform's prebuilt package (npm/<platform>/
// holding the locally built binary, as the release workflow fills it).
// Offline: npm gets nothing from a registry (the other platforms' optional
// packages are skipped). Then a CommonJS and an ESM sample there each start
// a server and get an echo from a `ws` client; and with the binary taken
// away, require('sack') and the install step say what is missing.
// SACK_TEST_SOURCE_BUILD=1 adds an install with no prebuilt binary, built
// from source by cargo (a minute or two here; not in `npm test`).

const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { pathToFileURL } = require('node:url');
const { ROOT, run, runNode } = require('./helpers.js');
const platform = require('../lib/platform.js');

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const NAME = platform.pkg.name;
const suffix = platform.suffix();
const binaryName = path.basename(platform.localBinary()); // sack.<suffix>.node
const WS = require.resolve('ws'); // the client, from this repository's node_modules

// The samples: a server on 127.0.0.1 port 0, a `ws` client, one echo, and
// which .node file was loaded.
const CJS = `'use strict';
const WebSocket = require(process.env.SACK_TEST_WS);
const { Websocket } = require('sack');
setTimeout(() => { console.error('timed out'); process.exit(2); }, 15000).unref();
const server = Websocket.Server({ address: '127.0.0.1', port: 0 }, (ws) => {
  ws.onmessage = (msg) => ws.send(msg);
});
const client = new WebSocket('ws://127.0.0.1:' + server.address().port + '/');
client.on('open', () => client.send('hello from require'));
client.on('message', (m) => { console.log('echo: ' + m); client.close(); });
client.on('close', () => server.close());
client.on('error', (e) => { console.error(e); process.exit(3); });
console.log('binary: ' + Object.keys(require.cache).find((f) => f.endsWith('.node')));
`;
const ESM = `import { createRequire } from 'node:module';
import { Websocket } from 'sack';
const require = createRequire(import.meta.url);
const WebSocket = require(process.env.SACK_TEST_WS);
setTimeout(() => { console.error('timed out'); process.exit(2); }, 15000).unref();
const server = Websocket.Server({ address: '127.0.0.1', port: 0 }, (ws) => {
  ws.onmessage = (msg) => ws.send(msg);
});
const client = new WebSocket('ws://127.0.0.1:' + server.address().port + '/');
client.on('open', () => client.send('hello from import'));
client.on('message', (m) => { console.log('echo: ' + m); client.close(); });
client.on('close', () => server.close());
client.on('error', (e) => { console.error(e); process.exit(3); });
console.log('binary: ' + Object.keys(require.cache).find((f) => f.endsWith('.node')));
`;

/** npm with its own cache (nothing shared with other runs). */
function npmRun(cache, args, ms = 120000) {
  return run(npm, args, { env: { npm_config_cache: cache, npm_config_update_notifier: 'false' }, ms });
}

/** The tarball's name from `npm pack`'s output (its last line). */
function packed(out) {
  return out.trim().split('\n').pop().trim();
}

async function sample(file, code) {
  fs.writeFileSync(file, code);
  const load = file.endsWith('.mjs') ? `import(${JSON.stringify(pathToFileURL(file).href)})` : `require(${JSON.stringify(file)})`;
  return runNode(load, { ms: 20000, env: { SACK_TEST_WS: WS } });
}

/** Runs both samples in `app`; returns the .node files they loaded. */
async function echoes(app, t) {
  const binaries = [];
  for (const [file, code, text] of [
    ['sample.cjs', CJS, 'hello from require'],
    ['sample.mjs', ESM, 'hello from import'],
  ]) {
    const r = await sample(path.join(app, file), code);
    const detail = `stdout: ${r.stdout}\nstderr: ${r.stderr}`;
    assert.strictEqual(r.code, 0, `${file} exited ${r.code ?? r.signal}\n${detail}`);
    assert.match(r.stdout, new RegExp(`^echo: ${text}$`, 'm'), detail);
    const loaded = /^binary: (.*)$/m.exec(r.stdout)[1];
    t.diagnostic(`${file}: echo received; binary ${path.relative(app, loaded)}`);
    assert.ok(loaded.startsWith(path.join(app, 'node_modules') + path.sep), `the binary came from outside the install: ${loaded}`);
    binaries.push(loaded);
  }
  return binaries;
}

test('npm/ holds one package per napi.targets entry, named and versioned as the release publishes them', () => {
  const pkg = platform.pkg;
  const want = platform.prebuiltSuffixes().sort();
  const dirs = fs.readdirSync(path.join(ROOT, 'npm')).sort();
  assert.deepStrictEqual(dirs, want, 'npm/ directories against package.json napi.targets (napi create-npm-dirs makes them)');
  for (const triple of pkg.napi.targets) {
    const s = platform.targetSuffix(triple);
    const sub = JSON.parse(fs.readFileSync(path.join(ROOT, 'npm', s, 'package.json'), 'utf8'));
    assert.strictEqual(sub.name, `${pkg.name}-${s}`);
    assert.strictEqual(sub.version, pkg.version, `npm/${s} version (napi version syncs it)`);
    assert.strictEqual(sub.main, `${pkg.napi.binaryName}.${s}.node`);
    assert.deepStrictEqual(sub.files, [sub.main]);
    assert.match(fs.readFileSync(path.join(ROOT, 'npm', s, 'README.md'), 'utf8'), new RegExp(`\\*\\*${escape(triple)}\\*\\*`));
  }
  // The generated loader asks for the same package names.
  const loader = fs.readFileSync(path.join(ROOT, 'native.js'), 'utf8');
  for (const s of want) assert.ok(loader.includes(`require('${pkg.name}-${s}')`), `native.js does not load ${pkg.name}-${s}: rebuild it (npm run build)`);
});

test('npm pack, then npm install <tarball> as `sack` into an empty directory: require and import work', { timeout: 240000 }, async (t) => {
  const v = await run(npm, ['--version'], { ms: 60000 });
  if (v.code !== 0) {
    t.skip(`npm cannot run here (${npm} --version: exit ${v.code}): ${v.out.trim().slice(-300)}`);
    return;
  }
  const binary = path.join(ROOT, binaryName);
  assert.ok(fs.existsSync(binary), `no ${binaryName} in the repository: build it first (npm run build)`);
  const npmDir = path.join(ROOT, 'npm', suffix);
  assert.ok(fs.existsSync(path.join(npmDir, 'package.json')), `no prebuilt package for ${suffix} in npm/ (package.json napi.targets)`);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sack-install-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const cache = path.join(dir, 'npm-cache');
  const t0 = Date.now();

  // The package as `npm publish` sends it: packed, with the optional
  // dependencies that the release's `napi pre-publish` adds (one per
  // napi.targets entry, this version).
  const packedOut = await npmRun(cache, ['pack', ROOT, '--ignore-scripts', '--pack-destination', dir]);
  assert.strictEqual(packedOut.code, 0, `npm pack failed: ${packedOut.out}`);
  const published = path.join(dir, 'published');
  fs.mkdirSync(published);
  const untar = await run('tar', ['-xzf', path.join(dir, packed(packedOut.out)), '-C', published], { ms: 30000 });
  assert.strictEqual(untar.code, 0, untar.out);
  const pkgDir = path.join(published, 'package');
  const manifest = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
  manifest.optionalDependencies = Object.fromEntries(platform.prebuiltSuffixes().map((s) => [`${NAME}-${s}`, manifest.version]));
  fs.writeFileSync(path.join(pkgDir, 'package.json'), JSON.stringify(manifest, null, 2));
  fs.mkdirSync(path.join(dir, 'out'));
  const main = await npmRun(cache, ['pack', pkgDir, '--ignore-scripts', '--pack-destination', path.join(dir, 'out')]);
  assert.strictEqual(main.code, 0, `npm pack failed: ${main.out}`);
  const mainTgz = path.join(dir, 'out', packed(main.out));

  // This platform's package, filled as the release workflow's `napi
  // artifacts` fills it: npm/<platform>/ plus the binary.
  const stage = path.join(dir, 'stage');
  fs.mkdirSync(stage);
  for (const f of fs.readdirSync(npmDir)) fs.copyFileSync(path.join(npmDir, f), path.join(stage, f));
  fs.copyFileSync(binary, path.join(stage, binaryName));
  const plat = await npmRun(cache, ['pack', stage, '--pack-destination', dir]);
  assert.strictEqual(plat.code, 0, `npm pack of npm/${suffix} failed: ${plat.out}`);
  const platTgz = path.join(dir, packed(plat.out));

  const app = path.join(dir, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  const inst = await npmRun(cache, ['install', '--prefix', app, '--offline', '--no-audit', '--no-fund', `sack@file:${mainTgz}`, platTgz]);
  assert.strictEqual(inst.code, 0, `npm install failed: ${inst.out}`);
  t.diagnostic(`packed and installed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const installed = path.join(app, 'node_modules', 'sack');
  const pj = JSON.parse(fs.readFileSync(path.join(installed, 'package.json'), 'utf8'));
  assert.strictEqual(pj.name, NAME);
  for (const f of ['scripts/build.js', 'Cargo.toml', 'Cargo.lock', 'build.rs', 'src/lib.rs', 'native.js', 'lib/native.js', 'index.mjs']) {
    assert.ok(fs.existsSync(path.join(installed, f)), `${f} is not in the package`);
  }
  const platDir = path.join(app, 'node_modules', `${NAME}-${suffix}`);
  assert.ok(fs.existsSync(path.join(platDir, binaryName)), `${NAME}-${suffix} was not installed`);

  // The package carries no binary (the release workflow's `napi artifacts`
  // leaves copies in the root, and "files" leaves them out): it comes from
  // the per-platform package.
  assert.deepStrictEqual(fs.readdirSync(installed).filter((f) => f.endsWith('.node')), [], 'a binary was packed in the package');
  for (const loaded of await echoes(app, t)) assert.strictEqual(loaded, path.join(platDir, binaryName));

  // No binary and no way to build one: both the loader and the install
  // step say so, with the platform, the package that would have had it and
  // the two ways out.
  fs.renameSync(platDir, `${platDir}.away`);
  // (runNode's -e code runs in the repository: require from the app.)
  const noBinary = await runNode(
    `const load = require('node:module').createRequire(${JSON.stringify(path.join(app, 'x.js'))});
     try { load('sack'); console.log('loaded'); } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`,
    { ms: 20000 },
  );
  const err = JSON.parse(noBinary.stdout.trim().split('\n').pop());
  assert.strictEqual(err.code, 'ERR_SACK_NO_BINARY', noBinary.stdout + noBinary.stderr);
  t.diagnostic('without a binary, require("sack") throws:');
  for (const line of err.message.split('\n')) t.diagnostic(line);
  assert.match(err.message, new RegExp(escape(`no native binary for ${platform.describe()}`)));
  assert.match(err.message, new RegExp(escape(`${NAME}-${suffix}`)));
  assert.match(err.message, /Rust toolchain \(https:\/\/rustup\.rs/);
  assert.match(err.message, /npm rebuild sack\b/);
  assert.doesNotMatch(err.message, /npm has a bug/);

  const build = await run(process.execPath, [path.join(installed, 'scripts', 'build.js')], {
    env: { CARGO: path.join(dir, 'no-cargo-here') },
    ms: 30000,
  });
  assert.strictEqual(build.code, 1, build.out);
  assert.match(build.out, new RegExp(escape(`no prebuilt binary for ${platform.describe()}, and no Rust toolchain`)));
  assert.match(build.out, new RegExp(escape(`${NAME}-${suffix}`)));
  t.diagnostic(`whole test: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

test('npm install <tarball> with no prebuilt binary builds from source (SACK_TEST_SOURCE_BUILD=1)', { timeout: 900000 }, async (t) => {
  if (process.env.SACK_TEST_SOURCE_BUILD !== '1') {
    t.skip('a release build from source takes minutes: set SACK_TEST_SOURCE_BUILD=1 to run it');
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sack-install-src-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const cache = path.join(dir, 'npm-cache');
  const t0 = Date.now();
  const main = await npmRun(cache, ['pack', ROOT, '--ignore-scripts', '--pack-destination', dir]);
  assert.strictEqual(main.code, 0, main.out);
  const app = path.join(dir, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  // Offline, so no per-platform package: the install step builds.
  const r = await npmRun(cache, ['install', '--prefix', app, '--offline', '--no-audit', '--no-fund', '--foreground-scripts', `sack@file:${path.join(dir, packed(main.out))}`], 850000);
  assert.strictEqual(r.code, 0, r.out);
  assert.ok(fs.existsSync(path.join(app, 'node_modules', 'sack', binaryName)), r.out);
  t.diagnostic(`built from source in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  await echoes(app, t);
});

function escape(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
