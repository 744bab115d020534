#!/usr/bin/env node
// Runs jest over the compiled tests and prints the one line CI reads: `tests: N passed, N failed`
// (plus skipped), computed from jest's own JSON results. With CI=true a skipped or todo test, or
// a suite that failed to load, is a failure: a tier that cannot run must not look green.
// Extra arguments go to jest (e.g. `npm test -- dist/test/tun-native`), except `--long`: it sets
// TUNKEEPER_RELIABILITY=long, the larger counts of the reliability tier (test/reliability/helpers/scale.ts).
//
// `npm test` runs every tier, the reliability tier (test/reliability/) included at its CI size:
// CI's last line must be one `tests: N passed, N failed` covering everything, and the bounded
// reliability suite is part of what CI proves. `npm run test:reliability` runs that tier alone.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const results = join(root, '.jest-results.json');
const ci = process.env.CI === 'true' || process.env.CI === '1';
rmSync(results, { force: true });

const jest = join(dirname(createRequire(import.meta.url).resolve('jest')), '..', 'bin', 'jest.js');
const args = process.argv.slice(2);
const long = args.includes('--long');
const env = {
  ...process.env,
  ...(long ? { TUNKEEPER_RELIABILITY: 'long' } : {}),
  TUNKEEPER_TEST_RUN: process.env.TUNKEEPER_TEST_RUN ?? `${process.pid.toString(36)}${Date.now().toString(36).slice(-3)}`,
};
const run = spawnSync(
  process.execPath,
  // --expose-gc: lifecycle tests check what happens when a handle is garbage-collected (jest's
  // workers inherit the flag, and jest's node environment copies global.gc into each test).
  [
    '--experimental-vm-modules',
    '--disable-warning=ExperimentalWarning',
    '--expose-gc',
    jest,
    '--json',
    `--outputFile=${results}`,
    ...args.filter((a) => a !== '--long'),
  ],
  { cwd: root, stdio: 'inherit', env },
);

if (!existsSync(results)) {
  console.log('tests: 0 passed, 1 failed (jest produced no results)');
  process.exit(1);
}
const r = JSON.parse(readFileSync(results, 'utf8'));
const skipped = r.numPendingTests + r.numTodoTests;
// A suite that failed to load or crashed has no test results of its own: count it as a failure.
const brokenSuites = r.testResults.filter((s) => s.status === 'failed' && s.assertionResults.length === 0).length;
const failed = r.numFailedTests + brokenSuites;
const passed = r.numPassedTests;

let exit = run.status ?? 1;
if (failed > 0) exit = exit || 1;
if (ci && skipped > 0) {
  console.error(`CI=true: ${skipped} test(s) were skipped or todo; nothing may be skipped in CI`);
  exit = 1;
}
if (r.numTotalTests === 0) {
  console.error('no tests ran');
  exit = 1;
}
console.log(`tests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(exit);
