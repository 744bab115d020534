/**
 * Route messages: RTM_NEWROUTE / RTM_DELROUTE / RTM_GETROUTE (struct rtmsg + RTA_*), with
 * RTA_METRICS (RTAX_*), RTA_MULTIPATH (struct rtnexthop list) and RTA_VIA decoded.
 */
import { NetlinkDecodeError, NetlinkEncodeError } from './errors.js';
import {
  attrSpec,
  decodeAttrs,
  encodeAttrs,
  fBytes,
  fCustom,
  fIp,
  fNest,
  fString,
  fU16,
  fU16BE,
  fU32,
  fU32Struct,
  fU8,
  type AttrLayout,
} from './attributes.js';
import { rdS32, rdU16, rdU32 } from './bytes.js';
import { s32Field, u32Field, u8Field, type WithOptional } from './fixed.js';
import { formatIp, ipByteLength, writeIp } from './ip.js';
import { messageWriter, type NetlinkWriter, type MessageWriter } from './writer.js';
import { NLM_F_DUMP, NLM_F_REQUEST } from '../constants/netlink.js';
import { AF_INET, AF_INET6, AF_UNSPEC, RTM_F_FIB_MATCH, RTM_F_LOOKUP_TABLE, RTM_GETROUTE } from '../constants/rtnetlink.js';
import * as R from '../constants/route.js';

/** RTA_METRICS: the RTAX_* values of a route. */
export interface RouteMetrics extends AttrLayout {
  /** RTAX_LOCK: bit (1 << RTAX_x) set for each locked metric. */
  lock?: number;
  mtu?: number;
  window?: number;
  rtt?: number;
  rttvar?: number;
  ssthresh?: number;
  cwnd?: number;
  advmss?: number;
  reordering?: number;
  hoplimit?: number;
  initcwnd?: number;
  features?: number;
  rtoMin?: number;
  initrwnd?: number;
  quickack?: number;
  /** RTAX_CC_ALGO: congestion control algorithm name. */
  ccAlgo?: string;
  fastopenNoCookie?: number;
}

/** RTA_VIA: a gateway of another family than the route (e.g. an IPv6 next hop for IPv4). */
export interface RouteVia {
  family: number;
  address: string;
}

/** RTA_CACHEINFO (struct rta_cacheinfo); `expires` is in clock ticks (USER_HZ). */
export interface RouteCacheInfo {
  clntref: number;
  lastuse: number;
  expires: number;
  error: number;
  used: number;
  id: number;
  ts: number;
  tsage: number;
}

/** One next hop of a multipath route (struct rtnexthop + attributes). */
export interface RouteNexthop extends AttrLayout {
  /** RTNH_F_* flags. */
  flags: number;
  /** rtnh_hops: the weight minus one. */
  hops: number;
  ifindex: number;
  gateway?: string;
  via?: RouteVia;
  flow?: number;
  encapType?: number;
  /** RTA_ENCAP kept raw. */
  encap?: Uint8Array;
  newdst?: Uint8Array;
}

/** A route as RTM_NEWROUTE describes it. */
export interface RouteMessage extends AttrLayout {
  /** AF_INET or AF_INET6. */
  family: number;
  dstLen: number;
  srcLen: number;
  tos: number;
  /**
   * rtm_table: the 8-bit table field. Tables above 255 show RT_TABLE_COMPAT (252) here and their
   * id in `table`; use routeTable() for the effective id.
   */
  headerTable: number;
  /** rtm_protocol: RTPROT_* — who installed the route (tunkeeper: 116 by default). */
  protocol: number;
  /** RT_SCOPE_*. */
  scope: number;
  /** rtm_type: RTN_* (unicast, blackhole, unreachable, ...). */
  type: number;
  /** RTM_F_* / RTNH_F_* flags. */
  flags: number;

  /** RTA_TABLE: the full 32-bit table id. */
  table?: number;
  dst?: string;
  src?: string;
  iif?: number;
  oif?: number;
  gateway?: string;
  via?: RouteVia;
  /** RTA_PRIORITY: the route's metric. */
  metric?: number;
  prefsrc?: string;
  metrics?: RouteMetrics;
  multipath?: RouteNexthop[];
  flow?: number;
  cacheInfo?: RouteCacheInfo;
  mark?: number;
  newdst?: Uint8Array;
  /** RTA_PREF: IPv6 router preference (ICMPV6_ROUTER_PREF_*). */
  pref?: number;
  encapType?: number;
  /** RTA_ENCAP kept raw (its layout depends on encapType). */
  encap?: Uint8Array;
  /** RTA_EXPIRES: seconds until an IPv6 route expires (requests). */
  expires?: number;
  uid?: number;
  ttlPropagate?: number;
  ipProto?: number;
  sport?: number;
  dport?: number;
  /** RTA_NH_ID: the nexthop object the route uses. */
  nhId?: number;
}

