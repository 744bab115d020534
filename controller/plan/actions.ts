/**
 * The typed steps a plan asks apply to take, each carrying a human `reason`. They are plain data
 * (rendered by `tunkeeper plan`, serialised with --json, replayed by the test kernel model).
 *
 * What apply must honour (plan relies on it):
 * - `create-device`: the name must not exist. TUNSETIFF on an existing TUN/TAP name attaches to
 *   it instead of failing, so apply checks (and fails with EEXIST) rather than adopt a stranger.
 *   The alias is written before TUNSETPERSIST: a crash in between leaves no persistent device
 *   without a marker (which would then be a permanent conflict), because the device dies with the
 *   creating file descriptor.
 * - `set-tun-options`: attaching (TUNSETIFF) also rewrites IFF_NO_PI / IFF_VNET_HDR on an existing
 *   device, so apply attaches with exactly the `tun` flags given (the device's current ones).
 * - `add-address`: RTM_NEWADDR with NLM_F_CREATE|NLM_F_REPLACE and IFA_PROTO = `protocol`. Plan may
 *   re-assert an address the kernel could have removed as a side effect of an earlier step (see
 *   plan.ts); REPLACE makes that a no-op when it is still there. `noDad` sets IFA_F_NODAD.
 * - `delete-address` / `delete-route`: sent with every identifying attribute given (for a route:
 *   protocol, table, tos, metric, oif, gateway) so the kernel's match cannot hit a foreign object
 *   that shares the key.
 * - `replace-route`: RTM_NEWROUTE with NLM_F_CREATE|NLM_F_REPLACE, rtm_protocol = `protocol`, and
 *   exactly the attributes given.
 * - `recreate-device`: delete the link (by ifindex), then create as for `create-device`.
 * - `delete-device`: by ifindex, and only a link that still carries the marker named in `device`.
 */
import type { IpFamily, TunMode } from '../model/desired.js';
import type { RouteScope, RouteType } from '../model/observed.js';

/**
 * A route plan does not manage (a foreign one, or tunkeeper's own that it leaves alone) that the
 * kernel removes or changes as a consequence of an action: a foreign route through a device being
 * deleted, say. Plan never targets such routes; it says what goes with a change.
 */
export interface SideEffect {
  /** `may-remove-route` when it depends on a sysctl (promote_secondaries) plan cannot see. */
  effect: 'removes-route' | 'may-remove-route' | 'clears-route-source';
  /** The route, as describeRoute spells it. */
  route: string;
  why: string;
}

/** One field's old and new value, for reasons and the rendered diff. */
export interface FieldChange {
  field: string;
  from?: string | number | boolean | null;
  to?: string | number | boolean | null;
}

/** The TUN/TAP flags a device is created (or attached) with. */
export interface TunFlags {
  mode: TunMode;
  multiQueue: boolean;
  vnetHdr: boolean;
  packetInfo: boolean;
}

export interface CreateDeviceSpec extends TunFlags {
  /** The ownership marker to write as ifalias (before making the device persistent). */
  alias: string;
  persist: true;
  owner?: number;
  group?: number;
}

export interface AddressSpec {
  family: IpFamily;
  address: string;
  prefixLength: number;
  /** Point-to-point far end, only on addresses being deleted that have one. */
  peer?: string;
}

export interface RouteSpec {
  family: IpFamily;
  table: number;
  dst: string;
  dstLength: number;
  /** IPv6 source prefix (deletes of observed source-specific routes only). */
  from?: string;
  fromLength?: number;
  tos: number;
  /** As the kernel stores it (IPv6 0 → 1024 already applied). */
  metric: number;
  protocol: number;
  type: RouteType;
  scope: RouteScope;
  /** Outgoing device by name (resolved by apply: the device may be created by this plan). */
  ifname?: string;
  /** Outgoing device by index, when it exists before the plan runs. */
  oif?: number;
  gateway?: string;
  prefsrc?: string;
  mtu?: number;
  onLink: boolean;
}

interface ActionBase {
  /** The TunDevice object (metadata.name) this action serves or, for deletions, whose marker it carries. */
  device?: string;
  ifname?: string;
  /** Why, in words a user reads in `tunkeeper plan`. */
  reason: string;
}

export interface CreateDeviceAction extends ActionBase {
  type: 'create-device';
  device: string;
  ifname: string;
  spec: CreateDeviceSpec;
}

export interface RecreateDeviceAction extends ActionBase {
  type: 'recreate-device';
  device: string;
  ifname: string;
  /** The link being replaced. */
  ifindex: number;
  spec: CreateDeviceSpec;
  /** The fields fixed at creation that differ (empty when replacing another object's stale device). */
  changes: FieldChange[];
  /** Set when the link carried another object's marker (a device no declaration wants any more). */
  previousOwner?: string;
  /** Objects that are not tunkeeper's and go away with the old link (routes through it). */
  sideEffects: SideEffect[];
}

export interface LinkSettings {
  mtu?: number;
  txQueueLength?: number;
  macAddress?: string;
  up?: boolean;
}

export interface SetLinkAction extends ActionBase {
  type: 'set-link';
  device: string;
  ifname: string;
  /** Absent when the device is created earlier in the same plan. */
  ifindex?: number;
  set: LinkSettings;
  changes: FieldChange[];
  sideEffects: SideEffect[];
}

