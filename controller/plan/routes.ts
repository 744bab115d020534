/**
 * Phase 5, routes: which declared route may claim its key (route-key.ts), delete-route for stale
 * owned routes (and every owned route of a key several share), replace-route for the declared
 * ones that are missing, differ, or that the kernel may have removed along with an earlier action.
 *
 * A declared route whose key is held by a route plan does not manage (another protocol, the
 * kernel's connected route for an address, an owned route it leaves alone) is a conflict, never a
 * replace; a refused or conflicting declared route protects the owned route under its key.
 */
import type { DesiredRoute } from '../model/desired.js';
import { RT_TABLE_LOCAL, RT_TABLE_MAIN, RTPROT_KERNEL, type ObservedRoute, type RouteScope } from '../model/observed.js';
import { isIPv6LinkLocal, prefixContains } from '../model/ip.js';
import { isOwnedRoute, markerOwner } from '../model/ownership.js';
import type { FieldChange, FindingCode, RouteSpec } from './actions.js';
import { addressesAfterPlan } from './addresses.js';
import { disposition, isProtected, managedDevice } from './claims.js';
import { addrId, compareStrings, describeObserved, emit, finding, IPV6_MIN_MTU, pushTo, type Managed, type PlanContext } from './context.js';
import { describeAddress, describeChange, describeRouteSpec } from './describe.js';
import { connectedRouteKey, goneBeforeRoutePhase, routeTaint } from './kernel-effects.js';
import { desiredRouteKey, effectiveMetric, observedRouteKey } from './route-key.js';

interface Candidate {
  m: Managed;
  r: DesiredRoute;
  key: string;
  /** Set when refused after acceptance (an unreachable gateway). */
  refused?: boolean;
}

export function planRoutes(ctx: PlanContext): void {
  const declared = declaredRoutes(ctx);
  const { byKey, heldKeys } = claimsByKey(ctx, declared);
  const candidates = refuseDeclared(ctx, declared, byKey);
  const holders = classifyObservedRoutes(ctx);
  const accepted = acceptKeys(ctx, candidates, holders);
  refuseUnreachableGateways(ctx, accepted);
  planReplaces(ctx, accepted, holders.replaceable, heldKeys);
}

function protect(ctx: PlanContext, m: Managed, key: string): void {
  if (m.link !== undefined) ctx.protectedRoutes.add(`${m.link.ifindex}|${key}`);
}

/** The routes of the managed devices, each once, by key within a device. */
function declaredRoutes(ctx: PlanContext): Candidate[] {
  const declared: Candidate[] = [];
  for (const m of ctx.managed) {
    const seen = new Set<string>();
    const keyed = m.d.routes.map((r) => ({ r, key: desiredRouteKey(r) })).sort((a, b) => compareStrings(a.key, b.key));
    for (const { r, key } of keyed) {
      const identity = `${key}|${r.via}|${r.src}|${r.mtu}|${r.onLink}`;
      if (seen.has(identity)) continue; // the same route listed twice
      seen.add(identity);
      declared.push({ m, r, key });
    }
  }
  return declared;
}

/** Declared routes by key, and the keys held devices claim (key → device name). */
function claimsByKey(ctx: PlanContext, declared: Candidate[]): { byKey: Map<string, Candidate[]>; heldKeys: Map<string, string> } {
  // The kernel keeps one route per key: two declarations of a key would replace each other.
  const byKey = new Map<string, Candidate[]>();
  for (const c of declared) pushTo(byKey, c.key, c);
  // A held device's routes still claim their keys (as they would if it were not held), and an
  // owned route under one of them is left alone wherever it goes through.
  const heldKeys = new Map<string, string>();
  for (const h of ctx.heldDevices) {
    for (const r of h.d.routes) {
      const key = desiredRouteKey(r);
      if (heldKeys.has(key)) continue;
      heldKeys.set(key, h.d.name);
      if (byKey.has(key)) pushTo(byKey, key, { m: managedDevice(h.d, 'manage'), r, key });
    }
  }
  return { byKey, heldKeys };
}

/** Declared routes whose key is declared twice, or that the kernel or policy refuses, are dropped. */
function refuseDeclared(ctx: PlanContext, declared: Candidate[], byKey: Map<string, Candidate[]>): Candidate[] {
  const available = addressesAfterPlan(ctx);
  const candidates: Candidate[] = [];
  for (const c of declared) {
    const target = (): string => describeRouteSpec(specFor(ctx, c.m, c.r));
    const same = byKey.get(c.key) as Candidate[];
    if (same.length > 1) {
      const others = same.filter((o) => o !== c).map((o) => (o.m === c.m ? `another route of "${c.m.d.name}"` : `"${o.m.d.name}" on ${o.m.d.ifname}`));
      finding(ctx, 'conflict', 'RouteKeyDesiredTwice', c.m.d, 'route', `the kernel keeps one route per ${c.key}, and ${others.join(', ')} declares it too`, target(), c.key);
      protect(ctx, c.m, c.key);
      continue;
    }
    const refusal = routeRefusal(ctx, c.m, c.r, available);
    if (refusal !== undefined) {
      finding(ctx, 'refused', refusal[0], c.m.d, 'route', refusal[1], target(), c.key);
      protect(ctx, c.m, c.key);
      continue;
    }
    candidates.push(c);
  }
  return candidates;
}

