import { execFileSync } from 'node:child_process';
import { leftoverNamespaces } from './netns.js';
import { isRoot } from './privileges.js';

export default function globalTeardown(): void {
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
