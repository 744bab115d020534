/**
 * NLMSG_ERROR (errors and acks) and NLMSG_DONE (end of a dump), with extended-ack TLVs.
 *
 * Wire layout of NLMSG_ERROR: s32 error (0 for an ack, else a negative errno), the header of the
 * request it answers, the request's payload unless NLM_F_CAPPED is set, then — when
 * NLM_F_ACK_TLVS is set — NLMSGERR_ATTR_* attributes. NLMSG_DONE carries an s32 status of the
 * dump (0 or a negative errno) and the same optional TLVs.
 */
import { NetlinkDecodeError, NetlinkEncodeError } from './errors.js';
import { attrSpec, decodeAttrs, encodeAttrs, fBytes, fString, fU32, type AttrLayout } from './attributes.js';
import { copyBytes, rdS32 } from './bytes.js';
import { readHeaderFields, type NlMsgHeader } from './header.js';
import type { NetlinkWriter } from './writer.js';
import {
  NLA_F_NESTED,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLMSG_HDRLEN,
  NLMSGERR_ATTR_COOKIE,
  NLMSGERR_ATTR_MISS_NEST,
  NLMSGERR_ATTR_MISS_TYPE,
  NLMSGERR_ATTR_MSG,
  NLMSGERR_ATTR_OFFS,
  NLMSGERR_ATTR_POLICY,
} from '../constants/netlink.js';

/** Extended ack (NETLINK_EXT_ACK): why the kernel refused a request, and where. */
export interface ExtendedAck extends AttrLayout {
  /** NLMSGERR_ATTR_MSG: the kernel's explanation, e.g. "Nexthop device is not up". */
  message?: string;
  /** NLMSGERR_ATTR_OFFS: byte offset of the offending attribute from the start of the request. */
  offset?: number;
  /** NLMSGERR_ATTR_COOKIE */
  cookie?: Uint8Array;
  /** NLMSGERR_ATTR_POLICY: the policy the attribute violated, kept raw (nested attributes). */
  policy?: Uint8Array;
  /** NLMSGERR_ATTR_MISS_TYPE: type of a required attribute that was missing. */
  missingType?: number;
  /** NLMSGERR_ATTR_MISS_NEST: offset of the nest that lacks it. */
  missingNest?: number;
}

export const EXT_ACK_ATTRS = attrSpec('extAck', [
  fString(NLMSGERR_ATTR_MSG, 'message'),
  fU32(NLMSGERR_ATTR_OFFS, 'offset'),
  fU32(NLMSGERR_ATTR_MISS_TYPE, 'missingType'),
  fU32(NLMSGERR_ATTR_MISS_NEST, 'missingNest'),
  fBytes(NLMSGERR_ATTR_COOKIE, 'cookie'),
  fBytes(NLMSGERR_ATTR_POLICY, 'policy', NLA_F_NESTED),
]);

/** NLMSG_ERROR. An ack is an error message with errno 0. */
export interface ErrorMessage {
  /** Positive errno (e.g. 17 for EEXIST); 0 when this is an ack. */
  errno: number;
  /** The header of the request this answers (its seq identifies it). */
  request: NlMsgHeader;
  /** The request's payload, echoed unless the reply is capped (NLM_F_CAPPED). */
  requestPayload?: Uint8Array;
  extAck?: ExtendedAck;
}

/** NLMSG_DONE. */
export interface DoneMessage {
  /** Positive errno the dump ended with (0: complete); absent when the payload is empty. */
  errno?: number;
  extAck?: ExtendedAck;
}

function decodeExtAck(buf: Buffer, start: number, end: number): ExtendedAck {
  const ack: ExtendedAck = {};
  decodeAttrs(buf, start, end, EXT_ACK_ATTRS, ack as Record<string, unknown>, 1);
  return ack;
}

