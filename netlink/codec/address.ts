/** Address messages: RTM_NEWADDR / RTM_DELADDR / RTM_GETADDR (struct ifaddrmsg + IFA_*). */
import { NetlinkDecodeError } from './errors.js';
import {
  attrSpec,
  decodeAttrs,
  encodeAttrs,
  fIp,
  fS32,
  fString,
  fU32,
  fU32Struct,
  fU8,
  type AttrLayout,
} from './attributes.js';
import { rdU32 } from './bytes.js';
import { u32Field, u8Field, type WithOptional } from './fixed.js';
import { messageWriter, type NetlinkWriter, type MessageWriter } from './writer.js';
import { NLM_F_DUMP, NLM_F_REQUEST } from '../constants/netlink.js';
import { AF_UNSPEC, RTM_GETADDR } from '../constants/rtnetlink.js';
import * as A from '../constants/address.js';

/** IFA_CACHEINFO (struct ifa_cacheinfo). Lifetimes in seconds, 0xffffffff = forever; stamps in 1/100 s since boot. */
export interface AddressCacheInfo {
  preferred: number;
  valid: number;
  /** cstamp: when the address was created. */
  created: number;
  /** tstamp: when it was last updated. */
  updated: number;
}

/** An interface address as RTM_NEWADDR describes it. */
export interface AddressMessage extends AttrLayout {
  /** AF_INET or AF_INET6. */
  family: number;
  prefixLen: number;
  /** ifa_flags: the low 8 bits of the flags (IFA_F_*); see extendedFlags. */
  flags: number;
  /** RT_SCOPE_*. */
  scope: number;
  ifindex: number;

  /** IFA_ADDRESS: the prefix address, or on a point-to-point link the peer's address. */
  address?: string;
  /** IFA_LOCAL: the local address. */
  local?: string;
  label?: string;
  broadcast?: string;
  anycast?: string;
  multicast?: string;
  cacheInfo?: AddressCacheInfo;
  /** IFA_FLAGS: all 32 bits of the flags (the kernel sends both this and ifa_flags). */
  extendedFlags?: number;
  /** IFA_RT_PRIORITY: metric of the prefix route the address implies. */
  rtPriority?: number;
  targetNetnsid?: number;
  /** IFA_PROTO: who installed the address (IFAPROT_*). */
  proto?: number;
}

export type AddressMessageInit = WithOptional<AddressMessage, 'family' | 'prefixLen' | 'flags' | 'scope' | 'ifindex'>;

// Table order follows the kernel's inet_fill_ifaddr (IPv4); IPv6 addresses, filled in another
// order by inet6_fill_ifaddr, keep an attrOrder.
export const ADDRESS_ATTRS = attrSpec('address', [
  fS32(A.IFA_TARGET_NETNSID, 'targetNetnsid'),
  fIp(A.IFA_ADDRESS, 'address'),
  fIp(A.IFA_LOCAL, 'local'),
  fIp(A.IFA_BROADCAST, 'broadcast'),
  fString(A.IFA_LABEL, 'label'),
  fIp(A.IFA_ANYCAST, 'anycast'),
  fIp(A.IFA_MULTICAST, 'multicast'),
  fU8(A.IFA_PROTO, 'proto'),
  fU32(A.IFA_FLAGS, 'extendedFlags'),
  fU32(A.IFA_RT_PRIORITY, 'rtPriority'),
  fU32Struct(A.IFA_CACHEINFO, 'cacheInfo', ['preferred', 'valid', 'created', 'updated']),
]);

/** All 32 flag bits of an address: IFA_FLAGS when present, else the 8-bit ifa_flags. */
export function addressFlags(a: Pick<AddressMessage, 'flags' | 'extendedFlags'>): number {
  return a.extendedFlags ?? a.flags;
}

/** Decodes the payload buf[start, end) of an address message. */
export function decodeAddressMessage(buf: Buffer, start: number, end: number): AddressMessage {
  if (end - start < A.IFADDRMSG_LEN) {
    throw new NetlinkDecodeError(`address message payload of ${end - start} bytes, shorter than struct ifaddrmsg (8)`, start);
  }
  const msg: AddressMessage = {
    family: buf[start]!,
    prefixLen: buf[start + 1]!,
    flags: buf[start + 2]!,
    scope: buf[start + 3]!,
    ifindex: rdU32(buf, start + 4),
  };
  decodeAttrs(buf, start + A.IFADDRMSG_LEN, end, ADDRESS_ATTRS, msg as unknown as Record<string, unknown>, 0);
  return msg;
}

/** Writes struct ifaddrmsg and the attributes of an address (inside a message the caller began). */
export function writeAddressPayload(w: NetlinkWriter, a: AddressMessageInit): void {
  w.reserve(A.IFADDRMSG_LEN);
  const b = w.buf;
  const p = w.pos;
  b[p] = u8Field(a.family, 'address.family');
  b[p + 1] = u8Field(a.prefixLen, 'address.prefixLen');
  b[p + 2] = u8Field(a.flags, 'address.flags');
  b[p + 3] = u8Field(a.scope, 'address.scope');
  b.writeUInt32LE(u32Field(a.ifindex, 'address.ifindex'), p + 4);
  w.pos = p + A.IFADDRMSG_LEN;
  encodeAttrs(w, ADDRESS_ATTRS, a as unknown as Record<string, unknown>);
}

/** Writes a whole address message. */
export const writeAddressMessage: MessageWriter<AddressMessageInit> = messageWriter(writeAddressPayload);

/** What a strict-checked address dump can filter on (inet_valid_dump_ifaddr_req). */
export interface AddressDumpFilter {
  /** AF_INET, AF_INET6, or AF_UNSPEC (both). */
  family?: number;
  /** Only addresses of this link. */
  ifindex?: number;
}

/** Writes an RTM_GETADDR dump request. */
export function writeAddressDumpRequest(w: NetlinkWriter, seq: number, filter: AddressDumpFilter = {}): void {
  writeAddressMessage(
    w,
    { type: RTM_GETADDR, flags: NLM_F_REQUEST | NLM_F_DUMP, seq },
    { family: filter.family ?? AF_UNSPEC, ifindex: filter.ifindex ?? 0 },
  );
}
