/** Link requests: change attributes of an existing link, delete it, or read one link. */
import { NetlinkEncodeError } from '../codec/errors.js';
import { macByteLength } from '../codec/ip.js';
import { decodeLinkMessage, writeLinkGetRequest } from '../codec/link.js';
import type { NlMsgHeader } from '../codec/header.js';
import type { NetlinkWriter } from '../codec/writer.js';
import { NLM_F_ACK, NLM_F_REQUEST, NLMSG_HDRLEN } from '../constants/netlink.js';
import { AF_UNSPEC, RTEXT_FILTER_SKIP_STATS, RTM_DELLINK, RTM_NEWLINK } from '../constants/rtnetlink.js';
import { IFF_UP, IFINFOMSG_LEN, IFLA_ADDRESS, IFLA_IFALIAS, IFLA_IFNAME, IFLA_MTU, IFLA_TXQLEN } from '../constants/link.js';
import { checkUint } from './prefix.js';
import { ACK_BUDGET, type RtnlRequest } from './request.js';

/** Which link: by index (preferred) or by name. */
export interface LinkRef {
  ifindex?: number;
  ifname?: string;
}

/** Attributes `ip link set` can change; unset ones stay as they are. */
export interface LinkSetSpec extends LinkRef {
  mtu?: number;
  /** Administrative state (IFF_UP). */
  up?: boolean;
  txqlen?: number;
  /** IFLA_IFALIAS; '' removes the alias. tunkeeper marks its links with `tunkeeper:<name>`. */
  alias?: string;
  /** Hardware address, colon-hex. */
  address?: string;
  /** New name (needs ifindex to find the link). */
  name?: string;
}

function checkName(name: string, field: string): string {
  if (typeof name !== 'string' || name.length === 0 || Buffer.byteLength(name) > 15 || /[\s/:]/.test(name) || name === '.' || name === '..') {
    throw new NetlinkEncodeError(field, `${JSON.stringify(name)} is not a valid interface name (1-15 bytes, no whitespace, '/' or ':')`);
  }
  return name;
}

function checkRef(ref: LinkRef, field: string): { ifindex: number; ifname?: string } {
  if (ref === null || typeof ref !== 'object') throw new NetlinkEncodeError(field, 'must be an object');
  if (ref.ifindex === undefined && ref.ifname === undefined) throw new NetlinkEncodeError(field, 'needs ifindex or ifname');
  const out: { ifindex: number; ifname?: string } = { ifindex: ref.ifindex === undefined ? 0 : checkUint(ref.ifindex, `${field}.ifindex`, 0x7fffffff, 1) };
  if (ref.ifname !== undefined) out.ifname = checkName(ref.ifname, `${field}.ifname`);
  return out;
}

function refText(ref: { ifindex: number; ifname?: string }): string {
  if (ref.ifindex !== 0 && ref.ifname !== undefined) return `${ref.ifname} (ifindex ${ref.ifindex})`;
  return ref.ifindex !== 0 ? `ifindex ${ref.ifindex}` : ref.ifname!;
}

