/**
 * Phase 2, kernel effects: what the kernel does by itself when plan changes something, so that
 * later phases re-assert (idempotent add/replace) what may have been removed and one apply
 * converges:
 *   - removing the last IPv4 address of a link removes every IPv4 route through it;
 *   - removing an IPv4 address from the host removes main-table routes that use it as source;
 *   - removing an IPv4 primary removes its secondaries unless promote_secondaries is set;
 *   - removing an IPv6 address clears it as the source of routes through that link;
 *   - setting a link down removes its routes and (keep_addr_on_down=0) its IPv6 addresses;
 *   - an MTU below 1280 removes IPv6 from the link;
 *   - deleting a link removes its addresses and routes;
 *   - an address on an up link gets the kernel's connected route (connectedRouteKey).
 * predictKernelEffects records, from the claims, what the address deletes, recreates and link
 * settings may remove. The functions below it describe an action's `sideEffects`: the routes plan
 * does not manage (foreign ones, and owned ones it leaves alone) that the kernel removes along with
 * it. Those are computed once every route decision is made (context.ts `later`).
 */
import type { DesiredRoute, IpFamily } from '../model/desired.js';
import { RT_TABLE_MAIN, RTPROT_KERNEL, type ObservedAddress, type ObservedLink, type ObservedRoute } from '../model/observed.js';
import { networkOf } from '../model/ip.js';
import { isOwnedRoute } from '../model/ownership.js';
import type { SideEffect } from './actions.js';
import { disposition, isProtected } from './claims.js';
import { addrId, compareStrings, describeObserved, IPV6_MIN_MTU, pushTo, type Managed, type PlanContext } from './context.js';
import { IPV6_CONNECTED_METRIC, routeKey } from './route-key.js';

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

/** What deleting addresses, recreating links and setting managed links may remove before add-address. */
export function predictKernelEffects(ctx: PlanContext): void {
  const surely = (a: ObservedAddress): void => {
    markRemoved(ctx, a);
    pushTo(ctx.surelyRemoved, a.ifindex, a);
  };
  for (const ifindex of ctx.vanishing) for (const a of ctx.addrsByLink.get(ifindex) ?? []) surely(a);
  for (const m of ctx.managed) {
    if (m.mode !== 'manage' || m.link === undefined) continue;
    if (m.link.up && !m.d.up) ctx.goingDown.add(m.link.ifindex);
    if (m.link.mtu >= IPV6_MIN_MTU && m.d.mtu < IPV6_MIN_MTU) ctx.losingIPv6.add(m.link.ifindex);
  }

  for (const m of ctx.managed) {
    if (m.mode !== 'manage' || m.link === undefined) continue;
    const link = m.link;
    for (const o of m.unwanted) {
      surely(o);
      if (o.family !== 4 || o.flags.secondary) continue;
      // A primary's secondaries (same prefix length and subnet) go with it unless promote_secondaries.
      for (const other of ctx.addrsByLink.get(link.ifindex) ?? []) {
        if (other.family === 4 && other !== o && other.flags.secondary && other.prefixLength === o.prefixLength && networkOf(4, other.address, other.prefixLength) === networkOf(4, o.address, o.prefixLength)) {
          markRemoved(ctx, other);
        }
      }
    }
  }

  for (const a of ctx.observed.addresses) {
    if (!(ctx.removed.get(a.ifindex) ?? []).includes(a)) ctx.remainingOnHost.add(addrId(a.family, a.address));
  }
  for (const [ifindex, list] of ctx.removed) {
    if (ctx.vanishing.has(ifindex) || !list.some((a) => a.family === 4)) continue;
    const left = (ctx.addrsByLink.get(ifindex) ?? []).filter((a) => a.family === 4 && !list.includes(a));
    if (left.length === 0) ctx.losesAllIPv4.add(ifindex);
  }
}

