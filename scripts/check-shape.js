#!/usr/bin/env node
'use strict';
// The layering docs/ARCHITECTURE.md promises, checked: within src/engine
// and within src/binding, no module uses one that uses it back (a
// directory module counts as one), except the pairs ARCHITECTURE.md names
// with their reason; and no source file's code (before its tests) is over
// MAX_LINES lines. A reference is `super::name`, `super::{…name…}` or
// `crate::<layer>::name` outside `#[cfg(test)]`.
//
//   node scripts/check-shape.js     prints the graph's pairs and the largest files

const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const MAX_LINES = 800;
// Each allowed pair, sorted; ARCHITECTURE.md, "Module dependencies", says why.
const ALLOWED = new Set(['engine: conn<->events', 'engine: events<->exchange']);

function rustFiles(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...rustFiles(p));
    else if (e.name.endsWith('.rs')) out.push(p);
  }
  return out;
}

// The code of a file before its first `#[cfg(test)]` line.
function code(file) {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const end = lines.findIndex((l) => l.trim().startsWith('#[cfg(test)]'));
  return end < 0 ? lines : lines.slice(0, end);
}

let failures = 0;
const sizes = [];
for (const layer of ['engine', 'binding']) {
  const dir = path.join(root, 'src', layer);
  const modules = new Map();
  for (const file of rustFiles(dir)) {
    const top = path.relative(dir, file).split(path.sep)[0].replace(/\.rs$/, '');
    const lines = code(file);
    sizes.push([lines.length, path.relative(root, file)]);
    if (top === 'mod') continue;
    modules.set(top, (modules.get(top) || '') + lines.join('\n'));
  }
  const uses = new Map();
  for (const [a, text] of modules) {
    const set = new Set();
    for (const b of modules.keys()) {
      if (a === b) continue;
      const direct = new RegExp(`\\bsuper::${b}\\b|\\bcrate::${layer}::${b}\\b`);
      const grouped = new RegExp(`\\bsuper::\\{[^}]*\\b${b}\\b`);
      if (direct.test(text) || grouped.test(text)) set.add(b);
    }
    uses.set(a, set);
  }
  const pairs = [];
  for (const [a, set] of uses) {
    for (const b of set) if (a < b && uses.get(b).has(a)) pairs.push(`${layer}: ${a}<->${b}`);
  }
  for (const p of pairs) {
    const ok = ALLOWED.has(p);
    if (!ok) failures++;
    console.log(`${ok ? 'allowed' : 'CYCLE  '} ${p}`);
  }
  if (!pairs.length) console.log(`${layer}: no module uses one that uses it back`);
}
sizes.sort((x, y) => y[0] - x[0]);
// Functions by lines, from their `fn` line to the brace that closes it at
// the same indent (rustfmt's layout).
const fns = [];
for (const file of ['engine', 'binding', 'http', 'protocol'].flatMap((l) => rustFiles(path.join(root, 'src', l)))) {
  const lines = code(file);
  lines.forEach((line, i) => {
    const m = /^(\s*)(pub(\([a-z]+\))? )?(const )?(unsafe )?(async )?(extern "C" )?fn (\w+)/.exec(line);
    if (!m) return;
    const end = lines.findIndex((l, j) => j > i && l === `${m[1]}}`);
    if (end > i) fns.push([end - i + 1, `${path.relative(root, file)}:${m[8]}`]);
  });
}
fns.sort((x, y) => y[0] - x[0]);
console.log('largest functions (lines):', fns.slice(0, 5).map(([n, f]) => `${f} ${n}`).join(', '));
console.log('largest files (code lines):', sizes.slice(0, 5).map(([n, f]) => `${f} ${n}`).join(', '));
for (const [n, f] of sizes) {
  if (n > MAX_LINES) {
    failures++;
    console.log(`TOO LONG ${f}: ${n} code lines (max ${MAX_LINES})`);
  }
}
process.exit(failures ? 1 : 0);