export type RouteMessageInit = WithOptional<
  RouteMessage,
  'family' | 'dstLen' | 'srcLen' | 'tos' | 'headerTable' | 'protocol' | 'scope' | 'type' | 'flags'
>;

type Obj = Record<string, unknown>;

/** The effective table id of a route: RTA_TABLE when present, else rtm_table. */
export function routeTable(r: Pick<RouteMessage, 'headerTable' | 'table'>): number {
  return r.table ?? r.headerTable;
}

export const METRICS_ATTRS = attrSpec('route.metrics', [
  fU32(R.RTAX_LOCK, 'lock'),
  fU32(R.RTAX_MTU, 'mtu'),
  fU32(R.RTAX_WINDOW, 'window'),
  fU32(R.RTAX_RTT, 'rtt'),
  fU32(R.RTAX_RTTVAR, 'rttvar'),
  fU32(R.RTAX_SSTHRESH, 'ssthresh'),
  fU32(R.RTAX_CWND, 'cwnd'),
  fU32(R.RTAX_ADVMSS, 'advmss'),
  fU32(R.RTAX_REORDERING, 'reordering'),
  fU32(R.RTAX_HOPLIMIT, 'hoplimit'),
  fU32(R.RTAX_INITCWND, 'initcwnd'),
  fU32(R.RTAX_FEATURES, 'features'),
  fU32(R.RTAX_RTO_MIN, 'rtoMin'),
  fU32(R.RTAX_INITRWND, 'initrwnd'),
  fU32(R.RTAX_QUICKACK, 'quickack'),
  fString(R.RTAX_CC_ALGO, 'ccAlgo'),
  fU32(R.RTAX_FASTOPEN_NO_COOKIE, 'fastopenNoCookie'),
]);

/** RTA_VIA: u16 family (host order) then the address. */
const via = {
  has: (o: Obj) => o.via !== undefined,
  decode(buf: Buffer, off: number, len: number, type: number, o: Obj): boolean {
    if ((type & 0xc000) !== 0 || len < 2) return false;
    const address = formatIp(buf, off + 2, len - 2);
    if (address === undefined) return false;
    o.via = { family: rdU16(buf, off), address };
    return true;
  },
  encode(w: NetlinkWriter, type: number, o: Obj, path: string): void {
    const v = o.via as RouteVia;
    if (v === null || typeof v !== 'object' || typeof v.address !== 'string') throw new NetlinkEncodeError(path, 'must be { family, address }');
    const n = ipByteLength(v.address);
    const family = v.family ?? (n === 16 ? AF_INET6 : AF_INET);
    if ((family & 0xffff) !== family) throw new NetlinkEncodeError(`${path}.family`, 'must be an integer 0..65535');
    w.attrHeader(type, 2 + n);
    w.buf.writeUInt16LE(family, w.pos);
    if (writeIp(v.address, w.buf, w.pos + 2) !== n) throw new NetlinkEncodeError(`${path}.address`, `${JSON.stringify(v.address)} is not an IP address`);
    w.pos += 2 + n;
  },
};

export const NEXTHOP_ATTRS = attrSpec('route.multipath[]', [
  fIp(R.RTA_GATEWAY, 'gateway'),
  fCustom(R.RTA_VIA, 'via', via),
  fU32(R.RTA_FLOW, 'flow'),
  fU16(R.RTA_ENCAP_TYPE, 'encapType'),
  fBytes(R.RTA_ENCAP, 'encap'),
  fBytes(R.RTA_NEWDST, 'newdst'),
]);

