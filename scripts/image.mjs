#!/usr/bin/env node
// `npm run image`: builds the agent's image from the repository's Dockerfile with buildah, into
// podman's local store as localhost/tunkeeper:<package.json version>, and prints that name and the
// podman settings file it used (pass it as CONTAINERS_CONF to podman yourself).
//
// On a fresh machine it installs podman, buildah, runc and debootstrap from the distribution and
// makes the Dockerfile's base images locally (scripts/image-base.mjs): nothing but the package
// registries (Debian's, npm's) is contacted. The image is labelled with the hash of its inputs
// (scripts/image-context.mjs): the context files, the Dockerfile and the base images' inputs. When
// the image in the store carries the current hash, nothing is built.
//
//   node scripts/image.mjs                 build if needed; print `image: NAME` and `containers.conf: FILE`
//   node scripts/image.mjs --print         no build: print JSON {image, containersConf, inputs, current}
//   node scripts/image.mjs --if-possible   (npm test) a failure is a warning outside CI: the runtime
//                                          tier then skips with its reason; with CI=true it fails
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { baseInputs, ensureBaseImages } from './image-base.mjs';
import { imageInputs, writeContext } from './image-context.mjs';
import { containersConf, engineEnv, imageLabel, installEngineTools, missingEngineTools } from './image-engine.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
const IMAGE = `localhost/tunkeeper:${version}`;
const INPUTS_LABEL = 'io.tunkeeper.inputs';
const log = (line) => console.error(`image: ${line}`);

function describe() {
  const missing = missingEngineTools();
  if (missing.length > 0) return { image: IMAGE, containersConf: containersConf(), inputs: null, current: false, missing };
  const inputs = imageInputs(root, baseInputs());
  return { image: IMAGE, containersConf: containersConf(), inputs, current: imageLabel(IMAGE, INPUTS_LABEL) === inputs, missing };
}

function build() {
  installEngineTools(log);
  const baseKey = ensureBaseImages(log);
  const inputs = imageInputs(root, baseKey);
  if (imageLabel(IMAGE, INPUTS_LABEL) === inputs) {
    log(`${IMAGE} is current (inputs ${inputs}); nothing to build`);
    return;
  }
  const context = join(mkdtempSync(join(tmpdir(), 'tunkeeper-image-context-')), 'src');
  const started = Date.now();
  try {
    writeContext(root, context);
    log(`building ${IMAGE} from the Dockerfile (inputs ${inputs})`);
    // --network host: the build's RUN steps reach Debian's mirror and the npm registry through the
    // machine's own network (no bridge is made); --pull=never: the bases are the local ones;
    // --layers: the toolchain layer is kept, so a change to the sources rebuilds only from COPY on.
    const r = spawnSync(
      'buildah',
      ['bud', '--layers', '--network', 'host', '--pull=never', '--label', `${INPUTS_LABEL}=${inputs}`, '-t', IMAGE, '-f', join(context, 'Dockerfile'), context],
      { stdio: ['ignore', 'inherit', 'inherit'], env: engineEnv() },
    );
    if (r.status !== 0) throw new Error(`buildah bud failed (exit ${r.status ?? r.signal})`);
  } finally {
    rmSync(dirname(context), { recursive: true, force: true });
  }
  if (imageLabel(IMAGE, INPUTS_LABEL) !== inputs) throw new Error(`${IMAGE} is not labelled with inputs ${inputs} after the build`);
  log(`built ${IMAGE} in ${Math.round((Date.now() - started) / 1000)} s`);
}

if (process.argv.includes('--print')) {
  console.log(JSON.stringify(describe(), null, 2));
  process.exit(0);
}
try {
  build();
  console.log(`image: ${IMAGE}`);
  console.log(`containers.conf: ${containersConf()}`);
} catch (e) {
  console.error(`image: ${e.message}`);
  const ci = process.env.CI === 'true' || process.env.CI === '1';
  if (process.argv.includes('--if-possible') && !ci) {
    console.error('image: continuing without the image: the runtime tier will be skipped');
    process.exit(0);
  }
  process.exit(1);
}
