/**
 * plan: the pure diff at the heart of the reconciler. Given the desired devices, the observed
 * kernel state and the agent's policy, it returns the ordered actions that make the part of the
 * kernel tunkeeper owns equal the desired state, and the refusals and conflicts that keep it from
 * doing more. No I/O, no clock, no randomness: the same inputs give the same plan, in the same
 * order.
 *
 * Order of the actions (each phase only depends on earlier ones):
 *   1. delete stale owned routes      no prerequisites; done first so that nothing later (an
 *   2. delete unwanted addresses      address removal, a link going down) removes them first and
 *                                     turns the delete into an error, and so that an unwanted
 *                                     IPv6 address is gone before a link goes down whatever
 *                                     net.ipv6.conf.*.keep_addr_on_down says. IPv4 secondaries go
 *                                     before their primary (with promote_secondaries=0 deleting
 *                                     the primary deletes them).
 *   3. create devices                 TUN, persistent, marker, owner/group, flags
 *   4. recreate devices               a field fixed at creation differs (delete + create)
 *   5. set link attributes            mtu, txqlen, MAC, up/down; owner/group/persist via TUN attach
 *   6. add addresses                  after the link settings: an MTU below 1280 removes IPv6,
 *                                     going down removes IPv6 addresses
 *   7. delete owned devices no declaration wants; their addresses and routes go with them, so no
 *      separate deletes are emitted for those. Before the routes: a foreign route through such a
 *      device would otherwise hold a key a declared route needs until the next reconcile (and
 *      replacing it while the device still exists would take a foreign route over).
 *   8. replace routes                 need the device up and the preferred source present;
 *                                     device routes before gateway routes (a gateway may be
 *                                     reachable only through one)
 *
 * Route identity is the kernel's (route-key.ts). A declared route whose key is held by a route plan
 * does not manage (another protocol, the kernel's connected route for an address, an owned route
 * it leaves alone) is a conflict, never a replace. When several owned routes share a key they are
 * all deleted (most specific first) and the declared one added: RTM_DELROUTE removes the first
 * route that has the attributes given, so one of them cannot be singled out.
 *
 * The kernel changes owned objects as side effects of some of these steps; plan predicts that and
 * re-asserts (idempotent add/replace) what may have been removed, so one apply converges:
 *   - removing the last IPv4 address of a link removes every IPv4 route through it;
 *   - removing an IPv4 address from the host removes main-table routes that use it as source;
 *   - removing an IPv4 primary removes its secondaries unless promote_secondaries is set;
 *   - removing an IPv6 address clears it as the source of routes through that link;
 *   - setting a link down removes its routes and (keep_addr_on_down=0) its IPv6 addresses;
 *   - an MTU below 1280 removes IPv6 from the link.
 * Routes plan does not manage (foreign ones, and owned ones it leaves alone) that the kernel
 * removes along with such a step are listed in the action's `sideEffects`: plan never targets
 * them, but says what goes with a change.
 *
 * Held devices (`hold`: the loop holds a device that keeps being changed behind tunkeeper's back)
 * get no action at all in this plan, and their status says 'held' (or 'in-sync' when they need
 * nothing, found by planning without the hold): their link, addresses and
 * routes are left as they are, like those of a device in conflict — other declarations cannot
 * take over their route keys, and an owned link still marked with a held device's name is kept —
 * but they stay declared, so nothing of theirs is pruned.
 *
 * Fail static: with `prune: false` (a source has not completed its first sync, the API server is
 * unreachable, a file failed to parse: the desired state may be partial) nothing owned that lies
 * outside the desired devices is deleted or taken over: no owned device without a declaration is
 * deleted, no owned route through a link other than a desired device's is deleted or replaced.
 * Within a declared device its spec is authoritative either way.
 */
import type { DesiredAddress, DesiredDevice, DesiredRoute, IpFamily, Policy } from '../model/desired.js';
import { ownerMarker } from '../model/desired.js';
import {
  RT_TABLE_LOCAL,
  RT_TABLE_MAIN,
  RTPROT_KERNEL,
  type ObservedAddress,
  type ObservedLink,
  type ObservedRoute,
  type ObservedState,
  type RouteScope,
} from '../model/observed.js';
import type {
  Action,
  ActionType,
  CreateDeviceSpec,
  DeviceOutcome,
  FieldChange,
  Finding,
  FindingCode,
  LinkSettings,
  Plan,
  RetainedDevice,
  RouteSpec,
  SideEffect,
} from './actions.js';
import { ACTION_ORDER } from './actions.js';
import { describeAddress, describeChange, describeObservedRoute, describeRouteSpec } from './describe.js';
import { isIPv6LinkLocal, networkOf, prefixContains } from '../model/ip.js';
import { ifnameRefusal, isKernelLinkLocal, isOwnedRoute, markerOwner } from '../model/ownership.js';
import { IPV6_CONNECTED_METRIC, desiredRouteKey, effectiveMetric, observedRouteKey, routeKey } from './route-key.js';

export interface PlanOptions {
  /**
   * Whether owned objects outside the desired devices may be deleted. Pass false while the
   * desired state may be partial (see the module comment). Default true.
   */
  prune?: boolean;
  /** TunDevice names left as they are in this plan: no action for them (see the module comment). */
  hold?: Iterable<string>;
}

/** The smallest MTU with which the kernel keeps IPv6 on a link (IPV6_MIN_MTU). */
export const IPV6_MIN_MTU = 1280;

export function plan(desired: DesiredDevice[], observed: ObservedState, policy: Policy, options: PlanOptions = {}): Plan {
  const prune = options.prune ?? true;
  const held = new Set(options.hold ?? []);
  const p = new Planner(desired, observed, policy, prune, held).run();
  if (held.size === 0 || !p.devices.some((o) => o.status === 'held')) return p;
  // Only drift is held back: a held device that needs nothing is reported in sync, as it is.
  const free = new Planner(desired, observed, policy, prune, new Set()).run();
  const drifted = new Set(free.actions.map((a) => a.device));
  p.devices = p.devices.map((o) => {
    if (o.status !== 'held' || drifted.has(o.device)) return o;
    const f = free.devices.find((x) => x.device === o.device && x.ifname === o.ifname);
    return f?.status === 'in-sync' ? f : o;
  });
  return p;
}

type Mode = 'create' | 'manage' | 'recreate';

interface Managed {
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
}

/**
 * What plan may do with an owned route: managed (delete or replace), unmanaged (leave alone, and a
 * declared route may not take its key), vanishes (its link is deleted before the route phase).
 */
type RouteDisposition = 'managed' | 'unmanaged' | 'vanishes';

interface Candidate {
  m: Managed;
  r: DesiredRoute;
  key: string;
  /** Set when refused after acceptance (an unreachable gateway). */
  refused?: boolean;
}

const PHASE: Record<ActionType, number> = Object.fromEntries(ACTION_ORDER.map((t, i) => [t, i])) as Record<ActionType, number>;

/** Appends to the list under a key (creating it): linear, unlike re-spreading the list. */
function pushTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function addrId(family: IpFamily, address: string): string {
  return `${family}|${address}`;
}

