// The container engine the image script and the runtime tier use: Debian's podman, buildah and
// runc (installed with apt when missing), and the one podman settings file they all pass as
// CONTAINERS_CONF. Everything the image work keeps between runs lives in one cache folder,
// `$TUNKEEPER_IMAGE_CACHE` or `~/.cache/tunkeeper/image`, like the Kubernetes tools' cache.
import { spawnSync } from 'node:child_process';
import { installTools, missingTools } from './distro-tools.mjs';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export function imageCache() {
  return process.env.TUNKEEPER_IMAGE_CACHE ?? join(homedir(), '.cache', 'tunkeeper', 'image');
}

// Programs and the Debian packages that bring them. debootstrap makes the base images' root.
const TOOLS = [
  ['podman', 'podman'],
  ['buildah', 'buildah'],
  ['runc', 'runc'],
  ['debootstrap', 'debootstrap'],
];

export function missingEngineTools() {
  return missingTools(TOOLS);
}

/** Installs what is missing from the distribution (the only place they may come from). */
export function installEngineTools(log = console.error) {
  installTools(TOOLS, log);
}

/**
 * podman's settings for this machine, found by trying:
 * - runc, not crun: crun 1.8 refuses this host's hybrid cgroup layout (v1 controllers, v2 unified);
 * - default ulimits below podman's own: root here lacks CAP_SYS_RESOURCE, so podman's default
 *   (raising nofile/nproc to the hard maximum) fails every container;
 * - netns "none": a container gets no network unless it is given one (a test's namespace, or the
 *   build's --network host); podman never makes a bridge in the host's namespace;
 * - cgroupfs and a file event log: no systemd runs here.
 */
const CONTAINERS_CONF = `# Written by scripts/image-engine.mjs: the podman/buildah settings the image script and the
# runtime tier use (export CONTAINERS_CONF=<this file>).
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "none"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
`;

/** Writes the settings file (when it differs) and returns its path. */
export function containersConf() {
  const dir = imageCache();
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'containers.conf');
  let current = '';
  try {
    current = readFileSync(file, 'utf8');
  } catch {
    // First run.
  }
  if (current !== CONTAINERS_CONF) writeFileSync(file, CONTAINERS_CONF);
  return file;
}

export function engineEnv() {
  return { ...process.env, CONTAINERS_CONF: containersConf() };
}

/** Runs podman or buildah with our settings; returns { code, stdout, stderr }. */
export function engine(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: engineEnv(), maxBuffer: 64 << 20, ...opts });
  return { code: r.status ?? 1, stdout: r.stdout ?? '', stderr: r.stderr ?? (r.error ? r.error.message : '') };
}

/** Like engine(), but throws with the command's stderr when it fails. */
export function engineOk(cmd, args, opts = {}) {
  const r = engine(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** An image's label, or undefined when the image is not in the store. */
export function imageLabel(image, label) {
  const r = engine('podman', ['image', 'inspect', '--format', `{{index .Labels "${label}"}}`, image]);
  if (r.code !== 0) return undefined;
  const v = r.stdout.trim();
  return v === '' || v === '<no value>' ? undefined : v;
}
