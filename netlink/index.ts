/**
 * tunkeeper/netlink: rtnetlink in TypeScript.
 *
 *   const rtnl = await Rtnl.open({ netns: 'blue' });
 *   const routes = await rtnl.routes({ table: 100, protocol: 116 });   // complete, consistent
 *   const results = await rtnl.batch(plan.map((r) => addRoute(r)));    // pipelined, one result each
 *   const used = await rtnl.getRoute('198.51.100.7', { fibMatch: true }); // the kernel's lookup
 *
 *   const monitor = await Monitor.open({ netns: 'blue' });
 *   monitor.subscribe((event) => scheduleReconcile());                // a WAKE-UP, never a delta
 *
 * Monitor events are wake-ups: no consumer may act on an event's contents (see Monitor).
 */
export { Rtnl, type RtnlOptions } from './client.js';
export { Monitor, DEFAULT_MONITOR_GROUPS, DEFAULT_MONITOR_RCVBUF, type MonitorOptions } from './monitor.js';
export type {
  MonitorEvent,
  MonitorOp,
  LinkEvent,
  AddressEvent,
  RouteEvent,
  NeighbourEvent,
  RuleEvent,
  ResyncNeededEvent,
} from './monitor-events.js';
export { openNetlinkTransport, type NetlinkTransport, type NetlinkHandlers, type NetlinkSocketOptions } from './client-transport.js';
export { linkDump, routeDump, routeCandidateDump } from './client-dumps.js';
export type { DumpSpec, RawRouteTest, LinkFilter, AddressFilter, RouteFilter, NeighbourFilter, RuleFilter } from './client-dumps.js';
export {
  NetlinkRequestError,
  NetlinkDumpInterruptedError,
  isNetlinkRequestError,
  errnoName,
  errnoDescription,
  type NetlinkRequestErrorInit,
} from './errors.js';
export * from './ops/index.js';
export { NetlinkDecodeError, NetlinkEncodeError, isNetlinkDecodeError } from './codec/errors.js';
export { routeTable, type RouteMessage, type RouteMetrics, type RouteNexthop, type RouteVia, type RouteGetQuery } from './codec/route.js';
export { ruleTable, type RuleMessage } from './codec/rule.js';
export { addressFlags, type AddressMessage } from './codec/address.js';
export type { LinkMessage, LinkInfo, TunInfo } from './codec/link.js';
// Fast readers for hot paths: attributes walked in place, no object per attribute or message.
export { AttrWalker } from './codec/walker.js';
export { LinkFieldReader, type TunFields } from './codec/link-fields.js';
export { RoutePeek } from './codec/route-peek.js';
export { forEachMessage, type MessageVisitor } from './codec/header.js';
export type { NetlinkWriter } from './codec/writer.js';
export type { NeighbourMessage } from './codec/neighbour.js';
export * as constants from './constants/index.js';
export * as codec from './codec/index.js';
export { formatEvent, eventJson, toPlainJson } from './monitor-format.js';
