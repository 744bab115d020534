/**
 * The decoder against an independent oracle: `ip -j` output recorded from the same kernel state
 * as each fixture. For every object ip prints, the codec must have decoded the same values —
 * this does not depend on the pinned *.expected.json files, which the codec itself produced.
 */
import { describe, expect, it } from '@jest/globals';
import {
  addressFlags,
  decodeMessages,
  routeTable,
  ruleTable,
  type AddressMessage,
  type LinkMessage,
  type MessageBodies,
  type MessageKind,
  type NeighbourMessage,
  type RouteMessage,
  type RuleMessage,
} from '../../netlink/codec/index.js';
import * as C from '../../netlink/constants/index.js';
import { hexBuffers, loadFixture } from '../fixtures/netlink/fixtures.js';

type Json = Record<string, unknown>;

function bodies<K extends MessageKind>(name: string, kind: K): MessageBodies[K][] {
  return hexBuffers(loadFixture(name).datagrams)
    .flatMap((d) => decodeMessages(d))
    .filter((m) => m.kind === kind)
    .map((m) => m.body as MessageBodies[K]);
}
const oracle = (name: string): Json[] => loadFixture(name).ip as Json[];

// Names for ifindexes, from `ip -j link show` of the same capture.
const ipLinks = oracle('links');
const nameOf = new Map<number, string>(ipLinks.map((l) => [l.ifindex as number, l.ifname as string]));

