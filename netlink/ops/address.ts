/** Address requests: add (fails if present), replace (creates or updates), delete. */
import { NetlinkEncodeError } from '../codec/errors.js';
import type { NetlinkWriter } from '../codec/writer.js';
import { NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST } from '../constants/netlink.js';
import { RT_SCOPE_UNIVERSE, RTM_DELADDR, RTM_NEWADDR } from '../constants/rtnetlink.js';
import {
  IFA_ADDRESS,
  IFA_BROADCAST,
  IFA_CACHEINFO,
  IFA_F_NODAD,
  IFA_F_NOPREFIXROUTE,
  IFA_FLAGS,
  IFA_LABEL,
  IFA_LOCAL,
  IFA_PROTO,
  IFA_RT_PRIORITY,
  IFADDRMSG_LEN,
  INFINITY_LIFE_TIME,
} from '../constants/address.js';
import { checkUint, parseAddress, parsePrefix, type Prefix } from './prefix.js';
import type { RtnlRequest } from './request.js';

export interface AddressSpec {
  /** The link the address is on. */
  ifindex: number;
  /** '192.0.2.1/24', '2001:db8::1/64', or a bare address (full-length prefix unless prefixLength). */
  address: string;
  prefixLength?: number;
  /** Point-to-point peer (IFA_ADDRESS), e.g. `ip addr add 198.51.100.1 peer 198.51.100.2/32`. */
  peer?: string;
  /** IPv4 broadcast address. */
  broadcast?: string;
  /** IPv4 label (must start with the link's name). */
  label?: string;
  /**
   * IFA_PROTO: who installed the address (tunkeeper marks its own). Kernels before 6.1 ignore the
   * attribute (their address parser skips unknown types), so it is safe to send everywhere.
   */
  proto?: number;
  /** IFA_RT_PRIORITY: metric of the prefix route the address implies. */
  metric?: number;
  /** IFA_F_NOPREFIXROUTE: no prefix route for this address. */
  noPrefixRoute?: boolean;
  /** IFA_F_NODAD (IPv6): skip duplicate address detection, usable at once. */
  nodad?: boolean;
  /** Lifetimes in seconds (default forever). */
  validLifetime?: number;
  preferredLifetime?: number;
  /** ifa_scope, default global. */
  scope?: number;
}

/** What identifies an address to delete. */
export interface AddressKey {
  ifindex: number;
  address: string;
  prefixLength?: number;
  peer?: string;
}

interface NormalAddress {
  ifindex: number;
  local: Prefix;
  peer?: string;
  broadcast?: string;
  label?: string;
  proto?: number;
  metric?: number;
  flags: number;
  scope: number;
  valid?: number;
  preferred?: number;
}

function normalise(spec: AddressSpec | AddressKey, del: boolean): NormalAddress {
  if (spec === null || typeof spec !== 'object') throw new NetlinkEncodeError('address', 'must be an object');
  const s = spec as AddressSpec;
  const local = parsePrefix(s.address, 'address.address', s.prefixLength);
  if (s.prefixLength !== undefined && s.address.includes('/') && local.length !== s.prefixLength) {
    throw new NetlinkEncodeError('address.prefixLength', `${s.prefixLength} contradicts ${s.address}`);
  }
  const a: NormalAddress = {
    ifindex: checkUint(s.ifindex, 'address.ifindex', 0x7fffffff, 1),
    local,
    flags: 0,
    scope: s.scope === undefined ? RT_SCOPE_UNIVERSE : checkUint(s.scope, 'address.scope', 255),
  };
  if (s.peer !== undefined) {
    const peer = parseAddress(s.peer, 'address.peer');
    if (peer.family !== local.family) throw new NetlinkEncodeError('address.peer', 'is of another family than the address');
    a.peer = peer.address;
  }
  if (del) return a;
  if (s.broadcast !== undefined) {
    const b = parseAddress(s.broadcast, 'address.broadcast');
    if (b.family !== local.family) throw new NetlinkEncodeError('address.broadcast', 'is of another family than the address');
    a.broadcast = b.address;
  }
  if (s.label !== undefined) {
    if (typeof s.label !== 'string' || Buffer.byteLength(s.label) > 15) throw new NetlinkEncodeError('address.label', 'must be a string of at most 15 bytes');
    a.label = s.label;
  }
  if (s.proto !== undefined) a.proto = checkUint(s.proto, 'address.proto', 255);
  if (s.metric !== undefined) a.metric = checkUint(s.metric, 'address.metric');
  if (s.noPrefixRoute === true) a.flags |= IFA_F_NOPREFIXROUTE;
  if (s.nodad === true) a.flags |= IFA_F_NODAD;
  if (s.validLifetime !== undefined || s.preferredLifetime !== undefined) {
    a.valid = s.validLifetime === undefined ? INFINITY_LIFE_TIME : checkUint(s.validLifetime, 'address.validLifetime');
    a.preferred = s.preferredLifetime === undefined ? a.valid : checkUint(s.preferredLifetime, 'address.preferredLifetime');
    if (a.preferred > a.valid) throw new NetlinkEncodeError('address.preferredLifetime', 'exceeds the valid lifetime');
  }
  return a;
}