function markRemoved(ctx: PlanContext, a: ObservedAddress): void {
  const list = ctx.removed.get(a.ifindex) ?? [];
  if (!list.includes(a)) list.push(a);
  ctx.removed.set(a.ifindex, list);
}

export function wasRemoved(ctx: PlanContext, ifindex: number, family: IpFamily, address: string): boolean {
  return (ctx.removed.get(ifindex) ?? []).some((a) => a.family === family && a.address === address);
}

export function removedFromHost(ctx: PlanContext, family: IpFamily, address: string): boolean {
  if (ctx.remainingOnHost.has(addrId(family, address))) return false;
  for (const list of ctx.removed.values()) if (list.some((a) => a.family === family && a.address === address)) return true;
  return false;
}

/**
 * Whether the kernel removes a route before the route phase whatever its sysctls say: its link is
 * deleted or goes down, it is IPv6 on a link losing IPv6, or it is IPv4 and its link loses every
 * IPv4 address or (main table) its preferred source leaves the host.
 */
export function goneBeforeRoutePhase(ctx: PlanContext, r: ObservedRoute): boolean {
  const oif = r.oif;
  if (oif !== undefined) {
    if (ctx.vanishing.has(oif) || ctx.pruned.has(oif) || ctx.goingDown.has(oif)) return true;
    if (r.family === 6 && ctx.losingIPv6.has(oif)) return true;
    if (r.family === 4) {
      let loses = ctx.surelyLosesIPv4.get(oif);
      if (loses === undefined) {
        const v4 = (ctx.addrsByLink.get(oif) ?? []).filter((a) => a.family === 4);
        const gone = ctx.surelyRemoved.get(oif) ?? [];
        loses = v4.length > 0 && v4.every((a) => gone.includes(a));
        ctx.surelyLosesIPv4.set(oif, loses);
      }
      if (loses) return true;
    }
  }
  if (r.family === 4 && r.table === RT_TABLE_MAIN && r.prefsrc !== undefined) {
    const holders = ctx.addrsByValue.get(addrId(4, r.prefsrc)) ?? [];
    if (holders.length > 0 && holders.every((a) => (ctx.surelyRemoved.get(a.ifindex) ?? []).includes(a))) return true;
  }
  return false;
}

/** Why an in-sync route may have been removed or altered by the actions before replace-route, or undefined. */
export function routeTaint(ctx: PlanContext, m: Managed, r: DesiredRoute): string | undefined {
  if (m.mode !== 'manage' || m.link === undefined) return undefined;
  const ifindex = m.link.ifindex;
  if (r.family === 4 && ctx.losesAllIPv4.has(ifindex)) return 're-asserted: the kernel drops IPv4 routes through a link whose last IPv4 address is removed';
  if (r.family === 4 && r.table === RT_TABLE_MAIN && r.src !== undefined && removedFromHost(ctx, 4, r.src)) {
    return `re-asserted: the kernel drops main-table routes whose preferred source ${r.src} leaves the host`;
  }
  if (r.family === 6 && r.src !== undefined && wasRemoved(ctx, ifindex, 6, r.src)) {
    return `re-asserted: the kernel clears ${r.src} as source when it is removed from ${m.d.ifname}`;
  }
  return undefined;
}

// ---- side effects announced on actions ------------------------------------------------------------

/**
 * Routes this plan does not manage that match a predicate, described: foreign ones (except the
 * kernel's own routes for addresses) and tunkeeper's own that it leaves alone (their device is
 * refused, in conflict, held, or kept while pruning is suspended).
 */
function bystanderRoutes(ctx: PlanContext, candidates: ObservedRoute[] | undefined, pred: (r: ObservedRoute) => boolean): string[] {
  return (candidates ?? [])
    .filter((r) => (isOwnedRoute(r, ctx.policy) ? disposition(ctx, r) === 'unmanaged' || isProtected(ctx, r) : r.protocol !== RTPROT_KERNEL) && pred(r))
    .map((r) => describeObserved(ctx, r))
    .sort(compareStrings);
}