class Planner {
  private readonly devices: DesiredDevice[];
  private readonly links: ObservedLink[];
  private readonly linkByIndex = new Map<number, ObservedLink>();
  private readonly linkByName = new Map<string, ObservedLink>();
  private readonly addrsByLink = new Map<number, ObservedAddress[]>();
  /** family|address → the observed copies of that address (on any link). */
  private readonly addrsByValue = new Map<string, ObservedAddress[]>();
  private readonly routesByOif = new Map<number, ObservedRoute[]>();
  /** Routes by family|preferred source. */
  private readonly routesBySrc = new Map<string, ObservedRoute[]>();
  /** Caches: connected-route keys of a link's observed addresses; whether a link surely loses all IPv4. */
  private readonly connectedKeysOf = new Map<number, Set<string>>();
  private readonly surelyLosesIPv4 = new Map<number, boolean>();
  private readonly refusals: Finding[] = [];
  private readonly conflicts: Finding[] = [];
  private readonly emitted: { action: Action; ifname: string; sub: string }[] = [];
  private readonly excluded = new Set<DesiredDevice>();
  /** Declared, not excluded, and held: left as they are (PlanOptions.hold). */
  private readonly heldDevices: { d: DesiredDevice; link?: ObservedLink }[] = [];
  private readonly managed: Managed[] = [];
  private readonly managedByIndex = new Map<number, Managed>();
  /** Links deleted in phase 4 (recreated, taken over). */
  private readonly vanishing = new Set<number>();
  /** Stale owned links deleted in phase 7. */
  private readonly pruned = new Map<number, string>();
  /** Owned links plan leaves alone (their declaration is refused or in conflict, or pruning is off). */
  private readonly unmanagedLinks = new Set<number>();
  private readonly retained: RetainedDevice[] = [];
  /** ifindex|key of declared routes plan does not apply: an owned route there is left alone. */
  private readonly protectedRoutes = new Set<string>();
  /**
   * Side effects are filled in once every route decision is made: which owned routes plan leaves
   * alone (and so must announce when the kernel takes them along) is known only then.
   */
  private readonly pendingSideEffects: { target: SideEffect[]; compute: () => SideEffect[] }[] = [];

  // Address bookkeeping for side effects (filled by planAddressDeletes).
  /** Addresses that may be gone after phase 4, per link: deleted, cascaded secondaries, vanished links. */
  private readonly removed = new Map<number, ObservedAddress[]>();
  /** family|address of addresses still on some link after phase 4. */
  private readonly remainingOnHost = new Set<string>();
  /** Links that may have no IPv4 address left after phase 4, having had some removed. */
  private readonly losesAllIPv4 = new Set<number>();
  /** Addresses deleted outright in phase 2 or with their link in phase 4 (no cascades), per link. */
  private readonly surelyRemoved = new Map<number, ObservedAddress[]>();
  /** Managed links that go down, or lose IPv6 to an MTU below 1280, in phase 5. */
  private readonly goingDown = new Set<number>();
  private readonly losingIPv6 = new Set<number>();

  constructor(
    desired: DesiredDevice[],
    private readonly observed: ObservedState,
    private readonly policy: Policy,
    private readonly prune: boolean,
    private readonly held: ReadonlySet<string>,
  ) {
    this.devices = [...desired].sort(
      (a, b) => compareStrings(a.ifname, b.ifname) || compareStrings(a.name, b.name) || compareStrings(a.origin, b.origin),
    );
    this.links = [...observed.links].sort((a, b) => a.ifindex - b.ifindex);
    for (const link of this.links) {
      this.linkByIndex.set(link.ifindex, link);
      this.linkByName.set(link.ifname, link);
    }
    for (const a of observed.addresses) {
      pushTo(this.addrsByLink, a.ifindex, a);
      pushTo(this.addrsByValue, addrId(a.family, a.address), a);
    }
    for (const r of observed.routes) {
      if (r.oif !== undefined) pushTo(this.routesByOif, r.oif, r);
      if (r.prefsrc !== undefined) pushTo(this.routesBySrc, addrId(r.family, r.prefsrc), r);
    }
  }

  run(): Plan {
    this.checkDeclarations();
    const { bound, stale } = this.classifyOwnedLinks();
    const takenOver = this.resolveHolders(bound, stale);
    this.settleLinkSets(bound, stale, takenOver);
    this.acceptAddresses();
    this.planAddressDeletes();
    this.planDevices();
    this.planAddressAdds();
    this.planRoutes();
    this.planPrune();
    for (const p of this.pendingSideEffects) p.target.push(...p.compute());
    return this.result();
  }

  // ---- findings ---------------------------------------------------------------------------

  private finding(kind: 'refused' | 'conflict', code: FindingCode, d: DesiredDevice, subject: Finding['subject'], reason: string, target?: string, key?: string): void {
    const f: Finding = { kind, code, device: d.name, ifname: d.ifname, origin: d.origin, subject, reason };
    if (target !== undefined) f.target = target;
    if (key !== undefined) f.key = key;
    (kind === 'refused' ? this.refusals : this.conflicts).push(f);
  }

  private excludeDevice(kind: 'refused' | 'conflict', code: FindingCode, d: DesiredDevice, reason: string): void {
    if (this.excluded.has(d)) return;
    this.excluded.add(d);
    this.finding(kind, code, d, 'device', reason);
  }

  /** Policy on ifnames, and declarations that contradict each other. */
  private checkDeclarations(): void {
    for (const d of this.devices) {
      const why = ifnameRefusal(d.ifname, this.policy);
      if (why !== undefined) this.excludeDevice('refused', 'NameNotAllowed', d, why);
    }
    const groups = (keyOf: (d: DesiredDevice) => string): DesiredDevice[][] => {
      const map = new Map<string, DesiredDevice[]>();
      for (const d of this.devices) pushTo(map, keyOf(d), d);
      return [...map.values()].filter((g) => g.length > 1);
    };
    for (const group of groups((d) => d.name)) {
      const where = group.map((d) => d.origin).join(', ');
      for (const d of group) {
        this.excludeDevice('conflict', 'DuplicateName', d, `TunDevice "${d.name}" is declared ${group.length} times (${where}); none of them is applied`);
      }
    }
    for (const group of groups((d) => d.ifname)) {
      const who = group.map((d) => `"${d.name}" (${d.origin})`).join(', ');
      for (const d of group) {
        this.excludeDevice('conflict', 'DuplicateIfname', d, `ifname ${d.ifname} is declared by ${group.length} TunDevices: ${who}; none of them is applied`);
      }
    }
  }

  // ---- links --------------------------------------------------------------------------------

  /**
   * bound: owned links whose marker names a declared device with that very ifname (its link, even
   * when that declaration is refused or in conflict). stale: owned links no declaration wants.
   */
  private classifyOwnedLinks(): { bound: Map<number, DesiredDevice[]>; stale: Map<number, string> } {
    const declared = new Map<string, DesiredDevice[]>();
    for (const d of this.devices) {
      const k = `${d.name}\n${d.ifname}`;
      pushTo(declared, k, d);
    }
    const bound = new Map<number, DesiredDevice[]>();
    const stale = new Map<number, string>();
    for (const link of this.links) {
      const owner = markerOwner(link);
      if (owner === undefined) continue;
      const group = declared.get(`${owner}\n${link.ifname}`);
      if (group !== undefined) bound.set(link.ifindex, group);
      else stale.set(link.ifindex, owner);
    }
    return { bound, stale };
  }

  /** A held name with a declaration (a name only held is no device of this plan). */
  private isHeldDeclared(name: string): boolean {
    return this.held.has(name) && this.devices.some((d) => d.name === name);
  }

