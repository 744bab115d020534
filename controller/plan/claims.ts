/**
 * Phase 1, claims: which declared device may claim which link and which of its addresses, and
 * what is refused or in conflict. Decides, per declared device, whether it is created, managed,
 * recreated, held or excluded (refused by policy, declared twice, its ifname held by a foreign
 * link or a device it may not take over), and so which owned links vanish, are pruned, or are
 * left alone. Emits no action: later phases act on these claims.
 */
import type { DesiredDevice } from '../model/desired.js';
import type { ObservedAddress, ObservedLink, ObservedRoute } from '../model/observed.js';
import { ifnameRefusal, isKernelLinkLocal, markerOwner } from '../model/ownership.js';
import type { FieldChange, FindingCode } from './actions.js';
import { addrId, finding, IPV6_MIN_MTU, pushTo, type Managed, type PlanContext } from './context.js';
import { describeAddress } from './describe.js';
import { observedRouteKey } from './route-key.js';

/**
 * What plan may do with an owned route: managed (delete or replace), unmanaged (leave alone, and a
 * declared route may not take its key), vanishes (its link is deleted before the route phase).
 */
export type RouteDisposition = 'managed' | 'unmanaged' | 'vanishes';

export function claim(ctx: PlanContext): void {
  checkDeclarations(ctx);
  const { bound, stale } = classifyOwnedLinks(ctx);
  const takenOver = resolveHolders(ctx, bound, stale);
  settleLinkSets(ctx, bound, stale, takenOver);
  acceptAddresses(ctx);
}

function excludeDevice(ctx: PlanContext, kind: 'refused' | 'conflict', code: FindingCode, d: DesiredDevice, reason: string): void {
  if (ctx.excluded.has(d)) return;
  ctx.excluded.add(d);
  finding(ctx, kind, code, d, 'device', reason);
}

/** Policy on ifnames, and declarations that contradict each other. */
function checkDeclarations(ctx: PlanContext): void {
  for (const d of ctx.devices) {
    const why = ifnameRefusal(d.ifname, ctx.policy);
    if (why !== undefined) excludeDevice(ctx, 'refused', 'NameNotAllowed', d, why);
  }
  const groups = (keyOf: (d: DesiredDevice) => string): DesiredDevice[][] => {
    const map = new Map<string, DesiredDevice[]>();
    for (const d of ctx.devices) pushTo(map, keyOf(d), d);
    return [...map.values()].filter((g) => g.length > 1);
  };
  for (const group of groups((d) => d.name)) {
    const where = group.map((d) => d.origin).join(', ');
    for (const d of group) {
      excludeDevice(ctx, 'conflict', 'DuplicateName', d, `TunDevice "${d.name}" is declared ${group.length} times (${where}); none of them is applied`);
    }
  }
  for (const group of groups((d) => d.ifname)) {
    const who = group.map((d) => `"${d.name}" (${d.origin})`).join(', ');
    for (const d of group) {
      excludeDevice(ctx, 'conflict', 'DuplicateIfname', d, `ifname ${d.ifname} is declared by ${group.length} TunDevices: ${who}; none of them is applied`);
    }
  }
}

/**
 * bound: owned links whose marker names a declared device with that very ifname (its link, even
 * when that declaration is refused or in conflict). stale: owned links no declaration wants.
 */
function classifyOwnedLinks(ctx: PlanContext): { bound: Map<number, DesiredDevice[]>; stale: Map<number, string> } {
  const declared = new Map<string, DesiredDevice[]>();
  for (const d of ctx.devices) {
    const k = `${d.name}\n${d.ifname}`;
    pushTo(declared, k, d);
  }
  const bound = new Map<number, DesiredDevice[]>();
  const stale = new Map<number, string>();
  for (const link of ctx.links) {
    const owner = markerOwner(link);
    if (owner === undefined) continue;
    const group = declared.get(`${owner}\n${link.ifname}`);
    if (group !== undefined) bound.set(link.ifindex, group);
    else stale.set(link.ifindex, owner);
  }
  return { bound, stale };
}

/** A held name with a declaration (a name only held is no device of this plan). */
function isHeldDeclared(ctx: PlanContext, name: string): boolean {
  return ctx.held.has(name) && ctx.devices.some((d) => d.name === name);
}

export function managedDevice(d: DesiredDevice, mode: Managed['mode'], more: Partial<Managed> = {}): Managed {
  return { d, mode, recreateChanges: [], addresses: [], conflictedAddresses: new Set(), unwanted: [], ...more };
}