/** Side effects of deleting address `o` from `link`; `lastIPv4Delete`: the last IPv4 delete on that link. */
export function addressDeleteSideEffects(ctx: PlanContext, link: ObservedLink, o: ObservedAddress, lastIPv4Delete: boolean): SideEffect[] {
  const effects: SideEffect[] = [];
  if (o.family === 4) {
    if (removedFromHost(ctx, 4, o.address)) {
      for (const r of bystanderRoutes(ctx, ctx.routesBySrc.get(addrId(4, o.address)), (r) => r.family === 4 && r.table === RT_TABLE_MAIN && r.prefsrc === o.address)) {
        effects.push({ effect: 'may-remove-route', route: r, why: `its preferred source ${o.address} leaves the host` });
      }
    }
    if (lastIPv4Delete && ctx.losesAllIPv4.has(link.ifindex)) {
      for (const r of bystanderRoutes(ctx, ctx.routesByOif.get(link.ifindex), (r) => r.family === 4 && r.oif === link.ifindex)) {
        effects.push({ effect: 'may-remove-route', route: r, why: `the kernel drops IPv4 routes through a link with no IPv4 address left` });
      }
    }
  } else {
    for (const r of bystanderRoutes(ctx, ctx.routesByOif.get(link.ifindex), (r) => r.family === 6 && r.oif === link.ifindex && r.prefsrc === o.address)) {
      effects.push({ effect: 'clears-route-source', route: r, why: `the kernel clears a removed address as source of routes through its link` });
    }
  }
  return dedupeEffects(effects);
}

/** Side effects of deleting a whole link; `leavesHost` tells whether one of its IPv4 addresses is then on no link. */
export function linkDeleteSideEffects(ctx: PlanContext, link: ObservedLink, leavesHost: (address: string) => boolean): SideEffect[] {
  const effects: SideEffect[] = bystanderRoutes(ctx, ctx.routesByOif.get(link.ifindex), (r) => r.oif === link.ifindex).map((route) => ({
    effect: 'removes-route' as const,
    route,
    why: `it goes through ${link.ifname}`,
  }));
  for (const a of ctx.addrsByLink.get(link.ifindex) ?? []) {
    if (a.family !== 4 || !leavesHost(a.address)) continue;
    for (const route of bystanderRoutes(ctx, ctx.routesBySrc.get(addrId(4, a.address)), (r) => r.family === 4 && r.table === RT_TABLE_MAIN && r.prefsrc === a.address && r.oif !== link.ifindex)) {
      effects.push({ effect: 'removes-route', route, why: `its preferred source ${a.address} leaves the host` });
    }
  }
  return dedupeEffects(effects);
}

/** Side effects of set-link on an existing link that goes down or loses IPv6 to its new MTU. */
export function linkSettingsSideEffects(ctx: PlanContext, link: ObservedLink, goesDown: boolean, losesIPv6: boolean): SideEffect[] {
  const effects: SideEffect[] = [];
  if (goesDown) {
    for (const route of bystanderRoutes(ctx, ctx.routesByOif.get(link.ifindex), (r) => r.oif === link.ifindex)) {
      effects.push({ effect: 'removes-route', route, why: 'the kernel drops the routes of a link that goes down' });
    }
  }
  if (losesIPv6) {
    for (const route of bystanderRoutes(ctx, ctx.routesByOif.get(link.ifindex), (r) => r.family === 6 && r.oif === link.ifindex)) {
      effects.push({ effect: 'removes-route', route, why: `the kernel disables IPv6 on a link whose MTU is below ${IPV6_MIN_MTU}` });
    }
  }
  return dedupeEffects(effects);
}

function dedupeEffects(effects: SideEffect[]): SideEffect[] {
  const seen = new Set<string>();
  return effects.filter((e) => {
    if (seen.has(e.route)) return false;
    seen.add(e.route);
    return true;
  });
}
