/**
 * AttrWalker: a cursor over the attributes (struct nlattr / rtattr) of one message or nest, in
 * the manner of mdlayher/netlink's AttributeDecoder — next(), then the current attribute's type
 * and typed getters — for readers that want a few fields of a message without an object per
 * attribute (controller's link and route fast paths, via link-fields.ts and route-peek.ts).
 *
 * Why a cursor and not a list: a walk allocates nothing per attribute (the walker itself is one
 * reusable object; nested() can re-aim another reusable walker), so a dump of hundreds of links
 * costs a walk over the headers and only the fields asked for.
 *
 * Framing is checked exactly as decodeAttrs checks it, with the same NetlinkDecodeError
 * messages and offsets, so a fast reader fails where the full decoder fails. The getters check
 * the payload length (a u32 of 8 bytes reads as undefined, never as half a value) but ignore
 * the NLA_F_* flag bits: `flags`, `nested` and `netByteOrder` say what they are, and a reader
 * that follows the codec's typed-field rules tests them itself.
 *
 * decodeAttrTree walks with it; decodeAttrs keeps its own loop, the full decoder's hot path
 * (65k routes a dump), where the table lookup and the order bookkeeping sit inside the walk.
 *
 *   const w = new AttrWalker();
 *   w.reset(buf, start + IFINFOMSG_LEN, end);
 *   while (w.next()) if (w.type === IFLA_MTU) mtu = w.u32();
 */
import { NetlinkDecodeError } from './errors.js';
import { copyBytes, rdS32, rdU16, rdU32, readString } from './bytes.js';
import { formatIp, formatMac } from './ip.js';
import { NLA_F_NESTED, NLA_F_NET_BYTEORDER, NLA_HDRLEN, NLA_TYPE_MASK } from '../constants/netlink.js';

/** Deepest nest nested() follows (the same bound as the full decoder's MAX_NEST_DEPTH). */
const MAX_DEPTH = 16;

const FLAG_BITS = NLA_F_NESTED | NLA_F_NET_BYTEORDER;

const EMPTY = Buffer.alloc(0);

export class AttrWalker {
  #buf: Buffer = EMPTY;
  #pos = 0;
  #end = 0;
  #depth = 0;
  /** The current attribute's full type, NLA_F_* bits included. */
  rawType = 0;
  /** The current attribute's payload: offset into the buffer and length (header excluded). */
  offset = 0;
  length = 0;

  /** Aims the walker at the attribute list buf[start, end); `depth`: how deep a nest that is. */
  reset(buf: Buffer, start: number, end: number, depth = 0): this {
    if (depth > MAX_DEPTH) throw new NetlinkDecodeError(`attributes nested deeper than ${MAX_DEPTH} levels`, start);
    this.#buf = buf;
    this.#pos = start;
    this.#end = end;
    this.#depth = depth;
    this.rawType = 0;
    this.offset = start;
    this.length = 0;
    return this;
  }

  /**
   * Moves to the next attribute; false at the end of the list. Throws NetlinkDecodeError where
   * decodeAttrs would: stray bytes too short for a header, a length shorter than the header or
   * past the end of the container.
   */
  next(): boolean {
    const buf = this.#buf;
    const pos = this.#pos;
    const end = this.#end;
    if (pos >= end) return false;
    if (end - pos < NLA_HDRLEN) throw new NetlinkDecodeError(`${end - pos} stray bytes where an attribute header (4 bytes) should start`, pos);
    const len = rdU16(buf, pos);
    const type = rdU16(buf, pos + 2);
    if (len < NLA_HDRLEN) throw new NetlinkDecodeError(`attribute type ${type} has length ${len}, shorter than its header`, pos);
    if (len > end - pos) throw new NetlinkDecodeError(`attribute type ${type} has length ${len}, past the end of its container (${end - pos} bytes left)`, pos);
    this.rawType = type;
    this.offset = pos + NLA_HDRLEN;
    this.length = len - NLA_HDRLEN;
    this.#pos = pos + ((len + 3) & ~3);
    return true;
  }

  /**
   * After the last next(): whether the list ended exactly on its end, i.e. its last attribute
   * was padded (canonical, as the kernel writes nests). The full decoder keeps a nest raw when not.
   */
  get exact(): boolean {
    return this.#pos === this.#end;
  }

  /** The buffer walked (for readers that hand a payload to another reader). */
  get buffer(): Buffer {
    return this.#buf;
  }

  /** The type without flag bits. */
  get type(): number {
    return this.rawType & NLA_TYPE_MASK;
  }
  /** The NLA_F_NESTED and NLA_F_NET_BYTEORDER bits of the type. */
  get flags(): number {
    return this.rawType & FLAG_BITS;
  }
  get nested(): boolean {
    return (this.rawType & NLA_F_NESTED) !== 0;
  }
  get netByteOrder(): boolean {
    return (this.rawType & NLA_F_NET_BYTEORDER) !== 0;
  }

  // Typed getters: undefined when the payload is not exactly the size of the value.

  u8(): number | undefined {
    return this.length === 1 ? this.#buf[this.offset]! : undefined;
  }
  /** Host (little-endian) byte order, as rtnetlink sends numbers unless NLA_F_NET_BYTEORDER. */
  u16(): number | undefined {
    return this.length === 2 ? rdU16(this.#buf, this.offset) : undefined;
  }
  u32(): number | undefined {
    return this.length === 4 ? rdU32(this.#buf, this.offset) : undefined;
  }
  s32(): number | undefined {
    return this.length === 4 ? rdS32(this.#buf, this.offset) : undefined;
  }
  u64(): bigint | undefined {
    return this.length === 8 ? this.#buf.readBigUInt64LE(this.offset) : undefined;
  }
  /** Big-endian u32 (addresses, NLA_F_NET_BYTEORDER values). */
  u32be(): number | undefined {
    return this.length === 4 ? this.#buf.readUInt32BE(this.offset) : undefined;
  }
  /** A u8 of 0 or 1 as a boolean; undefined for any other value or size. */
  bool8(): boolean | undefined {
    if (this.length !== 1) return undefined;
    const v = this.#buf[this.offset]!;
    return v > 1 ? undefined : v === 1;
  }
  /**
   * A NUL-terminated string; undefined unless it is exactly that (one trailing NUL, no other,
   * valid UTF-8): the codec's typed string fields hold only what re-encodes to the same bytes.
   */
  string(): string | undefined {
    return readString(this.#buf, this.offset, this.length);
  }
  /** A copy of the payload (a decoded value must not pin the receive buffer). */
  bytes(): Buffer {
    return copyBytes(this.#buf, this.offset, this.offset + this.length);
  }
  /** An IPv4 (4 bytes) or IPv6 (16 bytes) address as `ip` prints it; undefined for other sizes. */
  ip(): string | undefined {
    return formatIp(this.#buf, this.offset, this.length);
  }
  /** A hardware address as colon-hex (any length; '' for none). */
  mac(): string {
    return formatMac(this.#buf, this.offset, this.length);
  }

  /**
   * A walker over the current attribute's payload as a nest: `into` re-aimed when given (no
   * allocation), else a new one. Throws NetlinkDecodeError past the nesting bound.
   */
  nestedWalker(into: AttrWalker = new AttrWalker()): AttrWalker {
    return into.reset(this.#buf, this.offset, this.offset + this.length, this.#depth + 1);
  }
}