  /** Decides, per declared device, whether it is created, managed, recreated or in conflict. */
  private resolveHolders(bound: Map<number, DesiredDevice[]>, stale: Map<number, string>): Set<number> {
    const takenOver = new Set<number>();
    for (const d of this.devices) {
      if (this.excluded.has(d)) continue;
      const holder = this.linkByName.get(d.ifname);
      if (this.held.has(d.name)) {
        // Its own link only: a link of that name not bound to it is not the held device's.
        const own = holder !== undefined && bound.get(holder.ifindex)?.includes(d) === true ? holder : undefined;
        this.heldDevices.push(own !== undefined ? { d, link: own } : { d });
        continue;
      }
      if (holder === undefined) {
        this.managed.push({ d, mode: 'create', recreateChanges: [], addresses: [], conflictedAddresses: new Set() });
        continue;
      }
      if (bound.get(holder.ifindex)?.includes(d)) {
        const changes = fixedFieldChanges(d, holder);
        this.managed.push({ d, mode: changes.length > 0 ? 'recreate' : 'manage', link: holder, recreateChanges: changes, addresses: [], conflictedAddresses: new Set() });
        continue;
      }
      const staleOwner = stale.get(holder.ifindex);
      if (staleOwner !== undefined) {
        if (this.isHeldDeclared(staleOwner)) {
          this.excludeDevice(
            'conflict',
            'IfnameHeldByStaleDevice',
            d,
            `${d.ifname} holds the former device of TunDevice "${staleOwner}", which is held (changed behind tunkeeper's back); it is replaced once the hold ends`,
          );
        } else if (this.prune) {
          takenOver.add(holder.ifindex);
          this.managed.push({ d, mode: 'recreate', link: holder, recreateChanges: [], previousOwner: staleOwner, addresses: [], conflictedAddresses: new Set() });
        } else {
          this.excludeDevice(
            'conflict',
            'IfnameHeldByStaleDevice',
            d,
            `${d.ifname} holds the device of TunDevice "${staleOwner}", which no declaration wants; it is replaced once pruning resumes (the desired state may be incomplete)`,
          );
        }
        continue;
      }
      if (bound.has(holder.ifindex)) {
        // Only reachable with two declarations of one ifname, which checkDeclarations excludes.
        this.excludeDevice('conflict', 'DuplicateIfname', d, `${d.ifname} belongs to another declared TunDevice`);
        continue;
      }
      this.excludeDevice('conflict', 'IfnameHeldByForeignLink', d, `${d.ifname} already exists and is not tunkeeper's (${describeForeignLink(holder)}); tunkeeper never adopts or changes a link it did not create`);
    }
    return takenOver;
  }

  private settleLinkSets(bound: Map<number, DesiredDevice[]>, stale: Map<number, string>, takenOver: Set<number>): void {
    for (const m of this.managed) {
      if (m.link === undefined) continue;
      if (m.mode === 'manage') this.managedByIndex.set(m.link.ifindex, m);
      else this.vanishing.add(m.link.ifindex);
    }
    for (const [ifindex, group] of bound) {
      if (group.every((d) => this.excluded.has(d) || this.held.has(d.name))) this.unmanagedLinks.add(ifindex);
    }
    for (const [ifindex, owner] of stale) {
      if (takenOver.has(ifindex)) continue;
      const link = this.linkByIndex.get(ifindex) as ObservedLink;
      if (this.isHeldDeclared(owner)) {
        // The held device's former link (it now declares another ifname): its move waits too.
        this.unmanagedLinks.add(ifindex);
        this.retained.push({ device: owner, ifname: link.ifname, ifindex, reason: `TunDevice "${owner}" is held (changed behind tunkeeper's back); its former device is left until the hold ends` });
        continue;
      }
      if (this.prune) {
        this.pruned.set(ifindex, owner);
      } else {
        this.unmanagedLinks.add(ifindex);
        this.retained.push({ device: owner, ifname: link.ifname, ifindex, reason: `no declaration wants it, but pruning is suspended (the desired state may be incomplete)` });
      }
    }
  }

  // ---- addresses ------------------------------------------------------------------------------

  private acceptAddresses(): void {
    for (const m of this.managed) {
      const seen = new Set<string>();
      // The kernel keeps one prefix length per IPv6 address on a link: two would replace each other.
      const lengths = new Map<string, number[]>();
      for (const a of m.d.addresses) {
        if (a.family !== 6) continue;
        const list = lengths.get(a.address) ?? [];
        if (!list.includes(a.prefixLength)) list.push(a.prefixLength);
        lengths.set(a.address, list);
      }
      for (const a of m.d.addresses) {
        const id = `${a.family}|${a.address}|${a.prefixLength}`;
        if (seen.has(id)) continue;
        seen.add(id);
        const twice = a.family === 6 ? (lengths.get(a.address) as number[]) : [];
        if (twice.length > 1) {
          this.finding('conflict', 'AddressDeclaredTwice', m.d, 'address', `${a.address} is declared with prefix lengths ${twice.join(' and ')}; the kernel keeps one per IPv6 address on a link`, describeAddress(a));
          m.conflictedAddresses.add(addrId(6, a.address));
          continue;
        }
        if (a.family === 6 && m.d.mtu < IPV6_MIN_MTU) {
          this.finding('refused', 'Ipv6NeedsMtu1280', m.d, 'address', `the kernel disables IPv6 on a link whose MTU is below ${IPV6_MIN_MTU} (declared mtu ${m.d.mtu})`, describeAddress(a));
          continue;
        }
        m.addresses.push(a);
      }
    }
  }

  private ownedAddressesOf(ifindex: number): ObservedAddress[] {
    return (this.addrsByLink.get(ifindex) ?? []).filter((a) => !isKernelLinkLocal(a));
  }

  /** Owned addresses on a managed link that the declaration does not list. */
  private unwantedAddresses(m: Managed, link: ObservedLink): ObservedAddress[] {
    return this.ownedAddressesOf(link.ifindex).filter(
      (o) =>
        !m.conflictedAddresses.has(addrId(o.family, o.address)) &&
        (o.peer !== undefined || !m.addresses.some((a) => a.family === o.family && a.address === o.address && a.prefixLength === o.prefixLength)),
    );
  }

  private markRemoved(a: ObservedAddress): void {
    const list = this.removed.get(a.ifindex) ?? [];
    if (!list.includes(a)) list.push(a);
    this.removed.set(a.ifindex, list);
  }

  private wasRemoved(ifindex: number, family: IpFamily, address: string): boolean {
    return (this.removed.get(ifindex) ?? []).some((a) => a.family === family && a.address === address);
  }

  private removedFromHost(family: IpFamily, address: string): boolean {
    if (this.remainingOnHost.has(addrId(family, address))) return false;
    for (const list of this.removed.values()) if (list.some((a) => a.family === family && a.address === address)) return true;
    return false;
  }

  /**
   * Whether the kernel removes a route before the route phase whatever its sysctls say: its link is
   * deleted or goes down, it is IPv6 on a link losing IPv6, or it is IPv4 and its link loses every
   * IPv4 address or (main table) its preferred source leaves the host.
   */
  private goneBeforeRoutePhase(r: ObservedRoute): boolean {
    const oif = r.oif;
    if (oif !== undefined) {
      if (this.vanishing.has(oif) || this.pruned.has(oif) || this.goingDown.has(oif)) return true;
      if (r.family === 6 && this.losingIPv6.has(oif)) return true;
      if (r.family === 4) {
        let loses = this.surelyLosesIPv4.get(oif);
        if (loses === undefined) {
          const v4 = (this.addrsByLink.get(oif) ?? []).filter((a) => a.family === 4);
          const gone = this.surelyRemoved.get(oif) ?? [];
          loses = v4.length > 0 && v4.every((a) => gone.includes(a));
          this.surelyLosesIPv4.set(oif, loses);
        }
        if (loses) return true;
      }
    }
    if (r.family === 4 && r.table === RT_TABLE_MAIN && r.prefsrc !== undefined) {
      const holders = this.addrsByValue.get(addrId(4, r.prefsrc)) ?? [];
      if (holders.length > 0 && holders.every((a) => (this.surelyRemoved.get(a.ifindex) ?? []).includes(a))) return true;
    }
    return false;
  }