function routeRefusal(ctx: PlanContext, m: Managed, r: DesiredRoute, available: Set<string>): [FindingCode, string] | undefined {
  if (r.dstLength === 0 && !ctx.policy.allowDefaultRoute) return ['DefaultRouteNotAllowed', 'the agent is not allowed to own a default route (allowDefaultRoute is off)'];
  if (r.table === RT_TABLE_LOCAL) return ['LocalTableNotAllowed', 'the local table (255) holds the kernel\'s own address routes and is never managed'];
  if (!m.d.up) return ['DeviceDown', 'the device is declared down, and the kernel keeps no route through a down link'];
  if (r.family === 6 && m.d.mtu < IPV6_MIN_MTU) return ['Ipv6NeedsMtu1280', `the kernel disables IPv6 on a link whose MTU is below ${IPV6_MIN_MTU} (declared mtu ${m.d.mtu})`];
  if (r.src !== undefined && !available.has(addrId(r.family, r.src))) {
    return ['SourceAddressMissing', `preferred source ${r.src} is not an address of this host (declared or present), and the kernel refuses such a route`];
  }
  return undefined;
}

interface Holders {
  /** Routes plan does not own that still hold their key in the route phase. */
  foreign: Map<string, ObservedRoute[]>;
  /** Owned routes plan leaves alone that still hold their key in the route phase. */
  unmanaged: Map<string, ObservedRoute[]>;
  /** Owned routes plan may delete or replace. */
  replaceable: Map<string, ObservedRoute[]>;
}

/** The observed routes by key, by what plan may do with them. */
function classifyObservedRoutes(ctx: PlanContext): Holders {
  const holders: Holders = { foreign: new Map(), unmanaged: new Map(), replaceable: new Map() };
  for (const r of ctx.observed.routes) {
    const key = observedRouteKey(r);
    const add = (map: Map<string, ObservedRoute[]>): void => pushTo(map, key, r);
    if (!isOwnedRoute(r, ctx.policy)) {
      if (goneBeforeRoutePhase(ctx, r) || isConnectedRouteOfManagedLink(ctx, r)) continue;
      add(holders.foreign);
      continue;
    }
    const disp = disposition(ctx, r);
    if (disp === 'unmanaged' && !goneBeforeRoutePhase(ctx, r)) add(holders.unmanaged);
    else if (disp === 'managed') add(holders.replaceable);
  }
  return holders;
}

/** Candidates whose key no foreign, unmanaged or kernel connected route holds. */
function acceptKeys(ctx: PlanContext, candidates: Candidate[], holders: Holders): Candidate[] {
  const connected = predictedConnectedRoutes(ctx);
  const accepted: Candidate[] = [];
  for (const c of candidates) {
    const fail = (code: FindingCode, reason: string): void => {
      finding(ctx, 'conflict', code, c.m.d, 'route', reason, describeRouteSpec(specFor(ctx, c.m, c.r)), c.key);
      protect(ctx, c.m, c.key);
    };
    const foreign = holders.foreign.get(c.key);
    if (foreign !== undefined) {
      fail('RouteKeyHeldByForeignRoute', `the kernel keys routes on ${c.key}, and it is held by a route tunkeeper does not own (${foreign.map((r) => describeObserved(ctx, r)).join('; ')}); replacing it would take it over`);
      continue;
    }
    const unmanaged = holders.unmanaged.get(c.key);
    if (unmanaged !== undefined) {
      fail('RouteKeyHeldByUnmanagedRoute', `${c.key} is held by a tunkeeper route plan leaves alone (${unmanaged.map((r) => describeObserved(ctx, r)).join('; ')}): its device is refused, in conflict, held, or kept while pruning is suspended`);
      continue;
    }
    const kernelRoute = connected.get(c.key);
    if (kernelRoute !== undefined) {
      fail('RouteKeyIsConnectedRoute', `${c.key} is ${kernelRoute}; replacing it would take the kernel's route over`);
      continue;
    }
    accepted.push(c);
  }
  return accepted;
}

/** Keys of the routes the kernel derives from the addresses of managed devices, once the plan has run. */
function predictedConnectedRoutes(ctx: PlanContext): Map<string, string> {
  const keys = new Map<string, string>();
  for (const m of ctx.managed) {
    if (!m.d.up) continue; // the kernel adds them when the link is up
    for (const a of m.addresses) {
      const key = connectedRouteKey(a.family, a.address, a.prefixLength);
      if (key !== undefined && !keys.has(key)) keys.set(key, `the kernel's route for ${describeAddress(a)} on ${m.d.ifname}`);
    }
  }
  return keys;
}

