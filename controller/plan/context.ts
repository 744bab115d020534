/**
 * The state plan's phases share (see plan.ts for the phases). One PlanContext lives for one run
 * of plan: the inputs and indexes of the observed state are built once, each phase fills the
 * fields listed under it and reads only those of earlier phases, and the findings and emitted
 * actions collect here until plan.ts assembles the Plan.
 */
import type { DesiredAddress, DesiredDevice, IpFamily, Policy } from '../model/desired.js';
import type { ObservedAddress, ObservedLink, ObservedRoute, ObservedState } from '../model/observed.js';
import type { Action, FieldChange, Finding, FindingCode, RetainedDevice, SideEffect } from './actions.js';
import { describeObservedRoute } from './describe.js';

/** The smallest MTU with which the kernel keeps IPv6 on a link (IPV6_MIN_MTU). */
export const IPV6_MIN_MTU = 1280;

/** What plan does with a declared device's link: create it, manage the existing one, or recreate it. */
export type Mode = 'create' | 'manage' | 'recreate';

/** A declared device plan applies (neither refused, in conflict nor held). */
export interface Managed {
  d: DesiredDevice;
  mode: Mode;
  /** The existing link (manage, recreate). */
  link?: ObservedLink;
  recreateChanges: FieldChange[];
  previousOwner?: string;
  /** Desired addresses the kernel can hold (deduplicated). */
  addresses: DesiredAddress[];
  /** family|address declared in conflicting ways: an existing copy is left alone. */
  conflictedAddresses: Set<string>;
  /** Owned addresses on the managed link that the declaration does not list (empty unless mode is manage). */
  unwanted: ObservedAddress[];
}

export interface PlanContext {
  // ---- inputs, and indexes of the observed state ----
  /** Declared devices, sorted by ifname, name, origin. */
  readonly devices: DesiredDevice[];
  readonly observed: ObservedState;
  readonly policy: Policy;
  readonly prune: boolean;
  readonly held: ReadonlySet<string>;
  /** Observed links by ifindex. */
  readonly links: ObservedLink[];
  readonly linkByIndex: Map<number, ObservedLink>;
  readonly linkByName: Map<string, ObservedLink>;
  readonly addrsByLink: Map<number, ObservedAddress[]>;
  /** family|address → the observed copies of that address (on any link). */
  readonly addrsByValue: Map<string, ObservedAddress[]>;
  readonly routesByOif: Map<number, ObservedRoute[]>;
  /** Routes by family|preferred source. */
  readonly routesBySrc: Map<string, ObservedRoute[]>;

  // ---- claims (claims.ts) ----
  readonly excluded: Set<DesiredDevice>;
  /** Declared, not excluded, and held: left as they are (PlanOptions.hold). */
  readonly heldDevices: { d: DesiredDevice; link?: ObservedLink }[];
  readonly managed: Managed[];
  readonly managedByIndex: Map<number, Managed>;
  /** Links deleted by recreate-device (recreated, taken over). */
  readonly vanishing: Set<number>;
  /** Stale owned links deleted by delete-device. */
  readonly pruned: Map<number, string>;
  /** Owned links plan leaves alone (their declaration is refused or in conflict, or pruning is off). */
  readonly unmanagedLinks: Set<number>;
  readonly retained: RetainedDevice[];
  /** ifindex|key of declared routes plan does not apply: an owned route there is left alone (filled by routes.ts). */
  readonly protectedRoutes: Set<string>;

  // ---- what the kernel removes by itself (kernel-effects.ts) ----
  /** Addresses that may be gone before add-address, per link: deleted, cascaded secondaries, vanished links. */
  readonly removed: Map<number, ObservedAddress[]>;
  /** family|address of addresses still on some link before add-address. */
  readonly remainingOnHost: Set<string>;
  /** Links that may have no IPv4 address left before add-address, having had some removed. */
  readonly losesAllIPv4: Set<number>;
  /** Addresses deleted outright (delete-address) or with their link (recreate-device), no cascades, per link. */
  readonly surelyRemoved: Map<number, ObservedAddress[]>;
  /** Managed links that go down, or lose IPv6 to an MTU below 1280, with set-link. */
  readonly goingDown: Set<number>;
  readonly losingIPv6: Set<number>;
  /** Caches: whether a link surely loses all IPv4; connected-route keys of a link's observed addresses. */
  readonly surelyLosesIPv4: Map<number, boolean>;
  readonly connectedKeysOf: Map<number, Set<string>>;