  /** Phase 2, and the bookkeeping of what phases 2-5 may remove. */
  private planAddressDeletes(): void {
    const surely = (a: ObservedAddress): void => {
      this.markRemoved(a);
      pushTo(this.surelyRemoved, a.ifindex, a);
    };
    for (const ifindex of this.vanishing) for (const a of this.addrsByLink.get(ifindex) ?? []) surely(a);
    for (const m of this.managed) {
      if (m.mode !== 'manage' || m.link === undefined) continue;
      if (m.link.up && !m.d.up) this.goingDown.add(m.link.ifindex);
      if (m.link.mtu >= IPV6_MIN_MTU && m.d.mtu < IPV6_MIN_MTU) this.losingIPv6.add(m.link.ifindex);
    }

    for (const m of this.managed) {
      if (m.mode !== 'manage' || m.link === undefined) continue;
      const link = m.link;
      const unwanted = this.unwantedAddresses(m, link);
      for (const o of unwanted) {
        surely(o);
        if (o.family !== 4 || o.flags.secondary) continue;
        // A primary's secondaries (same prefix length and subnet) go with it unless promote_secondaries.
        for (const other of this.addrsByLink.get(link.ifindex) ?? []) {
          if (other.family === 4 && other !== o && other.flags.secondary && other.prefixLength === o.prefixLength && networkOf(4, other.address, other.prefixLength) === networkOf(4, o.address, o.prefixLength)) {
            this.markRemoved(other);
          }
        }
      }
    }

    for (const a of this.observed.addresses) {
      if (!(this.removed.get(a.ifindex) ?? []).includes(a)) this.remainingOnHost.add(addrId(a.family, a.address));
    }
    for (const [ifindex, list] of this.removed) {
      if (this.vanishing.has(ifindex) || !list.some((a) => a.family === 4)) continue;
      const left = (this.addrsByLink.get(ifindex) ?? []).filter((a) => a.family === 4 && !list.includes(a));
      if (left.length === 0) this.losesAllIPv4.add(ifindex);
    }

    for (const m of this.managed) {
      if (m.mode !== 'manage' || m.link === undefined) continue;
      const link = m.link;
      const deletes = this.unwantedAddresses(m, link)
        // Secondaries first: deleting a primary may take its secondaries along.
        .sort((x, y) => Number(y.flags.secondary) - Number(x.flags.secondary) || x.family - y.family || compareStrings(x.address, y.address) || x.prefixLength - y.prefixLength);
      let lastIPv4: number | undefined;
      deletes.forEach((o, i) => {
        if (o.family === 4) lastIPv4 = i;
      });
      deletes.forEach((o, i) => {
        const sideEffects = this.later(() => this.addressDeleteSideEffects(link, o, i === lastIPv4));
        this.emit(
          {
            type: 'delete-address',
            device: m.d.name,
            ifname: link.ifname,
            ifindex: link.ifindex,
            address: { family: o.family, address: o.address, prefixLength: o.prefixLength, ...(o.peer !== undefined ? { peer: o.peer } : {}) },
            sideEffects,
            reason: o.peer !== undefined ? `has a peer address; ${m.d.name} declares a plain address` : `not declared for ${m.d.name}`,
          },
          link.ifname,
          `${String(i).padStart(6, '0')}`,
        );
      });
    }
  }

  private addressDeleteSideEffects(link: ObservedLink, o: ObservedAddress, lastIPv4Delete: boolean): SideEffect[] {
    const effects: SideEffect[] = [];
    if (o.family === 4) {
      if (this.removedFromHost(4, o.address)) {
        for (const r of this.bystanderRoutes(this.routesBySrc.get(addrId(4, o.address)), (r) => r.family === 4 && r.table === RT_TABLE_MAIN && r.prefsrc === o.address)) {
          effects.push({ effect: 'may-remove-route', route: r, why: `its preferred source ${o.address} leaves the host` });
        }
      }
      if (lastIPv4Delete && this.losesAllIPv4.has(link.ifindex)) {
        for (const r of this.bystanderRoutes(this.routesByOif.get(link.ifindex), (r) => r.family === 4 && r.oif === link.ifindex)) {
          effects.push({ effect: 'may-remove-route', route: r, why: `the kernel drops IPv4 routes through a link with no IPv4 address left` });
        }
      }
    } else {
      for (const r of this.bystanderRoutes(this.routesByOif.get(link.ifindex), (r) => r.family === 6 && r.oif === link.ifindex && r.prefsrc === o.address)) {
        effects.push({ effect: 'clears-route-source', route: r, why: `the kernel clears a removed address as source of routes through its link` });
      }
    }
    return dedupeEffects(effects);
  }

  /**
   * Routes this plan does not manage that match a predicate, described: foreign ones (except the
   * kernel's own routes for addresses) and tunkeeper's own that it leaves alone (their device is
   * refused, in conflict, held, or kept while pruning is suspended).
   */
  private bystanderRoutes(candidates: ObservedRoute[] | undefined, pred: (r: ObservedRoute) => boolean): string[] {
    return (candidates ?? [])
      .filter((r) => (isOwnedRoute(r, this.policy) ? this.disposition(r) === 'unmanaged' || this.isProtected(r) : r.protocol !== RTPROT_KERNEL) && pred(r))
      .map((r) => this.describe(r))
      .sort(compareStrings);
  }

  private describe(r: ObservedRoute): string {
    return describeObservedRoute(r, (i) => this.linkByIndex.get(i)?.ifname);
  }

  /** Side effects of deleting a whole link; `leavesHost` tells whether one of its IPv4 addresses is then on no link. */
  private linkDeleteSideEffects(link: ObservedLink, leavesHost: (address: string) => boolean): SideEffect[] {
    const effects: SideEffect[] = this.bystanderRoutes(this.routesByOif.get(link.ifindex), (r) => r.oif === link.ifindex).map((route) => ({
      effect: 'removes-route' as const,
      route,
      why: `it goes through ${link.ifname}`,
    }));
    for (const a of this.addrsByLink.get(link.ifindex) ?? []) {
      if (a.family !== 4 || !leavesHost(a.address)) continue;
      for (const route of this.bystanderRoutes(this.routesBySrc.get(addrId(4, a.address)), (r) => r.family === 4 && r.table === RT_TABLE_MAIN && r.prefsrc === a.address && r.oif !== link.ifindex)) {
        effects.push({ effect: 'removes-route', route, why: `its preferred source ${a.address} leaves the host` });
      }
    }
    return dedupeEffects(effects);
  }

  // ---- devices --------------------------------------------------------------------------------

  private createSpec(d: DesiredDevice): CreateDeviceSpec {
    const spec: CreateDeviceSpec = {
      mode: d.mode,
      multiQueue: d.multiQueue,
      vnetHdr: d.vnetHdr,
      packetInfo: d.packetInfo,
      alias: ownerMarker(d.name),
      persist: true,
    };
    if (d.owner !== undefined) spec.owner = d.owner;
    if (d.group !== undefined) spec.group = d.group;
    return spec;
  }

