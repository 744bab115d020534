/**
 * Link messages: RTM_NEWLINK / RTM_DELLINK / RTM_GETLINK / RTM_SETLINK (struct ifinfomsg + IFLA_*),
 * with IFLA_LINKINFO decoded and, for kind "tun", its IFLA_TUN_* data.
 */
import { NetlinkDecodeError, NetlinkEncodeError } from './errors.js';
import {
  attrSpec,
  decodeAttrs,
  encodeAttrs,
  fBool8,
  fCustom,
  fMac,
  fNest,
  fRawList,
  fS32,
  fString,
  fU32,
  fU8,
  parseRawList,
  type AttrLayout,
  type RawAttr,
} from './attributes.js';
import { rdS32, rdU16, rdU32 } from './bytes.js';
import { s32Field, u16Field, u32Field, u8Field, type WithOptional } from './fixed.js';
import { messageWriter, type NetlinkWriter, type MessageWriter } from './writer.js';
import { NLA_F_NESTED, NLM_F_DUMP, NLM_F_REQUEST } from '../constants/netlink.js';
import { AF_UNSPEC, RTM_GETLINK } from '../constants/rtnetlink.js';
import * as L from '../constants/link.js';

/** IFLA_INFO_DATA of a tun/tap device. */
export interface TunInfo extends AttrLayout {
  /** Owning uid (TUNSETOWNER); absent when the device has no owner. */
  owner?: number;
  /** Owning gid (TUNSETGROUP); absent when none. */
  group?: number;
  /** TUN_TYPE_TUN (1) or TUN_TYPE_TAP (2). */
  type?: number;
  /** Packet information header (!IFF_NO_PI). */
  pi?: boolean;
  vnetHdr?: boolean;
  persist?: boolean;
  multiQueue?: boolean;
  numQueues?: number;
  numDisabledQueues?: number;
}

/** IFLA_LINKINFO. */
export interface LinkInfo extends AttrLayout {
  /** IFLA_INFO_KIND, e.g. 'tun', 'veth', 'bridge'. */
  kind?: string;
  /** IFLA_INFO_DATA when kind is 'tun'. */
  tun?: TunInfo;
  /** IFLA_INFO_DATA of any other kind, one level deep (attributes kept raw). */
  data?: RawAttr[];
  /** IFLA_INFO_SLAVE_KIND, e.g. 'bridge' for a bridge port. */
  slaveKind?: string;
  /** IFLA_INFO_SLAVE_DATA, one level deep (attributes kept raw). */
  slaveData?: RawAttr[];
}

/** A link (network interface) as RTM_NEWLINK describes it. */
export interface LinkMessage extends AttrLayout {
  /** ifi_family, normally AF_UNSPEC. */
  family: number;
  /** ifi_type: ARPHRD_* hardware type (ARPHRD_NONE for tun, ARPHRD_ETHER for tap/veth). */
  linkType: number;
  ifindex: number;
  /** IFF_* device flags. */
  flags: number;
  /** ifi_change: which flags a request changes (events: which changed). */
  change: number;

