/**
 * Route identity: what the kernel keys a route on, so that plan knows which existing route an
 * RTM_NEWROUTE with NLM_F_REPLACE will overwrite.
 *
 * IPv4 (fib_table_insert): table, destination prefix, tos and priority (metric). Type, scope,
 *   gateway, device and protocol are NOT part of the key: `replace` overwrites the first route with
 *   the same (table, dst/len, tos, metric) whatever its protocol, and `append` can put several
 *   routes under one key (the kernel does that itself for connected routes).
 * IPv6 (fib6_add_rt2node): table, destination prefix, source prefix (RTA_SRC, the subtree) and
 *   metric. There is no tos. Without NLM_F_REPLACE a second route under one key is refused or
 *   merged into a multipath route; with it the first route under the key is overwritten. A metric
 *   of 0 is stored as 1024 (IP6_RT_PRIO_USER).
 *
 * So a desired route whose key is held by a route of another protocol is a conflict: replacing it
 * would take the route over, adding next to it would merge or shadow it.
 */
import type { DesiredRoute, IpFamily } from '../model/desired.js';
import type { ObservedRoute } from '../model/observed.js';

/** Metric the kernel stores for an IPv6 route added without one (or with 0). */
export const IPV6_DEFAULT_METRIC = 1024;
/** Metric of the kernel's own IPv6 prefix route for an address. */
export const IPV6_CONNECTED_METRIC = 256;

export interface RouteKeyFields {
  family: IpFamily;
  table: number;
  dst: string;
  dstLength: number;
  /** IPv4 only; 0 for IPv6. */
  tos: number;
  metric: number;
  /** IPv6 source prefix; empty with length 0 when none. */
  from: string;
  fromLength: number;
}

export function routeKey(k: RouteKeyFields): string {
  const from = k.fromLength > 0 ? ` from ${k.from}/${k.fromLength}` : '';
  const tos = k.tos !== 0 ? ` tos ${k.tos}` : '';
  return `ipv${k.family} ${k.dst}/${k.dstLength}${from}${tos} table ${k.table} metric ${k.metric}`;
}

/** The metric the kernel stores for a desired route. */
export function effectiveMetric(family: IpFamily, metric: number | undefined): number {
  if (family === 6) return metric === undefined || metric === 0 ? IPV6_DEFAULT_METRIC : metric;
  return metric ?? 0;
}

export function desiredRouteKeyFields(r: DesiredRoute): RouteKeyFields {
  return {
    family: r.family,
    table: r.table,
    dst: r.dst,
    dstLength: r.dstLength,
    tos: 0,
    metric: effectiveMetric(r.family, r.metric),
    from: '',
    fromLength: 0,
  };
}

export function observedRouteKeyFields(r: ObservedRoute): RouteKeyFields {
  const fromLength = r.family === 6 ? (r.fromLength ?? 0) : 0;
  return {
    family: r.family,
    table: r.table,
    dst: r.dst,
    dstLength: r.dstLength,
    tos: r.family === 4 ? (r.tos ?? 0) : 0,
    metric: r.metric ?? 0,
    from: fromLength > 0 ? (r.from ?? '') : '',
    fromLength,
  };
}

export function desiredRouteKey(r: DesiredRoute): string {
  return routeKey(desiredRouteKeyFields(r));
}

export function observedRouteKey(r: ObservedRoute): string {
  return routeKey(observedRouteKeyFields(r));
}

export function isDefaultRoute(r: { dstLength: number }): boolean {
  return r.dstLength === 0;
}