/** Whether an observed route is the kernel's connected route for an address on a managed link (replaced by the prediction). */
function isConnectedRouteOfManagedLink(ctx: PlanContext, r: ObservedRoute): boolean {
  if (r.protocol !== RTPROT_KERNEL || r.oif === undefined || !ctx.managedByIndex.has(r.oif) || r.table !== RT_TABLE_MAIN) return false;
  let keys = ctx.connectedKeysOf.get(r.oif);
  if (keys === undefined) {
    keys = new Set();
    for (const a of ctx.addrsByLink.get(r.oif) ?? []) {
      const key = connectedRouteKey(a.family, a.address, a.prefixLength);
      if (key !== undefined) keys.add(key);
    }
    ctx.connectedKeysOf.set(r.oif, keys);
  }
  return keys.has(observedRouteKey(r));
}

/**
 * The kernel accepts a gateway only if it can reach it through the route's device: inside the
 * prefix of one of the device's addresses, inside a device route (no gateway) through it in the
 * same table or main, an IPv6 link-local gateway, or `onlink`. Only what this plan programs
 * counts, so a gateway behind a refused or conflicting address is refused here rather than
 * failing in apply on every reconcile.
 */
function refuseUnreachableGateways(ctx: PlanContext, accepted: Candidate[]): void {
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
    finding(ctx, 'refused', 'GatewayUnreachable', c.m.d, 'route', `gateway ${gw} is outside every prefix of ${c.m.d.ifname} (its addresses and device routes), so the kernel refuses the route; declare onLink if the gateway is reachable anyway`, describeRouteSpec(specFor(ctx, c.m, c.r)), c.key);
    protect(ctx, c.m, c.key);
  }
}

/** replace-route for the accepted routes; delete-route for the replaceable owned routes nothing claims. */
function planReplaces(ctx: PlanContext, accepted: Candidate[], replaceable: Map<string, ObservedRoute[]>, heldKeys: Map<string, string>): void {
  const consumed = new Set<ObservedRoute>();
  for (const c of accepted) {
    if (c.refused === true) continue;
    const spec = specFor(ctx, c.m, c.r);
    const group = replaceable.get(c.key) ?? [];
    for (const o of group) consumed.add(o);
    if (group.length > 1) {
      // RTM_DELROUTE removes the first route whose attributes include the ones given, so one of
      // several routes under a key cannot be singled out: all go, the declared one is added.
      for (const o of group) emitRouteDelete(ctx, o, `${group.length} tunkeeper routes share ${c.key}; all are removed and the declared one added`);
      emit(ctx, { type: 'replace-route', device: c.m.d.name, ifname: c.m.d.ifname, route: spec, changes: [], reason: 'declared; re-added alone under its key' }, c.m.d.ifname, replaceOrder(c));
      continue;
    }
    const current = group[0];
    const exact = current !== undefined && routeMatches(current, spec);
    const taint = exact ? routeTaint(ctx, c.m, c.r) : undefined;
    if (exact && taint === undefined) continue;
    const changes = current === undefined || exact ? [] : routeChanges(current, spec, (i) => ctx.linkByIndex.get(i)?.ifname);
    const reason = taint ?? (current === undefined ? 'declared, missing' : `differs from the declaration: ${changes.map(describeChange).join(', ')}`);
    emit(ctx, { type: 'replace-route', device: c.m.d.name, ifname: c.m.d.ifname, route: spec, changes, reason }, c.m.d.ifname, replaceOrder(c));
  }

  for (const list of replaceable.values()) {
    for (const o of list) {
      if (consumed.has(o)) continue;
      if (isProtected(ctx, o) || heldKeys.has(observedRouteKey(o))) continue;
      const holder = o.oif !== undefined ? ctx.managedByIndex.get(o.oif) : undefined;
      emitRouteDelete(ctx, o, holder !== undefined ? `not declared for ${holder.d.name}` : 'owned (protocol) but declared by no device');
    }
  }
}

function specFor(ctx: PlanContext, m: Managed, r: DesiredRoute): RouteSpec {
  const spec: RouteSpec = {
    family: r.family,
    table: r.table,
    dst: r.dst,
    dstLength: r.dstLength,
    tos: 0,
    metric: effectiveMetric(r.family, r.metric),
    protocol: ctx.policy.routeProtocol,
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

function emitRouteDelete(ctx: PlanContext, o: ObservedRoute, reason: string): void {
  const link = o.oif !== undefined ? ctx.linkByIndex.get(o.oif) : undefined;
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
  emit(
    ctx,
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
