/**
 * NetlinkWriter: builds netlink messages into one growing Buffer.
 *
 * The client pipelines thousands of requests (65k route adds) into a single send buffer, so the
 * writer appends message after message into one pre-sized Buffer, patches each length in place
 * when its message or nest is closed, and only grows (doubling) when an estimate was too small.
 * All multi-byte fields are written in host order (little endian), except the *BE helpers.
 * The per-attribute paths store bytes by index: Buffer's write* methods re-validate their
 * arguments on every call, which costs more than the store itself at 65k messages.
 */
import { NetlinkEncodeError } from './errors.js';
import { NLA_HDRLEN, NLMSG_HDRLEN } from '../constants/netlink.js';
import { writeIp, writeMac } from './ip.js';

/** The fields of a message header a writer needs; length is computed. */
export interface NlMsgHeaderInit {
  type: number;
  flags: number;
  seq?: number;
  /** Port id; 0 addresses the kernel (and lets it fill in ours on replies). */
  pid?: number;
}

/** Writes a message family's payload (its fixed struct and attributes) after a header. */
export type PayloadWriter<T> = (w: NetlinkWriter, body: T) => void;
/** Writes a whole message of one family: header, payload, length. */
export type MessageWriter<T> = (w: NetlinkWriter, header: NlMsgHeaderInit, body: T) => void;

/** The whole-message writer of a family, from its payload writer (writeLinkMessage = messageWriter(writeLinkPayload)). */
export function messageWriter<T>(writePayload: PayloadWriter<T>): MessageWriter<T> {
  return (w, header, body) => {
    const start = w.beginMessage(header);
    writePayload(w, body);
    w.endMessage(start);
  };
}

export class NetlinkWriter {
  /** The buffer being written; replaced by a larger one when it fills up. */
  buf: Buffer;
  /** Number of bytes written so far (the next write position). */
  pos = 0;

  /** @param initial capacity in bytes, or a Buffer to write into (e.g. reused between batches) */
  constructor(initial: number | Buffer = 4096) {
    this.buf = typeof initial === 'number' ? Buffer.alloc(Math.max(64, initial)) : initial;
  }

  /** Forgets what was written; keeps the buffer for reuse. */
  reset(): void {
    this.pos = 0;
  }

  /** A view of the bytes written so far (shares memory with the writer until it is reset). */
  view(): Buffer {
    return this.buf.subarray(0, this.pos);
  }

  /** A copy of the bytes written so far. */
  toBuffer(): Buffer {
    return Buffer.from(this.view());
  }

