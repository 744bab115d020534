/** `tunkeeper state` through bin/tunkeeper: the JSON contract and the human tables. */
import { describe, expect, it, beforeAll, afterAll } from '@jest/globals';
import { Rtnl } from '../../netlink/index.js';
import { runCli } from '../helpers/cli.js';
import { createNetns, type Netns } from '../helpers/netns.js';
import { describeKernel } from '../helpers/tiers.js';

interface StateJson {
  links: Array<{ ifindex: number; ifname: string; mtu: number; kind: string | null; owned: boolean; alias: string | null; tun?: { mode: string } }>;
  addresses: Array<{ ifindex: number; address: string; prefixLength: number; family: string; proto: number | null; owned: boolean }>;
  routes: Array<{ dst: string; table: number; protocol: number; owned: boolean; type: string; gateway?: string; dev?: string | null }>;
}

describeKernel('tunkeeper state', () => {
  let ns: Netns;

  beforeAll(async () => {
    ns = await createNetns('state');
    // Owned: a tun marked by its alias. Foreign although marked: a veth pair end (tunkeeper only
    // creates TUN/TAP devices, so plan never touches it; it has carrier, so the kernel gives it an
    // IPv6 link-local address, which is not owned either).
    await ns.ip('tuntap', 'add', 'dev', 'tk-edge0', 'mode', 'tun');
    await ns.ip('link', 'set', 'tk-edge0', 'mtu', '1420', 'alias', 'tunkeeper:edge', 'up');
    await ns.ip('link', 'add', 'tk-own0', 'type', 'veth', 'peer', 'name', 'other0');
    await ns.ip('link', 'set', 'tk-own0', 'alias', 'tunkeeper:own', 'up');
    await ns.ip('link', 'set', 'other0', 'up');
    // Foreign: a tap without the marker.
    await ns.ip('tuntap', 'add', 'dev', 'foreign0', 'mode', 'tap');
    await ns.ip('addr', 'add', '192.0.2.1/24', 'dev', 'tk-edge0');
    await ns.ip('-6', 'addr', 'add', '2001:db8:1::1/64', 'dev', 'tk-edge0', 'nodad');
    await ns.ip('-6', 'addr', 'add', '2001:db8:2::1/64', 'dev', 'tk-own0', 'nodad');
    await ns.ip('addr', 'add', '203.0.113.1/24', 'dev', 'other0');
    await ns.ip('route', 'add', '198.51.100.0/24', 'dev', 'tk-edge0', 'table', '100', 'proto', '116');
    await ns.ip('route', 'add', '198.18.0.0/16', 'via', '203.0.113.254', 'table', '100', 'proto', '200');
    await ns.ip('route', 'add', 'default', 'via', '203.0.113.254');
    // An address on a foreign link is foreign even when tagged with tunkeeper's IFA_PROTO (116):
    // changing it would change a link tunkeeper does not own.
    await Rtnl.with({ netns: ns.name }, (rtnl) => rtnl.links({ ifname: 'other0' }).then(([l]) => rtnl.addAddress({ ifindex: l!.ifindex, address: '198.51.100.7/32', proto: 116 })));
    await ns.settledLinkLocals('tk-own0', 'other0');
  });

  afterAll(async () => {
    await ns?.delete();
  });

  it('--json prints one object with links, addresses and routes, marking what tunkeeper owns', async () => {
    // The kernel keeps adding IPv6 routes while addrconf settles on the veth pair: take the
    // snapshot between two identical `ip` route listings, so both sides describe the same state.
    const ipRouteList = async () => [...(await ns.ipJson<unknown[]>('-4', 'route', 'show', 'table', 'all')), ...(await ns.ipJson<unknown[]>('-6', 'route', 'show', 'table', 'all'))];
    let r = await runCli(['state', '--netns', ns.name, '--json']);
    let ipRoutes: unknown[] = [];
    for (let attempt = 0; attempt < 50; attempt++) {
      const before = JSON.stringify(await ipRouteList());
      r = await runCli(['state', '--netns', ns.name, '--json']);
      ipRoutes = await ipRouteList();
      if (JSON.stringify(ipRoutes) === before) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    const s = JSON.parse(r.stdout) as StateJson;

    const ipLinks = await ns.ipJson<Array<{ ifindex: number; ifname: string; mtu: number }>>('link', 'show');
    expect(s.links.map((l) => [l.ifindex, l.ifname, l.mtu])).toEqual(ipLinks.map((l) => [l.ifindex, l.ifname, l.mtu]));
    for (const l of s.links) {
      expect(Object.keys(l)).toEqual(expect.arrayContaining(['ifindex', 'ifname', 'mtu', 'kind', 'owned']));
    }
    const link = (name: string) => s.links.find((l) => l.ifname === name)!;
    expect(link('tk-edge0')).toMatchObject({ kind: 'tun', mtu: 1420, owned: true, alias: 'tunkeeper:edge', tun: { mode: 'tun' } });
    expect(link('tk-own0')).toMatchObject({ kind: 'veth', owned: false, alias: 'tunkeeper:own' });
    expect(link('foreign0')).toMatchObject({ kind: 'tun', owned: false, tun: { mode: 'tap' } });
    expect(link('lo')).toMatchObject({ kind: null, owned: false });

    const addr = (a: string) => s.addresses.find((x) => x.address === a)!;
    const edge = link('tk-edge0').ifindex;
    expect(addr('192.0.2.1')).toEqual(expect.objectContaining({ ifindex: edge, prefixLength: 24, family: 'inet', owned: true }));
    expect(addr('2001:db8:1::1')).toMatchObject({ ifindex: edge, prefixLength: 64, owned: true });
    expect(addr('2001:db8:2::1')).toMatchObject({ prefixLength: 64, owned: false });
    expect(addr('203.0.113.1')).toMatchObject({ owned: false });
    expect(addr('198.51.100.7')).toMatchObject({ prefixLength: 32, proto: 116, owned: false });
    expect(addr('127.0.0.1')).toMatchObject({ owned: false });
    const linkLocal = s.addresses.find((a) => a.ifindex === link('tk-own0').ifindex && a.address.startsWith('fe80::'));
    expect(linkLocal).toMatchObject({ prefixLength: 64, owned: false });

    const route = (dst: string, table: number) => s.routes.find((x) => x.dst === dst && x.table === table)!;
    expect(route('198.51.100.0/24', 100)).toMatchObject({ protocol: 116, owned: true, type: 'unicast', dev: 'tk-edge0' });
    expect(route('198.18.0.0/16', 100)).toMatchObject({ protocol: 200, owned: false, gateway: '203.0.113.254' });
    expect(route('default', 254)).toMatchObject({ protocol: 3, owned: false });
    // Every route of the namespace, all tables and both families.
    expect(s.routes).toHaveLength(ipRoutes.length);
    expect(s.routes.filter((x) => x.owned).map((x) => x.dst)).toEqual(['198.51.100.0/24']);
  });

  it('--route-protocol changes which routes count as owned', async () => {
    const r = await runCli(['state', '--netns', ns.name, '--json', '--route-protocol', '200']);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout) as StateJson;
    expect(s.routes.filter((x) => x.owned).map((x) => x.dst)).toEqual(['198.18.0.0/16']);
  });

  it('prints readable tables without --json', async () => {
    const r = await runCli(['state', '--netns', ns.name]);
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines).toContain(`Links in ${ns.name}`);
    expect(lines.find((l) => l.startsWith('IFINDEX'))).toMatch(/^IFINDEX\s+NAME\s+KIND\s+MTU\s+ADMIN\s+OPER\s+OWNED\s+ALIAS$/);
    expect(lines.find((l) => /\btk-edge0\b/.test(l) && /\btun\b/.test(l))).toMatch(/\s1420\s+up\s+\S+\s+yes\s+tunkeeper:edge$/);
    expect(lines.find((l) => l.startsWith('198.51.100.0/24'))).toMatch(/^198\.51\.100\.0\/24\s+100\s+116\s+unicast\s+-\s+tk-edge0\s+-\s+yes$/);
    expect(lines).toContain('Routes (owned: protocol 116)');
  });

  it('fails with exit code 1 and a message for a namespace that does not exist', async () => {
    const r = await runCli(['state', '--netns', 'tunkeeper-no-such-namespace']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^tunkeeper: .*tunkeeper-no-such-namespace/);
  });
});

describe('tunkeeper state arguments', () => {
  it('rejects a route protocol outside 1..255', async () => {
    const r = await runCli(['state', '--route-protocol', '300']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--route-protocol must be an integer 1..255');
  });
});
