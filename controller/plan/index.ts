/** plan: the pure diff of desired against observed state (see plan.ts). */
export * from './actions.js';
export { plan, type PlanOptions } from './plan.js';
export { IPV6_MIN_MTU } from './context.js';
export { connectedRouteKey } from './kernel-effects.js';
export { planToJson, renderPlanJson, renderPlanText, summaryLine, type PlanJson, type RenderOptions } from './render.js';
export { describeAddress, describeChange, describeObservedRoute, describeRoute, describeRouteSpec, tableName } from './describe.js';
export {
  ifnameRefusal,
  isKernelLinkLocal,
  isOwnedAddress,
  isOwnedLink,
  isOwnedRoute,
  markerOwner,
  RESERVED_IFNAME_PREFIXES,
  RESERVED_IFNAMES,
} from '../model/ownership.js';
export {
  desiredRouteKey,
  effectiveMetric,
  IPV6_CONNECTED_METRIC,
  IPV6_DEFAULT_METRIC,
  observedRouteKey,
  routeKey,
  type RouteKeyFields,
} from './route-key.js';
export { canonicalIp, formatIp, isIPv6LinkLocal, networkOf, parseIp, prefixContains } from '../model/ip.js';
