/**
 * Route requests: add (fails if the route exists), replace (creates or overwrites), delete.
 * Written straight into the send buffer with the writer's primitives: programming 65k routes
 * must not cost an intermediate object per attribute. And get: the kernel's own lookup of one
 * destination (`ip route get`), answered with the route it would use.
 */
import { NetlinkEncodeError } from '../codec/errors.js';
import type { NlMsgHeader } from '../codec/header.js';
import { formatIp } from '../codec/ip.js';
import { decodeRouteMessage, writeRouteGetRequest, type RouteGetQuery } from '../codec/route.js';
import type { NetlinkWriter } from '../codec/writer.js';
import { NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NLMSG_HDRLEN } from '../constants/netlink.js';
import {
  AF_INET,
  AF_INET6,
  RT_SCOPE_HOST,
  RT_SCOPE_LINK,
  RT_SCOPE_NOWHERE,
  RT_SCOPE_UNIVERSE,
  RT_TABLE_MAIN,
  RT_TABLE_UNSPEC,
  RTM_DELROUTE,
  RTM_NEWROUTE,
  RTN_ANYCAST,
  RTN_BLACKHOLE,
  RTN_BROADCAST,
  RTN_LOCAL,
  RTN_MULTICAST,
  RTN_NAT,
  RTN_PROHIBIT,
  RTN_THROW,
  RTN_UNICAST,
  RTN_UNREACHABLE,
  RTN_UNSPEC,
  RTNH_F_ONLINK,
  RTPROT_BOOT,
} from '../constants/rtnetlink.js';
import { RTA_DST, RTA_GATEWAY, RTA_METRICS, RTA_MULTIPATH, RTA_OIF, RTA_PREFSRC, RTA_PRIORITY, RTA_TABLE, RTAX_MTU, RTMSG_LEN } from '../constants/route.js';
import { checkPrefix, checkUint, parseAddress, type Prefix } from './prefix.js';
import { ACK_BUDGET, type RtnlRequest } from './request.js';

export type RouteTypeName = 'unicast' | 'local' | 'broadcast' | 'anycast' | 'multicast' | 'blackhole' | 'unreachable' | 'prohibit' | 'throw';

const ROUTE_TYPES: Record<RouteTypeName, number> = {
  unicast: RTN_UNICAST,
  local: RTN_LOCAL,
  broadcast: RTN_BROADCAST,
  anycast: RTN_ANYCAST,
  multicast: RTN_MULTICAST,
  blackhole: RTN_BLACKHOLE,
  unreachable: RTN_UNREACHABLE,
  prohibit: RTN_PROHIBIT,
  throw: RTN_THROW,
};

/** One next hop of a multipath route. */
export interface NexthopSpec {
  gateway?: string;
  ifindex?: number;
  /** 1..256, default 1. */
  weight?: number;
  onlink?: boolean;
}

/** A route as a request describes it. Unset fields take `ip route`'s defaults. */
export interface RouteSpec {
  /** Destination: '198.51.100.0/24', '2001:db8::/48', a bare address (host route) or 'default'. */
  dst: string;
  /** 4 / AF_INET or 6 / AF_INET6; only needed for 'default' without an address to tell. */
  family?: number;
  /** Table id (any u32), default main (254). */
  table?: number;
  /** rtm_protocol, default RTPROT_BOOT (3) on add/replace as `ip` does; on delete unset matches any. */
  protocol?: number;
  /** RTA_PRIORITY. On delete, unset matches any. */
  metric?: number;
  gateway?: string;
  /** Output link (RTA_OIF). */
  ifindex?: number;
  /** Preferred source address (RTA_PREFSRC). */
  prefsrc?: string;
  /** RTNH_F_ONLINK: the gateway is on the link even if no prefix says so. */
  onlink?: boolean;
  /** RTAX_MTU. */
  mtu?: number;
  /** Route type, default 'unicast' (delete: unset matches any). */
  type?: RouteTypeName | number;
  /** rtm_scope; default as `ip` chooses (link for a unicast route without gateway, else global). */
  scope?: number;
  /** Multipath next hops (RTA_MULTIPATH) instead of gateway/ifindex. */
  nexthops?: NexthopSpec[];
}

