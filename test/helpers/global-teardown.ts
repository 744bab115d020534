import { execFileSync } from 'node:child_process';
import { cleanLeftoverClusters } from './kube-leftovers.js';
import { leftoverNamespaces } from './netns.js';
import { isRoot } from './privileges.js';

export default function globalTeardown(): void {
  for (const dir of cleanLeftoverClusters()) console.warn(`stopped and removed a test API server left behind: ${dir}`);
  if (!isRoot()) return;
  for (const name of leftoverNamespaces()) {
    console.warn(`removing network namespace left behind by a test: ${name}`);
    try {
      execFileSync('ip', ['netns', 'delete', name]);
    } catch {
      // Already gone.
    }
  }
}