  ifname?: string;
  txqlen?: number;
  /** IF_OPER_* (RFC 2863). */
  operstate?: number;
  linkmode?: number;
  mtu?: number;
  minMtu?: number;
  maxMtu?: number;
  group?: number;
  promiscuity?: number;
  allmulti?: number;
  numTxQueues?: number;
  numRxQueues?: number;
  gsoMaxSegs?: number;
  gsoMaxSize?: number;
  groMaxSize?: number;
  tsoMaxSize?: number;
  tsoMaxSegs?: number;
  /** IFLA_LINK: ifindex of the lower device (a veth's peer). */
  link?: number;
  /** IFLA_MASTER: ifindex of the bridge/bond this link is enslaved to. */
  master?: number;
  carrier?: boolean;
  qdisc?: string;
  ifalias?: string;
  carrierChanges?: number;
  carrierUpCount?: number;
  carrierDownCount?: number;
  protoDown?: boolean;
  /** IFLA_ADDRESS as 'aa:bb:cc:dd:ee:ff' (any length, colon-hex). */
  address?: string;
  broadcast?: string;
  permAddress?: string;
  physPortName?: string;
  linkInfo?: LinkInfo;
  /** IFLA_LINK_NETNSID: the namespace (by nsid) of the peer/lower device. */
  linkNetnsid?: number;
  netnsPid?: number;
  netnsFd?: number;
  /** IFLA_EXT_MASK (requests): RTEXT_FILTER_* bits. */
  extMask?: number;
  event?: number;
  newNetnsid?: number;
  targetNetnsid?: number;
  newIfindex?: number;
  altIfname?: string;
  parentDevName?: string;
  parentDevBusName?: string;
}

export type LinkMessageInit = WithOptional<LinkMessage, 'family' | 'linkType' | 'ifindex' | 'flags' | 'change'>;

// Table order follows the kernel's tun_fill_info.
export const TUN_ATTRS = attrSpec('link.linkInfo.tun', [
  fU8(L.IFLA_TUN_TYPE, 'type'),
  fU32(L.IFLA_TUN_OWNER, 'owner'),
  fU32(L.IFLA_TUN_GROUP, 'group'),
  fBool8(L.IFLA_TUN_PI, 'pi'),
  fBool8(L.IFLA_TUN_VNET_HDR, 'vnetHdr'),
  fBool8(L.IFLA_TUN_PERSIST, 'persist'),
  fBool8(L.IFLA_TUN_MULTI_QUEUE, 'multiQueue'),
  fU32(L.IFLA_TUN_NUM_QUEUES, 'numQueues'),
  fU32(L.IFLA_TUN_NUM_DISABLED_QUEUES, 'numDisabledQueues'),
]);

type Obj = Record<string, unknown>;

/** IFLA_INFO_DATA: typed for tun, a raw one-level list for every other kind. */
const infoData = {
  has: (o: Obj) => o.tun !== undefined || o.data !== undefined,
  decode(buf: Buffer, off: number, len: number, type: number, o: Obj, depth: number): boolean {
    if ((type & 0x4000) !== 0) return false;
    if (o.kind === 'tun') {
      const tun: Obj = {};
      if (!decodeAttrs(buf, off, off + len, TUN_ATTRS, tun, depth + 1)) return false;
      o.tun = tun;
      return true;
    }
    const list = parseRawList(buf, off, off + len);
    if (list === undefined) return false;
    o.data = list;
    return true;
  },
  encode(w: NetlinkWriter, type: number, o: Obj, path: string, depth: number): void {
    const start = w.beginNest(type);
    if (o.tun !== undefined) {
      if (o.tun === null || typeof o.tun !== 'object') throw new NetlinkEncodeError(`${path}.tun`, 'must be an object');
      encodeAttrs(w, TUN_ATTRS, o.tun as Obj, depth + 1);
    } else {
      if (!Array.isArray(o.data)) throw new NetlinkEncodeError(`${path}.data`, 'must be an array of raw attributes');
      for (const r of o.data as RawAttr[]) {
        if (r === null || typeof r !== 'object' || !(r.data instanceof Uint8Array) || (r.type & 0xffff) !== r.type) {
          throw new NetlinkEncodeError(`${path}.data`, 'entries must be { type: u16, data: Uint8Array }');
        }
        w.attrBytes(r.type, r.data);
      }
    }
    w.endNest(start);
  },
};

export const LINK_INFO_ATTRS = attrSpec('link.linkInfo', [
  fString(L.IFLA_INFO_KIND, 'kind'),
  fCustom(L.IFLA_INFO_DATA, 'data', infoData),
  fString(L.IFLA_INFO_SLAVE_KIND, 'slaveKind'),
  fRawList(L.IFLA_INFO_SLAVE_DATA, 'slaveData'),
]);