  /** Phases 3-5. */
  private planDevices(): void {
    for (const m of this.managed) {
      const d = m.d;
      if (m.mode === 'create') {
        this.emit({ type: 'create-device', device: d.name, ifname: d.ifname, spec: this.createSpec(d), reason: `declared by ${d.origin}; no link named ${d.ifname} exists` }, d.ifname);
      } else if (m.mode === 'recreate' && m.link !== undefined) {
        const link = m.link;
        const reason =
          m.previousOwner !== undefined
            ? `${d.ifname} holds the device of TunDevice "${m.previousOwner}", which no declaration wants any more; it is deleted and created for ${d.name}`
            : `${m.recreateChanges.map((c) => `${c.field} is fixed at creation (observed ${String(c.from)}, declared ${String(c.to)})`).join('; ')}: the device is deleted and created again`;
        this.emit(
          {
            type: 'recreate-device',
            device: d.name,
            ifname: d.ifname,
            ifindex: link.ifindex,
            spec: this.createSpec(d),
            changes: m.recreateChanges,
            ...(m.previousOwner !== undefined ? { previousOwner: m.previousOwner } : {}),
            sideEffects: this.later(() => this.linkDeleteSideEffects(link, (address) => this.removedFromHost(4, address))),
            reason,
          },
          d.ifname,
        );
      }
      if (m.mode === 'manage' && m.link !== undefined) this.planExistingLink(m, m.link);
      else this.planFreshLink(m);
    }
  }

  private planFreshLink(m: Managed): void {
    const d = m.d;
    const set: LinkSettings = { mtu: d.mtu };
    const changes: FieldChange[] = [{ field: 'mtu', to: d.mtu }];
    if (d.txQueueLength !== undefined) {
      set.txQueueLength = d.txQueueLength;
      changes.push({ field: 'txQueueLength', to: d.txQueueLength });
    }
    if (d.mode === 'tap' && d.macAddress !== undefined) {
      set.macAddress = d.macAddress;
      changes.push({ field: 'macAddress', to: d.macAddress });
    }
    if (d.up) {
      set.up = true;
      changes.push({ field: 'up', to: true });
    }
    this.emit({ type: 'set-link', device: d.name, ifname: d.ifname, set, changes, sideEffects: [], reason: 'settings of the new device' }, d.ifname);
  }

  private planExistingLink(m: Managed, link: ObservedLink): void {
    const d = m.d;
    const set: LinkSettings = {};
    const changes: FieldChange[] = [];
    const losesIPv6 = d.mtu < IPV6_MIN_MTU && link.mtu >= IPV6_MIN_MTU;
    const goesDown = link.up && !d.up;
    if (d.mtu !== link.mtu) {
      set.mtu = d.mtu;
      changes.push({ field: 'mtu', from: link.mtu, to: d.mtu });
    }
    if (d.txQueueLength !== undefined && d.txQueueLength !== link.txQueueLength) {
      set.txQueueLength = d.txQueueLength;
      changes.push({ field: 'txQueueLength', from: link.txQueueLength, to: d.txQueueLength });
    }
    if (d.mode === 'tap' && d.macAddress !== undefined && d.macAddress !== link.macAddress) {
      set.macAddress = d.macAddress;
      changes.push({ field: 'macAddress', from: link.macAddress ?? null, to: d.macAddress });
    }
    if (d.up !== link.up) {
      set.up = d.up;
      changes.push({ field: 'up', from: link.up, to: d.up });
    }
    const sideEffects = this.later(() => {
      const effects: SideEffect[] = [];
      if (goesDown) {
        for (const route of this.bystanderRoutes(this.routesByOif.get(link.ifindex), (r) => r.oif === link.ifindex)) {
          effects.push({ effect: 'removes-route', route, why: 'the kernel drops the routes of a link that goes down' });
        }
      }
      if (losesIPv6) {
        for (const route of this.bystanderRoutes(this.routesByOif.get(link.ifindex), (r) => r.family === 6 && r.oif === link.ifindex)) {
          effects.push({ effect: 'removes-route', route, why: `the kernel disables IPv6 on a link whose MTU is below ${IPV6_MIN_MTU}` });
        }
      }
      return dedupeEffects(effects);
    });
    if (changes.length > 0) {
      this.emit(
        {
          type: 'set-link',
          device: d.name,
          ifname: d.ifname,
          ifindex: link.ifindex,
          set,
          changes,
          sideEffects,
          reason: `differs from the declaration: ${changes.map(describeChange).join(', ')}`,
        },
        d.ifname,
      );
    }

    const tun = link.tun;
    if (tun === undefined) return; // kernels before 4.15 do not report owner, group or persist
    const tunSet: { owner?: number | null; group?: number | null; persist?: true } = {};
    const tunChanges: FieldChange[] = [];
    const wantOwner = d.owner ?? null;
    if (wantOwner !== (tun.owner ?? null)) {
      tunSet.owner = wantOwner;
      tunChanges.push({ field: 'owner', from: tun.owner ?? null, to: wantOwner });
    }
    const wantGroup = d.group ?? null;
    if (wantGroup !== (tun.group ?? null)) {
      tunSet.group = wantGroup;
      tunChanges.push({ field: 'group', from: tun.group ?? null, to: wantGroup });
    }
    if (!tun.persist) {
      tunSet.persist = true;
      tunChanges.push({ field: 'persist', from: false, to: true });
    }
    if (tunChanges.length > 0) {
      this.emit(
        {
          type: 'set-tun-options',
          device: d.name,
          ifname: d.ifname,
          ifindex: link.ifindex,
          flags: { mode: tun.mode, multiQueue: tun.multiQueue, vnetHdr: tun.vnetHdr, packetInfo: tun.packetInfo },
          set: tunSet,
          changes: tunChanges,
          reason: `differs from the declaration: ${tunChanges.map(describeChange).join(', ')}`,
        },
        d.ifname,
      );
    }
  }

  /** Phase 6. */
  private planAddressAdds(): void {
    for (const m of this.managed) {
      const d = m.d;
      const existing = m.mode === 'manage' && m.link !== undefined ? m.link : undefined;
      const goesDown = existing !== undefined && existing.up && !d.up;
      for (const a of m.addresses) {
        let reason: string | undefined;
        if (existing === undefined) {
          reason = m.mode === 'create' ? 'declared; on the new device' : 'declared; on the recreated device';
        } else {
          const present = (this.addrsByLink.get(existing.ifindex) ?? []).find(
            (o) => o.family === a.family && o.address === a.address && o.prefixLength === a.prefixLength && o.peer === undefined,
          );
          if (present === undefined) reason = 'declared, missing';
          else if (a.family === 6 && goesDown) reason = 're-asserted: the kernel removes IPv6 addresses from a link that goes down';
          else if ((this.removed.get(existing.ifindex) ?? []).includes(present)) {
            reason = 're-asserted: removing its primary address may have removed it (promote_secondaries off)';
          }
        }
        if (reason === undefined) continue;
        this.emit(
          {
            type: 'add-address',
            device: d.name,
            ifname: d.ifname,
            ...(existing !== undefined ? { ifindex: existing.ifindex } : {}),
            address: { family: a.family, address: a.address, prefixLength: a.prefixLength },
            protocol: this.policy.routeProtocol,
            noDad: a.family === 6,
            reason,
          },
          d.ifname,
          `${a.family}|${a.address}|${String(a.prefixLength).padStart(3, '0')}`,
        );
      }
    }
  }

  // ---- routes ---------------------------------------------------------------------------------

  private disposition(r: ObservedRoute): RouteDisposition {
    const oif = r.oif;
    if (oif === undefined || !this.linkByIndex.has(oif)) return this.prune ? 'managed' : 'unmanaged';
    if (this.vanishing.has(oif) || this.pruned.has(oif)) return 'vanishes';
    if (this.managedByIndex.has(oif)) return 'managed';
    if (this.unmanagedLinks.has(oif)) return 'unmanaged';
    return this.prune ? 'managed' : 'unmanaged';
  }

  /** Addresses (family|address) present once the plan has run. */
  private addressesAfterPlan(): Set<string> {
    const after = new Set<string>();
    for (const m of this.managed) for (const a of m.addresses) after.add(addrId(a.family, a.address));
    for (const a of this.observed.addresses) {
      if (this.managedByIndex.has(a.ifindex) || this.vanishing.has(a.ifindex) || this.pruned.has(a.ifindex)) continue;
      after.add(addrId(a.family, a.address));
    }
    return after;
  }

