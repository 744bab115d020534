#!/usr/bin/env node
// Writes dist/controller/kube/client-node/: @kubernetes/client-node's KubeConfig without the
// generated API set (controller/kube/client-node.ts says why and how it is loaded). Run after tsc
// (`npm run build:ts`, `prepare`); without it the agent loads the whole package, as before.
//
// What it writes, beside the compiled controller/kube/:
//   config.js        the package's own dist/config.js, byte for byte (the KubeConfig class)
//   gen/index.js     the two names config.js takes from the generated client, nothing else
//   <sibling>.js     `export *` of each other module config.js imports by a relative path
//   slim.json        the package version this was made from (checked at run time)
// config.js's bare imports (js-yaml, node-fetch, ...) must resolve from here to the very files they
// resolve to from the package; when they do not (a nested install), nothing is written.
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'controller', 'kube', 'client-node');
const requireHere = createRequire(join(root, 'package.json'));
const pkgJson = requireHere.resolve('@kubernetes/client-node/package.json');
const pkgDir = dirname(pkgJson);
const version = JSON.parse(readFileSync(pkgJson, 'utf8')).version;
const configFile = join(pkgDir, 'dist', 'config.js');
const source = readFileSync(configFile, 'utf8');

const specifiers = [...source.matchAll(/^import\s+(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"];?\s*$/gms)].map((m) => m[1]);
const relative = specifiers.filter((s) => s.startsWith('./'));
const bare = specifiers.filter((s) => !s.startsWith('.') && !s.startsWith('node:'));

function fail(why) {
  rmSync(out, { recursive: true, force: true });
  console.warn(`slim-client-node: not written (${why}); the agent loads all of @kubernetes/client-node`);
  process.exit(0);
}

if (!relative.includes('./gen/index.js')) fail('config.js no longer imports ./gen/index.js');
const fromPackage = createRequire(configFile);
const fromOut = createRequire(join(out, 'config.js'));
for (const s of bare) {
  let a, b;
  try {
    a = fromPackage.resolve(s);
    b = fromOut.resolve(s);
  } catch (e) {
    fail(`${s} does not resolve: ${e.message}`);
  }
  if (a !== b) fail(`${s} resolves to ${b} here, to ${a} from the package`);
}

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'gen'), { recursive: true });
copyFileSync(configFile, join(out, 'config.js'));
for (const s of relative) {
  if (s === './gen/index.js') continue;
  if (s.includes('/', 2)) fail(`config.js imports ${s}, a nested module`);
  writeFileSync(join(out, s), `export * from '@kubernetes/client-node/dist/${s.slice(2)}';\n`);
}
// config.js uses these two only in makeApiClient, which the agent never calls (its requests are
// controller/kube/api-client.ts's). ServerConfiguration is small; createConfiguration would load
// the fetch library and the auth set of the generated client, so it says where the full one is.
writeFileSync(
  join(out, 'gen', 'index.js'),
  [
    "export { ServerConfiguration } from '@kubernetes/client-node/dist/gen/servers.js';",
    'export function createConfiguration() {',
    "  throw new Error(\"tunkeeper's KubeConfig reads credentials only; for makeApiClient use @kubernetes/client-node's own KubeConfig\");",
    '}',
    '',
  ].join('\n'),
);
writeFileSync(join(out, 'slim.json'), JSON.stringify({ package: '@kubernetes/client-node', version }) + '\n');
