/**
 * What tunkeeper owns (DESIGN promise 2), decided from the kernel's own records only:
 * - a link whose ifalias is `tunkeeper:<object-name>` and which is a TUN/TAP device;
 * - on such a link, every address except the kernel's own IPv6 link-local one;
 * - a route whose rtm_protocol is the policy's route protocol, wherever it points.
 * Everything else is foreign and plan never emits an action against it.
 *
 * This module is the only place that rule lives: plan (and so the reconciler) and
 * `tunkeeper state` ask it, so what state marks owned is what plan manages.
 */
import { OWNER_MARKER_PREFIX, type Policy } from './desired.js';
import { IFAPROT_KERNEL_LL, type ObservedAddress, type ObservedLink, type ObservedRoute, type ObservedState } from './observed.js';
import { isIPv6LinkLocal } from './ip.js';

/** A Kubernetes object name (DNS-1123 subdomain): what follows the marker prefix when we wrote it. */
const OBJECT_NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const OBJECT_NAME_MAX = 253;

/**
 * The object name in a link's ownership marker, or undefined when the link is not tunkeeper's.
 * A marker on a link that is not a TUN/TAP device was not written by tunkeeper (it only creates
 * TUN/TAP devices); deleting such a link (a veth takes its peer with it) would destroy something
 * else, so it stays foreign. Likewise a marker whose name tunkeeper could never have written.
 */
export function markerOwner(link: Pick<ObservedLink, 'kind' | 'alias'>): string | undefined {
  if (link.kind !== 'tun' || link.alias === undefined) return undefined;
  if (!link.alias.startsWith(OWNER_MARKER_PREFIX)) return undefined;
  const name = link.alias.slice(OWNER_MARKER_PREFIX.length);
  if (name.length > OBJECT_NAME_MAX || !OBJECT_NAME.test(name)) return undefined;
  return name;
}

export function isOwnedLink(link: ObservedLink): boolean {
  return markerOwner(link) !== undefined;
}

/**
 * The IPv6 link-local address the kernel generates when a link comes up (addrconf): fe80::/64.
 * Since Linux 5.18 the kernel tags it IFA_PROTO = IFAPROT_KERNEL_LL; before that (and for a
 * user-added address, whose proto 0 is not sent) proto is absent, so an fe80::/64 address without
 * a proto is given the benefit of the doubt: deleting the kernel's link-local breaks IPv6 on the
 * link, while a stray user-added link-local is harmless. One tagged with another proto (ours, or
 * anyone's) was added by someone, not generated.
 */
export function isKernelLinkLocal(address: ObservedAddress): boolean {
  if (address.family !== 6 || address.prefixLength !== 64 || !isIPv6LinkLocal(address.address)) return false;
  return address.proto === undefined || address.proto === IFAPROT_KERNEL_LL;
}

/**
 * Whether an address is tunkeeper's: it sits on a link tunkeeper owns and is not the kernel's
 * link-local. An address tagged with our IFA_PROTO on a link that is not (or no longer) ours is
 * still not ours to touch: changing it changes a foreign link.
 */
export function isOwnedAddress(address: ObservedAddress, linkOwned: boolean): boolean {
  return linkOwned && !isKernelLinkLocal(address);
}

export function isOwnedRoute(route: Pick<ObservedRoute, 'protocol'>, policy: Pick<Policy, 'routeProtocol'>): boolean {
  return route.protocol === policy.routeProtocol;
}

/** The objects of one snapshot that are tunkeeper's, by the rules above (the very objects, not copies). */
export interface OwnedObjects {
  links: ReadonlySet<ObservedLink>;
  addresses: ReadonlySet<ObservedAddress>;
  routes: ReadonlySet<ObservedRoute>;
}

/** Sorts a whole snapshot into tunkeeper's objects and the rest (`tunkeeper state` marks these). */
export function ownedObjects(state: ObservedState, policy: Pick<Policy, 'routeProtocol'>): OwnedObjects {
  const links = new Set(state.links.filter(isOwnedLink));
  const ownedIndexes = new Set([...links].map((l) => l.ifindex));
  return {
    links,
    addresses: new Set(state.addresses.filter((a) => isOwnedAddress(a, ownedIndexes.has(a.ifindex)))),
    routes: new Set(state.routes.filter((r) => isOwnedRoute(r, policy))),
  };
}

/** Names the host's own devices use: never a desired ifname, whatever the allowed prefixes say. */
export const RESERVED_IFNAMES: readonly string[] = [
  'lo', 'tunl0', 'gre0', 'gretap0', 'erspan0', 'ip_vti0', 'ip6_vti0', 'ip6tnl0', 'ip6gre0', 'sit0',
];
export const RESERVED_IFNAME_PREFIXES: readonly string[] = [
  'eth', 'en', 'wl', 'ww', 'ib', 'bond', 'team', 'br', 'docker', 'veth', 'cni', 'flannel', 'cali', 'cilium', 'kube',
];

/** Why an ifname may not be owned under this policy, or undefined when it may. */
export function ifnameRefusal(ifname: string, policy: Policy): string | undefined {
  if (RESERVED_IFNAMES.includes(ifname)) return `"${ifname}" is one of the host's own devices and is never managed`;
  const reserved = RESERVED_IFNAME_PREFIXES.find((p) => ifname.startsWith(p));
  if (reserved !== undefined) return `names starting with "${reserved}" belong to the host and are never managed`;
  if (!policy.allowedPrefixes.some((p) => p !== '' && ifname.startsWith(p))) {
    const allowed = policy.allowedPrefixes.filter((p) => p !== '');
    return allowed.length === 0
      ? 'the agent allows no ifname prefixes'
      : `"${ifname}" does not start with an allowed prefix (${allowed.join(', ')})`;
  }
  return undefined;
}
