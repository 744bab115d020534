/**
 * The runtime tier's gate: root (namespaces, cgroups), the engine (podman driving runc, see
 * scripts/image-engine.mjs), the Kubernetes tools (helm renders the DaemonSet the tier runs;
 * the API server for kube mode) and the image that `npm run image` built from the current
 * sources. Without one of them the tier is skipped with the reason, and with CI=true it fails:
 * nothing may look green that did not run.
 *
 * The image must carry the current inputs' hash: a stale image would test other code than this.
 */
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kubeToolPaths, missingKubeTools } from '../helpers/kube-tools.js';
import { isRoot } from '../helpers/privileges.js';
import { describeTier } from '../helpers/tiers.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export interface BuiltImage {
  /**
   * localhost/tunkeeper:<version>-<inputs>: the build of exactly these sources (scripts/image.mjs
   * also tags it <version>). The chart is rendered with image.repository and image.tag set to it.
   */
  image: string;
  /** The podman settings file the image was built with; every podman call here uses it too. */
  containersConf: string;
}

interface ImageDescription {
  exact: string | null;
  containersConf: string;
  inputs: string | null;
  current: boolean;
  missing: string[];
}

function describeImage(): ImageDescription | string {
  try {
    const out = execFileSync(process.execPath, [join(ROOT, 'scripts', 'image.mjs'), '--print'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return JSON.parse(out) as ImageDescription;
  } catch (e) {
    return `scripts/image.mjs --print failed: ${(e as Error).message}`;
  }
}

let memo: { image?: BuiltImage; reason?: string } | undefined;

/** The built image, or why the tier cannot run. */
export function runtimeTier(): { image?: BuiltImage; reason?: string } {
  if (memo) return memo;
  const fix = 'run `npm run image` (builds the image from the Dockerfile; installs podman, buildah, runc and debootstrap if missing)';
  if (!isRoot()) return (memo = { reason: 'needs root (network namespaces, and the container\'s device cgroup)' });
  if (!kubeToolPaths()) return (memo = { reason: `needs the Kubernetes test tools (${missingKubeTools().join(', ')} missing): run \`node scripts/kube-tools.mjs\`` });
  const d = describeImage();
  if (typeof d === 'string') return (memo = { reason: d });
  if (d.missing.length > 0) return (memo = { reason: `needs ${d.missing.join(', ')}: ${fix}` });
  if (!d.current || !d.exact) return (memo = { reason: `no image built from these sources (${d.exact ?? 'inputs unknown'} is missing): ${fix}` });
  return (memo = { image: { image: d.exact, containersConf: d.containersConf } });
}

/** `describe` for the runtime tier; `fn` gets the built image. */
export function describeRuntime(name: string, fn: (image: BuiltImage) => void): void {
  const { image, reason } = runtimeTier();
  describeTier('runtime', name, image ? undefined : (reason ?? 'no image'), () => fn(image ?? { image: '', containersConf: '' }));
}