// Table order follows the kernel's rtnl_fill_ifinfo, so hand-built objects look like kernel ones.
export const LINK_ATTRS = attrSpec('link', [
  fString(L.IFLA_IFNAME, 'ifname'),
  fU32(L.IFLA_TXQLEN, 'txqlen'),
  fU8(L.IFLA_OPERSTATE, 'operstate'),
  fU8(L.IFLA_LINKMODE, 'linkmode'),
  fU32(L.IFLA_MTU, 'mtu'),
  fU32(L.IFLA_MIN_MTU, 'minMtu'),
  fU32(L.IFLA_MAX_MTU, 'maxMtu'),
  fU32(L.IFLA_GROUP, 'group'),
  fU32(L.IFLA_PROMISCUITY, 'promiscuity'),
  fU32(L.IFLA_ALLMULTI, 'allmulti'),
  fU32(L.IFLA_NUM_TX_QUEUES, 'numTxQueues'),
  fU32(L.IFLA_GSO_MAX_SEGS, 'gsoMaxSegs'),
  fU32(L.IFLA_GSO_MAX_SIZE, 'gsoMaxSize'),
  fU32(L.IFLA_GRO_MAX_SIZE, 'groMaxSize'),
  fU32(L.IFLA_TSO_MAX_SIZE, 'tsoMaxSize'),
  fU32(L.IFLA_TSO_MAX_SEGS, 'tsoMaxSegs'),
  fU32(L.IFLA_NUM_RX_QUEUES, 'numRxQueues'),
  fU32(L.IFLA_LINK, 'link'),
  fU32(L.IFLA_MASTER, 'master'),
  fBool8(L.IFLA_CARRIER, 'carrier'),
  fString(L.IFLA_QDISC, 'qdisc'),
  fString(L.IFLA_IFALIAS, 'ifalias'),
  fU32(L.IFLA_CARRIER_CHANGES, 'carrierChanges'),
  fU32(L.IFLA_CARRIER_UP_COUNT, 'carrierUpCount'),
  fU32(L.IFLA_CARRIER_DOWN_COUNT, 'carrierDownCount'),
  fBool8(L.IFLA_PROTO_DOWN, 'protoDown'),
  fMac(L.IFLA_ADDRESS, 'address'),
  fMac(L.IFLA_BROADCAST, 'broadcast'),
  fString(L.IFLA_PHYS_PORT_NAME, 'physPortName'),
  fU32(L.IFLA_EVENT, 'event'),
  fNest(L.IFLA_LINKINFO, 'linkInfo', LINK_INFO_ATTRS),
  fS32(L.IFLA_LINK_NETNSID, 'linkNetnsid'),
  fS32(L.IFLA_NEW_NETNSID, 'newNetnsid'),
  fS32(L.IFLA_NEW_IFINDEX, 'newIfindex'),
  fMac(L.IFLA_PERM_ADDRESS, 'permAddress'),
  fString(L.IFLA_PARENT_DEV_NAME, 'parentDevName'),
  fString(L.IFLA_PARENT_DEV_BUS_NAME, 'parentDevBusName'),
  fU32(L.IFLA_NET_NS_PID, 'netnsPid'),
  fU32(L.IFLA_NET_NS_FD, 'netnsFd'),
  fU32(L.IFLA_EXT_MASK, 'extMask'),
  fS32(L.IFLA_TARGET_NETNSID, 'targetNetnsid'),
  fString(L.IFLA_ALT_IFNAME, 'altIfname'),
]);

