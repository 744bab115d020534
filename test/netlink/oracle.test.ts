/**
 * ORACLE: in a namespace populated with `ip`, the client's decoded dumps must agree with
 * `ip -j -d link/addr/route show` field by field — iproute2 is the reference reader of rtnetlink.
 */
import { describe, expect, it, beforeAll, afterAll } from '@jest/globals';
import { Rtnl, routeTable, ruleTable, type AddressMessage, type LinkMessage, type NeighbourMessage, type RouteMessage, type RouteNexthop, type RuleMessage } from '../../netlink/index.js';
import * as K from '../../netlink/constants/index.js';
import { createNetns, type Netns } from '../helpers/netns.js';
import { describeKernel } from '../helpers/tiers.js';
import { routeFlags } from '../helpers/iproute-print.js';

/** What the namespace holds: tun/tap/veth/bridge, IPv4/IPv6 addresses, routes of many kinds. */
const SETUP: string[][] = [
  ['tuntap', 'add', 'dev', 'tk-tun0', 'mode', 'tun'],
  ['link', 'set', 'tk-tun0', 'mtu', '1420', 'txqueuelen', '500', 'alias', 'tunkeeper:edge', 'up'],
  ['tuntap', 'add', 'dev', 'tk-tap0', 'mode', 'tap', 'user', '4242', 'group', '4343', 'pi', 'vnet_hdr', 'multi_queue'],
  ['link', 'set', 'tk-tap0', 'address', '02:00:00:00:00:01'],
  ['tuntap', 'add', 'dev', 'tk-tap1', 'mode', 'tap'],
  ['link', 'add', 'tk-veth0', 'address', '02:00:00:00:00:10', 'type', 'veth', 'peer', 'name', 'tk-veth1', 'address', '02:00:00:00:00:11'],
  ['link', 'add', 'tk-br0', 'address', '02:00:00:00:00:20', 'type', 'bridge'],
  ['link', 'set', 'tk-veth1', 'master', 'tk-br0'],
  ['link', 'set', 'tk-veth0', 'up'],
  ['link', 'set', 'tk-veth1', 'up'],
  ['link', 'set', 'tk-br0', 'up'],
  ['addr', 'add', '192.0.2.1/24', 'dev', 'tk-veth0'],
  ['addr', 'add', '203.0.113.5/24', 'broadcast', '203.0.113.255', 'label', 'tk-veth0:lbl', 'metric', '50', 'dev', 'tk-veth0'],
  ['addr', 'add', '198.51.100.1', 'peer', '198.51.100.2/32', 'dev', 'tk-tun0'],
  ['-6', 'addr', 'add', '2001:db8:1::1/64', 'dev', 'tk-veth0', 'nodad'],
  ['-6', 'addr', 'add', '2001:db8:2::1/64', 'dev', 'tk-veth0', 'nodad', 'valid_lft', '3600', 'preferred_lft', '1800'],
  ['-6', 'addr', 'add', '2001:db8:3::1/64', 'dev', 'tk-veth0', 'nodad', 'noprefixroute'],
  ['route', 'add', '198.51.100.0/24', 'via', '192.0.2.254', 'dev', 'tk-veth0', 'table', '100', 'proto', '116', 'metric', '100', 'mtu', '1400'],
  ['route', 'add', 'default', 'via', '192.0.2.254', 'dev', 'tk-veth0', 'table', '100', 'proto', '116'],
  ['route', 'add', '198.18.4.0/24', 'via', '198.51.100.77', 'dev', 'tk-veth0', 'onlink', 'table', '100'],
  ['route', 'add', '203.0.113.128/25', 'dev', 'tk-veth0', 'table', '1000', 'proto', 'static', 'src', '192.0.2.1'],
  ['route', 'add', '198.18.2.0/24', 'table', '1000', 'proto', '116', 'nexthop', 'via', '192.0.2.2', 'dev', 'tk-veth0', 'weight', '2', 'nexthop', 'via', '192.0.2.3', 'dev', 'tk-veth0'],
  ['route', 'add', 'blackhole', '198.18.0.0/16', 'table', '300', 'proto', '116'],
  ['route', 'add', 'unreachable', '198.18.1.0/24', 'proto', '116'],
  ['route', 'add', 'prohibit', '198.18.3.0/24', 'table', '70000', 'proto', '200', 'metric', '7'],
  ['route', 'add', '198.18.5.0/24', 'dev', 'tk-tun0', 'table', '100', 'proto', 'boot'],
  ['-6', 'route', 'add', '2001:db8:9::/48', 'via', '2001:db8:1::2', 'dev', 'tk-veth0', 'table', '500', 'proto', '116', 'metric', '5'],
  ['-6', 'route', 'add', '2001:db8:a::/48', 'table', '500', 'proto', '116', 'nexthop', 'via', '2001:db8:1::2', 'dev', 'tk-veth0', 'weight', '3', 'nexthop', 'via', '2001:db8:1::3', 'dev', 'tk-veth0'],
  ['-6', 'route', 'add', 'unreachable', '2001:db8:b::/48', 'table', '100000', 'proto', '116'],
  ['-6', 'route', 'add', 'default', 'via', '2001:db8:1::fe', 'dev', 'tk-veth0', 'metric', '2048'],
  ['neigh', 'add', '192.0.2.2', 'lladdr', '02:00:00:00:00:02', 'dev', 'tk-veth0', 'nud', 'permanent'],
  ['neigh', 'add', '192.0.2.3', 'lladdr', '02:00:00:00:00:03', 'dev', 'tk-veth0', 'nud', 'stale'],
  ['-6', 'neigh', 'add', '2001:db8:1::2', 'lladdr', '02:00:00:00:00:04', 'dev', 'tk-veth0', 'nud', 'noarp', 'router'],
  ['rule', 'add', 'from', '198.51.100.0/24', 'table', '100', 'priority', '1000', 'proto', '116'],
  ['rule', 'add', 'to', '203.0.113.0/24', 'fwmark', '0x10/0xff', 'lookup', '70000', 'priority', '1001'],
  ['rule', 'add', 'unreachable', 'priority', '3000', 'from', '198.18.0.0/16'],
  ['-6', 'rule', 'add', 'from', '2001:db8::/32', 'iif', 'tk-veth0', 'table', '500', 'priority', '2000'],
];

