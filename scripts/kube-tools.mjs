#!/usr/bin/env node
// Builds (once, cached outside the repository) the programs the Kubernetes test tier runs:
// kube-apiserver, kubectl, etcd, helm and the GitOps health clients (kstatus, Argo CD's Lua
// health check runner), from the Go module pins in scripts/kube-tools/.
// `.ci/run` runs this before the tests; `--print` only prints where they are. `--if-possible`
// (what `npm test` uses) turns a failed build into a warning outside CI: the Kubernetes tier is then
// skipped with its reason; with CI=true it still fails, since nothing may be skipped there.
// The logic lives in test/helpers/kube-tools.ts (compiled by `npm ci`'s prepare step) so the
// tests and this script agree on where the binaries are.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const compiled = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'test', 'helpers', 'kube-tools.js');
if (!existsSync(compiled)) {
  console.error(`${compiled} is missing: run \`npm ci\` (or \`npx tsc\`) first`);
  process.exit(1);
}
const { buildKubeTools, kubeToolPaths, missingKubeTools } = await import(compiled);
if (process.argv.includes('--print')) {
  const paths = kubeToolPaths();
  console.log(paths ? JSON.stringify(paths, null, 2) : `missing: ${missingKubeTools().join(', ')}`);
  process.exit(paths ? 0 : 1);
}
try {
  const paths = buildKubeTools();
  for (const [name, path] of Object.entries(paths)) console.log(`${name}: ${path}`);
} catch (e) {
  console.error(e.message);
  const ci = process.env.CI === 'true' || process.env.CI === '1';
  if (process.argv.includes('--if-possible') && !ci) {
    console.error('continuing without the Kubernetes test tools: that tier will be skipped');
    process.exit(0);
  }
  process.exit(1);
}
