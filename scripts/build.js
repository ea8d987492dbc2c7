#!/usr/bin/env node
// The native addon for this machine: the package's `install` script (in
// this repository and in a user's node_modules alike) and `npm test`'s
// first step.
//
// - In a checkout (not inside node_modules) with @napi-rs/cli (a dev
//   dependency) and cargo: `napi build`, which also writes native.js and
//   native.d.ts. Cargo is incremental: with nothing changed it takes a second.
// - Otherwise (installed from the registry, a tarball, a git URL or a path):
//   nothing to do when a binary for this platform is there already (the
//   per-platform optional dependency, or a sack.<platform>.node in the
//   package); else, with a Rust toolchain, `cargo build --release` and the
//   library copied to sack.<platform>.node, where native.js looks first (no
//   dev dependency needed); else it fails, saying what is missing and what
//   to do.
// - In a git clone npm is preparing (`npm install git+<url>`): nothing; the
//   package it packs from the clone carries no binary, and its install
//   does the above.
//
// SACK_BUILD_FROM_SOURCE=1 builds even when a prebuilt binary is there;
// CARGO names the cargo to run (default: cargo on the PATH); --debug makes
// a checkout's build a debug one.
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const fs = require('node:fs');
const os = require('node:os');
const p = require('../lib/platform.js');

const root = p.ROOT;
const name = p.pkg.name;
const cargo = process.env.CARGO || 'cargo';
const debug = process.argv.includes('--debug');
const fromSource = process.env.SACK_BUILD_FROM_SOURCE === '1';
const insideNodeModules = root.split(path.sep).includes('node_modules');
const cli = path.join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js');

class Failure extends Error {}
function fail(lines) {
  throw new Failure(lines.join('\n'));
}

function hasCargo() {
  const r = spawnSync(cargo, ['--version'], { stdio: 'ignore' });
  return r.status === 0;
}

// A checkout: napi build, as the developers' scripts always did.
function napiBuild() {
  const args = [cli, 'build', '--platform', '--js', 'native.js', '--dts', 'native.d.ts'];
  if (!debug) args.push('--release');
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) fail([`${name}: building the native addon failed (\`napi build\`, exit ${r.status ?? r.signal}).`]);
}

// The prebuilt binary for this platform, if one is installed: a local
// file, or the per-platform package of this very version (one of another
// version may not match this JavaScript; `stale` tells of it).
function prebuilt() {
  if (fs.existsSync(p.localBinary())) return { file: p.localBinary() };
  const dir = p.installedBinaryPackage();
  const file = dir && path.join(dir, path.basename(p.localBinary()));
  if (!file || !fs.existsSync(file)) return null;
  const version = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version;
  return { file, stale: version !== p.pkg.version && `${p.binaryPackage()} is version ${version}, not ${p.pkg.version}` };
}

// Without the napi CLI: cargo builds the cdylib, copied to the name the
// generated loader (native.js) tries first.
function cargoBuild() {
  const ownTarget = !process.env.CARGO_TARGET_DIR && insideNodeModules;
  // In node_modules, build outside it (a target directory is hundreds of
  // megabytes) and remove it after; in a checkout, ./target stays for the
  // next (incremental) build.
  const targetDir = process.env.CARGO_TARGET_DIR || (ownTarget ? fs.mkdtempSync(path.join(os.tmpdir(), `${name}-build-`)) : path.join(root, 'target'));
  const env = { ...process.env, CARGO_TARGET_DIR: targetDir };
  // musl's default static C runtime cannot make a shared library (napi
  // build does the same).
  if (p.isMusl() && !/crt-static/.test(env.RUSTFLAGS || '')) env.RUSTFLAGS = `${env.RUSTFLAGS || ''} -C target-feature=-crt-static`.trim();
  console.error(`${name}: building the native addon from source for ${p.describe()} (cargo build --release; a few minutes)`);
  try {
    const r = spawnSync(cargo, ['build', '--release', '--locked', '--lib', '--message-format=json-render-diagnostics'], {
      cwd: root,
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
      maxBuffer: 256 * 1024 * 1024,
      encoding: 'utf8',
    });
    if (r.status !== 0) {
      fail([`${name}: \`cargo build --release\` failed (exit ${r.status ?? r.signal}${r.error ? `, ${r.error.message}` : ''}); its messages are above.`, ...p.ways()]);
    }
    let lib = null;
    for (const line of r.stdout.split('\n')) {
      if (!line.startsWith('{')) continue;
      const msg = JSON.parse(line);
      if (msg.reason === 'compiler-artifact' && msg.target.kind.includes('cdylib')) {
        lib = msg.filenames.find((f) => /\.(so|dylib|dll)$/.test(f)) || lib;
      }
    }
    if (!lib) fail([`${name}: cargo built no shared library (cdylib) for ${p.describe()}.`]);
    const dest = p.localBinary();
    const tmp = `${dest}.tmp-${process.pid}`;
    fs.copyFileSync(lib, tmp);
    fs.renameSync(tmp, dest);
    console.error(`${name}: built ${path.basename(dest)}`);
  } finally {
    if (ownTarget) fs.rmSync(targetDir, { recursive: true, force: true });
  }
}

function main() {
  if (!insideNodeModules && process.env._PACOTE_NO_PREPARE_) {
    // npm is preparing a git dependency: it installs the clone (this run)
    // only to pack it, and the package carries no binary, so the install of
    // that package builds or finds one. Building here too would be a second
    // release build. (_PACOTE_NO_PREPARE_ is npm's own mark of this step;
    // without it the clone is built too, which costs time, not success.)
    return;
  }
  const cargoThere = hasCargo();
  if (!insideNodeModules && cargoThere && fs.existsSync(cli)) {
    napiBuild();
  } else {
    const found = fromSource ? null : prebuilt();
    if (found && !found.stale) {
      // Nothing to build (quiet: npm shows an install script's output only on failure).
    } else if (cargoThere) {
      if (found) console.error(`${name}: ${found.stale}: building from source instead.`);
      cargoBuild();
    } else if (found) {
      console.error(`${name}: warning: ${found.stale}, and there is no Rust toolchain to build this version's binary; using it.`);
    } else {
      const pkgName = p.binaryPackage();
      fail([
        `${name}: no prebuilt binary for ${p.describe()}, and no Rust toolchain to build one from source (\`${cargo}\` did not run).`,
        p.prebuiltSuffixes().includes(p.suffix())
          ? `  The prebuilt binary is the package ${pkgName} (an optional dependency of ${name} as published on npm), and it is not installed.`
          : `  No prebuilt binary is published for this platform (it would be the package ${pkgName}).`,
        ...p.ways(),
      ]);
    }
  }
}

try {
  main();
} catch (e) {
  if (!(e instanceof Failure)) throw e;
  console.error(e.message);
  process.exitCode = 1;
}