// ---- links: our decoded LinkMessage in the shape `ip -j -d link show` prints ----

const FLAG_NAMES: Array<[number, string]> = [
  [K.IFF_LOOPBACK, 'LOOPBACK'],
  [K.IFF_BROADCAST, 'BROADCAST'],
  [K.IFF_POINTOPOINT, 'POINTOPOINT'],
  [K.IFF_MULTICAST, 'MULTICAST'],
  [K.IFF_NOARP, 'NOARP'],
  [K.IFF_ALLMULTI, 'ALLMULTI'],
  [K.IFF_PROMISC, 'PROMISC'],
  [K.IFF_MASTER, 'MASTER'],
  [K.IFF_SLAVE, 'SLAVE'],
  [K.IFF_DEBUG, 'DEBUG'],
  [K.IFF_DYNAMIC, 'DYNAMIC'],
  [K.IFF_AUTOMEDIA, 'AUTOMEDIA'],
  [K.IFF_PORTSEL, 'PORTSEL'],
  [K.IFF_NOTRAILERS, 'NOTRAILERS'],
  [K.IFF_UP, 'UP'],
  [K.IFF_LOWER_UP, 'LOWER_UP'],
  [K.IFF_DORMANT, 'DORMANT'],
  [K.IFF_ECHO, 'ECHO'],
];

/** iproute2's print_link_flags, from our flags (M-DOWN: the lower link is down). */
function linkFlags(l: LinkMessage, byIndex: Map<number, LinkMessage>): string[] {
  const out: string[] = [];
  if ((l.flags & K.IFF_UP) !== 0 && (l.flags & K.IFF_RUNNING) === 0) out.push('NO-CARRIER');
  for (const [bit, name] of FLAG_NAMES) if ((l.flags & bit) !== 0) out.push(name);
  if (l.link !== undefined && l.link !== 0 && l.linkNetnsid === undefined) {
    const lower = byIndex.get(l.link);
    if (lower !== undefined && (lower.flags & K.IFF_UP) === 0) out.push('M-DOWN');
  }
  return out;
}

