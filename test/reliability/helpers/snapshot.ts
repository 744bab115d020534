/**
 * What a namespace holds, as `ip -j -d` prints it, split into what tunkeeper owns and what it
 * does not. Foreign objects are compared byte for byte; only what changes by itself is taken out
 * (counters, timers, the kernel's own bookkeeping), never anything a tool could change.
 */
import type { Netns } from '../../helpers/netns.js';

export const MARKER = 'tunkeeper:';
export const OWNED_PROTOCOL = 116;

export interface IpLinkJson {
  ifindex: number;
  ifname: string;
  mtu: number;
  flags: string[];
  ifalias?: string;
  linkinfo?: { info_kind?: string };
  [k: string]: unknown;
}
export interface IpAddrInfo {
  family: string;
  local: string;
  prefixlen: number;
  [k: string]: unknown;
}
export interface IpAddrJson {
  ifindex: number;
  ifname: string;
  addr_info: IpAddrInfo[];
  [k: string]: unknown;
}
export interface IpRouteJson {
  dst: string;
  dev?: string;
  protocol?: string | number;
  table?: string;
  [k: string]: unknown;
}

/** Keys whose values move by themselves (statistics, lifetimes, carrier counters, operstate timing). */
const VOLATILE = new Set(['stats', 'stats64', 'valid_life_time', 'preferred_life_time', 'carrier_changes', 'carrier_up_count', 'carrier_down_count', 'expires', 'used', 'age']);

export function normalise(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(normalise);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) if (!VOLATILE.has(k)) out[k] = normalise(x);
    return out;
  }
  return v;
}

const isOwnedLink = (l: IpLinkJson): boolean => l.ifalias?.startsWith(MARKER) === true;
/** `ip -j` prints a protocol by name when it knows one; 116 has none. */
const isOwnedRoute = (r: IpRouteJson): boolean => String(r.protocol) === String(OWNED_PROTOCOL);

export interface Snapshot {
  links: IpLinkJson[];
  addresses: IpAddrJson[];
  routes: IpRouteJson[];
}

/** `ip` fails on a dump the kernel flagged as interrupted: ask again. */
async function ipJsonRetry<T>(ns: Netns, ...args: string[]): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await ns.ipJson<T>(...args);
    } catch (e) {
      if (i >= 20) throw e;
    }
  }
}

export async function snapshot(ns: Netns): Promise<Snapshot> {
  const links = await ipJsonRetry<IpLinkJson[]>(ns, '-d', 'link', 'show');
  const addresses = await ipJsonRetry<IpAddrJson[]>(ns, '-d', 'address', 'show');
  const v4 = await ipJsonRetry<IpRouteJson[]>(ns, '-d', '-4', 'route', 'show', 'table', 'all');
  const v6 = await ipJsonRetry<IpRouteJson[]>(ns, '-d', '-6', 'route', 'show', 'table', 'all');
  return { links, addresses, routes: [...v4, ...v6] };
}

/**
 * Everything not tunkeeper's, normalised, as one sorted list of JSON lines: foreign links whole
 * (minus stats), addresses of foreign links, foreign routes that do not go through an owned link
 * (a route through a link tunkeeper deletes goes with it, by the kernel's hand). Addresses on
 * owned links are authoritative to tunkeeper and left out; kernel link-local addresses are kept
 * on foreign links only.
 */
export function foreignOf(s: Snapshot): string[] {
  const owned = new Set(s.links.filter(isOwnedLink).map((l) => l.ifname));
  const out: string[] = [];
  for (const l of s.links) if (!owned.has(l.ifname)) out.push(`link ${JSON.stringify(normalise(l))}`);
  for (const a of s.addresses) if (!owned.has(a.ifname)) out.push(`addr ${JSON.stringify(normalise(a))}`);
  for (const r of s.routes) if (!isOwnedRoute(r) && (r.dev === undefined || !owned.has(r.dev))) out.push(`route ${JSON.stringify(normalise(r))}`);
  return out.sort();
}

export function ownedLinks(s: Snapshot): IpLinkJson[] {
  return s.links.filter(isOwnedLink);
}

export function ownedRoutes(s: Snapshot): IpRouteJson[] {
  return s.routes.filter(isOwnedRoute);
}
