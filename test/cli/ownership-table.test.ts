/**
 * One ownership rule, seen from both ends. A namespace holds a table of kernel objects: links that
 * carry the marker (or something like it), addresses with and without tunkeeper's IFA_PROTO on
 * owned and foreign links, link-locals the kernel made and ones a user added, routes with and
 * without tunkeeper's protocol. Each row says whether the object is tunkeeper's; that answer is
 * checked against `tunkeeper state --json` and against what `tunkeeper plan --json` acts on:
 *   - plan "keep": declares the owned devices with no addresses and no routes, so plan deletes
 *     every owned address and every owned route, and nothing else;
 *   - plan "prune": declares only a new device, so plan deletes every owned link, and no other.
 * Beyond the rows, over every object of the namespace: what state marks owned is exactly what plan
 * touches, and no action of either plan targets an object state calls foreign.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rtnl } from '../../netlink/index.js';
import { Tun } from '../../tun-native/index.js';
import { runCli } from '../helpers/cli.js';
import { createNetns, type Netns } from '../helpers/netns.js';
import { describeKernel } from '../helpers/tiers.js';

const PROTO = 116;
/** IFAPROT_KERNEL_LL: the kernel's tag on the link-local it generates (Linux 5.18+). */
const KERNEL_LL = 3;

interface StateJson {
  links: Array<{ ifindex: number; ifname: string; kind: string | null; alias: string | null; owned: boolean }>;
  addresses: Array<{ ifindex: number; ifname: string | null; address: string; prefixLength: number; proto: number | null; owned: boolean }>;
  routes: Array<{ dst: string; table: number; protocol: number; type: string; ifindex?: number; owned: boolean }>;
}

interface PlanAction {
  type: string;
  ifname?: string;
  ifindex?: number;
  address?: { address: string; prefixLength: number };
  route?: { dst: string; dstLength: number; table: number; protocol: number; oif?: number };
}

interface PlanJson {
  actions: PlanAction[];
}

type Row =
  | { what: string; link: string; owned: boolean }
  | { what: string; address: string; on: string; owned: boolean }
  | { what: string; route: string; table: number; owned: boolean };

/** The table. `address: 'kernel-ll'` is the fe80::/64 the kernel generated on the link. */
const ROWS: Row[] = [
  { what: 'tun marked tunkeeper:<its name>', link: 'tk-tun0', owned: true },
  { what: 'tap marked tunkeeper:<its name> (open: has carrier)', link: 'tk-tap0', owned: true },
  { what: 'veth marked tunkeeper:<its name>', link: 'tk-veth0', owned: false },
  { what: 'bridge marked tunkeeper:<its name>', link: 'tk-br0', owned: false },
  { what: 'tun marked tunkeeper:BAD_NAME (no valid object name)', link: 'tk-bad0', owned: false },
  { what: 'tap marked tunkeeper: with no name', link: 'tk-noname0', owned: false },
  { what: 'tap without a marker', link: 'tk-plain0', owned: false },
  { what: 'loopback', link: 'lo', owned: false },

  { what: 'static IPv4 on an owned tun', address: '192.0.2.1/24', on: 'tk-tun0', owned: true },
  { what: 'proto 116 IPv4 on an owned tun', address: '198.51.100.1/32', on: 'tk-tun0', owned: true },
  { what: 'static IPv6 on an owned tap', address: '2001:db8:10::1/64', on: 'tk-tap0', owned: true },
  { what: 'proto 116 on a marked veth', address: '198.51.100.2/32', on: 'tk-veth0', owned: false },
  { what: 'proto 116 on an unmarked tap', address: '198.51.100.3/32', on: 'tk-plain0', owned: false },
  { what: 'static IPv4 on a tun with an invalid marker', address: '203.0.113.1/24', on: 'tk-bad0', owned: false },
  { what: 'kernel-generated link-local (proto kernel_ll) on an owned tap', address: 'kernel-ll', on: 'tk-tap0', owned: false },
  { what: 'static fe80::/64 without proto on an owned tun (may be the kernel’s on old kernels)', address: 'fe80::1/64', on: 'tk-tun0', owned: false },
  { what: 'fe80::/64 with proto 116 on an owned tun', address: 'fe80::2/64', on: 'tk-tun0', owned: true },
  { what: 'link-local with a prefix the kernel never generates, on an owned tun', address: 'fe80::3/10', on: 'tk-tun0', owned: true },

  { what: 'proto 116 route through an owned tun', route: '198.51.100.0/25', table: 254, owned: true },
  { what: 'proto 116 route through a foreign veth', route: '203.0.113.0/25', table: 254, owned: true },
  { what: 'proto 116 blackhole route (no device)', route: '198.18.5.0/24', table: 100, owned: true },
  { what: 'static route through a foreign veth', route: '203.0.113.128/25', table: 254, owned: false },
  { what: 'proto 200 route through an owned tun', route: '198.18.6.0/24', table: 254, owned: false },
];