const OPERSTATES = ['UNKNOWN', 'NOTPRESENT', 'DOWN', 'LOWERLAYERDOWN', 'TESTING', 'DORMANT', 'UP'];
const LINK_TYPES: Record<number, string> = { [K.ARPHRD_ETHER]: 'ether', [K.ARPHRD_NONE]: 'none', [K.ARPHRD_LOOPBACK]: 'loopback' };

interface IpLink {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  qdisc?: string;
  operstate: string;
  txqlen?: number;
  link_type: string;
  address?: string;
  broadcast?: string;
  promiscuity: number;
  allmulti: number;
  min_mtu: number;
  max_mtu: number;
  num_tx_queues: number;
  num_rx_queues: number;
  gso_max_size: number;
  gso_max_segs: number;
  tso_max_size: number;
  tso_max_segs: number;
  gro_max_size: number;
  ifalias?: string;
  master?: string;
  link?: string;
  linkinfo?: {
    info_kind?: string;
    info_slave_kind?: string;
    info_data?: Record<string, unknown>;
  };
}

function ourLinkAsIp(l: LinkMessage, byIndex: Map<number, LinkMessage>): Partial<IpLink> {
  const name = (i: number | undefined) => (i === undefined ? undefined : byIndex.get(i)?.ifname);
  const out: Partial<IpLink> = {
    ifindex: l.ifindex,
    ifname: l.ifname!,
    flags: linkFlags(l, byIndex),
    mtu: l.mtu!,
    qdisc: l.qdisc,
    operstate: OPERSTATES[l.operstate!]!,
    txqlen: l.txqlen,
    link_type: LINK_TYPES[l.linkType] ?? String(l.linkType),
    address: l.address,
    broadcast: l.broadcast,
    promiscuity: l.promiscuity!,
    allmulti: l.allmulti!,
    min_mtu: l.minMtu!,
    max_mtu: l.maxMtu!,
    num_tx_queues: l.numTxQueues!,
    num_rx_queues: l.numRxQueues!,
    gso_max_size: l.gsoMaxSize!,
    gso_max_segs: l.gsoMaxSegs!,
    tso_max_size: l.tsoMaxSize!,
    tso_max_segs: l.tsoMaxSegs!,
    gro_max_size: l.groMaxSize!,
    ifalias: l.ifalias,
    master: name(l.master),
    link: l.link !== undefined && l.link !== l.ifindex ? name(l.link) : undefined,
  };
  const info = l.linkInfo;
  if (info !== undefined) {
    out.linkinfo = { info_kind: info.kind, info_slave_kind: info.slaveKind };
    const t = info.tun;
    if (info.kind === 'tun' && t !== undefined) {
      const data: Record<string, unknown> = {
        type: t.type === K.TUN_TYPE_TAP ? 'tap' : 'tun',
        pi: t.pi === true,
        vnet_hdr: t.vnetHdr === true,
        multi_queue: t.multiQueue === true,
        persist: t.persist === true,
      };
      if (t.multiQueue === true) {
        data.numqueues = t.numQueues;
        data.numdisabled = t.numDisabledQueues;
      }
      if (t.owner !== undefined) data.user = t.owner;
      if (t.group !== undefined) data.group = t.group;
      out.linkinfo.info_data = data;
    }
  }
  return out;
}