  /** Keys of the routes the kernel derives from the addresses of managed devices, once the plan has run. */
  private predictedConnectedRoutes(): Map<string, string> {
    const keys = new Map<string, string>();
    for (const m of this.managed) {
      if (!m.d.up) continue; // the kernel adds them when the link is up
      for (const a of m.addresses) {
        const key = connectedRouteKey(a.family, a.address, a.prefixLength);
        if (key !== undefined && !keys.has(key)) keys.set(key, `the kernel's route for ${describeAddress(a)} on ${m.d.ifname}`);
      }
    }
    return keys;
  }

  /** Whether an observed route is the kernel's connected route for an address on a managed link (replaced by the prediction). */
  private isConnectedRouteOfManagedLink(r: ObservedRoute): boolean {
    if (r.protocol !== RTPROT_KERNEL || r.oif === undefined || !this.managedByIndex.has(r.oif) || r.table !== RT_TABLE_MAIN) return false;
    let keys = this.connectedKeysOf.get(r.oif);
    if (keys === undefined) {
      keys = new Set();
      for (const a of this.addrsByLink.get(r.oif) ?? []) {
        const key = connectedRouteKey(a.family, a.address, a.prefixLength);
        if (key !== undefined) keys.add(key);
      }
      this.connectedKeysOf.set(r.oif, keys);
    }
    return keys.has(observedRouteKey(r));
  }

  private routeRefusal(m: Managed, r: DesiredRoute, available: Set<string>): [FindingCode, string] | undefined {
    if (r.dstLength === 0 && !this.policy.allowDefaultRoute) return ['DefaultRouteNotAllowed', 'the agent is not allowed to own a default route (allowDefaultRoute is off)'];
    if (r.table === RT_TABLE_LOCAL) return ['LocalTableNotAllowed', 'the local table (255) holds the kernel\'s own address routes and is never managed'];
    if (!m.d.up) return ['DeviceDown', 'the device is declared down, and the kernel keeps no route through a down link'];
    if (r.family === 6 && m.d.mtu < IPV6_MIN_MTU) return ['Ipv6NeedsMtu1280', `the kernel disables IPv6 on a link whose MTU is below ${IPV6_MIN_MTU} (declared mtu ${m.d.mtu})`];
    if (r.src !== undefined && !available.has(addrId(r.family, r.src))) {
      return ['SourceAddressMissing', `preferred source ${r.src} is not an address of this host (declared or present), and the kernel refuses such a route`];
    }
    return undefined;
  }

  private specFor(m: Managed, r: DesiredRoute): RouteSpec {
    const spec: RouteSpec = {
      family: r.family,
      table: r.table,
      dst: r.dst,
      dstLength: r.dstLength,
      tos: 0,
      metric: effectiveMetric(r.family, r.metric),
      protocol: this.policy.routeProtocol,
      type: 'unicast',
      scope: expectedScope(r),
      ifname: m.d.ifname,
      onLink: r.onLink,
    };
    if (m.mode === 'manage' && m.link !== undefined) spec.oif = m.link.ifindex;
    if (r.via !== undefined) spec.gateway = r.via;
    if (r.src !== undefined) spec.prefsrc = r.src;
    if (r.mtu !== undefined) spec.mtu = r.mtu;
    return spec;
  }

  /** Why an in-sync route may have been removed or altered by phases 2-5, or undefined. */
  private routeTaint(m: Managed, r: DesiredRoute): string | undefined {
    if (m.mode !== 'manage' || m.link === undefined) return undefined;
    const ifindex = m.link.ifindex;
    if (r.family === 4 && this.losesAllIPv4.has(ifindex)) return 're-asserted: the kernel drops IPv4 routes through a link whose last IPv4 address is removed';
    if (r.family === 4 && r.table === RT_TABLE_MAIN && r.src !== undefined && this.removedFromHost(4, r.src)) {
      return `re-asserted: the kernel drops main-table routes whose preferred source ${r.src} leaves the host`;
    }
    if (r.family === 6 && r.src !== undefined && this.wasRemoved(ifindex, 6, r.src)) {
      return `re-asserted: the kernel clears ${r.src} as source when it is removed from ${m.d.ifname}`;
    }
    return undefined;
  }

