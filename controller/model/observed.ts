/**
 * What the kernel has: the snapshot `observe` builds from rtnetlink dumps (links, addresses,
 * routes) and `plan` diffs against the desired state. Plain data, no methods, canonical text
 * (addresses as controller/model/desired.ts spells them: dotted quad or RFC 5952 IPv6, MACs lowercase
 * colon-separated) so that plan compares values, never spellings.
 *
 * A snapshot must come from dumps that completed: a dump interrupted by NLM_F_DUMP_INTR (or cut
 * short by an error) is retried by observe, never handed to plan. A missing link only makes plan
 * create something that exists (an error apply reports), but a missing foreign route would let
 * plan replace it, taking it over.
 */
import type { IpFamily, TunMode } from './desired.js';

/** IFLA_INFO_KIND; absent for devices without rtnl_link_ops (most physical NICs, loopback). */
export type LinkKind = 'tun' | 'veth' | 'bridge' | 'dummy' | 'vlan' | 'macvlan' | 'vxlan' | 'wireguard' | 'bond' | (string & {});

/** IFLA_INFO_DATA of a tun/tap link (IFLA_TUN_*, reported since Linux 4.15). */
export interface ObservedTunInfo {
  mode: TunMode;
  /** !IFF_NO_PI */
  packetInfo: boolean;
  vnetHdr: boolean;
  multiQueue: boolean;
  persist: boolean;
  /** IFLA_TUN_OWNER; absent when no owner is set. */
  owner?: number;
  /** IFLA_TUN_GROUP; absent when no group is set. */
  group?: number;
}

export interface ObservedLink {
  ifindex: number;
  ifname: string;
  kind?: LinkKind;
  /** IFF_UP: the administrative state (not carrier: a TUN device without a reader has none). */
  up: boolean;
  mtu: number;
  /** IFLA_TXQLEN */
  txQueueLength: number;
  /** IFLA_ADDRESS; absent for links without a hardware address (tun mode: ARPHRD_NONE). */
  macAddress?: string;
  /** IFLA_IFALIAS; absent when empty. Carries tunkeeper's ownership marker. */
  alias?: string;
  /** Present for kind 'tun' on kernels that report it. */
  tun?: ObservedTunInfo;
}

export type AddressScope = 'universe' | 'site' | 'link' | 'host' | 'nowhere';

/** IFA_PROTO values the kernel itself uses (include/uapi/linux/if_addr.h). */
export const IFAPROT_UNSPEC = 0;
export const IFAPROT_KERNEL_LO = 1;
export const IFAPROT_KERNEL_RA = 2;
export const IFAPROT_KERNEL_LL = 3;

export interface ObservedAddressFlags {
  /** IFA_F_PERMANENT: configured, not from autoconfiguration (kernel link-locals have it too). */
  permanent: boolean;
  /** IFA_F_SECONDARY: an IPv4 address in the subnet of another (primary) address on the link. */
  secondary: boolean;
  /** IFA_F_TENTATIVE: IPv6 duplicate address detection has not completed. */
  tentative: boolean;
}

export interface ObservedAddress {
  ifindex: number;
  family: IpFamily;
  /** IFA_LOCAL (IPv4) or IFA_ADDRESS (IPv6). */
  address: string;
  prefixLength: number;
  /** IFA_ADDRESS when it differs from IFA_LOCAL: the far end of a point-to-point IPv4 address. */
  peer?: string;
  scope: AddressScope;
  flags: ObservedAddressFlags;
  /**
   * IFA_PROTO. The kernel sends it only when non-zero and only since Linux 5.18, so `undefined`
   * means "unspecified or not reported": it never proves who added the address.
   */
  proto?: number;
}

export type RouteType =
  | 'unspec' | 'unicast' | 'local' | 'broadcast' | 'anycast' | 'multicast'
  | 'blackhole' | 'unreachable' | 'prohibit' | 'throw' | 'nat' | 'xresolve';

export type RouteScope = 'universe' | 'site' | 'link' | 'host' | 'nowhere';

/** rtm_protocol values the kernel and common daemons use. */
export const RTPROT_KERNEL = 2;
export const RTPROT_BOOT = 3;
export const RTPROT_STATIC = 4;

export const RT_TABLE_MAIN = 254;
export const RT_TABLE_LOCAL = 255;

export interface ObservedRoute {
  family: IpFamily;
  /** Destination network (canonical; `0.0.0.0` / `::` for a default route). */
  dst: string;
  dstLength: number;
  /** Source-specific routing (RTA_SRC / rtm_src_len, IPv6 subtrees); absent when 0. */
  from?: string;
  fromLength?: number;
  /** rtm_tos (IPv4); absent when 0. */
  tos?: number;
  /** RTA_TABLE (or rtm_table). */
  table: number;
  /** rtm_protocol */
  protocol: number;
  type: RouteType;
  scope: RouteScope;
  /** RTA_OIF: ifindex of the outgoing device; absent for blackhole and similar routes. */
  oif?: number;
  /** RTA_GATEWAY */
  gateway?: string;
  /** RTA_PRIORITY; absent on the wire when 0 (IPv4), always present for IPv6. */
  metric?: number;
  /** RTA_PREFSRC */
  prefsrc?: string;
  /** RTAX_MTU from RTA_METRICS. */
  mtu?: number;
  /** RTNH_F_ONLINK in rtm_flags. */
  onLink: boolean;
}

export interface ObservedState {
  links: ObservedLink[];
  addresses: ObservedAddress[];
  routes: ObservedRoute[];
}