/** Decodes the payload buf[start, end) of an NLMSG_ERROR whose header carried `flags`. */
export function decodeErrorMessage(buf: Buffer, start: number, end: number, flags: number): ErrorMessage {
  if (end - start < 4 + NLMSG_HDRLEN) {
    throw new NetlinkDecodeError(`error message payload of ${end - start} bytes, shorter than struct nlmsgerr (20)`, start);
  }
  const error = rdS32(buf, start);
  const request = readHeaderFields(buf, start + 4);
  const msg: ErrorMessage = { errno: error === 0 ? 0 : -error, request };
  let pos = start + 4 + NLMSG_HDRLEN;
  if ((flags & NLM_F_CAPPED) === 0) {
    const payloadLen = request.length - NLMSG_HDRLEN;
    if (payloadLen < 0) throw new NetlinkDecodeError(`echoed request length ${request.length} is shorter than its header`, start + 4);
    if (payloadLen > end - pos) {
      throw new NetlinkDecodeError(`echoed request of ${request.length} bytes runs past the end of the error message`, start + 4);
    }
    msg.requestPayload = copyBytes(buf, pos, pos + payloadLen);
    pos = Math.min(end, pos + ((payloadLen + 3) & ~3));
  }
  if ((flags & NLM_F_ACK_TLVS) !== 0) {
    msg.extAck = decodeExtAck(buf, pos, end);
  } else if (pos < end) {
    throw new NetlinkDecodeError(`${end - pos} unexpected bytes after the error message (no NLM_F_ACK_TLVS)`, pos);
  }
  return msg;
}

/** Decodes the payload buf[start, end) of an NLMSG_DONE whose header carried `flags`. */
export function decodeDoneMessage(buf: Buffer, start: number, end: number, flags: number): DoneMessage {
  const msg: DoneMessage = {};
  if (start === end) return msg;
  if (end - start < 4) throw new NetlinkDecodeError(`done message payload of ${end - start} bytes (expected 0 or at least 4)`, start);
  const status = rdS32(buf, start);
  msg.errno = status === 0 ? 0 : -status;
  if ((flags & NLM_F_ACK_TLVS) !== 0) {
    msg.extAck = decodeExtAck(buf, start + 4, end);
  } else if (end - start > 4) {
    throw new NetlinkDecodeError(`${end - start - 4} unexpected bytes after the done status (no NLM_F_ACK_TLVS)`, start + 4);
  }
  return msg;
}

function errnoToWire(errno: number, field: string): number {
  // The wire holds -errno as an s32, so errno ranges over -(2^31 - 1) .. 2^31.
  if (typeof errno !== 'number' || !Number.isInteger(errno) || errno < -0x7fffffff || errno > 0x80000000) {
    throw new NetlinkEncodeError(field, 'must be an integer -(2^31-1)..2^31');
  }
  return errno === 0 ? 0 : -errno | 0;
}

/** Writes the payload of an NLMSG_ERROR (inside a message the caller began). */
export function writeErrorPayload(w: NetlinkWriter, msg: ErrorMessage): void {
  w.s32(errnoToWire(msg.errno, 'error.errno'));
  const r = msg.request;
  w.u32(r.length >>> 0);
  w.u16(r.type & 0xffff);
  w.u16(r.flags & 0xffff);
  w.u32(r.seq >>> 0);
  w.u32(r.pid >>> 0);
  if (msg.requestPayload !== undefined) {
    w.bytes(msg.requestPayload);
    w.pad();
  }
  if (msg.extAck !== undefined) encodeAttrs(w, EXT_ACK_ATTRS, msg.extAck as Record<string, unknown>, 1);
}

/** Writes the payload of an NLMSG_DONE. */
export function writeDonePayload(w: NetlinkWriter, msg: DoneMessage): void {
  if (msg.errno === undefined) {
    if (msg.extAck !== undefined) throw new NetlinkEncodeError('done.errno', 'required when extAck is present');
    return;
  }
  w.s32(errnoToWire(msg.errno, 'done.errno'));
  if (msg.extAck !== undefined) encodeAttrs(w, EXT_ACK_ATTRS, msg.extAck as Record<string, unknown>, 1);
}