/** Decodes the payload buf[start, end) of a link message (after the nlmsghdr). */
export function decodeLinkMessage(buf: Buffer, start: number, end: number): LinkMessage {
  if (end - start < L.IFINFOMSG_LEN) {
    throw new NetlinkDecodeError(`link message payload of ${end - start} bytes, shorter than struct ifinfomsg (16)`, start);
  }
  const msg: LinkMessage = {
    family: buf[start]!,
    linkType: rdU16(buf, start + 2),
    ifindex: rdS32(buf, start + 4),
    flags: rdU32(buf, start + 8),
    change: rdU32(buf, start + 12),
  };
  decodeAttrs(buf, start + L.IFINFOMSG_LEN, end, LINK_ATTRS, msg as unknown as Obj, 0);
  return msg;
}

/** Writes struct ifinfomsg and the attributes of a link (inside a message the caller began). */
export function writeLinkPayload(w: NetlinkWriter, link: LinkMessageInit): void {
  w.reserve(L.IFINFOMSG_LEN);
  const b = w.buf;
  const p = w.pos;
  b[p] = u8Field(link.family, 'link.family');
  b[p + 1] = 0;
  b.writeUInt16LE(u16Field(link.linkType, 'link.linkType'), p + 2);
  b.writeInt32LE(s32Field(link.ifindex, 'link.ifindex'), p + 4);
  b.writeUInt32LE(u32Field(link.flags, 'link.flags'), p + 8);
  b.writeUInt32LE(u32Field(link.change, 'link.change'), p + 12);
  w.pos = p + L.IFINFOMSG_LEN;
  encodeAttrs(w, LINK_ATTRS, link as unknown as Obj);
}

/** Writes a whole link message. */
export const writeLinkMessage: MessageWriter<LinkMessageInit> = messageWriter(writeLinkPayload);

/** What a strict-checked link dump can filter on (rtnl_valid_dump_ifinfo_req). */
export interface LinkDumpFilter {
  /** Only links enslaved to this master ifindex (IFLA_MASTER). */
  master?: number;
  /** Only links of this kind (IFLA_LINKINFO / IFLA_INFO_KIND), e.g. 'tun'. */
  kind?: string;
  /** IFLA_EXT_MASK, e.g. RTEXT_FILTER_SKIP_STATS to leave out the counters. */
  extMask?: number;
}

/**
 * Writes an RTM_GETLINK dump request. The kernel does not filter link dumps by ifindex — ask for
 * one link with writeLinkGetRequest instead.
 */
export function writeLinkDumpRequest(w: NetlinkWriter, seq: number, filter: LinkDumpFilter = {}): void {
  const link: LinkMessageInit = { family: AF_UNSPEC };
  if (filter.extMask !== undefined) link.extMask = filter.extMask;
  if (filter.master !== undefined) link.master = filter.master;
  if (filter.kind !== undefined) link.linkInfo = { kind: filter.kind };
  link.attrOrder = dumpOrder(link);
  writeLinkMessage(w, { type: RTM_GETLINK, flags: NLM_F_REQUEST | NLM_F_DUMP, seq }, link);
}

// Requests put IFLA_EXT_MASK first, as iproute2 does.
function dumpOrder(link: LinkMessageInit): number[] {
  const order: number[] = [];
  if (link.extMask !== undefined) order.push(L.IFLA_EXT_MASK);
  if (link.master !== undefined) order.push(L.IFLA_MASTER);
  if (link.linkInfo !== undefined) order.push(L.IFLA_LINKINFO | NLA_F_NESTED);
  return order;
}

/** Writes an RTM_GETLINK request for one link, by ifindex or by name. */
export function writeLinkGetRequest(
  w: NetlinkWriter,
  seq: number,
  by: { ifindex?: number; ifname?: string; extMask?: number },
  flags = NLM_F_REQUEST,
): void {
  const link: LinkMessageInit = { family: AF_UNSPEC, ifindex: by.ifindex ?? 0 };
  if (by.extMask !== undefined) link.extMask = by.extMask;
  if (by.ifname !== undefined) link.ifname = by.ifname;
  writeLinkMessage(w, { type: RTM_GETLINK, flags, seq }, link);
}
