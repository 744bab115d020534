/**
 * Test tiers. The kernel tier needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN to make namespaces).
 * Without it, the tier is skipped with a visible reason; with CI=true a tier that cannot run is a
 * failure, never a skip.
 */
import { describe, it } from '@jest/globals';
import { inCI, isRoot } from './privileges.js';

export { inCI, isRoot };

/**
 * `describe` when the tier can run (`reason` undefined). Otherwise a skip that says why, or with
 * CI=true one failing test that says why: one rule for every tier.
 */
export function describeTier(tier: string, name: string, reason: string | undefined, fn: () => void): void {
  if (reason === undefined) {
    describe(name, fn);
    return;
  }
  if (inCI) {
    describe(name, () => {
      it(`cannot run: ${reason}`, () => {
        throw new Error(`${tier} tier cannot run with CI=true: ${reason}`);
      });
    });
    return;
  }
  console.warn(`SKIPPED ${tier} tier "${name}": ${reason}`);
  describe.skip(name, fn);
}

/** `describe` for tests that need the real kernel inside a namespace of their own. */
export function describeKernel(name: string, fn: () => void): void {
  describeTier('kernel', name, isRoot() ? undefined : 'needs root (run the tests as root, or under `unshare --user --map-root-user --net`)', fn);
}
