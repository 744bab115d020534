/**
 * ForeignRouteCache against the kernel: the foreign routes observe keeps are reused only while no
 * change can have touched them — a foreign route added, deleted or replaced over, a link going
 * down (IPv4 drops its routes without a route notification), an address removed — and never on a
 * verifying pass; tunkeeper's own routes are re-listed by every pass whatever the cache holds.
 */
import { afterEach, beforeEach, expect, it } from '@jest/globals';
import { Rtnl } from '../../../netlink/index.js';
import { observe } from '../../../controller/observe/observe.js';
import { ForeignRouteCache } from '../../../controller/observe/cache.js';
import type { DesiredDevice } from '../../../controller/model/desired.js';
import type { ObservedState } from '../../../controller/model/observed.js';
import { createNetns, type Netns } from '../../helpers/netns.js';
import { describeKernel } from '../../helpers/tiers.js';
import { POLICY, PROTO, device, route } from '../plan/fixtures.js';

/** The routes of a snapshot as `dst/len proto metric`, sorted. */
function routesOf(s: ObservedState): string[] {
  return s.routes
    .filter((r) => r.family === 4 && r.table === 254)
    .map((r) => `${r.dst}/${r.dstLength} p${r.protocol} m${r.metric ?? 0}`)
    .sort();
}