function ipLinkFields(j: IpLink): Partial<IpLink> {
  const out: Partial<IpLink> = {
    ifindex: j.ifindex,
    ifname: j.ifname,
    flags: j.flags,
    mtu: j.mtu,
    qdisc: j.qdisc,
    operstate: j.operstate,
    txqlen: j.txqlen,
    link_type: j.link_type,
    address: j.address,
    broadcast: j.broadcast,
    promiscuity: j.promiscuity,
    allmulti: j.allmulti,
    min_mtu: j.min_mtu,
    max_mtu: j.max_mtu,
    num_tx_queues: j.num_tx_queues,
    num_rx_queues: j.num_rx_queues,
    gso_max_size: j.gso_max_size,
    gso_max_segs: j.gso_max_segs,
    tso_max_size: j.tso_max_size,
    tso_max_segs: j.tso_max_segs,
    gro_max_size: j.gro_max_size,
    ifalias: j.ifalias,
    master: j.master,
    link: j.link,
  };
  if (j.linkinfo !== undefined) {
    out.linkinfo = { info_kind: j.linkinfo.info_kind, info_slave_kind: j.linkinfo.info_slave_kind };
    if (j.linkinfo.info_kind === 'tun') out.linkinfo.info_data = j.linkinfo.info_data;
  }
  return out;
}

// ---- addresses ----

interface IpAddr {
  family: string;
  local: string;
  address?: string;
  prefixlen: number;
  scope: string;
  label?: string;
  broadcast?: string;
  metric?: number;
  nodad?: boolean;
  noprefixroute?: boolean;
  valid_life_time: number;
  preferred_life_time: number;
}

function ourAddrAsIp(a: AddressMessage): Record<string, unknown> {
  const flags = a.extendedFlags ?? a.flags;
  const out: Record<string, unknown> = {
    ifindex: a.ifindex,
    family: a.family === K.AF_INET ? 'inet' : 'inet6',
    local: a.local ?? a.address,
    prefixlen: a.prefixLen,
    scope: String(a.scope),
    label: a.label,
    broadcast: a.broadcast,
    metric: a.rtPriority,
    nodad: (flags & K.IFA_F_NODAD) !== 0 || undefined,
    noprefixroute: (flags & K.IFA_F_NOPREFIXROUTE) !== 0 || undefined,
    forever: a.cacheInfo?.valid === K.INFINITY_LIFE_TIME,
  };
  if (a.local !== undefined && a.address !== undefined && a.address !== a.local) out.address = a.address;
  return out;
}

function ipAddrFields(ifindex: number, j: IpAddr): Record<string, unknown> {
  return {
    ifindex,
    family: j.family,
    local: j.local,
    prefixlen: j.prefixlen,
    scope: j.scope,
    label: j.label,
    broadcast: j.broadcast,
    metric: j.metric,
    nodad: j.nodad,
    noprefixroute: j.noprefixroute,
    forever: j.valid_life_time === K.INFINITY_LIFE_TIME,
    ...(j.address !== undefined ? { address: j.address } : {}),
  };
}

// ---- routes ----

interface IpNexthop {
  gateway?: string;
  dev?: string;
  weight: number;
  flags: string[];
}
interface IpRoute {
  type: string;
  dst: string;
  gateway?: string;
  dev?: string;
  table: string;
  protocol: string;
  scope: string;
  metric?: number;
  prefsrc?: string;
  flags: string[];
  metrics?: Array<Record<string, number>>;
  nexthops?: IpNexthop[];
  pref?: string;
}


const PREF: Record<number, string> = { 0: 'medium', 1: 'high', 3: 'low' };

function ourRouteAsIp(r: RouteMessage, names: Map<number, string>): Record<string, unknown> {
  const full = r.family === K.AF_INET ? 32 : 128;
  const dst = r.dstLen === 0 ? 'default' : r.dstLen === full ? r.dst : `${r.dst}/${r.dstLen}`;
  const out: Record<string, unknown> = {
    type: String(r.type),
    dst,
    gateway: r.gateway,
    dev: r.oif === undefined ? undefined : names.get(r.oif),
    table: String(routeTable(r)),
    protocol: String(r.protocol),
    scope: String(r.scope),
    metric: r.metric,
    prefsrc: r.prefsrc,
    flags: routeFlags(r.flags),
    mtu: r.metrics?.mtu,
    pref: r.pref === undefined ? undefined : PREF[r.pref],
  };
  if (r.multipath !== undefined) {
    out.nexthops = r.multipath.map((nh: RouteNexthop) => ({ gateway: nh.gateway, dev: names.get(nh.ifindex), weight: nh.hops + 1, flags: routeFlags(nh.flags) }));
  }
  return out;
}