/** JSON with object keys sorted at every level. */
function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Json;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stable(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}
/** Sorted JSON lines, so two lists of views compare as multisets with a readable diff. */
const canon = (views: Json[]): string[] => views.map(stable).sort();
function pick(o: Json, keys: readonly string[]): Json {
  const out: Json = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

const FLAG_NAMES: [number, string][] = [
  [C.IFF_LOOPBACK, 'LOOPBACK'],
  [C.IFF_BROADCAST, 'BROADCAST'],
  [C.IFF_POINTOPOINT, 'POINTOPOINT'],
  [C.IFF_MULTICAST, 'MULTICAST'],
  [C.IFF_NOARP, 'NOARP'],
  [C.IFF_ALLMULTI, 'ALLMULTI'],
  [C.IFF_PROMISC, 'PROMISC'],
  [C.IFF_MASTER, 'MASTER'],
  [C.IFF_SLAVE, 'SLAVE'],
  [C.IFF_UP, 'UP'],
  [C.IFF_LOWER_UP, 'LOWER_UP'],
  [C.IFF_DORMANT, 'DORMANT'],
];
const OPERSTATES = ['UNKNOWN', 'NOTPRESENT', 'DOWN', 'LOWERLAYERDOWN', 'TESTING', 'DORMANT', 'UP'];

function linkFlags(l: LinkMessage): string[] {
  const names = FLAG_NAMES.filter(([bit]) => (l.flags & bit) !== 0).map(([, n]) => n);
  if ((l.flags & C.IFF_UP) !== 0 && (l.flags & C.IFF_RUNNING) === 0) names.push('NO-CARRIER');
  return names.sort();
}

function checkLinks(name: string): void {
  const decoded = bodies(name, 'link');
  const ip = oracle(name);
  expect(decoded.length).toBe(ip.length);
  for (const want of ip) {
    const l = decoded.find((d) => d.ifindex === want.ifindex);
    expect(l).toBeDefined();
    if (l === undefined) continue;
    const got: Json = {
      ifindex: l.ifindex,
      ifname: l.ifname,
      mtu: l.mtu,
      min_mtu: l.minMtu,
      max_mtu: l.maxMtu,
      txqlen: l.txqlen,
      qdisc: l.qdisc,
      operstate: OPERSTATES[l.operstate ?? 0],
      linkmode: l.linkmode === 0 ? 'DEFAULT' : l.linkmode,
      group: l.group === 0 ? 'default' : l.group,
      promiscuity: l.promiscuity,
      allmulti: l.allmulti,
      num_tx_queues: l.numTxQueues,
      num_rx_queues: l.numRxQueues,
      gso_max_size: l.gsoMaxSize,
      gso_max_segs: l.gsoMaxSegs,
      tso_max_size: l.tsoMaxSize,
      tso_max_segs: l.tsoMaxSegs,
      gro_max_size: l.groMaxSize,
      address: l.address,
      broadcast: l.broadcast,
      ifalias: l.ifalias,
      master: l.master === undefined ? undefined : nameOf.get(l.master),
      link: l.link === undefined || l.link === l.ifindex ? undefined : nameOf.get(l.link),
    };
    const keys = Object.keys(got).filter((k) => want[k] !== undefined || got[k] !== undefined);
    // ip omits a link's address when the device has none and prints no qdisc-less fields.
    expect(pick(got, keys)).toEqual(pick(want, keys));
    expect(linkFlags(l)).toEqual([...(want.flags as string[])].sort());

    const info = want.linkinfo as Json | undefined;
    expect(l.linkInfo?.kind).toBe(info?.info_kind);
    expect(l.linkInfo?.slaveKind).toBe(info?.info_slave_kind);
    if (info?.info_kind === 'tun') {
      const t = l.linkInfo!.tun!;
      const data = info.info_data as Json;
      expect({
        type: t.type === C.TUN_TYPE_TAP ? 'tap' : 'tun',
        pi: t.pi,
        vnet_hdr: t.vnetHdr,
        multi_queue: t.multiQueue,
        persist: t.persist,
        numqueues: t.numQueues,
        numdisabled: t.numDisabledQueues,
        user: t.owner,
        group: t.group,
      }).toEqual(pick(data, ['type', 'pi', 'vnet_hdr', 'multi_queue', 'persist', 'numqueues', 'numdisabled', 'user', 'group']));
    } else if (info?.info_data !== undefined) {
      // bridge data stays raw, one level deep: present and non-empty
      expect(l.linkInfo?.data?.length).toBeGreaterThan(0);
    }
  }
}

describe('links against `ip -j -d link show`', () => {
  it('every link of the full dump', () => checkLinks('links'));
  it('the kind-filtered dump (tun and tap)', () => checkLinks('links-kind-tun'));
  it('the single GETLINK reply', () => checkLinks('link-get'));
  it('the tap device carries every tun attribute asked for at creation', () => {
    const tap = bodies('links', 'link').find((l) => l.ifname === 'tk-tap0')!;
    expect(tap.linkInfo?.tun).toMatchObject({
      type: C.TUN_TYPE_TAP,
      owner: 4321,
      group: 4321,
      pi: true,
      vnetHdr: true,
      multiQueue: true,
      persist: true,
    });
    const tun = bodies('links', 'link').find((l) => l.ifname === 'tk-tun0')!;
    expect(tun).toMatchObject({ mtu: 1420, txqlen: 500, ifalias: 'tunkeeper:edge', linkType: C.ARPHRD_NONE });
    expect(tun.address).toBeUndefined();
  });
});

const SCOPES: Record<number, string> = { 0: 'global', 200: 'site', 253: 'link', 254: 'host' };

function addressView(a: AddressMessage): Json {
  const flags = addressFlags(a);
  const local = a.local ?? a.address;
  const v: Json = {
    ifindex: a.ifindex,
    family: a.family === C.AF_INET ? 'inet' : 'inet6',
    local,
    prefixlen: a.prefixLen,
    scope: SCOPES[a.scope] ?? a.scope,
    label: a.label,
    broadcast: a.broadcast,
    metric: a.rtPriority,
    address: a.local !== undefined && a.address !== undefined && a.address !== a.local ? a.address : undefined,
  };
  if ((flags & C.IFA_F_PERMANENT) === 0) v.dynamic = true;
  if (flags & C.IFA_F_NODAD) v.nodad = true;
  if (flags & C.IFA_F_NOPREFIXROUTE) v.noprefixroute = true;
  if (flags & C.IFA_F_TENTATIVE) v.tentative = true;
  if (flags & C.IFA_F_SECONDARY) v.secondary = true;
  return pick(v, Object.keys(v));
}

describe('addresses against `ip -j addr show`', () => {
  for (const name of ['addresses', 'addresses-filtered']) {
    it(name, () => {
      const want = oracle(name).flatMap((l) =>
        (l.addr_info as Json[]).map((a) => {
          const { valid_life_time: _v, preferred_life_time: _p, ...rest } = a;
          return { ifindex: l.ifindex, ...rest };
        }),
      );
      const decoded = bodies(name, 'address');
      expect(canon(decoded.map(addressView))).toEqual(canon(want));
      // Lifetimes tick down between the dump and `ip`: allow two seconds.
      for (const a of oracle(name).flatMap((l) => (l.addr_info as Json[]).map((x): Json => ({ ifindex: l.ifindex, ...x })))) {
        const d = decoded.find((x) => x.ifindex === a.ifindex && (x.local ?? x.address) === a.local)!;
        expect(Math.abs(d.cacheInfo!.valid - (a.valid_life_time as number))).toBeLessThanOrEqual(2);
        expect(Math.abs(d.cacheInfo!.preferred - (a.preferred_life_time as number))).toBeLessThanOrEqual(2);
      }
    });
  }
  it('carries IFA_PROTO, IFA_FLAGS and cache info', () => {
    const a = bodies('addresses', 'address').find((x) => x.address === '2001:db8:4::1')!;
    expect(a.proto).toBe(116);
    expect(addressFlags(a) & C.IFA_F_NODAD).toBe(C.IFA_F_NODAD);
    expect(a.cacheInfo?.valid).toBe(C.INFINITY_LIFE_TIME);
    const ll = bodies('addresses', 'address').find((x) => x.address?.startsWith('fe80:'))!;
    expect(ll.proto).toBe(C.IFAPROT_KERNEL_LL);
  });
});

const PREFS: Record<number, string> = { 0: 'medium', 1: 'high', 3: 'low' };
const NH_FLAGS: [number, string][] = [
  [C.RTNH_F_DEAD, 'dead'],
  [C.RTNH_F_PERVASIVE, 'pervasive'],
  [C.RTNH_F_ONLINK, 'onlink'],
  [C.RTNH_F_OFFLOAD, 'offload'],
  [C.RTNH_F_LINKDOWN, 'linkdown'],
  [C.RTNH_F_UNRESOLVED, 'unresolved'],
  [C.RTNH_F_TRAP, 'trap'],
];
const nhFlags = (flags: number): string[] => NH_FLAGS.filter(([b]) => (flags & b) !== 0).map(([, n]) => n);

function prefixText(addr: string | undefined, len: number, family: number): string {
  if (len === 0) return 'default';
  return len === (family === C.AF_INET ? 32 : 128) ? addr! : `${addr}/${len}`;
}

function routeView(r: RouteMessage): Json {
  const table = routeTable(r);
  const v: Json = {
    type: r.type === C.RTN_UNICAST ? undefined : String(r.type),
    dst: prefixText(r.dst, r.dstLen, r.family),
    gateway: r.gateway,
    via: r.via && { family: r.via.family === C.AF_INET6 ? 'inet6' : 'inet', host: r.via.address },
    nhid: r.nhId,
    dev: r.oif === undefined ? undefined : nameOf.get(r.oif),
    table: table === C.RT_TABLE_MAIN ? undefined : String(table),
    protocol: r.protocol === C.RTPROT_BOOT ? undefined : String(r.protocol),
    scope: r.scope === 0 ? undefined : String(r.scope),
    metric: r.metric,
    prefsrc: r.prefsrc,
    pref: r.pref === undefined ? undefined : PREFS[r.pref],
    metrics: r.metrics && [
      pick(
        { mtu: r.metrics.mtu, advmss: r.metrics.advmss, hoplimit: r.metrics.hoplimit, initcwnd: r.metrics.initcwnd },
        ['mtu', 'advmss', 'hoplimit', 'initcwnd'],
      ),
    ],
    nexthops: r.multipath?.map((nh) => ({ gateway: nh.gateway, dev: nameOf.get(nh.ifindex), weight: nh.hops + 1, flags: nhFlags(nh.flags) })),
    flags: nhFlags(r.flags),
  };
  return pick(v, Object.keys(v));
}

describe('routes against `ip -N -j route show`', () => {
  const noExpiry = (routes: Json[]): Json[] => routes.map(({ expires: _e, ...r }) => r);
  for (const name of ['routes-v4', 'routes-v6']) {
    it(name, () => {
      expect(canon(bodies(name, 'route').map(routeView))).toEqual(canon(noExpiry(oracle(name))));
    });
  }
  // `ip route show table T proto P` leaves out the fields it filtered on, and `dev D` does not
  // match multipath routes the kernel's RTA_OIF filter does match: take the unfiltered listing.
  it('routes-filtered (table 1000, protocol 116)', () => {
    const want = oracle('routes-v4').filter((r) => r.table === '1000' && r.protocol === '116');
    expect(want.length).toBeGreaterThan(0);
    expect(canon(bodies('routes-filtered', 'route').map(routeView))).toEqual(canon(noExpiry(want)));
  });
  it('routes-oif (table 100, oif tk-veth0)', () => {
    const viaVeth = (r: Json): boolean =>
      r.dev === 'tk-veth0' || ((r.nexthops as Json[] | undefined) ?? []).some((nh) => nh.dev === 'tk-veth0');
    const want = oracle('routes-v6').filter((r) => r.table === '100' && viaVeth(r));
    expect(want.length).toBeGreaterThan(0);
    expect(canon(bodies('routes-oif', 'route').map(routeView))).toEqual(canon(noExpiry(want)));
  });
  it('IPv6 expiry matches within two seconds (cacheinfo expires is in 1/100 s)', () => {
    const ip = oracle('routes-v6').filter((r) => r.expires !== undefined);
    expect(ip.length).toBeGreaterThan(0);
    for (const want of ip) {
      const r = bodies('routes-v6', 'route').find((x) => prefixText(x.dst, x.dstLen, x.family) === want.dst)!;
      expect(Math.abs(r.cacheInfo!.expires / 100 - (want.expires as number))).toBeLessThanOrEqual(2);
    }
  });
  it('keeps table ids above 255 in RTA_TABLE with RT_TABLE_COMPAT in the header', () => {
    const r = bodies('routes-v4', 'route').find((x) => x.dst === '198.18.0.0')!;
    expect([r.headerTable, r.table, r.type]).toEqual([C.RT_TABLE_COMPAT, 1000, C.RTN_BLACKHOLE]);
  });
});

function neighbourView(n: NeighbourMessage): Json {
  const states = [
    [C.NUD_INCOMPLETE, 'INCOMPLETE'],
    [C.NUD_REACHABLE, 'REACHABLE'],
    [C.NUD_STALE, 'STALE'],
    [C.NUD_DELAY, 'DELAY'],
    [C.NUD_PROBE, 'PROBE'],
    [C.NUD_FAILED, 'FAILED'],
    [C.NUD_NOARP, 'NOARP'],
    [C.NUD_PERMANENT, 'PERMANENT'],
  ] as const;
  return { dst: n.dst, lladdr: n.lladdr, state: states.filter(([b]) => (n.state & b) !== 0).map(([, s]) => s) };
}

describe('neighbours against `ip -j neigh show`', () => {
  it('the ARP and NDP entries ip shows (it hides NOARP ones)', () => {
    const decoded = bodies('neighbours', 'neighbour').filter(
      (n) => (n.family === C.AF_INET || n.family === C.AF_INET6) && (n.state & C.NUD_NOARP) === 0,
    );
    expect(canon(decoded.map(neighbourView))).toEqual(canon(oracle('neighbours')));
  });
});

function ruleView(r: RuleMessage): Json {
  const max = r.family === C.AF_INET ? 32 : 128;
  const v: Json = { priority: r.priority ?? 0 };
  if (r.flags & C.FIB_RULE_INVERT) v.not = null;
  v.src = r.srcLen ? r.src : 'all';
  if (r.srcLen && r.srcLen !== max) v.srclen = r.srcLen;
  if (r.dstLen) v.dst = r.dst;
  if (r.dstLen && r.dstLen !== max) v.dstlen = r.dstLen;
  if (r.fwmark || r.fwmask) v.fwmark = `0x${(r.fwmark ?? 0).toString(16)}`;
  if (r.fwmask !== undefined && r.fwmask !== 0xffffffff) v.fwmask = `0x${r.fwmask.toString(16)}`;
  if (r.iifname) v.iif = r.iifname;
  if (r.oifname) v.oif = r.oifname;
  if (r.uidRange) Object.assign(v, { uid_start: r.uidRange.start, uid_end: r.uidRange.end });
  if (r.ipProto) v.ipproto = `ipproto-${r.ipProto}`;
  for (const [key, range] of [
    ['sport', r.sportRange],
    ['dport', r.dportRange],
  ] as const) {
    if (range === undefined) continue;
    if (range.start === range.end) v[key] = range.start;
    else Object.assign(v, { [`${key}_start`]: range.start, [`${key}_end`]: range.end });
  }
  if (r.action === C.FR_ACT_TO_TBL) v.table = String(ruleTable(r));
  else if (r.action === C.FR_ACT_GOTO) v.goto = r.goto;
  else v.action = String(r.action);
  if (r.suppressPrefixlen !== undefined && r.suppressPrefixlen !== 0xffffffff) v.suppress_prefixlen = r.suppressPrefixlen;
  if (r.protocol !== undefined && r.protocol !== 0 && r.protocol !== C.RTPROT_KERNEL) v.protocol = String(r.protocol);
  return v;
}

describe('rules against `ip -N -j rule show`', () => {
  it('IPv4 and IPv6 rules', () => {
    const ip = loadFixture('rules').ip as { inet: Json[]; inet6: Json[] };
    const decoded = bodies('rules', 'rule');
    for (const [family, want] of [
      [C.AF_INET, ip.inet],
      [C.AF_INET6, ip.inet6],
    ] as const) {
      expect(canon(decoded.filter((r) => r.family === family).map(ruleView))).toEqual(canon(want));
    }
  });
});
