/**
 * The dumps the client runs, with their filters.
 *
 * Every dump asks the kernel to filter (the socket is strict-checked, NETLINK_GET_STRICT_CHK) AND
 * filters again here, because what the kernel honours depends on its version and on strict
 * checking being accepted, and because a reconciler must never see an object outside the scope it
 * asked for (it would consider it its own). What a strict-checked kernel (≥ 5.0) honours:
 *   - links:      IFLA_MASTER and IFLA_LINKINFO kind. Not ifindex or name — those become an
 *                 RTM_GETLINK for the one link instead of a dump.
 *   - addresses:  family and ifa_index (ENODEV for an index that does not exist → empty list).
 *   - routes:     family, table (rtm_table or RTA_TABLE), rtm_protocol, rtm_type and RTA_OIF; a
 *                 table that does not exist answers ENOENT, an oif that does not exist ENODEV —
 *                 both mean an empty list here.
 *   - neighbours: family, NDA_IFINDEX, NDA_MASTER.
 *   - rules:      family only; table, protocol and priority are filtered here.
 */
import { decodeAddressMessage, writeAddressDumpRequest, type AddressMessage } from './codec/address.js';
import { decodeLinkMessage, writeLinkDumpRequest, type LinkMessage } from './codec/link.js';
import { decodeNeighbourMessage, writeNeighbourDumpRequest, type NeighbourMessage } from './codec/neighbour.js';
import { decodeRouteMessage, routeTable, writeRouteDumpRequest, type RouteMessage } from './codec/route.js';
import { decodeRuleMessage, ruleTable, writeRuleDumpRequest, type RuleMessage } from './codec/rule.js';
import type { NetlinkWriter } from './codec/writer.js';
import { AF_INET, AF_INET6, AF_UNSPEC, RTEXT_FILTER_SKIP_STATS, RTM_F_CLONED, RTM_NEWADDR, RTM_NEWLINK, RTM_NEWNEIGH, RTM_NEWROUTE, RTM_NEWRULE } from './constants/rtnetlink.js';
import { ENODEV, ENOENT } from './errors.js';
import { NetlinkEncodeError } from './codec/errors.js';
import { checkUint } from './ops/prefix.js';

/** One dump: how to ask, how to decode an item, what to keep. */
export interface DumpSpec<T> {
  /** e.g. 'route dump' */
  readonly operation: string;
  /** the filter, e.g. 'table 100 protocol 116' */
  readonly target: string;
  write(w: NetlinkWriter, seq: number): void;
  /** The message type of the items (RTM_NEWROUTE...); other types in the reply are ignored. */
  readonly itemType: number;
  decode(buf: Buffer, start: number, end: number): T;
  /** Client-side filter; absent keeps everything. */
  keep?: (item: T) => boolean;
  /** Errnos that mean "nothing matches" (a table or link that does not exist). */
  readonly emptyOn?: readonly number[];
}

/** 4 / AF_INET → AF_INET, 6 / AF_INET6 → AF_INET6, 0 / undefined → AF_UNSPEC. */
export function normalFamily(f: number | undefined, field: string): number {
  if (f === undefined || f === AF_UNSPEC) return AF_UNSPEC;
  if (f === 4 || f === AF_INET) return AF_INET;
  if (f === 6 || f === AF_INET6) return AF_INET6;
  throw new NetlinkEncodeError(field, `${f} is not 4 / AF_INET, 6 / AF_INET6 or 0 (both)`);
}