class LinkSetRequest implements RtnlRequest {
  readonly operation = 'link set';
  readonly #ref: { ifindex: number; ifname?: string };
  readonly #spec: LinkSetSpec;
  constructor(spec: LinkSetSpec) {
    this.#ref = checkRef(spec, 'link');
    if (spec.mtu !== undefined) checkUint(spec.mtu, 'link.mtu');
    if (spec.txqlen !== undefined) checkUint(spec.txqlen, 'link.txqlen');
    if (spec.up !== undefined && typeof spec.up !== 'boolean') throw new NetlinkEncodeError('link.up', 'must be a boolean');
    if (spec.alias !== undefined && (typeof spec.alias !== 'string' || Buffer.byteLength(spec.alias) > 255)) {
      throw new NetlinkEncodeError('link.alias', 'must be a string of at most 255 bytes');
    }
    if (spec.address !== undefined && (typeof spec.address !== 'string' || macByteLength(spec.address) <= 0 || !/^[0-9a-fA-F]{1,2}(:[0-9a-fA-F]{1,2})*$/.test(spec.address))) {
      throw new NetlinkEncodeError('link.address', `${JSON.stringify(spec.address)} is not a colon-hex hardware address`);
    }
    if (spec.name !== undefined) {
      checkName(spec.name, 'link.name');
      if (this.#ref.ifindex === 0) throw new NetlinkEncodeError('link.name', 'renaming needs the ifindex of the link');
    }
    this.#spec = { ...spec };
  }
  get target(): string {
    const s = this.#spec;
    const parts = [refText(this.#ref)];
    if (s.name !== undefined) parts.push(`name ${s.name}`);
    if (s.mtu !== undefined) parts.push(`mtu ${s.mtu}`);
    if (s.txqlen !== undefined) parts.push(`txqlen ${s.txqlen}`);
    if (s.address !== undefined) parts.push(`address ${s.address}`);
    if (s.alias !== undefined) parts.push(`alias ${JSON.stringify(s.alias)}`);
    if (s.up !== undefined) parts.push(s.up ? 'up' : 'down');
    return parts.join(' ');
  }
  write(w: NetlinkWriter, seq: number): void {
    const s = this.#spec;
    const start = w.beginMessage({ type: RTM_NEWLINK, flags: NLM_F_REQUEST | NLM_F_ACK, seq });
    w.reserve(IFINFOMSG_LEN);
    const b = w.buf;
    const p = w.pos;
    b.fill(0, p, p + IFINFOMSG_LEN);
    b[p] = AF_UNSPEC;
    b.writeInt32LE(this.#ref.ifindex, p + 4);
    if (s.up !== undefined) {
      b.writeUInt32LE(s.up ? IFF_UP : 0, p + 8);
      b.writeUInt32LE(IFF_UP, p + 12);
    }
    w.pos = p + IFINFOMSG_LEN;
    // With ifindex 0 the kernel finds the link by IFLA_IFNAME; with an ifindex, IFLA_IFNAME renames.
    if (s.name !== undefined) w.attrString(IFLA_IFNAME, s.name);
    else if (this.#ref.ifindex === 0) w.attrString(IFLA_IFNAME, this.#ref.ifname!);
    if (s.mtu !== undefined) w.attrU32(IFLA_MTU, s.mtu);
    if (s.txqlen !== undefined) w.attrU32(IFLA_TXQLEN, s.txqlen);
    if (s.address !== undefined) w.attrMac(IFLA_ADDRESS, s.address);
    if (s.alias !== undefined) w.attrString(IFLA_IFALIAS, s.alias);
    w.endMessage(start);
  }
}

class LinkDeleteRequest implements RtnlRequest {
  readonly operation = 'link delete';
  readonly #ref: { ifindex: number; ifname?: string };
  constructor(ref: LinkRef) {
    this.#ref = checkRef(ref, 'link');
  }
  get target(): string {
    return refText(this.#ref);
  }
  write(w: NetlinkWriter, seq: number): void {
    const start = w.beginMessage({ type: RTM_DELLINK, flags: NLM_F_REQUEST | NLM_F_ACK, seq });
    w.reserve(IFINFOMSG_LEN);
    w.buf.fill(0, w.pos, w.pos + IFINFOMSG_LEN);
    w.buf.writeInt32LE(this.#ref.ifindex, w.pos + 4);
    w.pos += IFINFOMSG_LEN;
    if (this.#ref.ifindex === 0) w.attrString(IFLA_IFNAME, this.#ref.ifname!);
    w.endMessage(start);
  }
}

class LinkGetRequest implements RtnlRequest {
  readonly operation = 'link get';
  // A link message with its attributes can take a few KiB, plus the ack.
  readonly replyBudget = 8 * ACK_BUDGET;
  readonly #ref: { ifindex: number; ifname?: string };
  constructor(ref: LinkRef) {
    this.#ref = checkRef(ref, 'link');
  }
  get target(): string {
    return refText(this.#ref);
  }
  write(w: NetlinkWriter, seq: number): void {
    const by: { ifindex?: number; ifname?: string; extMask: number } = { extMask: RTEXT_FILTER_SKIP_STATS };
    if (this.#ref.ifindex !== 0) by.ifindex = this.#ref.ifindex;
    else by.ifname = this.#ref.ifname!;
    writeLinkGetRequest(w, seq, by, NLM_F_REQUEST | NLM_F_ACK);
  }
  decodeReply(buf: Buffer, off: number, h: NlMsgHeader): unknown {
    return h.type === RTM_NEWLINK ? decodeLinkMessage(buf, off + NLMSG_HDRLEN, off + h.length) : undefined;
  }
}

/** `ip link set`: changes the given attributes of an existing link (ENODEV if there is none). */
export function setLink(spec: LinkSetSpec): RtnlRequest {
  return new LinkSetRequest(spec);
}

/** `ip link delete`. */
export function deleteLink(ref: LinkRef): RtnlRequest {
  return new LinkDeleteRequest(ref);
}

/** RTM_GETLINK for one link; its reply is the decoded LinkMessage. */
export function getLink(ref: LinkRef): RtnlRequest {
  return new LinkGetRequest(ref);
}
