/**
 * createReconciler: fail static on an interrupted observation (nothing applied), and one pass
 * against a real kernel reporting devices, repairs and a converged outcome.
 */
import { describe, expect, it } from '@jest/globals';
import { Rtnl } from '../../../netlink/index.js';
import { FakeNetlinkSocket, fakeAck, fakeDump } from '../../../netlink/testing/index.js';
import { createReconciler } from '../../../controller/reconcile/reconcile.js';
import type { ReconcileOnce } from '../../../controller/reconcile/types.js';
import { withNetns } from '../../helpers/netns.js';
import { describeKernel } from '../../helpers/tiers.js';
import { POLICY, addr, device, route } from '../plan/fixtures.js';

describe('reconcile: fail static', () => {
  it('a dump still interrupted after the retries applies nothing and reports interrupted', async () => {
    const sent: string[] = [];
    const fake = new FakeNetlinkSocket({
      handler: (req) => {
        if (req.dump) return fakeDump([], { interrupted: true });
        sent.push(req.message.kind);
        return fakeAck();
      },
    });
    const rtnl = await Rtnl.open({ transport: fake, dumpAttempts: 3 });
    const opened: string[] = [];
    const r = createReconciler({ policy: POLICY, rtnl, tun: { open: (o) => (opened.push(o.name ?? ''), Promise.reject(new Error('must not be called'))) } });
    try {
      const once: ReconcileOnce = r.reconcile;
      const result = await once({ desired: [device('a0', { addresses: [addr('192.0.2.1/24')] })], prune: true });
      expect(result).toMatchObject({ outcome: 'interrupted', plan: null, applied: 0, failures: [], devices: [] });
      expect(sent).toEqual([]);
      expect(opened).toEqual([]);
    } finally {
      r.close();
      rtnl.close();
    }
  });
});

describe('createReconciler', () => {
  it('refuses an injected socket without a namespace or a TUN opener (devices would be created in the caller\'s namespace)', async () => {
    const rtnl = await Rtnl.open({ transport: new FakeNetlinkSocket({ handler: () => fakeAck() }) });
    try {
      expect(() => createReconciler({ policy: POLICY, rtnl })).toThrow(/give netns .* or a tun opener/);
    } finally {
      rtnl.close();
    }
  });
});

describeKernel('reconcile against the kernel', () => {
  it('creates, reports ready with an ifindex, counts repairs; the next pass has nothing to do; drift is repaired', async () => {
    await withNetns(async (ns) => {
      const r = createReconciler({ netns: ns.name, policy: POLICY });
      try {
        const desired = [device('a0', { mtu: 1400, addresses: [addr('192.0.2.1/24'), addr('2001:db8:1::1/64')], routes: [route('198.51.100.0/24', { via: '192.0.2.254' })] })];
        const first = await r.reconcile({ desired, prune: true });
        expect(first.outcome).toBe('converged');
        expect(first.failures).toEqual([]);
        const [l] = await ns.ipJson<Array<{ ifindex: number }>>('link', 'show', 'dev', 'tk-a0');
        expect(first.devices).toEqual([expect.objectContaining({ device: 'a0', ifname: 'tk-a0', ifindex: l!.ifindex, status: 'ready' })]);
        expect(first.repairs).toMatchObject({ device: 1, mtu: 1, up: 1, address: 2, route: 1 });

        const second = await r.reconcile({ desired, prune: true });
        expect(second).toMatchObject({ outcome: 'converged', applied: 0, repairs: {} });
        expect(second.plan?.actions).toEqual([]);

        await ns.ip('link', 'set', 'tk-a0', 'mtu', '1300');
        await ns.ip('addr', 'del', '192.0.2.1/24', 'dev', 'tk-a0');
        const third = await r.reconcile({ desired, prune: true });
        expect(third.outcome).toBe('converged');
        expect(third.repairs).toMatchObject({ mtu: 1, address: 1, route: 1 });
        expect((await ns.ipJson<Array<{ mtu: number }>>('link', 'show', 'dev', 'tk-a0'))[0]!.mtu).toBe(1400);
        expect(await ns.ip('-4', 'route', 'show', 'proto', '116')).toContain('198.51.100.0/24 via 192.0.2.254 dev tk-a0');
      } finally {
        r.close();
      }
    }, 'reconcile');
  });
});
