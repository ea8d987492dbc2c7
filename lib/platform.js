'use strict';
// Which native binary this machine needs: the suffix napi-rs gives it
// (sack.<suffix>.node, package <name>-<suffix>), by the same rules as the
// generated ../native.js. Used by lib/native.js (the error when no binary
// loads) and scripts/build.js (the install step).

const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
const pkg = require('../package.json');

let muslCache;
/** True on a musl libc (Alpine), false on glibc and off Linux. */
function isMusl() {
  if (process.platform !== 'linux') return false;
  if (muslCache !== undefined) return muslCache;
  try {
    muslCache = fs.readFileSync('/usr/bin/ldd', 'utf8').includes('musl');
  } catch {
    let report = null;
    if (typeof process.report?.getReport === 'function') {
      process.report.excludeNetwork = true; // no DNS look-ups for the report
      report = process.report.getReport();
    }
    muslCache = !!report && !report.header?.glibcVersionRuntime &&
      (report.sharedObjects || []).some((f) => f.includes('libc.musl-') || f.includes('ld-musl-'));
  }
  return muslCache;
}

/** The libc name for messages: 'glibc', 'musl', or null off Linux. */
function libc() {
  return process.platform === 'linux' ? (isMusl() ? 'musl' : 'glibc') : null;
}

/** e.g. 'linux-x64-gnu', 'linux-x64-musl', 'darwin-arm64', 'win32-x64-msvc'. */
function suffix() {
  const { platform, arch } = process;
  if (platform === 'win32') return `win32-${arch}-msvc`;
  if (platform === 'android') return arch === 'arm' ? 'android-arm-eabi' : `android-${arch}`;
  if (platform === 'linux') {
    const musl = isMusl();
    if (arch === 'arm') return `linux-arm-${musl ? 'musleabihf' : 'gnueabihf'}`;
    return `linux-${arch}-${musl ? 'musl' : 'gnu'}`;
  }
  return `${platform}-${arch}`;
}

/** The binary a local build makes (the loader tries it first). */
function localBinary() {
  return path.join(ROOT, `${pkg.napi.binaryName}.${suffix()}.node`);
}

/** The per-platform package holding the prebuilt binary for this machine. */
function binaryPackage() {
  return `${pkg.name}-${suffix()}`;
}

const CPU = { x86_64: 'x64', aarch64: 'arm64', i686: 'ia32', armv7: 'arm', riscv64gc: 'riscv64', powerpc64le: 'ppc64', s390x: 's390x', loongarch64: 'loong64' };
/** A Rust target triple's suffix: 'x86_64-unknown-linux-musl' -> 'linux-x64-musl'. */
function targetSuffix(triple) {
  const parts = triple.split('-');
  const cpu = CPU[parts[0]] || parts[0];
  if (parts.includes('darwin')) return `darwin-${cpu}`;
  if (parts.includes('windows')) return `win32-${cpu}-${parts[3]}`;
  if (triple.includes('android')) return cpu === 'arm' ? 'android-arm-eabi' : `android-${cpu}`;
  if (parts.includes('linux')) return `linux-${cpu}-${parts[3]}`;
  return `${parts[2]}-${cpu}`;
}

/**
 * The suffixes with a prebuilt package: package.json's napi.targets, whose
 * packages the release makes the optional dependencies (napi pre-publish).
 */
function prebuiltSuffixes() {
  return ((pkg.napi && pkg.napi.targets) || []).map(targetSuffix);
}

/** The installed per-platform package's directory, or null. */
function installedBinaryPackage() {
  try {
    return path.dirname(require.resolve(`${binaryPackage()}/package.json`, { paths: [ROOT] }));
  } catch {
    return null;
  }
}

/** 'linux/x64/glibc', 'darwin/arm64', ... for messages. */
function describe() {
  return [process.platform, process.arch, libc()].filter(Boolean).join('/');
}

/**
 * What to do when no binary fits: the lines shared by the install step's
 * and the loader's errors.
 */
function ways() {
  // The name the package is installed under (`sack` after `npm install
  // sack@npm:sack-ws`), for the rebuild command.
  const installedAs = path.basename(path.dirname(ROOT)) === 'node_modules' ? path.basename(ROOT) : pkg.name;
  const supported = prebuiltSuffixes();
  let rust = '';
  try {
    const m = /^rust-version\s*=\s*"([^"]+)"/m.exec(fs.readFileSync(path.join(ROOT, 'Cargo.toml'), 'utf8'));
    if (m) rust = `, Rust ${m[1]} or newer`;
  } catch {
    // no Cargo.toml: no version to give
  }
  return [
    '  Either:',
    `  - install a Rust toolchain (https://rustup.rs${rust}), then install again (\`npm rebuild ${installedAs}\`, or \`npm install\`): the install builds the binary from source;`,
    `  - or use a platform with a prebuilt binary: ${supported.join(', ') || '(none listed)'}, and let npm install optional dependencies (not --omit=optional; a package-lock.json written on another platform can lack this platform's package: remove it and node_modules, and install again).`,
  ];
}

module.exports = {
  ROOT,
  pkg,
  isMusl,
  libc,
  suffix,
  describe,
  localBinary,
  binaryPackage,
  targetSuffix,
  prebuiltSuffixes,
  installedBinaryPackage,
  ways,
};
