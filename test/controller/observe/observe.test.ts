/** observe against the kernel: links with tun attributes, address flags, the route scope. */
import { expect, it } from '@jest/globals';
import { Rtnl } from '../../../netlink/index.js';
import { observe, observedTables } from '../../../controller/observe/observe.js';
import { withNetns } from '../../helpers/netns.js';
import { describeKernel } from '../../helpers/tiers.js';
import { POLICY, device, route } from '../plan/fixtures.js';

describeKernel('observe', () => {
  it('converts links, addresses and routes, scoped to our protocol and the tables plan needs', async () => {
    await withNetns(async (ns) => {
      await ns.ip('tuntap', 'add', 'dev', 'tk-a0', 'mode', 'tap', 'multi_queue', 'vnet_hdr', 'user', '1000');
      await ns.ip('link', 'set', 'tk-a0', 'alias', 'tunkeeper:a0', 'mtu', '1400', 'address', '00:00:5E:00:53:07', 'up');
      await ns.ip('addr', 'add', '192.0.2.1/24', 'dev', 'tk-a0');
      await ns.ip('addr', 'add', '192.0.2.2/24', 'dev', 'tk-a0'); // secondary
      await ns.ip('addr', 'add', '198.18.0.1', 'peer', '198.18.0.2/32', 'dev', 'tk-a0');
      await ns.ip('-6', 'addr', 'add', '2001:db8:0:0:1::1/64', 'dev', 'tk-a0'); // stays tentative: no carrier
      await ns.ip('route', 'add', '198.51.100.0/24', 'via', '192.0.2.254', 'proto', '116', 'table', '7');
      await ns.ip('route', 'add', '203.0.113.0/24', 'via', '192.0.2.254', 'proto', 'static', 'table', '100');
      await ns.ip('route', 'add', '203.0.113.0/25', 'via', '192.0.2.254', 'proto', 'static', 'table', '101');
      await ns.ip('route', 'add', '203.0.113.128/25', 'via', '192.0.2.254', 'proto', 'static');

      const desired = [device('a0', { routes: [route('203.0.113.0/24', { table: 100 })] })];
      expect(observedTables(desired)).toEqual([100, 254]);
      const s = await Rtnl.with({ netns: ns.name }, (rtnl) => observe(rtnl, { policy: POLICY, desired }));

      const link = s.links.find((l) => l.ifname === 'tk-a0')!;
      expect(link).toMatchObject({ kind: 'tun', up: true, mtu: 1400, macAddress: '00:00:5e:00:53:07', alias: 'tunkeeper:a0', tun: { mode: 'tap', multiQueue: true, vnetHdr: true, packetInfo: false, persist: true, owner: 1000 } });
      expect(link.tun?.group).toBeUndefined();

      const mine = s.addresses.filter((a) => a.ifindex === link.ifindex && a.scope === 'universe');
      expect(mine.map((a) => [a.address, a.prefixLength, a.peer, a.flags.secondary, a.flags.tentative, a.flags.permanent]).sort((x, y) => String(x[0]).localeCompare(String(y[0])))).toEqual([
        ['192.0.2.1', 24, undefined, false, false, true],
        ['192.0.2.2', 24, undefined, true, false, true],
        ['198.18.0.1', 32, '198.18.0.2', false, false, true],
        ['2001:db8::1:0:0:1', 64, undefined, false, true, true],
      ]);

      const key = (r: { dst: string; dstLength: number; table: number; protocol: number }) => `${r.dst}/${r.dstLength} t${r.table} p${r.protocol}`;
      const routes = s.routes.filter((r) => r.family === 4 && r.type === 'unicast').map(key).sort();
      // Ours anywhere; every route of the tables plan needs (100 and main); nothing of table 101.
      expect(routes).toEqual(['192.0.2.0/24 t254 p2', '198.18.0.2/32 t254 p2', '198.51.100.0/24 t7 p116', '203.0.113.0/24 t100 p4', '203.0.113.128/25 t254 p4'].sort());
      expect(s.routes.find((r) => r.protocol === 116)).toMatchObject({ gateway: '192.0.2.254', oif: link.ifindex, scope: 'universe', onLink: false });
      expect(s.routes.find((r) => r.protocol === 116)?.metric).toBeUndefined();
    }, 'observe');
  });
});
