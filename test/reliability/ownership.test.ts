/**
 * Ownership under randomness: a namespace full of foreign state — a veth pair, a bridge, a TUN
 * and a TAP that are not tunkeeper's (one with a look-alike alias), addresses on foreign links,
 * routes of other protocols, in other tables, on the very prefixes the declarations use (another
 * protocol, another metric), blackhole/unreachable/prohibit routes, IPv6 — and many reconciles
 * of randomly generated desired states (fast-check) in a row. After every one of them, every
 * foreign object is byte-identical in `ip -j -d link/address/route show table all` (counters
 * aside).
 */
import { expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { DesiredDevice } from '../../controller/model/desired.js';
import { createReconciler } from '../../controller/reconcile/reconcile.js';
import { withNetns, type Netns } from '../helpers/netns.js';
import { describeKernel } from '../helpers/tiers.js';
import { POLICY, addr, device, route } from '../controller/plan/fixtures.js';
import { hangGuardMs, scale } from './helpers/scale.js';
import { foreignOf, snapshot } from './helpers/snapshot.js';

/** The reliability goal: 10,000 random reconciles with not one foreign mutation. */
const RECONCILES = scale(200, 10_000);
/**
 * The hang guard, from the count: one reconcile and the snapshot after it take 0.1-0.2 s here
 * (3,000 in ~300 s on a quiet 2-core machine, 1,000 in 162 s on a busy one); 1 s each is
 * generous. A guard, never a speed claim.
 */
const HANG_GUARD_MS = hangGuardMs(RECONCILES, 1_000);

async function foreignWorld(ns: Netns): Promise<void> {
  const ip = (...a: string[]) => ns.ip(...a);
  await ip('link', 'add', 'fx0', 'type', 'veth', 'peer', 'name', 'fx1');
  await ip('link', 'add', 'br0', 'type', 'bridge');
  for (const l of ['fx0', 'fx1', 'br0']) await ip('link', 'set', l, 'addrgenmode', 'none');
  await ip('tuntap', 'add', 'mode', 'tun', 'tk-ftun');
  await ip('tuntap', 'add', 'mode', 'tap', 'tk-ftap');
  await ip('link', 'set', 'tk-ftap', 'alias', 'tunkeeper-not:p0');
  await ip('link', 'set', 'br0', 'alias', 'tunkeeper:'); // a marker with no owner name
  await ip('address', 'add', '203.0.113.1/24', 'dev', 'fx0');
  await ip('address', 'add', '198.18.0.1/24', 'dev', 'br0');
  await ip('address', 'add', '2001:db8:f::1/64', 'dev', 'fx0', 'nodad');
  await ip('address', 'add', '192.0.2.77/32', 'dev', 'tk-ftun');
  for (const l of ['fx0', 'fx1', 'br0', 'tk-ftun']) await ip('link', 'set', l, 'up');
  // Routes on the prefixes the random declarations use, by other protocols, metrics and tables.
  await ip('route', 'add', '198.51.100.0/24', 'via', '203.0.113.254', 'proto', 'boot');
  await ip('route', 'add', '198.51.100.0/24', 'via', '203.0.113.253', 'proto', 'static', 'metric', '100');
  await ip('route', 'add', '198.51.100.64/26', 'dev', 'fx0', 'proto', '117', 'table', '100');
  await ip('route', 'add', 'blackhole', '192.0.2.128/25', 'proto', 'static');
  await ip('route', 'add', 'unreachable', '198.51.100.128/25', 'proto', 'static', 'table', '100');
  await ip('route', 'add', 'prohibit', '203.0.113.128/25', 'proto', 'boot', 'table', '200');
  await ip('route', 'add', '2001:db8:100::/48', 'via', '2001:db8:f::fe', 'proto', 'static');
  await ip('-6', 'route', 'add', 'blackhole', '2001:db8:200::/48', 'proto', 'boot', 'table', '100');
  await ip('route', 'add', '198.18.1.0/24', 'dev', 'br0', 'proto', '116', 'table', '200'); // 116 through a link not ours
}

const NAMES = ['p0', 'p1', 'p2', 'ftap'];
const ADDRESSES = ['192.0.2.1/24', '192.0.2.65/26', '203.0.113.9/24', '198.18.0.9/24', '2001:db8:f::9/64', '2001:db8:1::1/64', '192.0.2.77/32'];
const ROUTES: Array<[string, { table?: number; metric?: number }]> = [
  ['198.51.100.0/24', {}],
  ['198.51.100.0/24', { metric: 100 }],
  ['198.51.100.0/24', { metric: 7 }],
  ['198.51.100.64/26', { table: 100 }],
  ['198.51.100.128/25', { table: 100 }],
  ['192.0.2.128/25', {}],
  ['203.0.113.128/25', { table: 200 }],
  ['2001:db8:100::/48', {}],
  ['2001:db8:200::/48', { table: 100 }],
  ['198.18.1.0/24', { table: 200 }],
  ['198.19.0.0/16', {}],
];

const deviceArb = (name: string): fc.Arbitrary<DesiredDevice> =>
  fc
    .record({
      mtu: fc.constantFrom(1280, 1400, 1500),
      mode: fc.constantFrom<'tun' | 'tap'>('tun', 'tap'),
      addresses: fc.subarray(ADDRESSES, { maxLength: 3 }),
      routes: fc.subarray(ROUTES, { maxLength: 4 }),
    })
    .map((r) => {
      const family4 = r.addresses.some((a) => !a.includes(':'));
      const family6 = r.addresses.some((a) => a.includes(':'));
      // Routes of a family only with an address of that family on the device (a route needs a way out).
      const routes = r.routes.filter(([to]) => (to.includes(':') ? family6 : family4)).map(([to, o]) => route(to, o));
      return device(name, { mtu: r.mtu, mode: r.mode, addresses: r.addresses.map(addr), routes });
    });

const desiredArb: fc.Arbitrary<DesiredDevice[]> = fc
  .subarray(NAMES, { minLength: 0, maxLength: NAMES.length })
  .chain((names) => (names.length === 0 ? fc.constant([]) : fc.tuple(...names.map(deviceArb))));

describeKernel('ownership under randomness', () => {
  it(`${RECONCILES} reconciles of random desired states leave every foreign object byte-identical`, async () => {
    await withNetns(async (ns) => {
      await foreignWorld(ns);
      const foreign = foreignOf(await snapshot(ns));
      const rec = createReconciler({ netns: ns.name, policy: POLICY });
      let runs = 0;
      const outcomes: Record<string, number> = {};
      try {
        await fc.assert(
          fc.asyncProperty(desiredArb, fc.boolean(), async (desired, prune) => {
            runs++;
            const r = await rec.reconcile({ desired, prune });
            outcomes[r.outcome] = (outcomes[r.outcome] ?? 0) + 1;
            expect(foreignOf(await snapshot(ns))).toEqual(foreign);
          }),
          { numRuns: RECONCILES, endOnFailure: true },
        );
        // And once nothing is declared, everything of tunkeeper's goes; the foreign world stays.
        const last = await rec.reconcile({ desired: [], prune: true });
        expect(last.outcome).toBe('converged');
        expect(foreignOf(await snapshot(ns))).toEqual(foreign);
        console.log(`ownership: ${runs} random reconciles, outcomes ${JSON.stringify(outcomes)}`);
      } finally {
        rec.close();
      }
    }, 'own');
  }, HANG_GUARD_MS);
});
