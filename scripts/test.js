#!/usr/bin/env node
// `npm test`: every test of the project, in order:
//   1. build the addon if needed (cargo is incremental),
//   2. the module graph and file sizes (scripts/check-shape.js), and the
//      Rust unit tests (`cargo test`),
//   3. Autobahn conformance, every case with deflate on (`npm run test:autobahn`),
//   4. the node integration tests (`node --test __test__/`), last, so the
//      output ends with the node test runner's summary.
// Every step runs even if an earlier one failed; the exit code is non-zero if
// any failed. SACK_SKIP_AUTOBAHN=1 leaves out step 3 (quick local runs).
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.join(__dirname, '..');
const failed = [];

function step(name, cmd, args, env) {
  console.log(`\n=== ${name}: ${[cmd, ...args].join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  if (r.status !== 0) failed.push(`${name} (exit ${r.status ?? r.signal})`);
  return r.status === 0;
}

if (!step('build', process.execPath, [path.join(__dirname, 'build.js')])) {
  console.error('\nThe addon did not build; the other steps need it.');
  process.exit(1);
}
step('shape', process.execPath, [path.join(__dirname, 'check-shape.js')]);
step('rust', 'cargo', ['test']);
if (process.env.SACK_SKIP_AUTOBAHN !== '1') {
  step('autobahn', process.execPath, [
    path.join(__dirname, 'autobahn.js'),
    '--all',
    '--server',
    path.join(__dirname, 'autobahn-echo-sack.js'),
  ]);
}
step('node', process.execPath, ['--test', '--test-concurrency=1', '__test__/']);

if (failed.length) {
  console.error(`\nFailed steps: ${failed.join(', ')}`);
  process.exit(1);
}
