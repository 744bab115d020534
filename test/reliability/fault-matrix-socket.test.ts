/**
 * Fault matrix, socket open: the reconciler opens its rtnetlink socket on first use. When that
 * open fails once (here for real: the agent was pointed at a namespace that does not exist yet,
 * ENOENT from open(/run/netns/NAME)), a later pass must open it again once the cause is gone.
 *
 * Regression (found by this test): the open was cached as a promise and a rejected promise was
 * kept, so every later pass rethrew the first error and the agent never recovered without a
 * restart. A failed open is forgotten now.
 */
import { expect, it } from '@jest/globals';
import { createReconciler } from '../../controller/reconcile/reconcile.js';
import { runPrefix } from '../helpers/netns.js';
import { describeKernel } from '../helpers/tiers.js';
import { POLICY, device } from '../controller/plan/fixtures.js';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

describeKernel('fault matrix: socket open', () => {
  it('a pass after a failed socket open opens the socket again and converges', async () => {
    const name = `${runPrefix()}late-${randomBytes(3).toString('hex')}`;
    const r = createReconciler({ netns: name, policy: POLICY });
    const desired = [device('s0')];
    try {
      await expect(r.reconcile({ desired, prune: true })).rejects.toMatchObject({ code: 'ENOENT' });
      // The namespace appears (the agent started before whatever creates it).
      execFileSync('ip', ['netns', 'add', name]);
      const second = await r.reconcile({ desired, prune: true });
      expect(second.outcome).toBe('converged');
      expect(execFileSync('ip', ['-n', name, '-j', 'link', 'show', 'dev', 'tk-s0'], { encoding: 'utf8' })).toContain('"tk-s0"');
    } finally {
      r.close();
      execFileSync('ip', ['netns', 'delete', name], { stdio: 'ignore' });
    }
  });
});
