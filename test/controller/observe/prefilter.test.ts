/**
 * The raw prefilter of full relists (controller/observe/prefilter.ts) never drops a route the scope test
 * keeps: checked on a real kernel's dump of varied routes (IPv4/IPv6, default, host, prefsrc,
 * multipath, through our link or not, declared prefixes of several lengths, other protocols).
 */
import { expect, it } from '@jest/globals';
import { Rtnl, type RouteMessage } from '../../../netlink/index.js';
import { routeDump } from '../../../netlink/client-dumps.js';
import { decodeRouteMessage } from '../../../netlink/codec/route.js';
import { foreignScope, inScope, observe } from '../../../controller/observe/observe.js';
import { foreignRoutePrefilter } from '../../../controller/observe/prefilter.js';
import { withNetns } from '../../helpers/netns.js';
import { describeKernel } from '../../helpers/tiers.js';
import { POLICY, PROTO, addr, device, route } from '../plan/fixtures.js';

describeKernel('observe prefilter', () => {
  it('says maybe to every route the scope keeps, and no to most of the rest', async () => {
    await withNetns(async (ns) => {
      await ns.ip('link', 'add', 'fx0', 'type', 'veth', 'peer', 'name', 'fx1');
      await ns.ip('link', 'add', 'tk-a', 'type', 'veth', 'peer', 'name', 'tk-a-peer');
      await ns.ip('link', 'set', 'tk-a', 'alias', 'tunkeeper:a');
      for (const l of ['fx0', 'fx1', 'tk-a', 'tk-a-peer']) await ns.ip('link', 'set', l, 'up');
      await ns.ip('addr', 'add', '203.0.113.1/24', 'dev', 'fx0');
      await ns.ip('addr', 'add', '192.0.2.1/24', 'dev', 'tk-a');
      await ns.ip('-6', 'addr', 'add', '2001:db8:1::1/64', 'dev', 'fx0', 'nodad');
      const add = (...args: string[]): Promise<string> => ns.ip('route', 'add', ...args);
      await add('default', 'via', '203.0.113.254', 'proto', 'static');
      await add('198.51.100.0/24', 'dev', 'fx0', 'proto', 'static');
      await add('198.51.101.0/24', 'dev', 'fx0', 'proto', 'static', 'metric', '7');
      await add('198.51.102.0/25', 'dev', 'tk-a', 'proto', 'static');
      await add('198.51.103.0/24', 'dev', 'fx0', 'src', '192.0.2.1', 'proto', 'static');
      await add('198.51.104.0/24', 'nexthop', 'via', '203.0.113.2', 'nexthop', 'via', '203.0.113.3');
      await add('198.51.105.7/32', 'dev', 'fx0', 'proto', String(PROTO));
      for (let i = 0; i < 40; i++) await add(`198.18.${i}.0/24`, 'dev', 'fx0', 'proto', 'static');
      for (let i = 0; i < 40; i++) await add(`198.19.0.${i}/32`, 'dev', 'fx0', 'proto', 'static');
      await ns.ip('-6', 'route', 'add', '2001:db8:2::/48', 'dev', 'fx0', 'proto', 'static');
      await ns.ip('-6', 'route', 'add', '2001:db8:3::/64', 'dev', 'fx0', 'proto', 'static');
      const desired = [
        device('a', {
          addresses: [addr('192.0.2.1/24')],
          routes: [route('198.51.100.0/24'), route('198.51.101.0/24'), route('198.19.0.7/32'), route('2001:db8:2::/48'), route('default', { via: '192.0.2.254' })],
        }),
      ];
      await Rtnl.with({ netns: ns.path }, async (rtnl) => {
        const s = await observe(rtnl, { policy: POLICY, desired });
        const scope = foreignScope(s.links, s.addresses, desired);
        const test = foreignRoutePrefilter(scope, PROTO);
        const spec = routeDump({ table: 254 });
        const seen: Array<{ m: RouteMessage; maybe: boolean }> = await rtnl.dump({
          ...spec,
          decode: (buf, start, end) => ({ m: decodeRouteMessage(buf, start, end), maybe: test(buf, start, end) }),
          keep: () => true,
        });
        const kept = seen.filter(({ m }) => m.protocol !== PROTO && inScope(scope, m.family, m.oif, m.prefsrc, m.multipath !== undefined, m.dst, m.dstLen));
        const text = ({ m }: { m: RouteMessage }): string => `${m.dst ?? (m.family === 2 ? '0.0.0.0' : '::')}/${m.dstLen}`;
        expect(kept.map(text).sort()).toEqual(
          ['0.0.0.0/0', '192.0.2.0/24', '198.19.0.7/32', '198.51.100.0/24', '198.51.101.0/24', '198.51.102.0/25', '198.51.103.0/24', '198.51.104.0/24', '2001:db8:2::/48', 'fe80::/64'].sort(),
        );
        expect(kept.filter((x) => !x.maybe).map(text)).toEqual([]);
        // The 80 unrelated routes (and our own) are not decoded in a relist.
        expect(seen.filter((x) => x.maybe).length).toBeLessThan(kept.length + 5);
      });
    });
  });
});
