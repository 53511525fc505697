#!/usr/bin/env node
// Counts the test points of the last `npm test` run from tap's saved per-file results
// (.tap/test-results/**/*.tap) and prints one line: `N passed, N failed` (plus skipped/todo when any).
// A leaf test point counts once; a subtest counts only when it failed without any failing child (a
// crash, a timeout, a thrown error). A file whose output has no final plan counts as one failure.
// Usage: node scripts/tap-summary.mjs [tap-exit-status]
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

function files(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (name.endsWith('.tap')) out.push(p);
  }
  return out;
}

const point = /^(\s*)(not ok|ok) \d+(?: - (.*))?$/;
let passed = 0;
let failed = 0;
let skipped = 0;
let todo = 0;
const failures = [];

let resultFiles = [];
try {
  resultFiles = files('.tap/test-results');
} catch {
  resultFiles = [];
}

for (const file of resultFiles) {
  const lines = readFileSync(file, 'utf8').split('\n');
  // failingChildren[depth] counts failing points seen inside the currently open subtest at that depth
  const failingBelow = new Map();
  let lastPlanIndent = -1;
  let topPlan = false;
  for (const line of lines) {
    if (/^\s*1\.\.\d+/.test(line)) {
      lastPlanIndent = line.length - line.trimStart().length;
      if (lastPlanIndent === 0) topPlan = true;
      continue;
    }
    const m = point.exec(line);
    if (m === null) continue;
    const indent = m[1].length;
    const ok = m[2] === 'ok';
    const name = m[3] ?? '';
    const isParent = lastPlanIndent > indent;
    lastPlanIndent = -1;
    const childFailures = failingBelow.get(indent + 4) ?? 0;
    failingBelow.set(indent + 4, 0);
    if (/# SKIP/i.test(name)) {
      skipped++;
      continue;
    }
    if (/# TODO/i.test(name)) {
      todo++;
      continue;
    }
    if (isParent) {
      if (!ok && childFailures === 0) {
        failed++;
        failures.push(`${file}: ${name}`);
        failingBelow.set(indent, (failingBelow.get(indent) ?? 0) + 1);
      } else if (!ok) {
        failingBelow.set(indent, (failingBelow.get(indent) ?? 0) + 1);
      }
      continue;
    }
    if (ok) passed++;
    else {
      failed++;
      failures.push(`${file}: ${name}`);
      failingBelow.set(indent, (failingBelow.get(indent) ?? 0) + 1);
    }
  }
  if (!topPlan) {
    failed++;
    failures.push(`${file}: did not finish (no final plan)`);
  }
}

const tapStatus = Number(process.argv[2] ?? '0');
if (tapStatus !== 0 && failed === 0) {
  failed++;
  failures.push(
    `tap exited with status ${tapStatus} (coverage below the .taprc floor, or a file that crashed)`,
  );
}
if (passed + failed === 0) {
  failed++;
  failures.push('no test ran');
}
for (const f of failures) console.log(`FAILED: ${f}`);
if (skipped + todo > 0) console.log(`(${skipped} skipped, ${todo} todo: not counted as passed)`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