/** What identifies a route to delete: its destination and table; other fields narrow the match. */
export type RouteKey = RouteSpec;

interface NormalNexthop {
  gateway?: { family: number; address: string };
  ifindex: number;
  hops: number;
  flags: number;
}

/**
 * A route request, normalised once at construction into flat fields (one object per route: a
 * reconciler may hold 65k of these at once, and fewer, smaller objects mean less GC).
 * Absent numbers are -1.
 */
interface NormalRoute {
  family: number;
  dstLen: number;
  /** Destination address text (as given, validated). */
  dst: string;
  /** IPv4 destination as a u32 in network order, else -1. */
  dstV4: number;
  table: number;
  protocol: number;
  metric: number;
  gateway: string | undefined;
  ifindex: number;
  prefsrc: string | undefined;
  flags: number;
  mtu: number;
  type: number;
  scope: number;
  nexthops: NormalNexthop[] | undefined;
}

function normalFamily(f: number | undefined): number | undefined {
  if (f === undefined) return undefined;
  if (f === 4 || f === AF_INET) return AF_INET;
  if (f === 6 || f === AF_INET6) return AF_INET6;
  throw new NetlinkEncodeError('route.family', `${f} is neither IPv4 (4, AF_INET) nor IPv6 (6, AF_INET6)`);
}

function routeType(t: RouteTypeName | number | undefined, fallback: number): number {
  if (t === undefined) return fallback;
  if (typeof t === 'number') return checkUint(t, 'route.type', 255);
  const v = ROUTE_TYPES[t];
  if (v === undefined) throw new NetlinkEncodeError('route.type', `unknown route type ${JSON.stringify(t)}`);
  return v;
}