  /** Phase 1 (stale owned routes, and every owned route of a key several share) and phase 8. */
  private planRoutes(): void {
    const available = this.addressesAfterPlan();
    const protect = (m: Managed, key: string): void => {
      if (m.link !== undefined) this.protectedRoutes.add(`${m.link.ifindex}|${key}`);
    };
    const declared: Candidate[] = [];
    for (const m of this.managed) {
      const seen = new Set<string>();
      const keyed = m.d.routes.map((r) => ({ r, key: desiredRouteKey(r) })).sort((a, b) => compareStrings(a.key, b.key));
      for (const { r, key } of keyed) {
        const identity = `${key}|${r.via}|${r.src}|${r.mtu}|${r.onLink}`;
        if (seen.has(identity)) continue; // the same route listed twice
        seen.add(identity);
        declared.push({ m, r, key });
      }
    }
    // The kernel keeps one route per key: two declarations of a key would replace each other.
    const byKey = new Map<string, Candidate[]>();
    for (const c of declared) pushTo(byKey, c.key, c);
    // A held device's routes still claim their keys (as they would if it were not held), and an
    // owned route under one of them is left alone wherever it goes through.
    const heldKeys = new Map<string, string>();
    for (const h of this.heldDevices) {
      for (const r of h.d.routes) {
        const key = desiredRouteKey(r);
        if (heldKeys.has(key)) continue;
        heldKeys.set(key, h.d.name);
        if (byKey.has(key)) pushTo(byKey, key, { m: { d: h.d, mode: 'manage', recreateChanges: [], addresses: [], conflictedAddresses: new Set<string>() }, r, key });
      }
    }
    const candidates: Candidate[] = [];
    for (const c of declared) {
      const target = (): string => describeRouteSpec(this.specFor(c.m, c.r));
      const same = byKey.get(c.key) as Candidate[];
      if (same.length > 1) {
        const others = same.filter((o) => o !== c).map((o) => (o.m === c.m ? `another route of "${c.m.d.name}"` : `"${o.m.d.name}" on ${o.m.d.ifname}`));
        this.finding('conflict', 'RouteKeyDesiredTwice', c.m.d, 'route', `the kernel keeps one route per ${c.key}, and ${others.join(', ')} declares it too`, target(), c.key);
        protect(c.m, c.key);
        continue;
      }
      const refusal = this.routeRefusal(c.m, c.r, available);
      if (refusal !== undefined) {
        this.finding('refused', refusal[0], c.m.d, 'route', refusal[1], target(), c.key);
        protect(c.m, c.key);
        continue;
      }
      candidates.push(c);
    }

    const foreignHolders = new Map<string, ObservedRoute[]>();
    const unmanagedHolders = new Map<string, ObservedRoute[]>();
    const replaceable = new Map<string, ObservedRoute[]>();
    for (const r of this.observed.routes) {
      const key = observedRouteKey(r);
      const add = (map: Map<string, ObservedRoute[]>): void => pushTo(map, key, r);
      if (!isOwnedRoute(r, this.policy)) {
        if (this.goneBeforeRoutePhase(r) || this.isConnectedRouteOfManagedLink(r)) continue;
        add(foreignHolders);
        continue;
      }
      const disp = this.disposition(r);
      if (disp === 'unmanaged' && !this.goneBeforeRoutePhase(r)) add(unmanagedHolders);
      else if (disp === 'managed') add(replaceable);
    }
    const connected = this.predictedConnectedRoutes();

    const accepted: Candidate[] = [];
    for (const c of candidates) {
      const fail = (code: FindingCode, reason: string): void => {
        this.finding('conflict', code, c.m.d, 'route', reason, describeRouteSpec(this.specFor(c.m, c.r)), c.key);
        protect(c.m, c.key);
      };
      const foreign = foreignHolders.get(c.key);
      if (foreign !== undefined) {
        fail('RouteKeyHeldByForeignRoute', `the kernel keys routes on ${c.key}, and it is held by a route tunkeeper does not own (${foreign.map((r) => this.describe(r)).join('; ')}); replacing it would take it over`);
        continue;
      }
      const unmanaged = unmanagedHolders.get(c.key);
      if (unmanaged !== undefined) {
        fail('RouteKeyHeldByUnmanagedRoute', `${c.key} is held by a tunkeeper route plan leaves alone (${unmanaged.map((r) => this.describe(r)).join('; ')}): its device is refused, in conflict, held, or kept while pruning is suspended`);
        continue;
      }
      const kernelRoute = connected.get(c.key);
      if (kernelRoute !== undefined) {
        fail('RouteKeyIsConnectedRoute', `${c.key} is ${kernelRoute}; replacing it would take the kernel's route over`);
        continue;
      }
      accepted.push(c);
    }
    this.refuseUnreachableGateways(accepted, protect);

    const consumed = new Set<ObservedRoute>();
    for (const c of accepted) {
      if (c.refused === true) continue;
      const spec = this.specFor(c.m, c.r);
      const group = replaceable.get(c.key) ?? [];
      for (const o of group) consumed.add(o);
      if (group.length > 1) {
        // RTM_DELROUTE removes the first route whose attributes include the ones given, so one of
        // several routes under a key cannot be singled out: all go, the declared one is added.
        for (const o of group) this.emitRouteDelete(o, `${group.length} tunkeeper routes share ${c.key}; all are removed and the declared one added`);
        this.emit({ type: 'replace-route', device: c.m.d.name, ifname: c.m.d.ifname, route: spec, changes: [], reason: 'declared; re-added alone under its key' }, c.m.d.ifname, replaceOrder(c));
        continue;
      }
      const current = group[0];
      const exact = current !== undefined && routeMatches(current, spec);
      const taint = exact ? this.routeTaint(c.m, c.r) : undefined;
      if (exact && taint === undefined) continue;
      const changes = current === undefined || exact ? [] : routeChanges(current, spec, (i) => this.linkByIndex.get(i)?.ifname);
      const reason = taint ?? (current === undefined ? 'declared, missing' : `differs from the declaration: ${changes.map(describeChange).join(', ')}`);
      this.emit({ type: 'replace-route', device: c.m.d.name, ifname: c.m.d.ifname, route: spec, changes, reason }, c.m.d.ifname, replaceOrder(c));
    }

    for (const list of replaceable.values()) {
      for (const o of list) {
        if (consumed.has(o)) continue;
        if (this.isProtected(o) || heldKeys.has(observedRouteKey(o))) continue;
        const holder = o.oif !== undefined ? this.managedByIndex.get(o.oif) : undefined;
        this.emitRouteDelete(o, holder !== undefined ? `not declared for ${holder.d.name}` : 'owned (protocol) but declared by no device');
      }
    }
  }

  /**
   * The kernel accepts a gateway only if it can reach it through the route's device: inside the
   * prefix of one of the device's addresses, inside a device route (no gateway) through it in the
   * same table or main, an IPv6 link-local gateway, or `onlink`. Only what this plan programs
   * counts, so a gateway behind a refused or conflicting address is refused here rather than
   * failing in apply on every reconcile.
   */
  private refuseUnreachableGateways(accepted: Candidate[], protect: (m: Managed, key: string) => void): void {
    const deviceRoutes = new Map<Managed, DesiredRoute[]>();
    for (const c of accepted) if (c.r.via === undefined) pushTo(deviceRoutes, c.m, c.r);
    for (const c of accepted) {
      const gw = c.r.via;
      if (gw === undefined || c.r.onLink || (c.r.family === 6 && isIPv6LinkLocal(gw))) continue;
      const bits = c.r.family === 4 ? 32 : 128;
      const byAddress = (): boolean =>
        c.m.addresses.some((a) => a.family === c.r.family && a.prefixLength < bits && a.address !== gw && prefixContains(a.family, a.address, a.prefixLength, gw));
      const byRoute = (): boolean =>
        (deviceRoutes.get(c.m) ?? []).some(
          (o) => o.family === c.r.family && (o.table === c.r.table || o.table === RT_TABLE_MAIN) && prefixContains(o.family, o.dst, o.dstLength, gw),
        );
      if (byAddress() || byRoute()) continue;
      c.refused = true;
      this.finding('refused', 'GatewayUnreachable', c.m.d, 'route', `gateway ${gw} is outside every prefix of ${c.m.d.ifname} (its addresses and device routes), so the kernel refuses the route; declare onLink if the gateway is reachable anyway`, describeRouteSpec(this.specFor(c.m, c.r)), c.key);
      protect(c.m, c.key);
    }
  }

  /** An owned route under a declared key that plan does not apply (refused or in conflict): left alone. */
  private isProtected(r: ObservedRoute): boolean {
    return r.oif !== undefined && this.protectedRoutes.has(`${r.oif}|${observedRouteKey(r)}`);
  }

  private emitRouteDelete(o: ObservedRoute, reason: string): void {
    const link = o.oif !== undefined ? this.linkByIndex.get(o.oif) : undefined;
    const owner = link !== undefined ? markerOwner(link) : undefined;
    const route: RouteSpec = {
      family: o.family,
      table: o.table,
      dst: o.dst,
      dstLength: o.dstLength,
      tos: o.family === 4 ? (o.tos ?? 0) : 0,
      metric: o.metric ?? 0,
      protocol: o.protocol,
      type: o.type,
      scope: o.scope,
      onLink: o.onLink,
    };
    if (o.family === 6 && (o.fromLength ?? 0) > 0) {
      route.from = o.from;
      route.fromLength = o.fromLength;
    }
    if (link !== undefined) route.ifname = link.ifname;
    if (o.oif !== undefined) route.oif = o.oif;
    if (o.gateway !== undefined) route.gateway = o.gateway;
    if (o.prefsrc !== undefined) route.prefsrc = o.prefsrc;
    if (o.mtu !== undefined) route.mtu = o.mtu;
    this.emit(
      {
        type: 'delete-route',
        ...(owner !== undefined ? { device: owner } : {}),
        ...(link !== undefined ? { ifname: link.ifname } : {}),
        route,
        reason,
      },
      // Grouped by key, the most specific first: a less specific delete would match it too.
      '',
      `${observedRouteKey(o)}|${3 - specificity(o)}|${link?.ifname ?? ''}|${o.gateway ?? ''}|${o.prefsrc ?? ''}|${o.mtu ?? ''}`,
    );
  }

  // ---- prune ----------------------------------------------------------------------------------

  private planPrune(): void {
    const after = this.addressesAfterPlan();
    for (const [ifindex, owner] of this.pruned) {
      const link = this.linkByIndex.get(ifindex) as ObservedLink;
      const declaredElsewhere = this.devices.find((d) => d.name === owner);
      this.emit(
        {
          type: 'delete-device',
          device: owner,
          ifname: link.ifname,
          ifindex,
          sideEffects: this.later(() => this.linkDeleteSideEffects(link, (address) => !after.has(addrId(4, address)))),
          reason:
            declaredElsewhere !== undefined
              ? `carries the marker of TunDevice "${owner}", which now declares ifname ${declaredElsewhere.ifname}`
              : `carries the marker of TunDevice "${owner}", which is no longer declared`,
        },
        link.ifname,
      );
    }
  }

