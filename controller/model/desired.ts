/**
 * The desired state after validation and defaulting: what the schema (controller/schema) produces
 * from a TunDevice document and what plan (controller/plan) consumes. Every field is explicit and
 * canonical here (defaults applied, addresses and prefixes normalised) so plan compares values,
 * never spellings.
 */

export type TunMode = 'tun' | 'tap';
export type IpFamily = 4 | 6;

export interface DesiredAddress {
  family: IpFamily;
  /** Canonical text: dotted quad, or RFC 5952 lowercase compressed IPv6. */
  address: string;
  prefixLength: number;
}

export interface DesiredRoute {
  family: IpFamily;
  /** Network address of the destination prefix, canonical (host bits cleared). */
  dst: string;
  /** 0 for `to: default`. */
  dstLength: number;
  /** Gateway, canonical; absent for a device route. */
  via?: string;
  /** RTA_PRIORITY; absent means the kernel's default (0 for IPv4, 1024 for IPv6). */
  metric?: number;
  /** Routing table id; 254 (main) by default. */
  table: number;
  /** Preferred source (RTA_PREFSRC), canonical. */
  src?: string;
  /** RTAX_MTU. */
  mtu?: number;
  /** Gateway is on-link even though no address of the device covers it (RTNH_F_ONLINK). */
  onLink: boolean;
}

/**
 * A check that the device works, run on the node after each change (spec.probes):
 * - route: the kernel's own route lookup (RTM_GETROUTE) for `to` must leave through the device;
 * - ping: an ICMP/ICMPv6 echo to `to`, sent through the device, must be answered.
 */
export interface DesiredProbe {
  kind: 'route' | 'ping';
  family: IpFamily;
  /** Canonical text of the address. */
  to: string;
}

/** How a new generation is brought in (spec.rollout). */
export interface DesiredRollout {
  /** Nodes moving to a new generation at once: a count, or a percentage of the selected nodes ("25%"). */
  maxUnavailable: number | string;
  /** A probe passes if it succeeds within this long after the change, retried meanwhile. */
  probeTimeoutSeconds: number;
}

export const DEFAULT_ROLLOUT: DesiredRollout = { maxUnavailable: '100%', probeTimeoutSeconds: 30 };

/**
 * Whether a rollout limits how many nodes move at once. 100% (the default) lets every node move
 * as soon as it sees a change, with no leader involved, as before rollouts existed.
 */
export function limitsRollout(maxUnavailable: number | string = DEFAULT_ROLLOUT.maxUnavailable): boolean {
  return maxUnavailable !== '100%';
}

/** How a probe is named in status, metrics and logs: `route 198.51.100.7`. */
export function probeKey(p: DesiredProbe): string {
  return `${p.kind} ${p.to}`;
}

export interface DesiredDevice {
  /** metadata.name of the TunDevice: the ownership marker is `tunkeeper:<name>` in ifalias. */
  name: string;
  ifname: string;
  mode: TunMode;
  mtu: number;
  up: boolean;
  txQueueLength?: number;
  /** tap only; lowercase colon-separated. */
  macAddress?: string;
  owner?: number;
  group?: number;
  /** Fixed at creation: a change means recreating the device. */
  multiQueue: boolean;
  vnetHdr: boolean;
  packetInfo: boolean;
  addresses: DesiredAddress[];
  routes: DesiredRoute[];
  /** spec.probes; absent or empty: nothing to check beyond the kernel state itself. */
  probes?: DesiredProbe[];
  /** spec.rollout; absent: DEFAULT_ROLLOUT. */
  rollout?: DesiredRollout;
  /** Where the declaration came from, for messages: `path:line:col` or `TunDevice/<name>`. */
  origin: string;
}

/** The agent's policy: what it may own. */
export interface Policy {
  /** ifname prefixes a desired device must start with. */
  allowedPrefixes: string[];
  /** Whether routes to 0.0.0.0/0 or ::/0 may be owned. */
  allowDefaultRoute: boolean;
  /** rtm_protocol that marks tunkeeper's routes (and IFA_PROTO of its addresses). */
  routeProtocol: number;
}

export const DEFAULT_POLICY: Policy = {
  allowedPrefixes: ['tk-', 'tun-', 'tap-'],
  allowDefaultRoute: false,
  routeProtocol: 116,
};

/** The ifalias that marks a link as tunkeeper's. */
export const OWNER_MARKER_PREFIX = 'tunkeeper:';
export function ownerMarker(deviceName: string): string {
  return OWNER_MARKER_PREFIX + deviceName;
}
