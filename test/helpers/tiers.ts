/**
 * Test tiers. The kernel tier needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN to make namespaces).
 * Without it, the tier is skipped with a visible reason; with CI=true a tier that cannot run is a
 * failure, never a skip.
 */
import { describe, it } from '@jest/globals';
import { inCI, isRoot } from './privileges.js';

export { inCI, isRoot };

/** `describe` for tests that need the real kernel inside a namespace of their own. */
export function describeKernel(name: string, fn: () => void): void {
  if (isRoot()) {
    describe(name, fn);
    return;
  }
  const reason = 'needs root (run the tests as root, or under `unshare --user --map-root-user --net`)';
  if (inCI) {
    describe(name, () => {
      it(`cannot run: ${reason}`, () => {
        throw new Error(`kernel tier cannot run with CI=true: ${reason}`);
      });
    });
    return;
  }
  console.warn(`SKIPPED kernel tier "${name}": ${reason}`);
  describe.skip(name, fn);
}