/** Decides, per declared device, whether it is created, managed, recreated or in conflict. */
function resolveHolders(ctx: PlanContext, bound: Map<number, DesiredDevice[]>, stale: Map<number, string>): Set<number> {
  const takenOver = new Set<number>();
  for (const d of ctx.devices) {
    if (ctx.excluded.has(d)) continue;
    const holder = ctx.linkByName.get(d.ifname);
    if (ctx.held.has(d.name)) {
      // Its own link only: a link of that name not bound to it is not the held device's.
      const own = holder !== undefined && bound.get(holder.ifindex)?.includes(d) === true ? holder : undefined;
      ctx.heldDevices.push(own !== undefined ? { d, link: own } : { d });
      continue;
    }
    if (holder === undefined) {
      ctx.managed.push(managedDevice(d, 'create'));
      continue;
    }
    if (bound.get(holder.ifindex)?.includes(d)) {
      const changes = fixedFieldChanges(d, holder);
      ctx.managed.push(managedDevice(d, changes.length > 0 ? 'recreate' : 'manage', { link: holder, recreateChanges: changes }));
      continue;
    }
    const staleOwner = stale.get(holder.ifindex);
    if (staleOwner !== undefined) {
      if (isHeldDeclared(ctx, staleOwner)) {
        excludeDevice(
          ctx,
          'conflict',
          'IfnameHeldByStaleDevice',
          d,
          `${d.ifname} holds the former device of TunDevice "${staleOwner}", which is held (changed behind tunkeeper's back); it is replaced once the hold ends`,
        );
      } else if (ctx.prune) {
        takenOver.add(holder.ifindex);
        ctx.managed.push(managedDevice(d, 'recreate', { link: holder, previousOwner: staleOwner }));
      } else {
        excludeDevice(
          ctx,
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
      excludeDevice(ctx, 'conflict', 'DuplicateIfname', d, `${d.ifname} belongs to another declared TunDevice`);
      continue;
    }
    excludeDevice(ctx, 'conflict', 'IfnameHeldByForeignLink', d, `${d.ifname} already exists and is not tunkeeper's (${describeForeignLink(holder)}); tunkeeper never adopts or changes a link it did not create`);
  }
  return takenOver;
}

function settleLinkSets(ctx: PlanContext, bound: Map<number, DesiredDevice[]>, stale: Map<number, string>, takenOver: Set<number>): void {
  for (const m of ctx.managed) {
    if (m.link === undefined) continue;
    if (m.mode === 'manage') ctx.managedByIndex.set(m.link.ifindex, m);
    else ctx.vanishing.add(m.link.ifindex);
  }
  for (const [ifindex, group] of bound) {
    if (group.every((d) => ctx.excluded.has(d) || ctx.held.has(d.name))) ctx.unmanagedLinks.add(ifindex);
  }
  for (const [ifindex, owner] of stale) {
    if (takenOver.has(ifindex)) continue;
    const link = ctx.linkByIndex.get(ifindex) as ObservedLink;
    if (isHeldDeclared(ctx, owner)) {
      // The held device's former link (it now declares another ifname): its move waits too.
      ctx.unmanagedLinks.add(ifindex);
      ctx.retained.push({ device: owner, ifname: link.ifname, ifindex, reason: `TunDevice "${owner}" is held (changed behind tunkeeper's back); its former device is left until the hold ends` });
      continue;
    }
    if (ctx.prune) {
      ctx.pruned.set(ifindex, owner);
    } else {
      ctx.unmanagedLinks.add(ifindex);
      ctx.retained.push({ device: owner, ifname: link.ifname, ifindex, reason: `no declaration wants it, but pruning is suspended (the desired state may be incomplete)` });
    }
  }
}

/** The declared addresses the kernel can hold, and the owned ones on a managed link it should not. */
function acceptAddresses(ctx: PlanContext): void {
  for (const m of ctx.managed) {
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
        finding(ctx, 'conflict', 'AddressDeclaredTwice', m.d, 'address', `${a.address} is declared with prefix lengths ${twice.join(' and ')}; the kernel keeps one per IPv6 address on a link`, describeAddress(a));
        m.conflictedAddresses.add(addrId(6, a.address));
        continue;
      }
      if (a.family === 6 && m.d.mtu < IPV6_MIN_MTU) {
        finding(ctx, 'refused', 'Ipv6NeedsMtu1280', m.d, 'address', `the kernel disables IPv6 on a link whose MTU is below ${IPV6_MIN_MTU} (declared mtu ${m.d.mtu})`, describeAddress(a));
        continue;
      }
      m.addresses.push(a);
    }
    if (m.mode === 'manage' && m.link !== undefined) m.unwanted = unwantedAddresses(ctx, m, m.link);
  }
}

/** Owned addresses on a managed link that the declaration does not list. */
function unwantedAddresses(ctx: PlanContext, m: Managed, link: ObservedLink): ObservedAddress[] {
  return (ctx.addrsByLink.get(link.ifindex) ?? [])
    .filter((a) => !isKernelLinkLocal(a))
    .filter(
      (o) =>
        !m.conflictedAddresses.has(addrId(o.family, o.address)) &&
        (o.peer !== undefined || !m.addresses.some((a) => a.family === o.family && a.address === o.address && a.prefixLength === o.prefixLength)),
    );
}

export function disposition(ctx: PlanContext, r: ObservedRoute): RouteDisposition {
  const oif = r.oif;
  if (oif === undefined || !ctx.linkByIndex.has(oif)) return ctx.prune ? 'managed' : 'unmanaged';
  if (ctx.vanishing.has(oif) || ctx.pruned.has(oif)) return 'vanishes';
  if (ctx.managedByIndex.has(oif)) return 'managed';
  if (ctx.unmanagedLinks.has(oif)) return 'unmanaged';
  return ctx.prune ? 'managed' : 'unmanaged';
}

/** An owned route under a declared key that plan does not apply (refused or in conflict): left alone. */
export function isProtected(ctx: PlanContext, r: ObservedRoute): boolean {
  return r.oif !== undefined && ctx.protectedRoutes.has(`${r.oif}|${observedRouteKey(r)}`);
}

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
