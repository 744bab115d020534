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
//   node scripts/image.mjs                 build if needed; print `image: NAME`, `exact: NAME-INPUTS`
//                                          and `containers.conf: FILE`
//   node scripts/image.mjs --print         no build: print JSON {image, exact, containersConf, inputs, current}
//   node scripts/image.mjs --if-possible   (npm test) a failure is a warning outside CI: the runtime
//                                          tier then skips with its reason; with CI=true it fails
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { baseInputs, ensureBaseImages } from './image-base.mjs';
import { imageInputs, writeContext } from './image-context.mjs';
import { containersConf, engine, engineEnv, engineOk, imageLabel, installEngineTools, missingEngineTools } from './image-engine.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
const IMAGE = `localhost/tunkeeper:${version}`;
const INPUTS_LABEL = 'io.tunkeeper.inputs';
const log = (line) => console.error(`image: ${line}`);

// Besides <version>, each build is tagged <version>-<inputs>: several checkouts on one machine
// (worktrees, a CI clone) each find their own build instead of rebuilding over one another's, and
// a test run holds on to the exact image it checked. The newest KEEP of those tags are kept.
const KEEP = 3;
const exact = (inputs) => `${IMAGE}-${inputs}`;

function describe() {
  const missing = missingEngineTools();
  if (missing.length > 0) return { image: IMAGE, exact: null, containersConf: containersConf(), inputs: null, current: false, missing };
  const inputs = imageInputs(root, baseInputs());
  return { image: IMAGE, exact: exact(inputs), containersConf: containersConf(), inputs, current: imageLabel(exact(inputs), INPUTS_LABEL) === inputs, missing };
}

/** Removes all but the newest KEEP <version>-<inputs> tags (an image goes when its last tag does). */
function pruneOldBuilds() {
  const r = engine('podman', ['images', '--format', '{{.Repository}}:{{.Tag}} {{.CreatedAt}}', '--sort', 'created', 'localhost/tunkeeper']);
  if (r.code !== 0) return;
  const tags = r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter((t) => t && t.startsWith(`${IMAGE}-`));
  // --sort created lists the newest first.
  for (const tag of tags.slice(KEEP)) engine('podman', ['rmi', tag]);
}

function build() {
  installEngineTools(log);
  const baseKey = ensureBaseImages(log);
  const inputs = imageInputs(root, baseKey);
  if (imageLabel(exact(inputs), INPUTS_LABEL) === inputs) {
    if (imageLabel(IMAGE, INPUTS_LABEL) !== inputs) engineOk('podman', ['tag', exact(inputs), IMAGE]);
    log(`${exact(inputs)} is current; nothing to build`);
    return exact(inputs);
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
      ['bud', '--layers', '--network', 'host', '--pull=never', '--label', `${INPUTS_LABEL}=${inputs}`, '-t', IMAGE, '-t', exact(inputs), '-f', join(context, 'Dockerfile'), context],
      // buildah's progress goes to stderr: stdout is for the result lines only.
      { stdio: ['ignore', process.stderr, 'inherit'], env: engineEnv() },
    );
    if (r.status !== 0) throw new Error(`buildah bud failed (exit ${r.status ?? r.signal})`);
  } finally {
    rmSync(dirname(context), { recursive: true, force: true });
  }
  if (imageLabel(exact(inputs), INPUTS_LABEL) !== inputs) throw new Error(`${exact(inputs)} is not labelled with inputs ${inputs} after the build`);
  log(`built ${IMAGE} (also tagged ${exact(inputs)}) in ${Math.round((Date.now() - started) / 1000)} s`);
  pruneOldBuilds();
  return exact(inputs);
}

if (process.argv.includes('--print')) {
  console.log(JSON.stringify(describe(), null, 2));
  process.exit(0);
}
try {
  const built = build();
  console.log(`image: ${IMAGE}`);
  console.log(`exact: ${built}`);
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