function ipRouteFields(j: IpRoute): Record<string, unknown> {
  const out: Record<string, unknown> = {
    type: j.type,
    dst: j.dst,
    gateway: j.gateway,
    dev: j.dev,
    table: j.table,
    protocol: j.protocol,
    scope: j.scope,
    metric: j.metric,
    prefsrc: j.prefsrc,
    flags: j.flags,
    mtu: j.metrics?.find((m) => m.mtu !== undefined)?.mtu,
    pref: j.pref,
  };
  if (j.nexthops !== undefined) out.nexthops = j.nexthops.map((nh) => ({ gateway: nh.gateway, dev: nh.dev, weight: nh.weight, flags: nh.flags }));
  return out;
}

function routeKey(r: Record<string, unknown>, family: string): string {
  return `${family} ${String(r.table)} ${String(r.type)} ${String(r.dst)} ${String(r.metric ?? '-')}`;
}

// ---- neighbours and rules ----

const NUD_NAMES: Array<[number, string]> = [
  [K.NUD_INCOMPLETE, 'INCOMPLETE'],
  [K.NUD_REACHABLE, 'REACHABLE'],
  [K.NUD_STALE, 'STALE'],
  [K.NUD_DELAY, 'DELAY'],
  [K.NUD_PROBE, 'PROBE'],
  [K.NUD_FAILED, 'FAILED'],
  [K.NUD_NOARP, 'NOARP'],
  [K.NUD_PERMANENT, 'PERMANENT'],
];

function ourNeighAsIp(n: NeighbourMessage, names: Map<number, string>): Record<string, unknown> {
  const state = NUD_NAMES.filter(([bit]) => (n.state & bit) !== 0).map(([, name]) => name);
  return { dst: n.dst, dev: names.get(n.ifindex), lladdr: n.lladdr, state: state.length > 0 ? state : ['NONE'], router: (n.flags & K.NTF_ROUTER) !== 0 };
}

interface IpNeigh {
  dst: string;
  dev: string;
  lladdr?: string;
  state: string[];
  router?: null;
}

function ipNeighFields(j: IpNeigh): Record<string, unknown> {
  return { dst: j.dst, dev: j.dev, lladdr: j.lladdr, state: j.state, router: 'router' in j };
}

interface IpRule {
  priority: number;
  src: string;
  srclen?: number;
  dst?: string;
  dstlen?: number;
  iif?: string;
  fwmark?: string;
  fwmask?: string;
  table?: string;
  action?: string;
  protocol?: string;
}

function ourRuleAsIp(r: RuleMessage): Record<string, unknown> {
  const out: Record<string, unknown> = { priority: r.priority ?? 0, src: r.srcLen > 0 ? r.src : 'all' };
  if (r.srcLen > 0) out.srclen = r.srcLen;
  if (r.dstLen > 0) {
    out.dst = r.dst;
    out.dstlen = r.dstLen;
  }
  if (r.iifname !== undefined) out.iif = r.iifname;
  if (r.fwmark !== undefined) {
    out.fwmark = `0x${r.fwmark.toString(16)}`;
    if (r.fwmask !== undefined && r.fwmask !== 0xffffffff) out.fwmask = `0x${r.fwmask.toString(16)}`;
  }
  if (r.action === K.FR_ACT_TO_TBL) out.table = String(ruleTable(r));
  else out.action = String(r.action);
  if (r.protocol !== undefined && r.protocol !== 0 && r.protocol !== K.RTPROT_KERNEL) out.protocol = String(r.protocol);
  return out;
}

function ipRuleFields(j: IpRule): Record<string, unknown> {
  const { priority, src, srclen, dst, dstlen, iif, fwmark, fwmask, table, action, protocol } = j;
  return { priority, src, srclen, dst, dstlen, iif, fwmark, fwmask, table, action, protocol };
}