function describe(parts: Array<[string, unknown]>): string {
  return parts
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k} ${String(v)}`)
    .join(' ');
}

export interface LinkFilter {
  /** One link by index (an RTM_GETLINK, not a dump). */
  ifindex?: number;
  /** One link by name (an RTM_GETLINK, not a dump). */
  ifname?: string;
  /** Only links of this kind, e.g. 'tun', 'veth', 'bridge'. */
  kind?: string;
  /** Only links enslaved to this master ifindex. */
  master?: number;
}

export function linkDump(filter: LinkFilter): DumpSpec<LinkMessage> {
  const { kind, master } = filter;
  if (kind !== undefined && (typeof kind !== 'string' || kind === '')) throw new NetlinkEncodeError('links.kind', 'must be a non-empty string');
  if (master !== undefined) checkUint(master, 'links.master', 0x7fffffff, 1);
  return {
    operation: 'link dump',
    target: describe([
      ['kind', kind],
      ['master', master],
    ]),
    itemType: RTM_NEWLINK,
    write(w, seq) {
      const f: { extMask: number; kind?: string; master?: number } = { extMask: RTEXT_FILTER_SKIP_STATS };
      if (kind !== undefined) f.kind = kind;
      if (master !== undefined) f.master = master;
      writeLinkDumpRequest(w, seq, f);
    },
    decode: decodeLinkMessage,
    keep: kind === undefined && master === undefined ? undefined : (l) => (kind === undefined || l.linkInfo?.kind === kind) && (master === undefined || l.master === master),
  };
}

export interface AddressFilter {
  ifindex?: number;
  /** 4 / AF_INET, 6 / AF_INET6; default both. */
  family?: number;
}

export function addressDump(filter: AddressFilter): DumpSpec<AddressMessage> {
  const family = normalFamily(filter.family, 'addresses.family');
  const ifindex = filter.ifindex === undefined ? undefined : checkUint(filter.ifindex, 'addresses.ifindex', 0x7fffffff, 1);
  return {
    operation: 'address dump',
    target: describe([
      ['family', family === AF_UNSPEC ? undefined : family === AF_INET ? 'inet' : 'inet6'],
      ['ifindex', ifindex],
    ]),
    itemType: RTM_NEWADDR,
    write(w, seq) {
      writeAddressDumpRequest(w, seq, ifindex === undefined ? { family } : { family, ifindex });
    },
    decode: decodeAddressMessage,
    keep: family === AF_UNSPEC && ifindex === undefined ? undefined : (a) => (family === AF_UNSPEC || a.family === family) && (ifindex === undefined || a.ifindex === ifindex),
    emptyOn: ifindex === undefined ? [] : [ENODEV],
  };
}

export interface RouteFilter {
  /** 4 / AF_INET, 6 / AF_INET6; default both (and any other family the kernel dumps). */
  family?: number;
  /** Table id (any u32): only routes of this table. Default: every table. */
  table?: number;
  /** Only routes of this rtm_protocol (tunkeeper's own: 116). */
  protocol?: number;
  /** Only routes of this rtm_type (RTN_*). */
  type?: number;
  /** Only routes through this output ifindex (a multipath route matches through any next hop). */
  oif?: number;
  /** Include cached clones (RTM_F_CLONED); default false. */
  cloned?: boolean;
}

export function routeDump(filter: RouteFilter): DumpSpec<RouteMessage> {
  const family = normalFamily(filter.family, 'routes.family');
  const table = filter.table === undefined ? undefined : checkUint(filter.table, 'routes.table', 0xffffffff, 1);
  const protocol = filter.protocol === undefined ? undefined : checkUint(filter.protocol, 'routes.protocol', 255, 1);
  const type = filter.type === undefined ? undefined : checkUint(filter.type, 'routes.type', 255, 1);
  const oif = filter.oif === undefined ? undefined : checkUint(filter.oif, 'routes.oif', 0x7fffffff, 1);
  const cloned = filter.cloned === true;
  const emptyOn: number[] = [];
  if (table !== undefined) emptyOn.push(ENOENT);
  if (oif !== undefined) emptyOn.push(ENODEV);
  return {
    operation: 'route dump',
    target: describe([
      ['family', family === AF_UNSPEC ? undefined : family === AF_INET ? 'inet' : 'inet6'],
      ['table', table],
      ['protocol', protocol],
      ['type', type],
      ['oif', oif],
    ]),
    itemType: RTM_NEWROUTE,
    write(w, seq) {
      const f: { family: number; table?: number; protocol?: number; type?: number; oif?: number } = { family };
      if (table !== undefined) f.table = table;
      if (protocol !== undefined) f.protocol = protocol;
      if (type !== undefined) f.type = type;
      if (oif !== undefined) f.oif = oif;
      writeRouteDumpRequest(w, seq, f);
    },
    decode: decodeRouteMessage,
    keep: (r) =>
      (family === AF_UNSPEC || r.family === family) &&
      (table === undefined || routeTable(r) === table) &&
      (protocol === undefined || r.protocol === protocol) &&
      (type === undefined || r.type === type) &&
      (oif === undefined || r.oif === oif || (r.multipath !== undefined && r.multipath.some((nh) => nh.ifindex === oif))) &&
      (cloned || (r.flags & RTM_F_CLONED) === 0),
    emptyOn,
  };
}

/** A test on a route message's raw payload buf[start, end): false means "not wanted, do not decode". */
export type RawRouteTest = (buf: Buffer, start: number, end: number) => boolean;

/**
 * routeDump, but only the routes `candidate` accepts from their raw bytes (e.g. with a
 * RoutePeek) are decoded; the others become null and are dropped. For dumps of large tables of
 * which a filter keeps a handful: a route it rejects costs a few byte reads, not an object.
 */
export function routeCandidateDump(filter: RouteFilter, candidate: RawRouteTest): DumpSpec<RouteMessage | null> {
  const spec = routeDump(filter);
  const keep = spec.keep!;
  return {
    ...spec,
    decode: (buf, start, end) => (candidate(buf, start, end) ? decodeRouteMessage(buf, start, end) : null),
    keep: (m) => m !== null && keep(m),
  };
}

export interface NeighbourFilter {
  family?: number;
  ifindex?: number;
  master?: number;
}

export function neighbourDump(filter: NeighbourFilter): DumpSpec<NeighbourMessage> {
  const family = filter.family === undefined ? AF_UNSPEC : checkUint(filter.family, 'neighbours.family', 255);
  const fam = family === 4 ? AF_INET : family === 6 ? AF_INET6 : family;
  const ifindex = filter.ifindex === undefined ? undefined : checkUint(filter.ifindex, 'neighbours.ifindex', 0x7fffffff, 1);
  const master = filter.master === undefined ? undefined : checkUint(filter.master, 'neighbours.master', 0x7fffffff, 1);
  return {
    operation: 'neighbour dump',
    target: describe([
      ['family', fam === AF_UNSPEC ? undefined : fam],
      ['ifindex', ifindex],
      ['master', master],
    ]),
    itemType: RTM_NEWNEIGH,
    write(w, seq) {
      const f: { family: number; ifindex?: number; master?: number } = { family: fam };
      if (ifindex !== undefined) f.ifindex = ifindex;
      if (master !== undefined) f.master = master;
      writeNeighbourDumpRequest(w, seq, f);
    },
    decode: decodeNeighbourMessage,
    // NDA_MASTER is only in the reply for some entries, so the master filter is the kernel's alone.
    keep: (n) => (fam === AF_UNSPEC || n.family === fam) && (ifindex === undefined || n.ifindex === ifindex),
    emptyOn: ifindex === undefined && master === undefined ? [] : [ENODEV],
  };
}

export interface RuleFilter {
  family?: number;
  table?: number;
  protocol?: number;
  priority?: number;
}

export function ruleDump(filter: RuleFilter): DumpSpec<RuleMessage> {
  const family = normalFamily(filter.family, 'rules.family');
  const { table, protocol, priority } = filter;
  return {
    operation: 'rule dump',
    target: describe([
      ['family', family === AF_UNSPEC ? undefined : family === AF_INET ? 'inet' : 'inet6'],
      ['table', table],
      ['protocol', protocol],
      ['priority', priority],
    ]),
    itemType: RTM_NEWRULE,
    write(w, seq) {
      writeRuleDumpRequest(w, seq, { family });
    },
    decode: decodeRuleMessage,
    keep: (r) =>
      (family === AF_UNSPEC || r.family === family) &&
      (table === undefined || ruleTable(r) === table) &&
      (protocol === undefined || r.protocol === protocol) &&
      (priority === undefined || (r.priority ?? 0) === priority),
  };
}
