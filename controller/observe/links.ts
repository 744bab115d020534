/**
 * The link dump of every pass, read straight into ObservedLinks.
 *
 * Why: every pass re-lists every link (level-triggered), and decoding each into a lossless
 * LinkMessage first — ~40 attributes, the unknown ones copied into Buffers of their own, an
 * attribute order array — was a third of everything a drift-repair pass allocated (~1 MiB a pass
 * with 200 links; profile of the bench agent) and ~3 ms of its CPU, for the handful of fields
 * toObservedLink reads. Here a link costs a walk over its attribute headers, and only those
 * fields are read.
 *
 * The answer must be exactly toObservedLink(decodeLinkMessage(...)) — the same typed-field rules
 * (first occurrence only, exact lengths, no flag bits, strings that re-encode identically, the
 * IFLA_LINKINFO nest only when canonical, IFLA_INFO_DATA as tun data only after IFLA_INFO_KIND
 * "tun") and the same NetlinkDecodeError for damaged framing, so a dump fails here exactly when it
 * failed before. A differential test (test/controller/observe/links.test.ts) holds it to that,
 * on real kernel dumps and generated messages.
 */
import { linkDump, type DumpSpec } from '../../netlink/client-dumps.js';
import { readString } from '../../netlink/codec/attributes.js';
import { rdS32, rdU16, rdU32 } from '../../netlink/codec/bytes.js';
import { NetlinkDecodeError } from '../../netlink/codec/errors.js';
import { formatMac } from '../../netlink/codec/ip.js';
import * as L from '../../netlink/constants/link.js';
import { NLA_F_NESTED, NLA_HDRLEN, NLA_TYPE_MASK } from '../../netlink/constants/netlink.js';
import type { ObservedLink, ObservedTunInfo } from '../model/observed.js';

const FLAG_BITS = 0xc000;
const NET_BYTEORDER = 0x4000;

/** A link dump whose items are ObservedLinks (null for a link without a name, dropped). */
export function observedLinkDump(): DumpSpec<ObservedLink | null> {
  const spec = linkDump({});
  return { ...spec, decode: decodeObservedLink, keep: (l) => l !== null };
}

/** Throws what decodeAttrs throws for damaged framing; returns the attribute's length. */
function attrLength(buf: Buffer, pos: number, end: number): number {
  if (end - pos < NLA_HDRLEN) throw new NetlinkDecodeError(`${end - pos} stray bytes where an attribute header (4 bytes) should start`, pos);
  const len = rdU16(buf, pos);
  const type = rdU16(buf, pos + 2);
  if (len < NLA_HDRLEN) throw new NetlinkDecodeError(`attribute type ${type} has length ${len}, shorter than its header`, pos);
  if (len > end - pos) throw new NetlinkDecodeError(`attribute type ${type} has length ${len}, past the end of its container (${end - pos} bytes left)`, pos);
  return len;
}

function u32Of(buf: Buffer, p: number, len: number, type: number): number | undefined {
  return len === 4 && (type & FLAG_BITS) === 0 ? rdU32(buf, p) : undefined;
}

function stringOf(buf: Buffer, p: number, len: number, type: number): string | undefined {
  return (type & FLAG_BITS) === 0 ? readString(buf, p, len) : undefined;
}

function bool8Of(buf: Buffer, p: number, len: number, type: number): boolean | undefined {
  if (len !== 1 || (type & FLAG_BITS) !== 0) return undefined;
  const v = buf[p]!;
  return v > 1 ? undefined : v === 1;
}

export function decodeObservedLink(buf: Buffer, start: number, end: number): ObservedLink | null {
  if (end - start < L.IFINFOMSG_LEN) {
    throw new NetlinkDecodeError(`link message payload of ${end - start} bytes, shorter than struct ifinfomsg (16)`, start);
  }
  let ifname: string | undefined;
  let mtu: number | undefined;
  let txqlen: number | undefined;
  let address: string | undefined;
  let alias: string | undefined;
  let info: LinkInfoFields | undefined;
  // Bit per field: met already (only the first occurrence of a type is typed).
  let seen = 0;
  let pos = start + L.IFINFOMSG_LEN;
  while (pos < end) {
    const len = attrLength(buf, pos, end);
    const type = rdU16(buf, pos + 2);
    const p = pos + NLA_HDRLEN;
    const n = len - NLA_HDRLEN;
    switch (type & NLA_TYPE_MASK) {
      case L.IFLA_IFNAME:
        if ((seen & 1) === 0) ifname = stringOf(buf, p, n, type);
        seen |= 1;
        break;
      case L.IFLA_MTU:
        if ((seen & 2) === 0) mtu = u32Of(buf, p, n, type);
        seen |= 2;
        break;
      case L.IFLA_TXQLEN:
        if ((seen & 4) === 0) txqlen = u32Of(buf, p, n, type);
        seen |= 4;
        break;
      case L.IFLA_ADDRESS:
        if ((seen & 8) === 0 && (type & FLAG_BITS) === 0) address = formatMac(buf, p, n);
        seen |= 8;
        break;
      case L.IFLA_IFALIAS:
        if ((seen & 16) === 0) alias = stringOf(buf, p, n, type);
        seen |= 16;
        break;
      case L.IFLA_LINKINFO:
        if ((seen & 32) === 0 && (type & ~NLA_F_NESTED & FLAG_BITS) === 0) info = linkInfoOf(buf, p, p + n);
        seen |= 32;
        break;
      default:
    }
    pos += (len + 3) & ~3;
  }
  if (ifname === undefined) return null;
  const link: ObservedLink = {
    ifindex: rdS32(buf, start + 4),
    ifname,
    up: (rdU32(buf, start + 8) & L.IFF_UP) !== 0,
    mtu: mtu ?? 0,
    txQueueLength: txqlen ?? 0,
  };
  const kind = info?.kind;
  if (kind !== undefined) link.kind = kind;
  if (address !== undefined && address !== '') link.macAddress = address.toLowerCase();
  if (alias !== undefined && alias !== '') link.alias = alias;
  if (kind === 'tun' && info?.tun !== undefined) link.tun = info.tun;
  return link;
}

