/**
 * LinkFieldReader: the handful of link fields a reconciler reads every pass (name, flags, MTU,
 * queue length, hardware address, alias, kind, tun data), read from a link message's bytes with
 * AttrWalker, without building a LinkMessage.
 *
 * Why: every reconcile pass re-lists every link, and decoding each into a lossless LinkMessage
 * (~40 attributes, the unknown ones copied into Buffers, an attribute order array) was a third of
 * what a drift-repair pass allocated (~1 MiB a pass with 200 links) for the fields read here.
 * One reader is reused for every message: read() allocates only the strings it returns.
 *
 * The answer must be exactly what decodeLinkMessage types: the same rules (first occurrence
 * only, exact lengths, no flag bits, strings that re-encode identically, IFLA_LINKINFO only when
 * the nest is canonical, IFLA_INFO_DATA as tun data only after IFLA_INFO_KIND "tun" and only when
 * canonical) and the same NetlinkDecodeError for damaged framing of the message's own list. A
 * differential test (test/controller/observe/links.test.ts) holds it to that.
 */
import { NetlinkDecodeError } from './errors.js';
import { rdS32, rdU16, rdU32 } from './bytes.js';
import { AttrWalker } from './walker.js';
import * as L from '../constants/link.js';

/** IFLA_INFO_DATA of a tun/tap link, as decodeLinkMessage types linkInfo.tun (these fields). */
export interface TunFields {
  /** TUN_TYPE_TUN (1) or TUN_TYPE_TAP (2). */
  type: number | undefined;
  owner: number | undefined;
  group: number | undefined;
  pi: boolean | undefined;
  vnetHdr: boolean | undefined;
  persist: boolean | undefined;
  multiQueue: boolean | undefined;
}

export class LinkFieldReader {
  // struct ifinfomsg
  family = 0;
  linkType = 0;
  ifindex = 0;
  /** IFF_* flags. */
  flags = 0;
  // Attributes: undefined where decodeLinkMessage leaves the typed field unset.
  ifname: string | undefined;
  mtu: number | undefined;
  txqlen: number | undefined;
  /** IFLA_ADDRESS as colon-hex, as the codec spells it. */
  address: string | undefined;
  ifalias: string | undefined;
  /** IFLA_LINKINFO / IFLA_INFO_KIND. */
  kind: string | undefined;
  /**
   * The tun data when decodeLinkMessage would type linkInfo.tun, else undefined. The object is
   * the reader's own, overwritten by the next read(): copy what you keep.
   */
  tun: TunFields | undefined;

  readonly #msg = new AttrWalker();
  readonly #info = new AttrWalker();
  readonly #data = new AttrWalker();
  readonly #tun: TunFields = { type: undefined, owner: undefined, group: undefined, pi: undefined, vnetHdr: undefined, persist: undefined, multiQueue: undefined };

  /** Reads the link message payload buf[start, end) (after the nlmsghdr). */
  read(buf: Buffer, start: number, end: number): this {
    if (end - start < L.IFINFOMSG_LEN) {
      throw new NetlinkDecodeError(`link message payload of ${end - start} bytes, shorter than struct ifinfomsg (16)`, start);
    }
    this.family = buf[start]!;
    this.linkType = rdU16(buf, start + 2);
    this.ifindex = rdS32(buf, start + 4);
    this.flags = rdU32(buf, start + 8);
    this.ifname = this.mtu = this.txqlen = this.address = this.ifalias = this.kind = this.tun = undefined;
    // Bit per field: met already (only the first occurrence of a type is typed).
    let seen = 0;
    const w = this.#msg.reset(buf, start + L.IFINFOMSG_LEN, end);
    while (w.next()) {
      switch (w.type) {
        case L.IFLA_IFNAME:
          if ((seen & 1) === 0 && w.flags === 0) this.ifname = w.string();
          seen |= 1;
          break;
        case L.IFLA_MTU:
          if ((seen & 2) === 0 && w.flags === 0) this.mtu = w.u32();
          seen |= 2;
          break;
        case L.IFLA_TXQLEN:
          if ((seen & 4) === 0 && w.flags === 0) this.txqlen = w.u32();
          seen |= 4;
          break;
        case L.IFLA_ADDRESS:
          if ((seen & 8) === 0 && w.flags === 0) this.address = w.mac();
          seen |= 8;
          break;
        case L.IFLA_IFALIAS:
          if ((seen & 16) === 0 && w.flags === 0) this.ifalias = w.string();
          seen |= 16;
          break;
        case L.IFLA_LINKINFO:
          if ((seen & 32) === 0 && !w.netByteOrder) this.#readLinkInfo(w);
          seen |= 32;
          break;
        default:
      }
    }
    return this;
  }

  /** IFLA_LINKINFO's kind and tun data; nothing where the codec keeps the nest raw (damaged, or not canonical). */
  #readLinkInfo(outer: AttrWalker): void {
    let kind: string | undefined;
    let tun: TunFields | undefined;
    let seen = 0;
    try {
      const w = outer.nestedWalker(this.#info);
      while (w.next()) {
        switch (w.type) {
          case L.IFLA_INFO_KIND:
            if ((seen & 1) === 0 && w.flags === 0) kind = w.string();
            seen |= 1;
            break;
          case L.IFLA_INFO_DATA:
            // Typed as tun data only when the kind came first and said so (link.ts infoData).
            if ((seen & 2) === 0 && !w.netByteOrder && kind === 'tun') tun = this.#readTun(w);
            seen |= 2;
            break;
          default:
        }
      }
      if (!w.exact) return;
    } catch (e) {
      if (e instanceof NetlinkDecodeError) return;
      throw e;
    }
    this.kind = kind;
    this.tun = tun;
  }

  /** IFLA_INFO_DATA of a tun link; undefined where the codec keeps it raw. */
  #readTun(outer: AttrWalker): TunFields | undefined {
    const t = this.#tun;
    t.type = t.owner = t.group = t.pi = t.vnetHdr = t.persist = t.multiQueue = undefined;
    let seen = 0;
    try {
      const w = outer.nestedWalker(this.#data);
      while (w.next()) {
        const type = w.type;
        const bit = type < 31 ? 1 << type : 0;
        const first = bit !== 0 && (seen & bit) === 0;
        seen |= bit;
        if (!first) continue;
        const plain = w.flags === 0;
        switch (type) {
          case L.IFLA_TUN_TYPE:
            t.type = plain ? w.u8() : undefined;
            break;
          case L.IFLA_TUN_OWNER:
            t.owner = plain ? w.u32() : undefined;
            break;
          case L.IFLA_TUN_GROUP:
            t.group = plain ? w.u32() : undefined;
            break;
          case L.IFLA_TUN_PI:
            t.pi = plain ? w.bool8() : undefined;
            break;
          case L.IFLA_TUN_VNET_HDR:
            t.vnetHdr = plain ? w.bool8() : undefined;
            break;
          case L.IFLA_TUN_PERSIST:
            t.persist = plain ? w.bool8() : undefined;
            break;
          case L.IFLA_TUN_MULTI_QUEUE:
            t.multiQueue = plain ? w.bool8() : undefined;
            break;
          default:
        }
      }
      return w.exact ? t : undefined;
    } catch (e) {
      if (e instanceof NetlinkDecodeError) return undefined;
      throw e;
    }
  }
}