/** Drops undefined values so absent-vs-undefined does not matter in comparisons. */
function clean<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

describeKernel('oracle: decoded dumps agree with `ip -j -d`', () => {
  let ns: Netns;
  let rtnl: Rtnl;

  beforeAll(async () => {
    ns = await createNetns('oracle');
    for (const args of SETUP) await ns.ip(...args);
    // The veth pair and the bridge have carrier: wait for the kernel's IPv6 link-local addresses on
    // all three (DAD done, each after its own random delay), or a local fe80 route may appear
    // between our dump and ip's.
    await ns.settledLinkLocals('tk-veth0', 'tk-veth1', 'tk-br0');
    rtnl = await Rtnl.open({ netns: ns.name });
  });

  afterAll(async () => {
    rtnl?.close();
    await ns?.delete();
  });

  it('links: ifindex, name, mtu, flags, kind, tun info, master, peer... for every link', async () => {
    const [ours, theirs] = await Promise.all([rtnl.links(), ns.ipJson<IpLink[]>('-d', 'link', 'show')]);
    expect(ours.map((l) => l.ifindex).sort()).toEqual(theirs.map((l) => l.ifindex).sort());
    const byIndex = new Map(ours.map((l) => [l.ifindex, l]));
    for (const j of theirs) {
      const l = byIndex.get(j.ifindex)!;
      expect(clean(ourLinkAsIp(l, byIndex))).toEqual(clean(ipLinkFields(j)));
    }
    // The set-up really has what the comparison claims to cover.
    const kinds = ours.map((l) => l.linkInfo?.kind);
    expect(kinds).toEqual(expect.arrayContaining(['tun', 'veth', 'bridge']));
    expect(ours.find((l) => l.ifname === 'tk-tap0')!.linkInfo!.tun).toMatchObject({ type: K.TUN_TYPE_TAP, owner: 4242, group: 4343, multiQueue: true });
  });

  it('links filtered by kind, by ifindex and by master agree with `ip link show type|dev|master`', async () => {
    const tuns = await rtnl.links({ kind: 'tun' });
    const ipTuns = await ns.ipJson<IpLink[]>('link', 'show', 'type', 'tun');
    expect(tuns.map((l) => l.ifname).sort()).toEqual(ipTuns.map((l) => l.ifname).sort());
    expect(tuns.length).toBe(3);

    const [veth0] = await ns.ipJson<IpLink[]>('link', 'show', 'dev', 'tk-veth0');
    const one = await rtnl.links({ ifindex: veth0!.ifindex });
    expect(one.map((l) => l.ifname)).toEqual(['tk-veth0']);
    expect((await rtnl.links({ ifname: 'tk-br0' })).map((l) => l.linkInfo?.kind)).toEqual(['bridge']);
    expect(await rtnl.links({ ifname: 'tk-nope0' })).toEqual([]);

    const [br] = await ns.ipJson<IpLink[]>('link', 'show', 'dev', 'tk-br0');
    const ports = await rtnl.links({ master: br!.ifindex });
    const ipPorts = await ns.ipJson<IpLink[]>('link', 'show', 'master', 'tk-br0');
    expect(ports.map((l) => l.ifname)).toEqual(ipPorts.map((l) => l.ifname));
    expect(ports.map((l) => l.ifname)).toEqual(['tk-veth1']);
  });

  it('addresses: family, address, peer, prefix, scope, label, broadcast, metric, flags', async () => {
    const [ours, theirs] = await Promise.all([rtnl.addresses(), ns.ipJson<Array<{ ifindex: number; addr_info: IpAddr[] }>>('-d', '-N', 'addr', 'show')]);
    const expected = theirs.flatMap((l) => l.addr_info.map((a) => clean(ipAddrFields(l.ifindex, a))));
    const got = ours.map((a) => clean(ourAddrAsIp(a)));
    const key = (a: Record<string, unknown>) => `${String(a.ifindex)} ${String(a.family)} ${String(a.local)}/${String(a.prefixlen)}`;
    expect(new Map(got.map((a) => [key(a), a]))).toEqual(new Map(expected.map((a) => [key(a), a])));
    expect(got.length).toBe(expected.length);
    expect(got.some((a) => String(a.local).startsWith('fe80::'))).toBe(true);

    // Filtered by family and by link, as the kernel honours them.
    const v6 = await rtnl.addresses({ family: 6 });
    expect(v6.length).toBe(expected.filter((a) => a.family === 'inet6').length);
    const [tun] = await ns.ipJson<IpLink[]>('link', 'show', 'dev', 'tk-tun0');
    const onTun = await rtnl.addresses({ ifindex: tun!.ifindex, family: 4 });
    expect(onTun.map((a) => [a.local, a.address, a.prefixLen])).toEqual([['198.51.100.1', '198.51.100.2', 32]]);
  });

  for (const family of ['inet', 'inet6'] as const) {
    it(`${family} routes of every table: dst, gateway, dev, table, protocol, type, metric, prefsrc, mtu, nexthops`, async () => {
      const [ours, links, theirs] = await Promise.all([
        rtnl.routes({ family: family === 'inet' ? 4 : 6 }),
        rtnl.links(),
        ns.ipJson<IpRoute[]>(family === 'inet' ? '-4' : '-6', '-d', '-N', 'route', 'show', 'table', 'all'),
      ]);
      const names = new Map(links.map((l) => [l.ifindex, l.ifname!]));
      const got = new Map(ours.map((r) => {
        const v = clean(ourRouteAsIp(r, names));
        return [routeKey(v, family), v];
      }));
      const want = new Map(theirs.map((j) => {
        const v = clean(ipRouteFields(j));
        return [routeKey(v, family), v];
      }));
      // IPv6 routes with an expiry carry a countdown only ip prints; nothing else is left out.
      expect(got).toEqual(want);
      expect(ours.length).toBe(theirs.length);
    });
  }

  it('neighbours: address, link, lladdr, state, router flag', async () => {
    // The kernel adds neighbours of its own while the namespace settles (the bridge's router
    // solicitations make an ff02::2 entry): compare our dump with an `ip` listing taken before and
    // after it that saw the same table, so both describe one state. The limit is a hang guard.
    const links = await rtnl.links();
    const listing = () => ns.ipJson<IpNeigh[]>('neigh', 'show', 'nud', 'all');
    const guard = Date.now() + 30_000;
    let ours: Awaited<ReturnType<typeof rtnl.neighbours>>;
    let theirs: IpNeigh[];
    for (;;) {
      const before = await listing();
      ours = await rtnl.neighbours();
      theirs = await listing();
      if (JSON.stringify(before) === JSON.stringify(theirs)) break;
      if (Date.now() > guard) throw new Error('the neighbour table never held still for one dump');
    }
    const names = new Map(links.map((l) => [l.ifindex, l.ifname!]));
    const key = (n: Record<string, unknown>) => `${String(n.dev)} ${String(n.dst)}`;
    const got = new Map(ours.map((n) => clean(ourNeighAsIp(n, names))).map((n) => [key(n), n]));
    const want = new Map(theirs.map((j) => clean(ipNeighFields(j))).map((n) => [key(n), n]));
    expect(got).toEqual(want);
    expect(got.get('tk-veth0 192.0.2.2')).toMatchObject({ state: ['PERMANENT'] });
    expect(got.get('tk-veth0 2001:db8:1::2')).toMatchObject({ router: true });
    const [veth0] = await ns.ipJson<IpLink[]>('link', 'show', 'dev', 'tk-veth0');
    expect((await rtnl.neighbours({ family: 4, ifindex: veth0!.ifindex })).map((n) => n.dst).sort()).toEqual(['192.0.2.2', '192.0.2.3']);
  });

  it('rules: priority, selectors, table (above 255 too), action, protocol', async () => {
    const [ours, v4, v6] = await Promise.all([rtnl.rules(), ns.ipJson<IpRule[]>('-4', '-N', 'rule', 'show'), ns.ipJson<IpRule[]>('-6', '-N', 'rule', 'show')]);
    const fam = (f: number) => (f === K.AF_INET ? v4 : f === K.AF_INET6 ? v6 : undefined);
    for (const family of [K.AF_INET, K.AF_INET6]) {
      const got = ours.filter((r) => r.family === family).map((r) => clean(ourRuleAsIp(r)));
      expect(got).toEqual(fam(family)!.map((j) => clean(ipRuleFields(j))));
    }
    expect((await rtnl.rules({ family: 4, table: 70000 })).map((r) => r.priority)).toEqual([1001]);
    expect((await rtnl.rules({ protocol: 116 })).map((r) => r.priority)).toEqual([1000]);
  });

  it('the set-up covers tables above 255, several protocols, multipath, blackhole/unreachable/prohibit', async () => {
    const routes = await rtnl.routes();
    const tables = new Set(routes.map(routeTable));
    for (const t of [100, 300, 500, 1000, 70000, 100000, 254, 255]) expect(tables.has(t)).toBe(true);
    expect(routes.filter((r) => r.multipath !== undefined).length).toBe(2);
    const types = new Set(routes.map((r) => r.type));
    for (const t of [K.RTN_UNICAST, K.RTN_LOCAL, K.RTN_BROADCAST, K.RTN_MULTICAST, K.RTN_BLACKHOLE, K.RTN_UNREACHABLE, K.RTN_PROHIBIT]) expect(types.has(t)).toBe(true);
    for (const p of [2, 3, 4, 116, 200]) expect(routes.some((r) => r.protocol === p)).toBe(true);
  });

  it('filtered route dumps (table, protocol, oif, family) agree with `ip route show table|proto|dev`', async () => {
    const t1000 = await rtnl.routes({ table: 1000 });
    const ip1000 = await ns.ipJson<IpRoute[]>('-4', 'route', 'show', 'table', '1000');
    expect(t1000.map((r) => `${r.dst}/${r.dstLen}`).sort()).toEqual(ip1000.map((r) => r.dst).sort());

    const owned = await rtnl.routes({ protocol: 116 });
    const ipOwned = [
      ...(await ns.ipJson<IpRoute[]>('-4', '-N', 'route', 'show', 'table', 'all', 'proto', '116')),
      ...(await ns.ipJson<IpRoute[]>('-6', '-N', 'route', 'show', 'table', 'all', 'proto', '116')),
    ];
    expect(owned.length).toBe(ipOwned.length);
    expect(owned.every((r) => r.protocol === 116)).toBe(true);

    const ownedIn100 = await rtnl.routes({ table: 100, protocol: 116, family: 4 });
    expect(ownedIn100.map((r) => (r.dstLen === 0 ? 'default' : `${r.dst}/${r.dstLen}`)).sort()).toEqual(['198.51.100.0/24', 'default']);

    const [tun] = await ns.ipJson<IpLink[]>('link', 'show', 'dev', 'tk-tun0');
    const viaTun = await rtnl.routes({ oif: tun!.ifindex, family: 4 });
    const ipViaTun = await ns.ipJson<IpRoute[]>('-4', 'route', 'show', 'table', 'all', 'dev', 'tk-tun0');
    expect(viaTun.length).toBe(ipViaTun.length);
    expect(viaTun.every((r) => r.oif === tun!.ifindex)).toBe(true);

    // A table that does not exist is empty, not an error.
    expect(await rtnl.routes({ table: 4242, family: 4 })).toEqual([]);
    expect(await rtnl.routes({ table: 4242 })).toEqual([]);
  });
});

describe('oracle helpers', () => {
  it('emulate iproute2 flag printing', () => {
    const lo = { flags: K.IFF_UP | K.IFF_LOOPBACK | K.IFF_RUNNING | K.IFF_LOWER_UP } as LinkMessage;
    expect(linkFlags(lo, new Map())).toEqual(['LOOPBACK', 'UP', 'LOWER_UP']);
    expect(routeFlags(K.RTNH_F_ONLINK | K.RTNH_F_LINKDOWN)).toEqual(['onlink', 'linkdown']);
  });
});