  // ---- output ---------------------------------------------------------------------------------

  /** An array to put in an action now, filled with `compute()` once all route decisions are made. */
  private later(compute: () => SideEffect[]): SideEffect[] {
    const target: SideEffect[] = [];
    this.pendingSideEffects.push({ target, compute });
    return target;
  }

  private emit(action: Action, ifname: string, sub = ''): void {
    this.emitted.push({ action, ifname, sub });
  }

  private result(): Plan {
    const sorted = [...this.emitted].sort(
      (a, b) => PHASE[a.action.type] - PHASE[b.action.type] || compareStrings(a.ifname, b.ifname) || compareStrings(a.sub, b.sub),
    );
    const actions = sorted.map((e) => e.action);
    const touched = new Set(actions.map((a) => `${a.device ?? ''}\n${a.ifname ?? ''}`));
    const managedOf = new Map(this.managed.map((m) => [m.d, m]));
    const devices: DeviceOutcome[] = this.devices.map((d) => {
      const base = { device: d.name, ifname: d.ifname, origin: d.origin };
      if (this.excluded.has(d)) {
        const f = [...this.refusals, ...this.conflicts].find((x) => x.device === d.name && x.ifname === d.ifname && x.subject === 'device');
        return { ...base, status: f?.kind === 'refused' ? 'refused' : 'conflict' };
      }
      const held = this.heldDevices.find((h) => h.d === d);
      if (held !== undefined) return { ...base, ...(held.link !== undefined ? { ifindex: held.link.ifindex } : {}), status: 'held' };
      const m = managedOf.get(d) as Managed;
      if (m.mode === 'create') return { ...base, status: 'create' };
      const ifindex = (m.link as ObservedLink).ifindex;
      if (m.mode === 'recreate') return { ...base, ifindex, status: 'recreate' };
      return { ...base, ifindex, status: touched.has(`${d.name}\n${d.ifname}`) ? 'update' : 'in-sync' };
    });
    const byDevice = (a: Finding, b: Finding): number =>
      compareStrings(a.ifname, b.ifname) || compareStrings(a.device, b.device) || compareStrings(a.subject, b.subject) || compareStrings(a.target ?? '', b.target ?? '');
    return {
      actions,
      refusals: [...this.refusals].sort(byDevice),
      conflicts: [...this.conflicts].sort(byDevice),
      devices,
      retained: [...this.retained].sort((a, b) => compareStrings(a.ifname, b.ifname)),
      prune: this.prune,
    };
  }
}

// ---- helpers ------------------------------------------------------------------------------------

function describeForeignLink(link: ObservedLink): string {
  const kind = link.kind ?? 'no kind';
  const alias = link.alias === undefined ? 'no tunkeeper marker' : `alias "${link.alias}"`;
  return `ifindex ${link.ifindex}, ${kind}, ${alias}`;
}

/** The fields fixed at creation that differ between the declaration and an owned link. */
function fixedFieldChanges(d: DesiredDevice, link: ObservedLink): FieldChange[] {
  const tun = link.tun;
  if (tun === undefined) return []; // not reported by this kernel: nothing to compare against
  const changes: FieldChange[] = [];
  if (tun.mode !== d.mode) changes.push({ field: 'mode', from: tun.mode, to: d.mode });
  if (tun.multiQueue !== d.multiQueue) changes.push({ field: 'multiQueue', from: tun.multiQueue, to: d.multiQueue });
  if (tun.vnetHdr !== d.vnetHdr) changes.push({ field: 'vnetHdr', from: tun.vnetHdr, to: d.vnetHdr });
  if (tun.packetInfo !== d.packetInfo) changes.push({ field: 'packetInfo', from: tun.packetInfo, to: d.packetInfo });
  // TUNSETOWNER/TUNSETGROUP reject an invalid id (EINVAL), so an owner or group, once set, cannot
  // be cleared on a live device: removing it from the declaration means creating the device anew.
  if (tun.owner !== undefined && tun.owner !== null && d.owner === undefined) changes.push({ field: 'owner', from: tun.owner, to: null });
  if (tun.group !== undefined && tun.group !== null && d.group === undefined) changes.push({ field: 'group', from: tun.group, to: null });
  return changes;
}

/** The key of the route the kernel adds for an address on an up link (main table), if any. */
export function connectedRouteKey(family: IpFamily, address: string, prefixLength: number): string | undefined {
  if (prefixLength >= (family === 4 ? 32 : 128)) return undefined;
  return routeKey({
    family,
    table: RT_TABLE_MAIN,
    dst: networkOf(family, address, prefixLength),
    dstLength: prefixLength,
    tos: 0,
    metric: family === 4 ? 0 : IPV6_CONNECTED_METRIC,
    from: '',
    fromLength: 0,
  });
}

/** iproute2's choice, which the kernel then reports: a device route is link-scoped (IPv4). */
function expectedScope(r: DesiredRoute): RouteScope {
  return r.family === 4 && r.via === undefined ? 'link' : 'universe';
}

/** Device routes before gateway routes: a gateway may be reachable through a device route. */
function replaceOrder(c: Candidate): string {
  return `${c.r.via === undefined ? 0 : 1}|${c.key}`;
}

/** How many of the optional attributes RTM_DELROUTE matches on (when given) a route has. */
function specificity(r: ObservedRoute): number {
  return Number(r.gateway !== undefined) + Number(r.prefsrc !== undefined) + Number(r.mtu !== undefined);
}

/** Whether an observed owned route already is the declared one (the key is equal by construction). */
function routeMatches(o: ObservedRoute, spec: RouteSpec): boolean {
  return (
    spec.oif !== undefined &&
    o.oif === spec.oif &&
    o.type === spec.type &&
    o.scope === spec.scope &&
    o.gateway === spec.gateway &&
    o.prefsrc === spec.prefsrc &&
    o.mtu === spec.mtu &&
    o.onLink === spec.onLink
  );
}

function routeChanges(o: ObservedRoute, spec: RouteSpec, ifnameOf: (i: number) => string | undefined): FieldChange[] {
  const changes: FieldChange[] = [];
  const dev = o.oif === undefined ? null : (ifnameOf(o.oif) ?? `#${o.oif}`);
  if (spec.oif === undefined || o.oif !== spec.oif) {
    if (dev !== spec.ifname) changes.push({ field: 'dev', from: dev, to: spec.ifname ?? null });
  }
  if (o.type !== spec.type) changes.push({ field: 'type', from: o.type, to: spec.type });
  if (o.scope !== spec.scope) changes.push({ field: 'scope', from: o.scope, to: spec.scope });
  if (o.gateway !== spec.gateway) changes.push({ field: 'via', from: o.gateway ?? null, to: spec.gateway ?? null });
  if (o.prefsrc !== spec.prefsrc) changes.push({ field: 'src', from: o.prefsrc ?? null, to: spec.prefsrc ?? null });
  if (o.mtu !== spec.mtu) changes.push({ field: 'mtu', from: o.mtu ?? null, to: spec.mtu ?? null });
  if (o.onLink !== spec.onLink) changes.push({ field: 'onLink', from: o.onLink, to: spec.onLink });
  if (changes.length === 0) changes.push({ field: 'dev', from: dev, to: spec.ifname ?? null });
  return changes;
}

function dedupeEffects(effects: SideEffect[]): SideEffect[] {
  const seen = new Set<string>();
  return effects.filter((e) => {
    if (seen.has(e.route)) return false;
    seen.add(e.route);
    return true;
  });
}
