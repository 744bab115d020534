/**
 * Decoded rtnetlink messages → ObservedState (controller/model/observed.ts): plain data in the canonical
 * spelling plan compares. Pure; observe.ts runs the dumps.
 */
import type { AddressMessage, LinkMessage, RouteMessage, TunInfo } from '../../netlink/index.js';
import { addressFlags, constants, routeTable } from '../../netlink/index.js';
import type { IpFamily } from '../model/desired.js';
import type { AddressScope, ObservedAddress, ObservedLink, ObservedRoute, RouteScope, RouteType } from '../model/observed.js';

const ROUTE_TYPES: readonly RouteType[] = ['unspec', 'unicast', 'local', 'broadcast', 'anycast', 'multicast', 'blackhole', 'unreachable', 'prohibit', 'throw', 'nat', 'xresolve'];

/** rtm_type / RouteType, both ways (apply writes them back into delete requests). */
export function routeTypeName(type: number): RouteType {
  return ROUTE_TYPES[type] ?? 'unspec';
}
export function routeTypeNumber(type: RouteType): number {
  const n = ROUTE_TYPES.indexOf(type);
  return n < 0 ? 0 : n;
}

const SCOPES: ReadonlyArray<[number, RouteScope & AddressScope]> = [
  [0, 'universe'],
  [200, 'site'],
  [253, 'link'],
  [254, 'host'],
  [255, 'nowhere'],
];

/** RT_SCOPE_* → its name; a scope between the named ones reads as the next wider named one. */
export function scopeName(scope: number): RouteScope {
  for (const [n, name] of SCOPES) if (scope <= n) return name;
  return 'nowhere';
}
export function scopeNumber(scope: RouteScope | AddressScope): number {
  return SCOPES.find(([, name]) => name === scope)?.[0] ?? 0;
}

export function familyOf(af: number): IpFamily | undefined {
  return af === AF_INET ? 4 : af === AF_INET6 ? 6 : undefined;
}

const { AF_INET, AF_INET6, IFA_F_PERMANENT, IFA_F_SECONDARY, IFA_F_TENTATIVE, IFF_UP, RTNH_F_ONLINK, TUN_TYPE_TAP } = constants;

export function toObservedLink(m: LinkMessage): ObservedLink | undefined {
  return observedLinkOf(m, m.linkInfo?.kind, m.linkInfo?.tun);
}

/** The link fields an ObservedLink is made of: a decoded LinkMessage, or netlink's LinkFieldReader. */
export type LinkFieldsOf = Pick<LinkMessage, 'ifindex' | 'flags' | 'ifname' | 'mtu' | 'txqlen' | 'address' | 'ifalias'>;
export type TunFieldsOf = Pick<TunInfo, 'type' | 'owner' | 'group' | 'pi' | 'vnetHdr' | 'persist' | 'multiQueue'>;

/** An ObservedLink from its fields (shared by toObservedLink and the link dump's fast path, links.ts). */
export function observedLinkOf(m: LinkFieldsOf, kind: string | undefined, t: TunFieldsOf | undefined): ObservedLink | undefined {
  if (m.ifname === undefined) return undefined;
  const link: ObservedLink = {
    ifindex: m.ifindex,
    ifname: m.ifname,
    up: (m.flags & IFF_UP) !== 0,
    mtu: m.mtu ?? 0,
    txQueueLength: m.txqlen ?? 0,
  };
  if (kind !== undefined) link.kind = kind;
  if (m.address !== undefined && m.address !== '') link.macAddress = m.address.toLowerCase();
  if (m.ifalias !== undefined && m.ifalias !== '') link.alias = m.ifalias;
  if (kind === 'tun' && t !== undefined) {
    link.tun = {
      mode: t.type === TUN_TYPE_TAP ? 'tap' : 'tun',
      packetInfo: t.pi === true,
      vnetHdr: t.vnetHdr === true,
      multiQueue: t.multiQueue === true,
      persist: t.persist === true,
    };
    if (t.owner !== undefined) link.tun.owner = t.owner;
    if (t.group !== undefined) link.tun.group = t.group;
  }
  return link;
}

export function toObservedAddress(m: AddressMessage): ObservedAddress | undefined {
  const family = familyOf(m.family);
  if (family === undefined) return undefined;
  // IFA_LOCAL is ours and IFA_ADDRESS the peer when they differ; IPv6 without a peer sends
  // IFA_ADDRESS alone.
  const address = m.local ?? m.address;
  if (address === undefined) return undefined;
  const flags = addressFlags(m);
  const a: ObservedAddress = {
    ifindex: m.ifindex,
    family,
    address,
    prefixLength: m.prefixLen,
    scope: scopeName(m.scope),
    flags: {
      permanent: (flags & IFA_F_PERMANENT) !== 0,
      secondary: (flags & IFA_F_SECONDARY) !== 0,
      tentative: (flags & IFA_F_TENTATIVE) !== 0,
    },
  };
  if (m.local !== undefined && m.address !== undefined && m.address !== m.local) a.peer = m.address;
  if (m.proto !== undefined && m.proto !== 0) a.proto = m.proto;
  return a;
}

export function toObservedRoute(m: RouteMessage): ObservedRoute | undefined {
  const family = familyOf(m.family);
  if (family === undefined) return undefined;
  const r: ObservedRoute = {
    family,
    dst: m.dst ?? (family === 4 ? '0.0.0.0' : '::'),
    dstLength: m.dstLen,
    table: routeTable(m),
    protocol: m.protocol,
    type: routeTypeName(m.type),
    scope: scopeName(m.scope),
    onLink: (m.flags & RTNH_F_ONLINK) !== 0,
  };
  if (m.srcLen > 0 && m.src !== undefined) {
    r.from = m.src;
    r.fromLength = m.srcLen;
  }
  if (m.tos !== 0) r.tos = m.tos;
  if (m.oif !== undefined) r.oif = m.oif;
  if (m.gateway !== undefined) r.gateway = m.gateway;
  if (m.metric !== undefined) r.metric = m.metric;
  if (m.prefsrc !== undefined) r.prefsrc = m.prefsrc;
  if (m.metrics?.mtu !== undefined) r.mtu = m.metrics.mtu;
  return r;
}
