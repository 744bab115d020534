#!/usr/bin/env node
// Builds the tun-native addon with node-gyp against the headers of the Node.js that runs this
// script. Node ships its headers under <prefix>/include/node; pointing node-gyp's --nodedir at that
// prefix means nothing is downloaded (the machines we build on reach only package registries).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const prefix = dirname(dirname(process.execPath));
const args = ['rebuild', '--release', `--jobs=${process.env.JOBS ?? 'max'}`];

if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) {
  args.push(`--nodedir=${prefix}`);
} else if (process.env.npm_config_nodedir && existsSync(join(process.env.npm_config_nodedir, 'include', 'node', 'node_api.h'))) {
  args.push(`--nodedir=${process.env.npm_config_nodedir}`);
} else {
  console.error(
    `tunkeeper: no Node.js headers at ${join(prefix, 'include', 'node')}; node-gyp would try to download them.\n` +
      'Install the headers that match this Node.js (e.g. the distribution package that ships include/node) or set npm_config_nodedir.',
  );
  process.exit(1);
}

const require = createRequire(import.meta.url);
const gyp = require.resolve('node-gyp/bin/node-gyp.js');
const result = spawnSync(process.execPath, [gyp, ...args], { cwd: root, stdio: 'inherit' });
if (result.status !== 0) {
  console.error('tunkeeper: building the tun-native addon failed (see the compiler output above)');
  process.exit(result.status ?? 1);
}
