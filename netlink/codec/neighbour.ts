/** Neighbour messages: RTM_NEWNEIGH / RTM_DELNEIGH / RTM_GETNEIGH (struct ndmsg + NDA_*). */
import { NetlinkDecodeError } from './errors.js';
import {
  attrSpec,
  decodeAttrs,
  encodeAttrs,
  fBytes,
  fIp,
  fMac,
  fS32,
  fU16,
  fU16BE,
  fU32,
  fU32Struct,
  fU8,
  type AttrLayout,
} from './attributes.js';
import { rdS32, rdU16 } from './bytes.js';
import { s32Field, u16Field, u8Field, type WithOptional } from './fixed.js';
import { messageWriter, type NetlinkWriter, type MessageWriter } from './writer.js';
import { NLM_F_DUMP, NLM_F_REQUEST } from '../constants/netlink.js';
import { AF_UNSPEC, RTM_GETNEIGH } from '../constants/rtnetlink.js';
import * as N from '../constants/neighbour.js';

/** NDA_CACHEINFO (struct nda_cacheinfo); ages in clock ticks. */
export interface NeighbourCacheInfo {
  confirmed: number;
  used: number;
  updated: number;
  refcnt: number;
}

/** A neighbour (ARP / NDP / FDB) entry as RTM_NEWNEIGH describes it. */
export interface NeighbourMessage extends AttrLayout {
  family: number;
  ifindex: number;
  /** NUD_* state bits. */
  state: number;
  /** NTF_* flags. */
  flags: number;
  /** ndm_type (an RTN_* value). */
  type: number;

  /** NDA_DST: the neighbour's IP address. */
  dst?: string;
  /** NDA_LLADDR: its link-layer address, colon-hex. */
  lladdr?: string;
  cacheInfo?: NeighbourCacheInfo;
  probes?: number;
  vlan?: number;
  /** NDA_PORT (network byte order on the wire). */
  port?: number;
  vni?: number;
  /** NDA_IFINDEX: the output link (FDB entries), also the dump filter. */
  outIfindex?: number;
  master?: number;
  linkNetnsid?: number;
  srcVni?: number;
  protocol?: number;
  nhId?: number;
  /** NDA_FDB_EXT_ATTRS kept raw. */
  fdbExtAttrs?: Uint8Array;
  flagsExt?: number;
  stateMask?: number;
  flagsMask?: number;
}

export type NeighbourMessageInit = WithOptional<NeighbourMessage, 'family' | 'ifindex' | 'state' | 'flags' | 'type'>;

export const NEIGHBOUR_ATTRS = attrSpec('neighbour', [
  fIp(N.NDA_DST, 'dst'),
  fMac(N.NDA_LLADDR, 'lladdr'),
  fU32(N.NDA_PROBES, 'probes'),
  fU32Struct(N.NDA_CACHEINFO, 'cacheInfo', ['confirmed', 'used', 'updated', 'refcnt']),
  fU8(N.NDA_PROTOCOL, 'protocol'),
  fU32(N.NDA_FLAGS_EXT, 'flagsExt'),
  fU16(N.NDA_VLAN, 'vlan'),
  fU16BE(N.NDA_PORT, 'port'),
  fU32(N.NDA_VNI, 'vni'),
  fU32(N.NDA_SRC_VNI, 'srcVni'),
  fU32(N.NDA_IFINDEX, 'outIfindex'),
  fU32(N.NDA_MASTER, 'master'),
  fS32(N.NDA_LINK_NETNSID, 'linkNetnsid'),
  fU32(N.NDA_NH_ID, 'nhId'),
  fBytes(N.NDA_FDB_EXT_ATTRS, 'fdbExtAttrs'),
  fU16(N.NDA_NDM_STATE_MASK, 'stateMask'),
  fU8(N.NDA_NDM_FLAGS_MASK, 'flagsMask'),
]);

/** Decodes the payload buf[start, end) of a neighbour message. */
export function decodeNeighbourMessage(buf: Buffer, start: number, end: number): NeighbourMessage {
  if (end - start < N.NDMSG_LEN) {
    throw new NetlinkDecodeError(`neighbour message payload of ${end - start} bytes, shorter than struct ndmsg (12)`, start);
  }
  const msg: NeighbourMessage = {
    family: buf[start]!,
    ifindex: rdS32(buf, start + 4),
    state: rdU16(buf, start + 8),
    flags: buf[start + 10]!,
    type: buf[start + 11]!,
  };
  decodeAttrs(buf, start + N.NDMSG_LEN, end, NEIGHBOUR_ATTRS, msg as unknown as Record<string, unknown>, 0);
  return msg;
}

/** Writes struct ndmsg and the attributes of a neighbour (inside a message the caller began). */
export function writeNeighbourPayload(w: NetlinkWriter, n: NeighbourMessageInit): void {
  w.reserve(N.NDMSG_LEN);
  const b = w.buf;
  const p = w.pos;
  b[p] = u8Field(n.family, 'neighbour.family');
  b[p + 1] = 0;
  b.writeUInt16LE(0, p + 2);
  b.writeInt32LE(s32Field(n.ifindex, 'neighbour.ifindex'), p + 4);
  b.writeUInt16LE(u16Field(n.state, 'neighbour.state'), p + 8);
  b[p + 10] = u8Field(n.flags, 'neighbour.flags');
  b[p + 11] = u8Field(n.type, 'neighbour.type');
  w.pos = p + N.NDMSG_LEN;
  encodeAttrs(w, NEIGHBOUR_ATTRS, n as unknown as Record<string, unknown>);
}

/** Writes a whole neighbour message. */
export const writeNeighbourMessage: MessageWriter<NeighbourMessageInit> = messageWriter(writeNeighbourPayload);

/** What a strict-checked neighbour dump can filter on (neigh_valid_dump_req). */
export interface NeighbourDumpFilter {
  family?: number;
  /** Only entries of this link (sent as NDA_IFINDEX; strict checking rejects ndm_ifindex). */
  ifindex?: number;
  /** Only entries of links enslaved to this master (NDA_MASTER). */
  master?: number;
}

/** Writes an RTM_GETNEIGH dump request. */
export function writeNeighbourDumpRequest(w: NetlinkWriter, seq: number, filter: NeighbourDumpFilter = {}): void {
  const n: NeighbourMessageInit = { family: filter.family ?? AF_UNSPEC };
  if (filter.ifindex !== undefined) n.outIfindex = filter.ifindex;
  if (filter.master !== undefined) n.master = filter.master;
  writeNeighbourMessage(w, { type: RTM_GETNEIGH, flags: NLM_F_REQUEST | NLM_F_DUMP, seq }, n);
}