interface LinkInfoFields {
  kind?: string;
  tun?: ObservedTunInfo;
}

/** IFLA_LINKINFO's kind and tun data; undefined where the codec keeps the nest raw (damaged, or not canonical). */
function linkInfoOf(buf: Buffer, start: number, end: number): LinkInfoFields | undefined {
  const out: LinkInfoFields = {};
  let seen = 0;
  let pos = start;
  try {
    while (pos < end) {
      const len = attrLength(buf, pos, end);
      const type = rdU16(buf, pos + 2);
      const p = pos + NLA_HDRLEN;
      switch (type & NLA_TYPE_MASK) {
        case L.IFLA_INFO_KIND: {
          if ((seen & 1) === 0) {
            const kind = stringOf(buf, p, len - NLA_HDRLEN, type);
            if (kind !== undefined) out.kind = kind;
          }
          seen |= 1;
          break;
        }
        case L.IFLA_INFO_DATA: {
          // Typed as tun data only when the kind came first and said so (link.ts infoData).
          if ((seen & 2) === 0 && (type & NET_BYTEORDER) === 0 && out.kind === 'tun') {
            const tun = tunInfoOf(buf, p, pos + len);
            if (tun !== undefined) out.tun = tun;
          }
          seen |= 2;
          break;
        }
        default:
      }
      pos += (len + 3) & ~3;
    }
  } catch (e) {
    if (e instanceof NetlinkDecodeError) return undefined;
    throw e;
  }
  return pos === end ? out : undefined;
}

/** IFLA_INFO_DATA of a tun link; undefined where the codec keeps it raw. */
function tunInfoOf(buf: Buffer, start: number, end: number): ObservedTunInfo | undefined {
  let type8: number | undefined;
  let owner: number | undefined;
  let group: number | undefined;
  let pi: boolean | undefined;
  let vnetHdr: boolean | undefined;
  let persist: boolean | undefined;
  let multiQueue: boolean | undefined;
  let seen = 0;
  let pos = start;
  try {
    while (pos < end) {
      const len = attrLength(buf, pos, end);
      const type = rdU16(buf, pos + 2);
      const p = pos + NLA_HDRLEN;
      const n = len - NLA_HDRLEN;
      const t = type & NLA_TYPE_MASK;
      const bit = t < 31 ? 1 << t : 0;
      const first = bit !== 0 && (seen & bit) === 0;
      seen |= bit;
      if (first) {
        switch (t) {
          case L.IFLA_TUN_TYPE:
            type8 = n === 1 && (type & FLAG_BITS) === 0 ? buf[p] : undefined;
            break;
          case L.IFLA_TUN_OWNER:
            owner = u32Of(buf, p, n, type);
            break;
          case L.IFLA_TUN_GROUP:
            group = u32Of(buf, p, n, type);
            break;
          case L.IFLA_TUN_PI:
            pi = bool8Of(buf, p, n, type);
            break;
          case L.IFLA_TUN_VNET_HDR:
            vnetHdr = bool8Of(buf, p, n, type);
            break;
          case L.IFLA_TUN_PERSIST:
            persist = bool8Of(buf, p, n, type);
            break;
          case L.IFLA_TUN_MULTI_QUEUE:
            multiQueue = bool8Of(buf, p, n, type);
            break;
          default:
        }
      }
      pos += (len + 3) & ~3;
    }
  } catch (e) {
    if (e instanceof NetlinkDecodeError) return undefined;
    throw e;
  }
  if (pos !== end) return undefined;
  const tun: ObservedTunInfo = {
    mode: type8 === L.TUN_TYPE_TAP ? 'tap' : 'tun',
    packetInfo: pi === true,
    vnetHdr: vnetHdr === true,
    multiQueue: multiQueue === true,
    persist: persist === true,
  };
  if (owner !== undefined) tun.owner = owner;
  if (group !== undefined) tun.group = group;
  return tun;
}
