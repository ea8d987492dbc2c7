#!/usr/bin/env node
// Runs the worker-thread tests N times in a row (default 20) and stops at
// the first failure: the flakiness check of the handoff (not part of CI).
//   node scripts/repeat-workers.js [N]
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const runs = Number(process.argv[2] || 20);
const root = path.join(__dirname, '..');
let passed = 0;
for (let i = 1; i <= runs; i++) {
  const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', '__test__/workers.test.js'], {
    cwd: root,
    encoding: 'utf8',
    timeout: 300000,
  });
  if (r.status !== 0) {
    console.log(r.stdout.split('\n').filter((l) => !/^\s*✔/.test(l)).join('\n'), r.stderr);
    console.log(`run ${i} failed`);
    console.log(`${passed} passed, 1 failed`);
    process.exit(1);
  }
  passed++;
  console.log(`run ${i}/${runs} ok`);
}
console.log(`${passed} passed, 0 failed`);