describeKernel('ForeignRouteCache', () => {
  let ns: Netns;
  let rtnl: Rtnl;
  let cache: ForeignRouteCache;
  // A declared route's prefix makes a foreign route under it relevant (a conflict to report).
  let desired: DesiredDevice[] = [device('a', { routes: [route('198.51.100.0/24')] })];

  beforeEach(async () => {
    ns = await createNetns('cache');
    // No IPv6 here: addrconf would add link-local addresses (notifications) at its own pace.
    await ns.exec('sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    await ns.ip('link', 'add', 'fx0', 'type', 'veth', 'peer', 'name', 'fx1');
    await ns.ip('link', 'set', 'fx1', 'up');
    await ns.ip('link', 'set', 'fx0', 'up');
    await ns.ip('addr', 'add', '203.0.113.1/24', 'dev', 'fx0');
    // A second primary, so removing the first drops only the routes that use it as source.
    await ns.ip('addr', 'add', '198.18.1.1/24', 'dev', 'fx0');
    await ns.ip('route', 'add', '198.51.100.0/24', 'dev', 'fx0', 'proto', 'static', 'metric', '5');
    // Irrelevant foreign routes: never kept, whatever happens to them.
    for (let i = 0; i < 50; i++) await ns.ip('route', 'add', `198.18.0.${i}`, 'dev', 'fx0', 'proto', 'static');
    rtnl = await Rtnl.open({ netns: ns.path });
    cache = await ForeignRouteCache.open({ netns: ns.path, protocol: PROTO });
    desired = [device('a', { routes: [route('198.51.100.0/24')] })];
  });

  afterEach(async () => {
    cache.close();
    rtnl.close();
    await ns.delete();
  });

  const look = (verify = false): Promise<ObservedState> => observe(rtnl, { policy: POLICY, desired, cache, verify });

  it('reuses the kept routes while nothing changed them, and re-lists tunkeeper\'s own every time', async () => {
    expect(routesOf(await look(true))).toEqual(['198.51.100.0/24 p4 m5']);
    expect(cache.stats).toMatchObject({ hits: 0, misses: 1 });
    expect(routesOf(await look())).toEqual(['198.51.100.0/24 p4 m5']);
    expect(cache.stats.hits).toBe(1);
    // An owned route appears (and goes): no reason to dump foreign routes again, but it is seen.
    await ns.ip('route', 'add', '198.51.100.0/25', 'dev', 'fx0', 'proto', String(PROTO));
    expect(routesOf(await look())).toEqual(['198.51.100.0/24 p4 m5', `198.51.100.0/25 p${PROTO} m0`]);
    await ns.ip('route', 'del', '198.51.100.0/25', 'dev', 'fx0', 'proto', String(PROTO));
    expect(routesOf(await look())).toEqual(['198.51.100.0/24 p4 m5']);
    expect(cache.stats).toMatchObject({ hits: 3, misses: 1 });
    // A verifying pass trusts nothing kept.
    await look(true);
    expect(cache.stats).toMatchObject({ hits: 3, misses: 2 });
  });

  it('keeps tunkeeper\'s leftovers in unobserved tables only until an own route changes there', async () => {
    const elsewhere = (s: ObservedState): string[] => s.routes.filter((r) => r.table === 300).map((r) => `${r.dst}/${r.dstLength} p${r.protocol}`);
    await ns.ip('route', 'add', '198.51.100.0/24', 'dev', 'fx0', 'proto', String(PROTO), 'table', '300');
    expect(elsewhere(await look(true))).toEqual([`198.51.100.0/24 p${PROTO}`]);
    expect(elsewhere(await look())).toEqual([`198.51.100.0/24 p${PROTO}`]);
    expect(cache.stats).toMatchObject({ hits: 1, misses: 1 });
    await ns.ip('route', 'del', '198.51.100.0/24', 'dev', 'fx0', 'proto', String(PROTO), 'table', '300');
    expect(elsewhere(await look())).toEqual([]);
    await ns.ip('route', 'add', '198.51.101.0/24', 'dev', 'fx0', 'proto', String(PROTO), 'table', '300');
    expect(elsewhere(await look())).toEqual([`198.51.101.0/24 p${PROTO}`]);
    expect(cache.stats).toMatchObject({ hits: 1, misses: 3 });
    // Own changes in the observed tables are re-listed by every pass: no reason to dump again.
    await ns.ip('route', 'add', '198.51.102.0/24', 'dev', 'fx0', 'proto', String(PROTO));
    expect(routesOf(await look())).toContain(`198.51.102.0/24 p${PROTO} m0`);
    expect(cache.stats).toMatchObject({ hits: 2, misses: 3 });
  });

  it('dumps again after a foreign route is deleted, added or replaced over by an owned one', async () => {
    await look(true);
    await ns.ip('route', 'del', '198.51.100.0/24', 'dev', 'fx0', 'proto', 'static', 'metric', '5');
    expect(routesOf(await look())).toEqual([]);
    await ns.ip('route', 'add', '198.51.100.0/24', 'dev', 'fx0', 'proto', 'static', 'metric', '7');
    expect(routesOf(await look())).toEqual(['198.51.100.0/24 p4 m7']);
    // `ip route replace ... proto 116` takes the foreign route's key: the notification only shows the new one.
    await ns.ip('route', 'replace', '198.51.100.0/24', 'dev', 'fx0', 'proto', String(PROTO), 'metric', '7');
    expect(routesOf(await look())).toEqual([`198.51.100.0/24 p${PROTO} m7`]);
    expect(cache.stats).toMatchObject({ hits: 0, misses: 4 });
  });

  it('dumps again when a link goes down or an address goes, which drop IPv4 routes without a route notification', async () => {
    await ns.ip('route', 'add', '198.51.100.0/24', 'dev', 'fx0', 'proto', 'static', 'src', '203.0.113.1', 'metric', '9');
    await look(true);
    expect(routesOf(await look())).toEqual(['198.51.100.0/24 p4 m5', '198.51.100.0/24 p4 m9']);
    await ns.ip('addr', 'del', '203.0.113.1/24', 'dev', 'fx0');
    expect(routesOf(await look())).toEqual(['198.51.100.0/24 p4 m5']);
    await ns.ip('link', 'set', 'fx0', 'down');
    expect(routesOf(await look())).toEqual([]);
    expect(cache.stats).toMatchObject({ hits: 1, misses: 3 });
  });

  it('dumps again when the scope widens: a new declared prefix, or a new table', async () => {
    await ns.ip('route', 'add', '198.51.101.0/24', 'dev', 'fx0', 'proto', 'static');
    await ns.ip('route', 'add', '198.51.102.0/24', 'dev', 'fx0', 'proto', 'static', 'table', '100');
    await look(true);
    desired = [device('a', { routes: [route('198.51.100.0/24'), route('198.51.101.0/24')] })];
    expect(routesOf(await look())).toEqual(['198.51.100.0/24 p4 m5', '198.51.101.0/24 p4 m0']);
    expect(cache.stats).toMatchObject({ hits: 0, misses: 2 });
    desired = [device('a', { routes: [route('198.51.100.0/24'), route('198.51.101.0/24'), route('198.51.102.0/24', { table: 100 })] })];
    const s = await look();
    expect(s.routes.some((r) => r.table === 100 && r.dst === '198.51.102.0')).toBe(true);
    expect(cache.stats).toMatchObject({ hits: 0, misses: 3 });
    // A narrower scope (same tables) is served from what was kept, narrowed.
    desired = [device('a', { routes: [route('198.51.101.0/24'), route('198.51.102.0/24', { table: 100 })] })];
    expect(routesOf(await look())).toEqual(['198.51.101.0/24 p4 m0']);
    expect(cache.stats).toMatchObject({ hits: 1, misses: 3 });
  });
});