  // ---- output ----
  readonly refusals: Finding[];
  readonly conflicts: Finding[];
  /** Actions in the order phases emit them, with their sort keys within their type. */
  readonly emitted: { action: Action; ifname: string; sub: string }[];
  /**
   * Side effects are filled in once every route decision is made: which owned routes plan leaves
   * alone (and so must announce when the kernel takes them along) is known only then.
   */
  readonly pendingSideEffects: { target: SideEffect[]; compute: () => SideEffect[] }[];
}

export function newContext(desired: DesiredDevice[], observed: ObservedState, policy: Policy, prune: boolean, held: ReadonlySet<string>): PlanContext {
  const ctx: PlanContext = {
    devices: [...desired].sort((a, b) => compareStrings(a.ifname, b.ifname) || compareStrings(a.name, b.name) || compareStrings(a.origin, b.origin)),
    observed,
    policy,
    prune,
    held,
    links: [...observed.links].sort((a, b) => a.ifindex - b.ifindex),
    linkByIndex: new Map(),
    linkByName: new Map(),
    addrsByLink: new Map(),
    addrsByValue: new Map(),
    routesByOif: new Map(),
    routesBySrc: new Map(),
    excluded: new Set(),
    heldDevices: [],
    managed: [],
    managedByIndex: new Map(),
    vanishing: new Set(),
    pruned: new Map(),
    unmanagedLinks: new Set(),
    retained: [],
    protectedRoutes: new Set(),
    removed: new Map(),
    remainingOnHost: new Set(),
    losesAllIPv4: new Set(),
    surelyRemoved: new Map(),
    goingDown: new Set(),
    losingIPv6: new Set(),
    surelyLosesIPv4: new Map(),
    connectedKeysOf: new Map(),
    refusals: [],
    conflicts: [],
    emitted: [],
    pendingSideEffects: [],
  };
  for (const link of ctx.links) {
    ctx.linkByIndex.set(link.ifindex, link);
    ctx.linkByName.set(link.ifname, link);
  }
  for (const a of observed.addresses) {
    pushTo(ctx.addrsByLink, a.ifindex, a);
    pushTo(ctx.addrsByValue, addrId(a.family, a.address), a);
  }
  for (const r of observed.routes) {
    if (r.oif !== undefined) pushTo(ctx.routesByOif, r.oif, r);
    if (r.prefsrc !== undefined) pushTo(ctx.routesBySrc, addrId(r.family, r.prefsrc), r);
  }
  return ctx;
}

export function finding(
  ctx: PlanContext,
  kind: 'refused' | 'conflict',
  code: FindingCode,
  d: DesiredDevice,
  subject: Finding['subject'],
  reason: string,
  target?: string,
  key?: string,
): void {
  const f: Finding = { kind, code, device: d.name, ifname: d.ifname, origin: d.origin, subject, reason };
  if (target !== undefined) f.target = target;
  if (key !== undefined) f.key = key;
  (kind === 'refused' ? ctx.refusals : ctx.conflicts).push(f);
}

/** Records an action; plan.ts orders actions by type, then `ifname`, then `sub`. */
export function emit(ctx: PlanContext, action: Action, ifname: string, sub = ''): void {
  ctx.emitted.push({ action, ifname, sub });
}

/** An array to put in an action now, filled with `compute()` once all route decisions are made. */
export function later(ctx: PlanContext, compute: () => SideEffect[]): SideEffect[] {
  const target: SideEffect[] = [];
  ctx.pendingSideEffects.push({ target, compute });
  return target;
}

/** An observed route as findings and side effects name it. */
export function describeObserved(ctx: PlanContext, r: ObservedRoute): string {
  return describeObservedRoute(r, (i) => ctx.linkByIndex.get(i)?.ifname);
}

/** Appends to the list under a key (creating it): linear, unlike re-spreading the list. */
export function pushTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}

export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function addrId(family: IpFamily, address: string): string {
  return `${family}|${address}`;
}
