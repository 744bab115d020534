/**
 * The Kubernetes tier's cluster (kube-server.ts: etcd + kube-apiserver on loopback, the CRDs
 * loaded), and the tier rule for tests that need it.
 */
import { missingKubeTools } from './kube-tools.js';
import { isRoot } from './privileges.js';
import { describeTier } from './tiers.js';

export * from './kube-server.js';

/** `describe` for tests that need the API server (and root, for their namespaces). */
export function describeKube(name: string, fn: () => void): void {
  const missing = missingKubeTools();
  const reason = !isRoot()
    ? 'needs root (the agent under test reconciles inside a network namespace)'
    : missing.length > 0
      ? `needs the Kubernetes test tools (${missing.join(', ')} missing): run \`node scripts/kube-tools.mjs\` once (builds them from Go modules, cached in ~/.cache/tunkeeper)`
      : undefined;
  describeTier('Kubernetes', name, reason, fn);
}

