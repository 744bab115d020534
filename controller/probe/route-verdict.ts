/**
 * The `route` probe's judgement, pure: the kernel's answer to RTM_GETROUTE with RTM_F_FIB_MATCH
 * (the FIB entry a packet to the address matches, after policy rules) → passed iff every packet
 * would leave through the device, and a sentence that says which route the kernel chose, whose
 * it is and where it sends the packet:
 *
 *   198.51.100.7 → dev tk-edge0 via its route 198.51.100.0/24
 *   198.51.100.7 → next hop 203.0.113.126 dev eth1 via a foreign route 198.51.100.0/25 proto static
 *   198.51.100.7 → dev tk-b0 via a foreign route 198.51.100.0/24 proto static in table 100
 *
 * "its" means the route carries the agent's protocol (Policy.routeProtocol): the one ownership
 * mark for routes. A refused lookup is judged from the kernel's errno: for blackhole, unreachable
 * and prohibit routes the kernel answers with an error, not the route (EINVAL, EHOSTUNREACH,
 * EACCES), and ENETUNREACH when nothing matches at all.
 */
import { constants, errnoDescription, errnoName, routeTable, type RouteMessage } from '../../netlink/index.js';
import { protocolName, routeTypeName, tableName } from './names.js';
import type { ProbeVerdict } from './verdict.js';

export interface RouteJudgeContext {
  /** The probed address, as the probe names it. */
  to: string;
  /** The device the route must leave through: its name, and its ifindex (absent: it does not exist). */
  ifname: string;
  ifindex: number | undefined;
  /** The agent's rtm_protocol (Policy.routeProtocol). */
  routeProtocol: number;
  /** Names of the links the answer mentions (answerIfindexes); a missing one prints as `ifindex N`. */
  linkNames: ReadonlyMap<number, string>;
}

/** The output links an answer names: look their names up before judging it. */
export function answerIfindexes(answer: RouteMessage): number[] {
  const out = new Set<number>();
  if (answer.oif !== undefined && answer.oif > 0) out.add(answer.oif);
  for (const nh of answer.multipath ?? []) if (nh.ifindex > 0) out.add(nh.ifindex);
  return [...out];
}

function dev(ifindex: number, names: ReadonlyMap<number, string>): string {
  const name = names.get(ifindex);
  return name === undefined ? `dev ifindex ${ifindex}` : `dev ${name}`;
}

function hop(gateway: string | undefined, ifindex: number, names: ReadonlyMap<number, string>): string {
  return `${gateway === undefined ? '' : `next hop ${gateway} `}${dev(ifindex, names)}`;
}

function prefix(r: RouteMessage): string {
  if (r.dstLen === 0) return 'default';
  return `${r.dst ?? (r.family === constants.AF_INET6 ? '::' : '0.0.0.0')}/${r.dstLen}`;
}

export function judgeRouteAnswer(ctx: RouteJudgeContext, answer: RouteMessage): ProbeVerdict {
  const its = answer.protocol === ctx.routeProtocol;
  const type = answer.type === constants.RTN_UNICAST ? '' : `${routeTypeName(answer.type)} `;
  const table = routeTable(answer);
  const where = table === 0 || table === constants.RT_TABLE_MAIN ? '' : ` in table ${tableName(table)}`;
  const route = `${its ? 'its' : 'a foreign'} ${type}route ${prefix(answer)}${its ? '' : ` proto ${protocolName(answer.protocol)}`}${where}`;

  let hops: string;
  let oifs: number[];
  if (answer.multipath !== undefined && answer.multipath.length > 0) {
    hops = answer.multipath.map((nh) => hop(nh.gateway, nh.ifindex, ctx.linkNames)).join(' and ');
    oifs = answer.multipath.map((nh) => nh.ifindex);
  } else if (answer.oif !== undefined && answer.oif > 0) {
    hops = hop(answer.gateway, answer.oif, ctx.linkNames);
    oifs = [answer.oif];
  } else {
    // A nexthop object without the compat attributes, or a route with no device at all.
    hops = answer.nhId !== undefined ? `nexthop object ${answer.nhId}` : 'no output device';
    oifs = [];
  }
  // Multipath: every next hop must use the device, or some flows leave elsewhere.
  const passed = ctx.ifindex !== undefined && oifs.length > 0 && oifs.every((i) => i === ctx.ifindex);
  const missing = ctx.ifindex === undefined ? ` (${ctx.ifname} does not exist)` : '';
  return { passed, message: `${ctx.to} → ${hops} via ${route}${missing}` };
}

/** The errno of a refused lookup, the ext-ack text the kernel gave with it, and the error's own text. */
export interface RouteLookupFailure {
  errno: number;
  extAck?: string | undefined;
  /** The whole error message: what is said when the errno is not one of the kernel's route refusals (e.g. the client's EBADF after close). */
  message?: string | undefined;
}

const REFUSALS: Readonly<Record<string, string>> = {
  ENETUNREACH: 'no route',
  EHOSTUNREACH: 'an unreachable route',
  EACCES: 'a prohibit route',
  // EINVAL is also what a malformed lookup gets; the probe's lookups are well formed.
  EINVAL: 'a blackhole route',
};

export function judgeRouteError(ctx: Pick<RouteJudgeContext, 'to'>, failure: RouteLookupFailure): ProbeVerdict {
  const code = errnoName(failure.errno);
  const ext = failure.extAck !== undefined && failure.extAck !== '' ? `: ${failure.extAck}` : '';
  const what = REFUSALS[code];
  if (what === undefined) {
    return { passed: false, message: `${ctx.to} → the route lookup failed: ${failure.message ?? `${code} (${errnoDescription(failure.errno)})${ext}`}` };
  }
  return { passed: false, message: `${ctx.to} → ${what} (the kernel answered ${code}: ${errnoDescription(failure.errno)}${ext})` };
}