/** RTA_MULTIPATH: a list of struct rtnexthop, each followed by its own attributes. */
const multipath = {
  has: (o: Obj) => o.multipath !== undefined,
  decode(buf: Buffer, off: number, len: number, type: number, o: Obj, depth: number): boolean {
    if ((type & 0x4000) !== 0) return false;
    const end = off + len;
    const list: RouteNexthop[] = [];
    let pos = off;
    while (pos < end) {
      if (end - pos < R.RTNEXTHOP_LEN) throw new NetlinkDecodeError(`${end - pos} bytes left, too few for struct rtnexthop (8)`, pos);
      const nlen = rdU16(buf, pos);
      if (nlen < R.RTNEXTHOP_LEN) throw new NetlinkDecodeError(`rtnexthop length ${nlen} is shorter than the struct`, pos);
      if (nlen > end - pos) throw new NetlinkDecodeError(`rtnexthop length ${nlen} runs past the end of RTA_MULTIPATH`, pos);
      const nh: RouteNexthop = { flags: buf[pos + 2]!, hops: buf[pos + 3]!, ifindex: rdS32(buf, pos + 4) };
      if (!decodeAttrs(buf, pos + R.RTNEXTHOP_LEN, pos + nlen, NEXTHOP_ATTRS, nh as unknown as Obj, depth + 1)) return false;
      list.push(nh);
      pos += (nlen + 3) & ~3;
    }
    if (pos !== end) return false;
    o.multipath = list;
    return true;
  },
  encode(w: NetlinkWriter, type: number, o: Obj, path: string, depth: number): void {
    const list = o.multipath as RouteNexthop[];
    if (!Array.isArray(list)) throw new NetlinkEncodeError(path, 'must be an array of next hops');
    const nest = w.beginNest(type);
    for (let i = 0; i < list.length; i++) {
      const nh = list[i]!;
      if (nh === null || typeof nh !== 'object') throw new NetlinkEncodeError(`${path}[${i}]`, 'must be an object');
      w.pad();
      w.reserve(R.RTNEXTHOP_LEN);
      const start = w.pos;
      w.buf.writeUInt16LE(0, start);
      w.buf[start + 2] = u8Field(nh.flags, `${path}[${i}].flags`);
      w.buf[start + 3] = u8Field(nh.hops, `${path}[${i}].hops`);
      w.buf.writeInt32LE(s32Field(nh.ifindex, `${path}[${i}].ifindex`), start + 4);
      w.pos = start + R.RTNEXTHOP_LEN;
      encodeAttrs(w, NEXTHOP_ATTRS, nh as unknown as Obj, depth + 1);
      w.pad();
      w.buf.writeUInt16LE(w.pos - start, start);
    }
    w.endNest(nest);
  },
};

// Table order follows the kernel's fib_dump_info, so IPv4 routes from the kernel need no
// attrOrder; IPv6 routes (rt6_fill_node puts RTA_PRIORITY after RTA_OIF) keep theirs.
// ROUTE_ACCESS below must list the same keys at the same indexes (a test checks it).
export const ROUTE_ATTRS = attrSpec(
  'route',
  [
    fU32(R.RTA_TABLE, 'table'), // 0
    fIp(R.RTA_DST, 'dst'), // 1
    fIp(R.RTA_SRC, 'src'), // 2
    fU32(R.RTA_IIF, 'iif'), // 3
    fU32(R.RTA_PRIORITY, 'metric'), // 4
    fNest(R.RTA_METRICS, 'metrics', METRICS_ATTRS), // 5
    fIp(R.RTA_PREFSRC, 'prefsrc'), // 6
    fU32(R.RTA_NH_ID, 'nhId'), // 7
    fIp(R.RTA_GATEWAY, 'gateway'), // 8
    fCustom(R.RTA_VIA, 'via', via), // 9
    fU32(R.RTA_OIF, 'oif'), // 10
    fCustom(R.RTA_MULTIPATH, 'multipath', multipath), // 11
    fU32(R.RTA_FLOW, 'flow'), // 12
    fU16(R.RTA_ENCAP_TYPE, 'encapType'), // 13
    fBytes(R.RTA_ENCAP, 'encap'), // 14
    fBytes(R.RTA_NEWDST, 'newdst'), // 15
    fU32Struct(R.RTA_CACHEINFO, 'cacheInfo', ['clntref', 'lastuse', 'expires', 'error', 'used', 'id', 'ts', 'tsage']), // 16
    fU8(R.RTA_PREF, 'pref'), // 17
    fU32(R.RTA_EXPIRES, 'expires'), // 18
    fU32(R.RTA_MARK, 'mark'), // 19
    fU32(R.RTA_UID, 'uid'), // 20
    fU8(R.RTA_TTL_PROPAGATE, 'ttlPropagate'), // 21
    fU8(R.RTA_IP_PROTO, 'ipProto'), // 22
    fU16BE(R.RTA_SPORT, 'sport'), // 23
    fU16BE(R.RTA_DPORT, 'dport'), // 24
  ],
  {
    get(o: Obj, i: number): unknown {
      switch (i) {
        case 0: return o.table;
        case 1: return o.dst;
        case 2: return o.src;
        case 3: return o.iif;
        case 4: return o.metric;
        case 5: return o.metrics;
        case 6: return o.prefsrc;
        case 7: return o.nhId;
        case 8: return o.gateway;
        case 9: return o.via;
        case 10: return o.oif;
        case 11: return o.multipath;
        case 12: return o.flow;
        case 13: return o.encapType;
        case 14: return o.encap;
        case 15: return o.newdst;
        case 16: return o.cacheInfo;
        case 17: return o.pref;
        case 18: return o.expires;
        case 19: return o.mark;
        case 20: return o.uid;
        case 21: return o.ttlPropagate;
        case 22: return o.ipProto;
        case 23: return o.sport;
        case 24: return o.dport;
        default: return undefined;
      }
    },
    set(o: Obj, i: number, v: unknown): void {
      switch (i) {
        case 0: o.table = v; break;
        case 1: o.dst = v; break;
        case 2: o.src = v; break;
        case 3: o.iif = v; break;
        case 4: o.metric = v; break;
        case 5: o.metrics = v; break;
        case 6: o.prefsrc = v; break;
        case 7: o.nhId = v; break;
        case 8: o.gateway = v; break;
        case 9: o.via = v; break;
        case 10: o.oif = v; break;
        case 11: o.multipath = v; break;
        case 12: o.flow = v; break;
        case 13: o.encapType = v; break;
        case 14: o.encap = v; break;
        case 15: o.newdst = v; break;
        case 16: o.cacheInfo = v; break;
        case 17: o.pref = v; break;
        case 18: o.expires = v; break;
        case 19: o.mark = v; break;
        case 20: o.uid = v; break;
        case 21: o.ttlPropagate = v; break;
        case 22: o.ipProto = v; break;
        case 23: o.sport = v; break;
        case 24: o.dport = v; break;
      }
    },
  },
);