const declaration = (name: string, mode: 'tun' | 'tap') => `apiVersion: tunkeeper.io/v1alpha1
kind: TunDevice
metadata:
  name: ${name}
spec:
  mode: ${mode}
  mtu: 1500
`;

const addressKey = (ifindex: number, address: string, prefixLength: number) => `${ifindex} ${address}/${prefixLength}`;
const routeKey = (dst: string, table: number, protocol: number, oif: number | undefined) => `${dst} table ${table} proto ${protocol} oif ${oif ?? '-'}`;

function planRouteKey(r: NonNullable<PlanAction['route']>): string {
  return routeKey(r.dstLength === 0 ? 'default' : `${r.dst}/${r.dstLength}`, r.table, r.protocol, r.oif);
}

describeKernel('one ownership rule: tunkeeper state marks owned exactly what plan manages', () => {
  let ns: Netns;
  let dir: string;
  let tap: Tun | undefined;
  let state: StateJson;
  let keep: PlanJson;
  let prune: PlanJson;

  const ip = (...args: string[]) => ns.ip(...args);

  beforeAll(async () => {
    ns = await createNetns('owntable');
    dir = await mkdtemp(join(tmpdir(), 'tk-owntable-'));

    await ip('tuntap', 'add', 'dev', 'tk-tun0', 'mode', 'tun');
    await ip('link', 'set', 'tk-tun0', 'alias', 'tunkeeper:tk-tun0', 'up');
    await ip('tuntap', 'add', 'dev', 'tk-tap0', 'mode', 'tap');
    await ip('link', 'set', 'tk-tap0', 'alias', 'tunkeeper:tk-tap0', 'up');
    await ip('link', 'add', 'tk-veth0', 'type', 'veth', 'peer', 'name', 'tk-vpeer0');
    await ip('link', 'set', 'tk-veth0', 'alias', 'tunkeeper:tk-veth0', 'up');
    await ip('link', 'set', 'tk-vpeer0', 'up');
    await ip('link', 'add', 'tk-br0', 'type', 'bridge');
    await ip('link', 'set', 'tk-br0', 'alias', 'tunkeeper:tk-br0', 'up');
    await ip('tuntap', 'add', 'dev', 'tk-bad0', 'mode', 'tun');
    await ip('link', 'set', 'tk-bad0', 'alias', 'tunkeeper:BAD_NAME', 'up');
    await ip('tuntap', 'add', 'dev', 'tk-noname0', 'mode', 'tap');
    await ip('link', 'set', 'tk-noname0', 'alias', 'tunkeeper:', 'up');
    await ip('tuntap', 'add', 'dev', 'tk-plain0', 'mode', 'tap');
    await ip('link', 'set', 'tk-plain0', 'up');
    // A reader gives the tap carrier, so the kernel generates its IPv6 link-local. Attach with the
    // device's own flags (attaching rewrites IFF_NO_PI/IFF_VNET_HDR), or plan would recreate it.
    tap = await Tun.open({ name: 'tk-tap0', mode: 'tap', packetInfo: false, vnetHdr: false, netns: ns.name });

    await ip('addr', 'add', '192.0.2.1/24', 'dev', 'tk-tun0');
    await ip('addr', 'add', '203.0.113.1/24', 'dev', 'tk-bad0');
    await ip('-6', 'addr', 'add', '2001:db8:10::1/64', 'dev', 'tk-tap0', 'nodad');
    await ip('-6', 'addr', 'add', 'fe80::1/64', 'dev', 'tk-tun0', 'nodad');
    await ip('-6', 'addr', 'add', 'fe80::3/10', 'dev', 'tk-tun0', 'nodad');
    // This iproute2 (6.1) has no `ip addr add ... proto`: IFA_PROTO goes through tunkeeper's client.
    await Rtnl.with({ netns: ns.name }, async (rtnl) => {
      const index = async (ifname: string) => (await rtnl.links({ ifname }))[0]!.ifindex;
      await rtnl.addAddress({ ifindex: await index('tk-tun0'), address: '198.51.100.1/32', proto: PROTO });
      await rtnl.addAddress({ ifindex: await index('tk-tun0'), address: 'fe80::2/64', proto: PROTO, nodad: true });
      await rtnl.addAddress({ ifindex: await index('tk-veth0'), address: '198.51.100.2/32', proto: PROTO });
      await rtnl.addAddress({ ifindex: await index('tk-plain0'), address: '198.51.100.3/32', proto: PROTO });
    });

    await ip('route', 'add', '198.51.100.0/25', 'dev', 'tk-tun0', 'proto', String(PROTO));
    await ip('route', 'add', '203.0.113.0/25', 'dev', 'tk-vpeer0', 'proto', String(PROTO));
    await ip('route', 'add', 'blackhole', '198.18.5.0/24', 'table', '100', 'proto', String(PROTO));
    await ip('route', 'add', '203.0.113.128/25', 'dev', 'tk-vpeer0', 'proto', 'static');
    await ip('route', 'add', '198.18.6.0/24', 'dev', 'tk-tun0', 'proto', '200');

    // The kernel's link-local on the tap appears once addrconf sees the carrier: wait for it.
    for (;;) {
      const out = await ip('-6', 'addr', 'show', 'dev', 'tk-tap0', 'scope', 'link');
      if (out.includes('fe80::')) break;
      await new Promise((r) => setTimeout(r, 50));
    }

    const s = await runCli(['state', '--json', '--netns', ns.name]);
    expect(s).toMatchObject({ code: 0, stderr: '' });
    state = JSON.parse(s.stdout) as StateJson;

    const keepFile = join(dir, 'keep.yaml');
    await writeFile(keepFile, `${declaration('tk-tun0', 'tun')}---\n${declaration('tk-tap0', 'tap')}`);
    const k = await runCli(['plan', '--json', '--netns', ns.name, '-f', keepFile]);
    expect({ code: k.code, stderr: k.stderr }).toEqual({ code: 2, stderr: '' });
    keep = JSON.parse(k.stdout) as PlanJson;

    const pruneFile = join(dir, 'prune.yaml');
    await writeFile(pruneFile, declaration('tk-new0', 'tun'));
    const p = await runCli(['plan', '--json', '--netns', ns.name, '-f', pruneFile]);
    expect({ code: p.code, stderr: p.stderr }).toEqual({ code: 2, stderr: '' });
    prune = JSON.parse(p.stdout) as PlanJson;
  });

  afterAll(async () => {
    await tap?.close();
    await ns?.delete();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  const linkIndex = (ifname: string): number => {
    const l = state.links.find((x) => x.ifname === ifname);
    if (l === undefined) throw new Error(`state lists no link ${ifname}`);
    return l.ifindex;
  };

  /** The state entry a row names (and its identity as plan's actions spell it). */
  function lookup(row: Row): { owned: boolean; touched: boolean } {
    if ('link' in row) {
      const l = state.links.find((x) => x.ifname === row.link)!;
      return { owned: l.owned, touched: prunedLinks().has(l.ifindex) };
    }
    if ('address' in row) {
      const ifindex = linkIndex(row.on);
      const a =
        row.address === 'kernel-ll'
          ? state.addresses.find((x) => x.ifindex === ifindex && x.proto === KERNEL_LL)
          : state.addresses.find((x) => x.ifindex === ifindex && `${x.address}/${x.prefixLength}` === row.address);
      if (a === undefined) throw new Error(`state lists no ${row.address} on ${row.on}`);
      return { owned: a.owned, touched: deletedAddresses().has(addressKey(a.ifindex, a.address, a.prefixLength)) };
    }
    const r = state.routes.find((x) => x.dst === row.route && x.table === row.table)!;
    return { owned: r.owned, touched: deletedRoutes(keep).has(routeKey(r.dst, r.table, r.protocol, r.ifindex)) };
  }

  const prunedLinks = () => new Set(prune.actions.filter((a) => a.type === 'delete-device').map((a) => a.ifindex!));
  const deletedAddresses = () =>
    new Set(keep.actions.filter((a) => a.type === 'delete-address').map((a) => addressKey(a.ifindex!, a.address!.address, a.address!.prefixLength)));
  const deletedRoutes = (p: PlanJson) => new Set(p.actions.filter((a) => a.type === 'delete-route').map((a) => planRouteKey(a.route!)));

  const ownedLinks = () => new Set(state.links.filter((l) => l.owned).map((l) => l.ifindex));
  const ownedAddresses = () => new Set(state.addresses.filter((a) => a.owned).map((a) => addressKey(a.ifindex, a.address, a.prefixLength)));
  const ownedRoutes = () => new Set(state.routes.filter((r) => r.owned).map((r) => routeKey(r.dst, r.table, r.protocol, r.ifindex)));

  it('the kernel generated the tap’s link-local and tagged it kernel_ll (what the kernel-ll row is about)', () => {
    const tapLinkLocals = state.addresses.filter((a) => a.ifindex === linkIndex('tk-tap0') && a.address.startsWith('fe80:'));
    expect(tapLinkLocals).toEqual([expect.objectContaining({ prefixLength: 64, proto: KERNEL_LL })]);
  });

  describe.each(ROWS.map((row) => [row.what, row] as const))('%s', (_what, row) => {
    it(`state says ${row.owned ? 'owned' : 'foreign'}, and plan ${row.owned ? 'deletes it when undeclared' : 'never touches it'}`, () => {
      const { owned, touched } = lookup(row);
      expect({ state: owned, plan: touched }).toEqual({ state: row.owned, plan: row.owned });
    });
  });

  it('plan "prune" deletes exactly the links state marks owned, and creates only the declared one', () => {
    expect([...prunedLinks()].sort()).toEqual([...ownedLinks()].sort());
    expect(prune.actions.filter((a) => a.type === 'create-device').map((a) => a.ifname)).toEqual(['tk-new0']);
  });

  it('plan "keep" deletes exactly the addresses and routes state marks owned', () => {
    expect([...deletedAddresses()].sort()).toEqual([...ownedAddresses()].sort());
    expect([...deletedRoutes(keep)].sort()).toEqual([...ownedRoutes()].sort());
  });

  it('no action of either plan targets an object state calls foreign', () => {
    const links = ownedLinks();
    const addresses = ownedAddresses();
    const routes = ownedRoutes();
    const foreignTargets = [...keep.actions, ...prune.actions].filter((a) => {
      if (a.type === 'create-device' || (a.ifindex === undefined && a.ifname === 'tk-new0')) return false;
      if (a.type === 'delete-route') return !routes.has(planRouteKey(a.route!));
      if (a.type === 'delete-address' && !addresses.has(addressKey(a.ifindex!, a.address!.address, a.address!.prefixLength))) return true;
      return a.ifindex !== undefined && !links.has(a.ifindex);
    });
    expect(foreignTargets).toEqual([]);
  });
});