function writeAddress(w: NetlinkWriter, seq: number, type: number, flags: number, a: NormalAddress): void {
  const start = w.beginMessage({ type, flags, seq });
  w.reserve(IFADDRMSG_LEN);
  const b = w.buf;
  const p = w.pos;
  b[p] = a.local.family;
  b[p + 1] = a.local.length;
  b[p + 2] = a.flags & 0xff;
  b[p + 3] = a.scope;
  b.writeUInt32LE(a.ifindex, p + 4);
  w.pos = p + IFADDRMSG_LEN;
  // As iproute2 does: IFA_LOCAL is our address, IFA_ADDRESS the peer (or our address again).
  w.attrIp(IFA_LOCAL, a.local.address);
  w.attrIp(IFA_ADDRESS, a.peer ?? a.local.address);
  if (a.broadcast !== undefined) w.attrIp(IFA_BROADCAST, a.broadcast);
  if (a.label !== undefined) w.attrString(IFA_LABEL, a.label);
  if (a.flags > 0xff) w.attrU32(IFA_FLAGS, a.flags);
  if (a.metric !== undefined) w.attrU32(IFA_RT_PRIORITY, a.metric);
  if (a.proto !== undefined) w.attrU8(IFA_PROTO, a.proto);
  if (a.valid !== undefined) {
    w.attrHeader(IFA_CACHEINFO, 16);
    w.buf.writeUInt32LE(a.preferred!, w.pos);
    w.buf.writeUInt32LE(a.valid, w.pos + 4);
    w.buf.writeUInt32LE(0, w.pos + 8);
    w.buf.writeUInt32LE(0, w.pos + 12);
    w.pos += 16;
  }
  w.endMessage(start);
}

class AddressRequest implements RtnlRequest {
  readonly #a: NormalAddress;
  readonly #type: number;
  readonly #flags: number;
  constructor(
    readonly operation: string,
    a: NormalAddress,
    type: number,
    flags: number,
  ) {
    this.#a = a;
    this.#type = type;
    this.#flags = flags;
  }
  get target(): string {
    const a = this.#a;
    return `${a.local.address}/${a.local.length}${a.peer !== undefined ? ` peer ${a.peer}` : ''} ifindex ${a.ifindex}`;
  }
  write(w: NetlinkWriter, seq: number): void {
    writeAddress(w, seq, this.#type, this.#flags, this.#a);
  }
}

/** `ip addr add`: fails with EEXIST if the address is there. */
export function addAddress(spec: AddressSpec): RtnlRequest {
  return new AddressRequest('address add', normalise(spec, false), RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
}

/** `ip addr replace`: creates the address or updates its attributes (lifetimes, metric, proto...). */
export function replaceAddress(spec: AddressSpec): RtnlRequest {
  return new AddressRequest('address replace', normalise(spec, false), RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE);
}

/** `ip addr del` (EADDRNOTAVAIL if it is not there). */
export function deleteAddress(key: AddressKey): RtnlRequest {
  return new AddressRequest('address delete', normalise(key, true), RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK);
}