function normalise(spec: RouteSpec, op: 'add' | 'replace' | 'delete', r: NormalRoute): void {
  if (spec === null || typeof spec !== 'object') throw new NetlinkEncodeError('route', 'must be an object');
  const gateway = spec.gateway === undefined ? undefined : parseAddress(spec.gateway, 'route.gateway');
  const prefsrc = spec.prefsrc === undefined ? undefined : parseAddress(spec.prefsrc, 'route.prefsrc');
  let family = normalFamily(spec.family);
  let dst: Prefix;
  if (spec.dst === 'default') {
    family ??= gateway?.family ?? prefsrc?.family ?? AF_INET;
    dst = { family, address: family === AF_INET ? '0.0.0.0' : '::', length: 0 };
  } else {
    dst = checkPrefix(spec.dst, 'route.dst');
    if (family !== undefined && family !== dst.family) throw new NetlinkEncodeError('route.family', `does not match dst ${spec.dst}`);
  }
  family = dst.family;
  if (gateway !== undefined && gateway.family !== family && family === AF_INET) {
    // An IPv6 gateway for an IPv4 route needs RTA_VIA, which this request does not write.
    throw new NetlinkEncodeError('route.gateway', `${spec.gateway} is not an IPv4 address`);
  }
  if (gateway !== undefined && gateway.family !== family) throw new NetlinkEncodeError('route.gateway', `${spec.gateway} is not an IPv6 address`);
  if (prefsrc !== undefined && prefsrc.family !== family) throw new NetlinkEncodeError('route.prefsrc', `${spec.prefsrc} is of another family than the route`);

  const del = op === 'delete';
  const type = routeType(spec.type, del ? RTN_UNSPEC : RTN_UNICAST);
  let nexthops: NormalNexthop[] | undefined;
  if (spec.nexthops !== undefined) {
    if (!Array.isArray(spec.nexthops) || spec.nexthops.length === 0) throw new NetlinkEncodeError('route.nexthops', 'must be a non-empty array');
    if (spec.gateway !== undefined || spec.ifindex !== undefined) throw new NetlinkEncodeError('route.nexthops', 'cannot be combined with gateway or ifindex');
    nexthops = spec.nexthops.map((nh, i) => {
      const path = `route.nexthops[${i}]`;
      const gw = nh.gateway === undefined ? undefined : parseAddress(nh.gateway, `${path}.gateway`);
      if (gw !== undefined && gw.family !== family) throw new NetlinkEncodeError(`${path}.gateway`, 'is of another family than the route');
      const weight = nh.weight === undefined ? 1 : checkUint(nh.weight, `${path}.weight`, 256, 1);
      const n: NormalNexthop = {
        ifindex: nh.ifindex === undefined ? 0 : checkUint(nh.ifindex, `${path}.ifindex`, 0x7fffffff),
        hops: weight - 1,
        flags: nh.onlink === true ? RTNH_F_ONLINK : 0,
      };
      if (gw !== undefined) n.gateway = gw;
      return n;
    });
  }

  let scope: number;
  if (spec.scope !== undefined) scope = checkUint(spec.scope, 'route.scope', 255);
  else if (del) scope = RT_SCOPE_NOWHERE;
  else if (type === RTN_LOCAL || type === RTN_NAT) scope = RT_SCOPE_HOST;
  else if (type === RTN_BROADCAST || type === RTN_MULTICAST || type === RTN_ANYCAST) scope = RT_SCOPE_LINK;
  else if ((type === RTN_UNICAST || type === RTN_UNSPEC) && gateway === undefined && nexthops === undefined) scope = RT_SCOPE_LINK;
  else scope = RT_SCOPE_UNIVERSE;

  const table = spec.table === undefined ? RT_TABLE_MAIN : checkUint(spec.table, 'route.table');
  if (table === RT_TABLE_UNSPEC) throw new NetlinkEncodeError('route.table', 'table 0 is not a table');
  r.family = family;
  r.dstLen = dst.length;
  r.dst = dst.address;
  r.dstV4 = dst.v4 ?? -1;
  r.table = table;
  r.protocol = spec.protocol === undefined ? (del ? 0 : RTPROT_BOOT) : checkUint(spec.protocol, 'route.protocol', 255);
  r.metric = spec.metric === undefined ? -1 : checkUint(spec.metric, 'route.metric');
  r.gateway = gateway?.address;
  r.ifindex = spec.ifindex === undefined ? -1 : checkUint(spec.ifindex, 'route.ifindex', 0x7fffffff, 1);
  r.prefsrc = prefsrc?.address;
  r.flags = spec.onlink === true ? RTNH_F_ONLINK : 0;
  r.mtu = spec.mtu === undefined ? -1 : checkUint(spec.mtu, 'route.mtu');
  r.type = type;
  r.scope = scope;
  r.nexthops = nexthops;
}

function writeRoute(w: NetlinkWriter, seq: number, type: number, flags: number, r: NormalRoute): void {
  const start = w.beginMessage({ type, flags, seq });
  w.reserve(RTMSG_LEN);
  const b = w.buf;
  const p = w.pos;
  b[p] = r.family;
  b[p + 1] = r.dstLen;
  b[p + 2] = 0;
  b[p + 3] = 0;
  b[p + 4] = r.table <= 0xff ? r.table : RT_TABLE_UNSPEC;
  b[p + 5] = r.protocol;
  b[p + 6] = r.scope;
  b[p + 7] = r.type;
  b.writeUInt32LE(r.flags, p + 8);
  w.pos = p + RTMSG_LEN;
  w.attrU32(RTA_TABLE, r.table);
  if (r.dstLen > 0) {
    if (r.dstV4 >= 0) {
      w.attrHeader(RTA_DST, 4);
      w.buf.writeUInt32BE(r.dstV4, w.pos);
      w.pos += 4;
    } else {
      w.attrIp(RTA_DST, r.dst);
    }
  }
  if (r.metric >= 0) w.attrU32(RTA_PRIORITY, r.metric);
  if (r.prefsrc !== undefined) w.attrIp(RTA_PREFSRC, r.prefsrc);
  if (r.mtu >= 0) {
    const nest = w.beginNest(RTA_METRICS);
    w.attrU32(RTAX_MTU, r.mtu);
    w.endNest(nest);
  }
  if (r.gateway !== undefined) w.attrIp(RTA_GATEWAY, r.gateway);
  if (r.ifindex >= 0) w.attrU32(RTA_OIF, r.ifindex);
  if (r.nexthops !== undefined) {
    const nest = w.beginNest(RTA_MULTIPATH);
    for (const nh of r.nexthops) {
      w.pad();
      w.reserve(8);
      const nhStart = w.pos;
      w.buf.writeUInt16LE(0, nhStart);
      w.buf[nhStart + 2] = nh.flags;
      w.buf[nhStart + 3] = nh.hops;
      w.buf.writeInt32LE(nh.ifindex, nhStart + 4);
      w.pos = nhStart + 8;
      if (nh.gateway !== undefined) w.attrIp(RTA_GATEWAY, nh.gateway.address);
      w.pad();
      w.buf.writeUInt16LE(w.pos - nhStart, nhStart);
    }
    w.endNest(nest);
  }
  w.endMessage(start);
}