/** Decodes the payload buf[start, end) of a route message. */
export function decodeRouteMessage(buf: Buffer, start: number, end: number): RouteMessage {
  if (end - start < R.RTMSG_LEN) {
    throw new NetlinkDecodeError(`route message payload of ${end - start} bytes, shorter than struct rtmsg (12)`, start);
  }
  const msg: RouteMessage = {
    family: buf[start]!,
    dstLen: buf[start + 1]!,
    srcLen: buf[start + 2]!,
    tos: buf[start + 3]!,
    headerTable: buf[start + 4]!,
    protocol: buf[start + 5]!,
    scope: buf[start + 6]!,
    type: buf[start + 7]!,
    flags: rdU32(buf, start + 8),
  };
  decodeAttrs(buf, start + R.RTMSG_LEN, end, ROUTE_ATTRS, msg as unknown as Obj, 0);
  return msg;
}

/** Writes struct rtmsg and the attributes of a route (inside a message the caller began). */
export function writeRoutePayload(w: NetlinkWriter, r: RouteMessageInit): void {
  w.pad();
  w.reserve(R.RTMSG_LEN);
  const b = w.buf;
  const p = w.pos;
  b[p] = u8Field(r.family, 'route.family');
  b[p + 1] = u8Field(r.dstLen, 'route.dstLen');
  b[p + 2] = u8Field(r.srcLen, 'route.srcLen');
  b[p + 3] = u8Field(r.tos, 'route.tos');
  b[p + 4] = u8Field(r.headerTable, 'route.headerTable');
  b[p + 5] = u8Field(r.protocol, 'route.protocol');
  b[p + 6] = u8Field(r.scope, 'route.scope');
  b[p + 7] = u8Field(r.type, 'route.type');
  const flags = u32Field(r.flags, 'route.flags');
  b[p + 8] = flags & 0xff;
  b[p + 9] = (flags >>> 8) & 0xff;
  b[p + 10] = (flags >>> 16) & 0xff;
  b[p + 11] = flags >>> 24;
  w.pos = p + R.RTMSG_LEN;
  encodeAttrs(w, ROUTE_ATTRS, r as unknown as Obj);
}

/** Writes a whole route message. */
export const writeRouteMessage: MessageWriter<RouteMessageInit> = messageWriter(writeRoutePayload);

/** What a strict-checked route dump can filter on (ip_valid_fib_dump_req). */
export interface RouteDumpFilter {
  /** AF_INET, AF_INET6, or AF_UNSPEC (both). */
  family?: number;
  /** Table id; ids above 255 go in RTA_TABLE. */
  table?: number;
  /** Only routes of this rtm_protocol. */
  protocol?: number;
  /** Only routes of this rtm_type (RTN_*). */
  type?: number;
  /** Only routes through this output ifindex (RTA_OIF). */
  oif?: number;
}

