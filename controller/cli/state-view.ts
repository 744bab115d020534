/**
 * What tunkeeper owns in a namespace, as `tunkeeper state` shows it (DESIGN.md, promise 2):
 *   - a link whose ifalias starts with `tunkeeper:`;
 *   - a route whose rtm_protocol is tunkeeper's protocol (default 116);
 *   - an address on an owned link, except a kernel-generated IPv6 link-local one; or any
 *     address whose IFA_PROTO is tunkeeper's protocol.
 * Pure functions over decoded dumps; the JSON shape built here is the `state --json` contract.
 */
import type { AddressMessage, LinkMessage, RouteMessage } from '../../netlink/index.js';
import { routeTable } from '../../netlink/index.js';
import { AF_INET, AF_INET6 } from '../../netlink/constants/rtnetlink.js';
import { IFAPROT_KERNEL_LL } from '../../netlink/constants/address.js';
import { IFF_UP, TUN_TYPE_TAP } from '../../netlink/constants/link.js';

export const OWNER_ALIAS_PREFIX = 'tunkeeper:';
export const DEFAULT_ROUTE_PROTOCOL = 116;

export function isOwnedLink(link: Pick<LinkMessage, 'ifalias'>): boolean {
  return link.ifalias !== undefined && link.ifalias.startsWith(OWNER_ALIAS_PREFIX);
}

export function isOwnedRoute(route: Pick<RouteMessage, 'protocol'>, routeProtocol = DEFAULT_ROUTE_PROTOCOL): boolean {
  return route.protocol === routeProtocol;
}

/**
 * An IPv6 link-local address the kernel made itself. Kernels since 6.1 say so (IFA_PROTO =
 * IFAPROT_KERNEL_LL); older ones say nothing, so any fe80::/10 address without a protocol counts
 * — erring towards "not ours", which can only leave an address alone, never remove a foreign one.
 */
export function isKernelLinkLocal(a: Pick<AddressMessage, 'family' | 'address' | 'local' | 'proto'>): boolean {
  if (a.family !== AF_INET6) return false;
  if (a.proto === IFAPROT_KERNEL_LL) return true;
  const text = (a.local ?? a.address ?? '').toLowerCase();
  return a.proto === undefined && /^fe[89ab][0-9a-f]:/.test(text);
}

export function isOwnedAddress(
  a: Pick<AddressMessage, 'family' | 'address' | 'local' | 'proto' | 'ifindex'>,
  ownedIfindexes: ReadonlySet<number>,
  routeProtocol = DEFAULT_ROUTE_PROTOCOL,
): boolean {
  if (a.proto === routeProtocol) return true;
  return ownedIfindexes.has(a.ifindex) && !isKernelLinkLocal(a);
}

// ---- the state view (`tunkeeper state --json`) ----

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

const OPERSTATES = ['UNKNOWN', 'NOTPRESENT', 'DOWN', 'LOWERLAYERDOWN', 'TESTING', 'DORMANT', 'UP'];
const SCOPES: Record<number, string> = { 0: 'global', 200: 'site', 253: 'link', 254: 'host', 255: 'nowhere' };
const ROUTE_TYPES = ['unspec', 'unicast', 'local', 'broadcast', 'anycast', 'multicast', 'blackhole', 'unreachable', 'prohibit', 'throw', 'nat', 'xresolve'];

function familyName(f: number): string {
  return f === AF_INET ? 'inet' : f === AF_INET6 ? 'inet6' : `family-${f}`;
}

export function scopeName(scope: number): string {
  return SCOPES[scope] ?? String(scope);
}

export function routeTypeName(type: number): string {
  return ROUTE_TYPES[type] ?? String(type);
}

/** The destination as `ip` writes it in commands: CIDR, or 'default' for a /0. */
export function routeDst(r: Pick<RouteMessage, 'dst' | 'dstLen' | 'family'>): string {
  if (r.dstLen === 0) return 'default';
  return `${r.dst ?? (r.family === AF_INET6 ? '::' : '0.0.0.0')}/${r.dstLen}`;
}

export function linkView(l: LinkMessage): LinkView {
  const v: LinkView = {
    ifindex: l.ifindex,
    ifname: l.ifname ?? `if${l.ifindex}`,
    kind: l.linkInfo?.kind ?? null,
    mtu: l.mtu ?? null,
    up: (l.flags & IFF_UP) !== 0,
    operstate: l.operstate === undefined ? 'UNKNOWN' : (OPERSTATES[l.operstate] ?? String(l.operstate)),
    txqlen: l.txqlen ?? null,
    address: l.address ?? null,
    alias: l.ifalias ?? null,
    owned: isOwnedLink(l),
  };
  const t = l.linkInfo?.tun;
  if (l.linkInfo?.kind === 'tun' && t !== undefined) {
    v.tun = {
      mode: t.type === TUN_TYPE_TAP ? 'tap' : 'tun',
      owner: t.owner ?? null,
      group: t.group ?? null,
      multiQueue: t.multiQueue === true,
      vnetHdr: t.vnetHdr === true,
      packetInfo: t.pi === true,
      persist: t.persist === true,
    };
  }
  return v;
}

/** Builds the `state` view from three dumps of one namespace. */
export function stateView(
  dumps: { links: LinkMessage[]; addresses: AddressMessage[]; routes: RouteMessage[] },
  opts: { routeProtocol?: number; netns?: string } = {},
): StateView {
  const routeProtocol = opts.routeProtocol ?? DEFAULT_ROUTE_PROTOCOL;
  const names = new Map<number, string>();
  const owned = new Set<number>();
  const links = dumps.links.map((l) => {
    const v = linkView(l);
    names.set(v.ifindex, v.ifname);
    if (v.owned) owned.add(v.ifindex);
    return v;
  });
  const addresses = dumps.addresses.map((a): AddressView => {
    const local = a.local ?? a.address ?? '';
    const v: AddressView = {
      ifindex: a.ifindex,
      ifname: names.get(a.ifindex) ?? null,
      family: a.family === AF_INET6 ? 'inet6' : 'inet',
      address: local,
      prefixLength: a.prefixLen,
      scope: scopeName(a.scope),
      proto: a.proto ?? null,
      owned: isOwnedAddress(a, owned, routeProtocol),
    };
    if (a.local !== undefined && a.address !== undefined && a.address !== a.local) v.peer = a.address;
    return v;
  });
  const routes = dumps.routes.map((r): RouteView => {
    const v: RouteView = {
      dst: routeDst(r),
      family: familyName(r.family),
      table: routeTable(r),
      protocol: r.protocol,
      type: routeTypeName(r.type),
      scope: scopeName(r.scope),
      owned: isOwnedRoute(r, routeProtocol),
    };
    if (r.gateway !== undefined) v.gateway = r.gateway;
    if (r.oif !== undefined) {
      v.ifindex = r.oif;
      v.dev = names.get(r.oif) ?? null;
    }
    if (r.metric !== undefined) v.metric = r.metric;
    if (r.prefsrc !== undefined) v.prefsrc = r.prefsrc;
    if (r.metrics?.mtu !== undefined) v.mtu = r.metrics.mtu;
    if (r.multipath !== undefined) {
      v.nexthops = r.multipath.map((nh) => {
        const n: NexthopView = { ifindex: nh.ifindex, dev: names.get(nh.ifindex) ?? null, weight: nh.hops + 1 };
        if (nh.gateway !== undefined) n.gateway = nh.gateway;
        return n;
      });
    }
    return v;
  });
  return { netns: opts.netns ?? null, routeProtocol, links, addresses, routes };
}