  /** Makes room for n more bytes. */
  reserve(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = Buffer.alloc(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** Zero bytes up to the next 4-byte boundary. */
  pad(): void {
    let p = this.pos;
    if ((p & 3) === 0) return;
    const aligned = (p + 3) & ~3;
    this.reserve(aligned - p);
    const b = this.buf;
    while (p < aligned) b[p++] = 0;
    this.pos = aligned;
  }

  // ---- messages ----

  /** Starts a message: writes its header with length 0; returns its start for endMessage. */
  beginMessage(h: NlMsgHeaderInit): number {
    this.pad();
    const start = this.pos;
    this.reserve(NLMSG_HDRLEN);
    const b = this.buf;
    const type = h.type;
    const flags = h.flags;
    if ((type & 0xffff) !== type) throw new NetlinkEncodeError('header.type', 'must be an integer 0..65535');
    if ((flags & 0xffff) !== flags) throw new NetlinkEncodeError('header.flags', 'must be an integer 0..65535');
    b.writeUInt32LE(0, start);
    b[start + 4] = type & 0xff;
    b[start + 5] = type >>> 8;
    b[start + 6] = flags & 0xff;
    b[start + 7] = flags >>> 8;
    b.writeUInt32LE((h.seq ?? 0) >>> 0, start + 8);
    b.writeUInt32LE((h.pid ?? 0) >>> 0, start + 12);
    this.pos = start + NLMSG_HDRLEN;
    return start;
  }

  /**
   * Pads the message to 4 bytes and writes its length. The length covers the padding of the
   * last attribute, as the kernel's nlmsg_end does (nla_put pads every attribute).
   */
  endMessage(start: number): void {
    this.pad();
    this.buf.writeUInt32LE(this.pos - start, start);
  }

  /**
   * Writes the message's length as its exact byte count, then pads: for opaque payloads whose
   * length is not a multiple of 4 (e.g. a 1-byte struct rtgenmsg), which nlmsg_len must not round.
   */
  endMessageExact(start: number): void {
    this.buf.writeUInt32LE(this.pos - start, start);
    this.pad();
  }

  // ---- raw fixed-size fields (no attribute header) ----

  u8(v: number): void {
    this.reserve(1);
    this.buf[this.pos++] = v;
  }
  u16(v: number): void {
    this.reserve(2);
    this.buf.writeUInt16LE(v, this.pos);
    this.pos += 2;
  }
  u32(v: number): void {
    this.reserve(4);
    this.buf.writeUInt32LE(v, this.pos);
    this.pos += 4;
  }
  s32(v: number): void {
    this.reserve(4);
    this.buf.writeInt32LE(v, this.pos);
    this.pos += 4;
  }
  zeros(n: number): void {
    this.reserve(n);
    this.buf.fill(0, this.pos, this.pos + n);
    this.pos += n;
  }
  bytes(data: Uint8Array): void {
    this.reserve(data.length);
    this.buf.set(data, this.pos);
    this.pos += data.length;
  }

  // ---- attributes ----

  /** Writes an attribute header for a payload of `payloadLen` bytes; the payload follows. */
  attrHeader(type: number, payloadLen: number): void {
    this.pad();
    this.reserve(NLA_HDRLEN + payloadLen + 3);
    const b = this.buf;
    const p = this.pos;
    const len = NLA_HDRLEN + payloadLen;
    b[p] = len & 0xff;
    b[p + 1] = len >>> 8;
    b[p + 2] = type & 0xff;
    b[p + 3] = type >>> 8;
    this.pos = p + NLA_HDRLEN;
  }

  /** Starts a nested attribute; returns its start for endNest. */
  beginNest(type: number): number {
    this.pad();
    const start = this.pos;
    this.reserve(NLA_HDRLEN);
    this.buf.writeUInt16LE(0, start);
    this.buf.writeUInt16LE(type, start + 2);
    this.pos += NLA_HDRLEN;
    return start;
  }

  /** Closes a nest: its length covers its padded contents, as the kernel's nla_nest_end does. */
  endNest(start: number): void {
    this.pad();
    const len = this.pos - start;
    if (len > 0xffff) throw new NetlinkEncodeError(`attribute ${this.buf.readUInt16LE(start + 2)}`, `nest of ${len} bytes exceeds 65535`);
    this.buf.writeUInt16LE(len, start);
  }

  attrU8(type: number, v: number): void {
    this.attrHeader(type, 1);
    this.buf[this.pos++] = v;
  }
  attrU16(type: number, v: number): void {
    this.attrHeader(type, 2);
    this.buf.writeUInt16LE(v, this.pos);
    this.pos += 2;
  }
  attrU16BE(type: number, v: number): void {
    this.attrHeader(type, 2);
    this.buf.writeUInt16BE(v, this.pos);
    this.pos += 2;
  }
  attrU32(type: number, v: number): void {
    this.attrHeader(type, 4);
    const b = this.buf;
    const p = this.pos;
    b[p] = v & 0xff;
    b[p + 1] = (v >>> 8) & 0xff;
    b[p + 2] = (v >>> 16) & 0xff;
    b[p + 3] = v >>> 24;
    this.pos = p + 4;
  }
  attrU32BE(type: number, v: number): void {
    this.attrHeader(type, 4);
    this.buf.writeUInt32BE(v, this.pos);
    this.pos += 4;
  }
  attrS32(type: number, v: number): void {
    this.attrHeader(type, 4);
    this.buf.writeInt32LE(v, this.pos);
    this.pos += 4;
  }
  attrU64BE(type: number, v: bigint): void {
    this.attrHeader(type, 8);
    this.buf.writeBigUInt64BE(v, this.pos);
    this.pos += 8;
  }
  attrFlag(type: number): void {
    this.attrHeader(type, 0);
  }
  attrBytes(type: number, data: Uint8Array): void {
    if (data.length > 0xffff - NLA_HDRLEN) throw new NetlinkEncodeError(`attribute ${type}`, `${data.length} bytes do not fit`);
    this.attrHeader(type, data.length);
    this.buf.set(data, this.pos);
    this.pos += data.length;
  }
  /** A NUL-terminated string attribute, as nla_put_string writes it. */
  attrString(type: number, s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    if (n + 1 > 0xffff - NLA_HDRLEN) throw new NetlinkEncodeError(`attribute ${type}`, `string of ${n} bytes does not fit`);
    this.attrHeader(type, n + 1);
    this.buf.write(s, this.pos, n, 'utf8');
    this.buf[this.pos + n] = 0;
    this.pos += n + 1;
  }
  /** An IPv4/IPv6 address attribute (4 or 16 bytes); false when the text is not an address. */
  attrIp(type: number, text: string): boolean {
    this.pad();
    this.reserve(NLA_HDRLEN + 16);
    const b = this.buf;
    const p = this.pos;
    const n = writeIp(text, b, p + NLA_HDRLEN);
    if (n === 0) return false;
    b[p] = NLA_HDRLEN + n;
    b[p + 1] = 0;
    b[p + 2] = type & 0xff;
    b[p + 3] = type >>> 8;
    this.pos = p + NLA_HDRLEN + n;
    return true;
  }
  /** A hardware-address attribute from colon-hex text; false when the text does not parse. */
  attrMac(type: number, text: string): boolean {
    this.pad();
    const max = (text.length + 1) >> 1;
    this.reserve(NLA_HDRLEN + max);
    const n = writeMac(text, this.buf, this.pos + NLA_HDRLEN);
    if (n < 0) return false;
    this.buf.writeUInt16LE(NLA_HDRLEN + n, this.pos);
    this.buf.writeUInt16LE(type, this.pos + 2);
    this.pos += NLA_HDRLEN + n;
    return true;
  }
}