export interface SetTunOptionsAction extends ActionBase {
  type: 'set-tun-options';
  device: string;
  ifname: string;
  ifindex: number;
  /** Flags to attach with: the device's own, so attaching changes nothing else. */
  flags: TunFlags;
  /** null clears an owner or group (TUNSETOWNER/TUNSETGROUP with -1). */
  set: { owner?: number | null; group?: number | null; persist?: true };
  changes: FieldChange[];
}

export interface DeleteAddressAction extends ActionBase {
  type: 'delete-address';
  device: string;
  ifname: string;
  ifindex: number;
  address: AddressSpec;
  sideEffects: SideEffect[];
}

export interface AddAddressAction extends ActionBase {
  type: 'add-address';
  device: string;
  ifname: string;
  ifindex?: number;
  address: AddressSpec;
  /** IFA_PROTO */
  protocol: number;
  /**
   * IFA_F_NODAD, set for IPv6: a persistent TAP device without a reader has no carrier, so DAD
   * never finishes, the address stays tentative and the kernel refuses it as a route's source.
   */
  noDad: boolean;
}

export interface DeleteRouteAction extends ActionBase {
  type: 'delete-route';
  route: RouteSpec;
}

export interface ReplaceRouteAction extends ActionBase {
  type: 'replace-route';
  device: string;
  ifname: string;
  route: RouteSpec;
  /** Differences from the route it overwrites; empty when it adds or re-asserts. */
  changes: FieldChange[];
}

export interface DeleteDeviceAction extends ActionBase {
  type: 'delete-device';
  /** The object named in the link's marker. */
  device: string;
  ifname: string;
  ifindex: number;
  sideEffects: SideEffect[];
}

export type Action =
  | CreateDeviceAction
  | RecreateDeviceAction
  | SetLinkAction
  | SetTunOptionsAction
  | DeleteAddressAction
  | AddAddressAction
  | DeleteRouteAction
  | ReplaceRouteAction
  | DeleteDeviceAction;

export type ActionType = Action['type'];

/** The order plan emits action types in (see plan.ts for why). */
export const ACTION_ORDER: readonly ActionType[] = [
  'delete-route',
  'delete-address',
  'create-device',
  'recreate-device',
  'set-link',
  'set-tun-options',
  'add-address',
  'delete-device',
  'replace-route',
];

export type FindingKind = 'refused' | 'conflict';

/**
 * Machine-readable finding codes (CamelCase, usable as a Kubernetes condition reason).
 * Refused — policy: NameNotAllowed, DefaultRouteNotAllowed, LocalTableNotAllowed;
 *   the kernel cannot hold it as declared: DeviceDown, Ipv6NeedsMtu1280, SourceAddressMissing,
 *   GatewayUnreachable.
 * Conflict — DuplicateIfname, DuplicateName, IfnameHeldByForeignLink, IfnameHeldByStaleDevice,
 *   AddressDeclaredTwice, RouteKeyHeldByForeignRoute, RouteKeyHeldByUnmanagedRoute,
 *   RouteKeyDesiredTwice, RouteKeyIsConnectedRoute.
 */
export type FindingCode =
  | 'NameNotAllowed'
  | 'DefaultRouteNotAllowed'
  | 'LocalTableNotAllowed'
  | 'DeviceDown'
  | 'Ipv6NeedsMtu1280'
  | 'SourceAddressMissing'
  | 'GatewayUnreachable'
  | 'DuplicateIfname'
  | 'DuplicateName'
  | 'IfnameHeldByForeignLink'
  | 'IfnameHeldByStaleDevice'
  | 'AddressDeclaredTwice'
  | 'RouteKeyHeldByForeignRoute'
  | 'RouteKeyHeldByUnmanagedRoute'
  | 'RouteKeyDesiredTwice'
  | 'RouteKeyIsConnectedRoute';

export interface Finding {
  kind: FindingKind;
  code: FindingCode;
  /** The TunDevice object. */
  device: string;
  ifname: string;
  /** Where it was declared (`path:line:col` or `TunDevice/<name>`). */
  origin: string;
  subject: 'device' | 'address' | 'route';
  /** The address or route concerned (absent for the device itself). */
  target?: string;
  /** For a route: its kernel identity (route-key.ts), to match findings to declarations. */
  key?: string;
  reason: string;
}

/** 'held': left as it is in this plan (PlanOptions.hold), whatever its state. */
export type DeviceStatus = 'create' | 'recreate' | 'update' | 'in-sync' | 'refused' | 'conflict' | 'held';

/** Per desired device: what the plan does with it (for status conditions and the rendered diff). */
export interface DeviceOutcome {
  device: string;
  ifname: string;
  origin: string;
  /** The existing link, when there is one and the device is managed. */
  ifindex?: number;
  status: DeviceStatus;
}

/** An owned device no declaration wants, kept because pruning is suspended. */
export interface RetainedDevice {
  device: string;
  ifname: string;
  ifindex: number;
  reason: string;
}

export interface Plan {
  actions: Action[];
  refusals: Finding[];
  conflicts: Finding[];
  devices: DeviceOutcome[];
  retained: RetainedDevice[];
  /** Whether owned objects outside the desired devices could be deleted (see PlanOptions.prune). */
  prune: boolean;
}
