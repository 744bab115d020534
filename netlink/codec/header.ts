/** struct nlmsghdr: reading, validating and walking the messages of one datagram. */
import { NetlinkDecodeError } from './errors.js';
import { rdU16, rdU32 } from './bytes.js';
import { NLMSG_HDRLEN } from '../constants/netlink.js';

/** A decoded message header. `length` covers header and payload, without trailing padding. */
export interface NlMsgHeader {
  length: number;
  type: number;
  flags: number;
  seq: number;
  pid: number;
}

/** Reads the header at off without checking its length field (the caller checked 16 bytes exist). */
export function readHeaderFields(buf: Buffer, off: number): NlMsgHeader {
  return {
    length: rdU32(buf, off),
    type: rdU16(buf, off + 4),
    flags: rdU16(buf, off + 6),
    seq: rdU32(buf, off + 8),
    pid: rdU32(buf, off + 12),
  };
}

/**
 * Reads and validates the header of the message at off in a datagram that ends at end: the
 * header must fit, and its length must cover the header and stay inside the datagram.
 */
export function readHeader(buf: Buffer, off: number, end: number = buf.length): NlMsgHeader {
  if (end - off < NLMSG_HDRLEN) {
    throw new NetlinkDecodeError(`${end - off} bytes left, too few for a message header (16)`, off);
  }
  const h = readHeaderFields(buf, off);
  if (h.length < NLMSG_HDRLEN) throw new NetlinkDecodeError(`message length ${h.length} is shorter than its header`, off);
  if (h.length > end - off) {
    throw new NetlinkDecodeError(`message length ${h.length} runs past the end of the datagram (${end - off} bytes left)`, off);
  }
  return h;
}

/** Offset of the message after the one at off of the given length (messages are 4-aligned). */
export function nextMessageOffset(off: number, length: number): number {
  return off + ((length + 3) & ~3);
}

/** What forEachMessage hands its visitor: one message's offset and header fields. */
export type MessageVisitor = (off: number, length: number, type: number, flags: number, seq: number) => void;

/**
 * Visits the messages of a datagram in order, without an object per message (watch sockets that
 * only look at types and a few bytes). Returns false when the framing is damaged: the messages
 * before the damage were visited, none after.
 */
export function forEachMessage(buf: Buffer, visit: MessageVisitor): boolean {
  const end = buf.length;
  let off = 0;
  while (end - off >= NLMSG_HDRLEN) {
    const length = rdU32(buf, off);
    if (length < NLMSG_HDRLEN || length > end - off) return false;
    visit(off, length, rdU16(buf, off + 4), rdU16(buf, off + 6), rdU32(buf, off + 8));
    off = nextMessageOffset(off, length);
  }
  return true;
}