/** The request object is itself the normalised route: one object per route, fields in place. */
class RouteRequest implements RtnlRequest, NormalRoute {
  family = 0;
  dstLen = 0;
  dst = '';
  dstV4 = -1;
  table = 0;
  protocol = 0;
  metric = -1;
  gateway: string | undefined = undefined;
  ifindex = -1;
  prefsrc: string | undefined = undefined;
  flags = 0;
  mtu = -1;
  type = 0;
  scope = 0;
  nexthops: NormalNexthop[] | undefined = undefined;
  readonly #msgType: number;
  readonly #msgFlags: number;

  constructor(
    readonly operation: string,
    spec: RouteSpec,
    op: 'add' | 'replace' | 'delete',
    msgType: number,
    msgFlags: number,
  ) {
    this.#msgType = msgType;
    this.#msgFlags = msgFlags;
    normalise(spec, op, this);
  }
  get target(): string {
    let t = `${this.dstLen === 0 ? 'default' : `${this.dst}/${this.dstLen}`} table ${this.table}`;
    if (this.metric >= 0) t += ` metric ${this.metric}`;
    return t;
  }
  write(w: NetlinkWriter, seq: number): void {
    writeRoute(w, seq, this.#msgType, this.#msgFlags, this);
  }
}

/** `ip route add`: fails with EEXIST if the route is there. */
export function addRoute(spec: RouteSpec): RtnlRequest {
  return new RouteRequest('route add', spec, 'add', RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
}

/** `ip route replace`: creates the route or overwrites the one with the same key. */
export function replaceRoute(spec: RouteSpec): RtnlRequest {
  return new RouteRequest('route replace', spec, 'replace', RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE);
}

/**
 * `ip route del`: deletes the first route matching the key. Every field set narrows the match;
 * the kernel honours protocol too, so deleting with the owner's protocol never deletes a route
 * someone else installed with the same destination (ESRCH instead).
 */
export function deleteRoute(key: RouteKey): RtnlRequest {
  return new RouteRequest('route delete', key, 'delete', RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK);
}

/** What a route lookup may say about the packet besides its destination (`ip route get` options). */
export interface RouteGetOptions {
  /** Output link (RTA_OIF, `oif`/`dev`): only routes through it can answer. */
  oif?: number;
  /** Source address (RTA_SRC, `from`), of the destination's family. */
  src?: string;
  /** Input link (RTA_IIF, `iif`): route the packet as if it arrived there (forwarding). */
  iif?: number;
  /** Firewall mark (RTA_MARK, `mark`): fwmark rules apply. 0 is the same as none. */
  mark?: number;
  /** User id (RTA_UID, `uid`): uidrange rules apply. */
  uid?: number;
  /**
   * RTM_F_FIB_MATCH (`fibmatch`): answer with the FIB entry that matched — its real prefix,
   * protocol, scope, table and next hops — rather than the resolved host route (dst_len 32 or
   * 128, with prefsrc and cache info; IPv4 flags it RTM_F_CLONED).
   */
  fibMatch?: boolean;
}

/** A route lookup: the destination (address text, or its 4 or 16 bytes) and its options. */
export interface RouteGetSpec extends RouteGetOptions {
  dst: string | Uint8Array;
}

class RouteGetRequest implements RtnlRequest {
  readonly operation = 'route get';
  // One RTM_NEWROUTE and the ack; IPv4 builds its answer in a page-sized buffer, so more than two acks' worth.
  readonly replyBudget = 4 * ACK_BUDGET;
  readonly #q: RouteGetQuery;

  constructor(spec: RouteGetSpec) {
    if (spec === null || typeof spec !== 'object') throw new NetlinkEncodeError('route get', 'must be an object');
    let dst: { family: number; address: string };
    if (spec.dst instanceof Uint8Array) {
      const address = formatIp(spec.dst, 0, spec.dst.length);
      if (address === undefined) throw new NetlinkEncodeError('route get.dst', `${spec.dst.length} bytes are neither an IPv4 (4) nor an IPv6 (16) address`);
      dst = { family: spec.dst.length === 4 ? AF_INET : AF_INET6, address };
    } else {
      // An address, not a prefix: the kernel looks up one destination (`ip` turns /n into /32).
      dst = parseAddress(spec.dst, 'route get.dst');
    }
    const q: RouteGetQuery = { dst: dst.address };
    if (spec.src !== undefined) {
      const src = parseAddress(spec.src, 'route get.src');
      if (src.family !== dst.family) throw new NetlinkEncodeError('route get.src', `${spec.src} is of another family than ${dst.address}`);
      q.src = src.address;
    }
    if (spec.iif !== undefined) q.iif = checkUint(spec.iif, 'route get.iif', 0x7fffffff, 1);
    if (spec.oif !== undefined) q.oif = checkUint(spec.oif, 'route get.oif', 0x7fffffff, 1);
    if (spec.mark !== undefined) q.mark = checkUint(spec.mark, 'route get.mark');
    if (spec.uid !== undefined) q.uid = checkUint(spec.uid, 'route get.uid');
    if (spec.fibMatch !== undefined) {
      if (typeof spec.fibMatch !== 'boolean') throw new NetlinkEncodeError('route get.fibMatch', 'must be a boolean');
      q.fibMatch = spec.fibMatch;
    }
    if ((spec as { table?: unknown }).table !== undefined) {
      // The kernel refuses RTA_TABLE in a lookup: the rules pick the table, the answer names it.
      throw new NetlinkEncodeError('route get.table', 'a lookup cannot be pinned to a table (the kernel refuses RTA_TABLE in RTM_GETROUTE); the answer carries the table the rules chose');
    }
    this.#q = q;
  }

  /** As `ip route get` would be typed, e.g. '198.51.100.7 oif 3 fibmatch'. */
  get target(): string {
    const q = this.#q;
    let t = q.dst;
    if (q.src !== undefined) t += ` from ${q.src}`;
    if (q.uid !== undefined) t += ` uid ${q.uid}`;
    if (q.iif !== undefined) t += ` iif ${q.iif}`;
    if (q.oif !== undefined) t += ` oif ${q.oif}`;
    if (q.mark !== undefined && q.mark !== 0) t += ` mark ${q.mark}`;
    if (q.fibMatch === true) t += ' fibmatch';
    return t;
  }

  write(w: NetlinkWriter, seq: number): void {
    // NLM_F_ACK: the ack after the answer is what tells the client the request is finished.
    writeRouteGetRequest(w, seq, this.#q, NLM_F_REQUEST | NLM_F_ACK);
  }

  decodeReply(buf: Buffer, off: number, h: NlMsgHeader): unknown {
    return h.type === RTM_NEWROUTE ? decodeRouteMessage(buf, off + NLMSG_HDRLEN, off + h.length) : undefined;
  }
}

/**
 * `ip route get`: RTM_GETROUTE for one destination, the kernel's own lookup (policy rules,
 * more specific routes, oif binding, marks and all). Its reply is the decoded RouteMessage of
 * the route the kernel would use; an unroutable destination fails with the kernel's errno
 * (ENETUNREACH, EHOSTUNREACH; ENODEV for a missing IPv4 oif/iif, where IPv6 answers a missing
 * oif with ENETUNREACH). Many go pipelined in one batch.
 */
export function getRoute(spec: RouteGetSpec): RtnlRequest {
  return new RouteGetRequest(spec);
}
