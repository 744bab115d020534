/** Turning the datagrams a multicast socket receives into Monitor events. */
import { decodeAddressMessage, type AddressMessage } from './codec/address.js';
import { nextMessageOffset, readHeader } from './codec/header.js';
import { decodeLinkMessage, type LinkMessage } from './codec/link.js';
import { decodeNeighbourMessage, type NeighbourMessage } from './codec/neighbour.js';
import { decodeRouteMessage, type RouteMessage } from './codec/route.js';
import { decodeRuleMessage, type RuleMessage } from './codec/rule.js';
import { NLMSG_HDRLEN } from './constants/netlink.js';
import {
  RTM_DELADDR,
  RTM_DELLINK,
  RTM_DELNEIGH,
  RTM_DELROUTE,
  RTM_DELRULE,
  RTM_NEWADDR,
  RTM_NEWLINK,
  RTM_NEWNEIGH,
  RTM_NEWROUTE,
  RTM_NEWRULE,
} from './constants/rtnetlink.js';

export type MonitorOp = 'new' | 'del';

export type LinkEvent = { type: 'link'; op: MonitorOp } & LinkMessage;
export type AddressEvent = { type: 'address'; op: MonitorOp } & AddressMessage;
/** A route event; the route's own rtm_type (RTN_*) is `routeType`, since `type` names the event. */
export type RouteEvent = { type: 'route'; op: MonitorOp; routeType: number } & Omit<RouteMessage, 'type'>;
/** A neighbour event; ndm_type is `neighbourType`, since `type` names the event. */
export type NeighbourEvent = { type: 'neighbour'; op: MonitorOp; neighbourType: number } & Omit<NeighbourMessage, 'type'>;
export type RuleEvent = { type: 'rule'; op: MonitorOp } & RuleMessage;
/** The kernel dropped notifications (ENOBUFS) or one could not be read: re-list everything. */
export interface ResyncNeededEvent {
  type: 'resync-needed';
}

/**
 * What the Monitor emits. Events are WAKE-UPS: they say "something changed, look again", never
 * "this is the state". See Monitor.
 */
export type MonitorEvent = LinkEvent | AddressEvent | RouteEvent | NeighbourEvent | RuleEvent | ResyncNeededEvent;

export const RESYNC_NEEDED: ResyncNeededEvent = Object.freeze({ type: 'resync-needed' }) as ResyncNeededEvent;

/**
 * Decodes every notification of a datagram into `out`. Returns false when part of it could not be
 * decoded (the caller then asks for a resync: a lost notification is a lost notification).
 */
export function decodeEvents(d: Buffer, out: MonitorEvent[]): boolean {
  let off = 0;
  try {
    while (off < d.length) {
      const h = readHeader(d, off, d.length);
      const start = off + NLMSG_HDRLEN;
      const end = off + h.length;
      switch (h.type) {
        case RTM_NEWLINK:
        case RTM_DELLINK:
          out.push({ type: 'link', op: h.type === RTM_NEWLINK ? 'new' : 'del', ...decodeLinkMessage(d, start, end) });
          break;
        case RTM_NEWADDR:
        case RTM_DELADDR:
          out.push({ type: 'address', op: h.type === RTM_NEWADDR ? 'new' : 'del', ...decodeAddressMessage(d, start, end) });
          break;
        case RTM_NEWROUTE:
        case RTM_DELROUTE: {
          const { type: routeType, ...route } = decodeRouteMessage(d, start, end);
          out.push({ type: 'route', op: h.type === RTM_NEWROUTE ? 'new' : 'del', routeType, ...route });
          break;
        }
        case RTM_NEWNEIGH:
        case RTM_DELNEIGH: {
          const { type: neighbourType, ...neigh } = decodeNeighbourMessage(d, start, end);
          out.push({ type: 'neighbour', op: h.type === RTM_NEWNEIGH ? 'new' : 'del', neighbourType, ...neigh });
          break;
        }
        case RTM_NEWRULE:
        case RTM_DELRULE:
          out.push({ type: 'rule', op: h.type === RTM_NEWRULE ? 'new' : 'del', ...decodeRuleMessage(d, start, end) });
          break;
        default:
          // NLMSG_NOOP/DONE, other families (nexthops, netconf...) the groups may carry: not events.
          break;
      }
      off = nextMessageOffset(off, h.length);
    }
  } catch {
    return false;
  }
  return true;
}
