/**
 * What `tunkeeper state` shows of a namespace: every link, address and route, each marked owned
 * exactly when plan would manage it. The messages are read as observe reads them
 * (controller/observe/convert.ts) and ownership is asked of controller/model/ownership.ts, the
 * one rule plan follows too; this file only lays the answer out. The JSON shape built here is the
 * `state --json` contract.
 */
import type { AddressMessage, LinkMessage, RouteMessage } from '../../netlink/index.js';
import { DEFAULT_POLICY } from '../model/desired.js';
import type { ObservedLink, ObservedRoute } from '../model/observed.js';
import { ownedObjects } from '../model/ownership.js';
import { toObservedAddress, toObservedLink, toObservedRoute } from '../observe/convert.js';

export const DEFAULT_ROUTE_PROTOCOL = DEFAULT_POLICY.routeProtocol;

export interface LinkView {
  ifindex: number;
  ifname: string;
  /** IFLA_INFO_KIND ('tun', 'veth', 'bridge', ...), null for links without one (lo, physical). */
  kind: string | null;
  mtu: number | null;
  /** Administratively up (IFF_UP). */
  up: boolean;
  /** Operational state as `ip` names it (UP, DOWN, UNKNOWN, ...). */
  operstate: string;
  txqlen: number | null;
  address: string | null;
  alias: string | null;
  /** tun/tap details, for kind 'tun'. */
  tun?: { mode: 'tun' | 'tap'; owner: number | null; group: number | null; multiQueue: boolean; vnetHdr: boolean; packetInfo: boolean; persist: boolean };
  owned: boolean;
}

export interface AddressView {
  ifindex: number;
  ifname: string | null;
  family: 'inet' | 'inet6';
  address: string;
  prefixLength: number;
  peer?: string;
  scope: string;
  /** IFA_PROTO, null when the kernel reports none. */
  proto: number | null;
  owned: boolean;
}

export interface NexthopView {
  gateway?: string;
  ifindex: number;
  dev: string | null;
  weight: number;
}

export interface RouteView {
  /** CIDR, or 'default'. */
  dst: string;
  family: 'inet' | 'inet6' | string;
  table: number;
  protocol: number;
  type: string;
  scope: string;
  gateway?: string;
  ifindex?: number;
  dev?: string | null;
  metric?: number;
  prefsrc?: string;
  mtu?: number;
  nexthops?: NexthopView[];
  owned: boolean;
}

export interface StateView {
  netns: string | null;
  routeProtocol: number;
  links: LinkView[];
  addresses: AddressView[];
  routes: RouteView[];
}

/** IF_OPER_* (RFC 2863) as `ip` names them. */
const OPERSTATES = ['UNKNOWN', 'NOTPRESENT', 'DOWN', 'LOWERLAYERDOWN', 'TESTING', 'DORMANT', 'UP'];

const familyName = (family: 4 | 6): 'inet' | 'inet6' => (family === 4 ? 'inet' : 'inet6');

/** `ip` writes RT_SCOPE_UNIVERSE as "global"; the other scope names are the same. */
const ipScope = (scope: string): string => (scope === 'universe' ? 'global' : scope);

/** The destination as `ip` writes it in commands: CIDR, or 'default' for a /0. */
const routeDst = (r: ObservedRoute): string => (r.dstLength === 0 ? 'default' : `${r.dst}/${r.dstLength}`);

/** A decoded message with what observe makes of it (messages observe skips are left out, as plan never sees them). */
interface Read<M, O> {
  message: M;
  observed: O;
}

function read<M, O>(messages: readonly M[], convert: (m: M) => O | undefined): Array<Read<M, O>> {
  return messages.flatMap((message) => {
    const observed = convert(message);
    return observed === undefined ? [] : [{ message, observed }];
  });
}

function linkView({ message: m, observed: l }: Read<LinkMessage, ObservedLink>, owned: boolean): LinkView {
  const v: LinkView = {
    ifindex: l.ifindex,
    ifname: l.ifname,
    kind: l.kind ?? null,
    mtu: l.mtu,
    up: l.up,
    operstate: m.operstate === undefined ? 'UNKNOWN' : (OPERSTATES[m.operstate] ?? String(m.operstate)),
    txqlen: l.txQueueLength,
    address: l.macAddress ?? null,
    alias: l.alias ?? null,
    owned,
  };
  const t = l.tun;
  if (t !== undefined) {
    v.tun = { mode: t.mode, owner: t.owner ?? null, group: t.group ?? null, multiQueue: t.multiQueue, vnetHdr: t.vnetHdr, packetInfo: t.packetInfo, persist: t.persist };
  }
  return v;
}

/** Builds the `state` view from three dumps of one namespace. */
export function stateView(
  dumps: { links: LinkMessage[]; addresses: AddressMessage[]; routes: RouteMessage[] },
  opts: { routeProtocol?: number; netns?: string } = {},
): StateView {
  const routeProtocol = opts.routeProtocol ?? DEFAULT_ROUTE_PROTOCOL;
  const links = read(dumps.links, toObservedLink);
  const addresses = read(dumps.addresses, toObservedAddress);
  const routes = read(dumps.routes, toObservedRoute);
  const owned = ownedObjects(
    { links: links.map((l) => l.observed), addresses: addresses.map((a) => a.observed), routes: routes.map((r) => r.observed) },
    { routeProtocol },
  );
  const names = new Map(links.map((l) => [l.observed.ifindex, l.observed.ifname]));
  return {
    netns: opts.netns ?? null,
    routeProtocol,
    links: links.map((l) => linkView(l, owned.links.has(l.observed))),
    addresses: addresses.map(({ observed: a }): AddressView => {
      const v: AddressView = {
        ifindex: a.ifindex,
        ifname: names.get(a.ifindex) ?? null,
        family: familyName(a.family),
        address: a.address,
        prefixLength: a.prefixLength,
        scope: ipScope(a.scope),
        proto: a.proto ?? null,
        owned: owned.addresses.has(a),
      };
      if (a.peer !== undefined) v.peer = a.peer;
      return v;
    }),
    routes: routes.map(({ message: m, observed: r }): RouteView => {
      const v: RouteView = {
        dst: routeDst(r),
        family: familyName(r.family),
        table: r.table,
        protocol: r.protocol,
        type: r.type,
        scope: ipScope(r.scope),
        owned: owned.routes.has(r),
      };
      if (r.gateway !== undefined) v.gateway = r.gateway;
      if (r.oif !== undefined) {
        v.ifindex = r.oif;
        v.dev = names.get(r.oif) ?? null;
      }
      if (r.metric !== undefined) v.metric = r.metric;
      if (r.prefsrc !== undefined) v.prefsrc = r.prefsrc;
      if (r.mtu !== undefined) v.mtu = r.mtu;
      // Multipath is display only: plan neither declares nor reads nexthops.
      if (m.multipath !== undefined) {
        v.nexthops = m.multipath.map((nh) => {
          const n: NexthopView = { ifindex: nh.ifindex, dev: names.get(nh.ifindex) ?? null, weight: nh.hops + 1 };
          if (nh.gateway !== undefined) n.gateway = nh.gateway;
          return n;
        });
      }
      return v;
    }),
  };
}
