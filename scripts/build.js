#!/usr/bin/env node
// Builds the native addon in release mode (run by `npm install` and `npm test`).
// Cargo is incremental, so a build with nothing changed takes a second.
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const fs = require('node:fs');

const root = path.join(__dirname, '..');
const cli = path.join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js');
if (!fs.existsSync(cli)) {
  console.error('sack: @napi-rs/cli is missing; run `npm install` in the package directory.');
  process.exit(1);
}
const debug = process.argv.includes('--debug');
const args = [cli, 'build', '--platform', '--js', 'native.js', '--dts', 'native.d.ts'];
if (!debug) args.push('--release');
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
if (r.status !== 0) {
  console.error('sack: building the native addon failed (needs a Rust toolchain: https://rustup.rs).');
  process.exit(r.status || 1);
}