/** Writes an RTM_GETROUTE dump request; the kernel answers with NLM_F_DUMP_FILTERED when it filtered. */
export function writeRouteDumpRequest(w: NetlinkWriter, seq: number, filter: RouteDumpFilter = {}): void {
  const r: RouteMessageInit = {
    family: filter.family ?? AF_UNSPEC,
    protocol: filter.protocol ?? 0,
    type: filter.type ?? 0,
    headerTable: 0,
  };
  if (filter.table !== undefined) {
    if (filter.table <= 0xff) r.headerTable = filter.table;
    else r.table = filter.table;
  }
  if (filter.oif !== undefined) r.oif = filter.oif;
  writeRouteMessage(w, { type: RTM_GETROUTE, flags: NLM_F_REQUEST | NLM_F_DUMP, seq }, r);
}

/**
 * One route lookup, as `ip route get` asks it: not a dump, the kernel runs its own FIB lookup
 * (policy rules included) for the packet described and answers with ONE RTM_NEWROUTE.
 *
 * Only what the kernel accepts in a strict-checked get goes in (inet_rtm_valid_getroute_req,
 * inet6_rtm_valid_getroute_req): the rtmsg header carries nothing but the family, the full-length
 * dst_len/src_len and rtm_flags; RTA_TABLE is refused ("Unsupported attribute"), so a lookup cannot
 * be pinned to a table — the rules choose it, and the answer names it.
 */
export interface RouteGetQuery {
  /** The destination address, IPv4 or IPv6: it sets the family (and dst_len 32 or 128). */
  dst: string;
  /** RTA_SRC (`from`): the packet's source address, same family; src_len is then full length. */
  src?: string;
  /** RTA_IIF (`iif`): look the packet up as if it arrived on this link (input routing). */
  iif?: number;
  /** RTA_OIF (`oif`, `dev`): the lookup is bound to this output link. */
  oif?: number;
  /** RTA_MARK (`mark`): the packet's firewall mark. 0 is not sent, as `ip` does (same lookup). */
  mark?: number;
  /** RTA_UID (`uid`): the lookup is made for a socket of this user (uidrange rules). */
  uid?: number;
  /**
   * RTM_F_FIB_MATCH (`fibmatch`): answer with the FIB entry that matched — its own prefix,
   * protocol, scope, table and next hops — instead of the resolved host route (/32 or /128).
   */
  fibMatch?: boolean;
}

/**
 * Writes an RTM_GETROUTE lookup request byte for byte as iproute2's `ip route get` does: rtmsg
 * with the family, dst_len (and src_len) at full length and, for IPv4, RTM_F_LOOKUP_TABLE (so the
 * answer carries the table the lookup ended in; without it IPv4 reports main whatever the rules
 * chose, and IPv6 refuses the flag: it always reports the real table), RTM_F_FIB_MATCH when
 * asked; then RTA_DST, RTA_SRC, RTA_UID, RTA_IIF, RTA_OIF, RTA_MARK, the order `ip route get DST
 * from SRC uid UID iif DEV oif DEV mark MARK` writes them in. `flags` are the nlmsg_flags
 * (`ip` sends NLM_F_REQUEST alone; a client that wants the ack after the answer adds NLM_F_ACK).
 */
export function writeRouteGetRequest(w: NetlinkWriter, seq: number, q: RouteGetQuery, flags = NLM_F_REQUEST): void {
  const v6 = ipByteLength(q.dst) === 16;
  const r: RouteMessageInit = {
    family: v6 ? AF_INET6 : AF_INET,
    dstLen: v6 ? 128 : 32,
    flags: (v6 ? 0 : RTM_F_LOOKUP_TABLE) | (q.fibMatch === true ? RTM_F_FIB_MATCH : 0),
    dst: q.dst,
  };
  const order: number[] = [R.RTA_DST];
  if (q.src !== undefined) {
    r.src = q.src;
    r.srcLen = ipByteLength(q.src) * 8;
    order.push(R.RTA_SRC);
  }
  if (q.uid !== undefined) {
    r.uid = q.uid;
    order.push(R.RTA_UID);
  }
  if (q.iif !== undefined) {
    r.iif = q.iif;
    order.push(R.RTA_IIF);
  }
  if (q.oif !== undefined) {
    r.oif = q.oif;
    order.push(R.RTA_OIF);
  }
  if (q.mark !== undefined && q.mark !== 0) {
    r.mark = q.mark;
    order.push(R.RTA_MARK);
  }
  r.attrOrder = order;
  writeRouteMessage(w, { type: RTM_GETROUTE, flags, seq }, r);
}
