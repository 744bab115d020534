/**
 * Whole messages: the rtnetlink message union, decoding every message of a datagram, and
 * writing any message back. A dump reply and a multicast event carrying the same object decode
 * to the same `body`; only `header` (seq, pid, NLM_F_MULTI) tells them apart.
 */
import { NetlinkDecodeError, NetlinkEncodeError } from './errors.js';
import { copyBytes } from './bytes.js';
import { nextMessageOffset, readHeader, type NlMsgHeader } from './header.js';
import { NetlinkWriter, type NlMsgHeaderInit } from './writer.js';
import { decodeDoneMessage, decodeErrorMessage, writeDonePayload, writeErrorPayload, type DoneMessage, type ErrorMessage } from './ack.js';
import { decodeLinkMessage, writeLinkPayload, type LinkMessage, type LinkMessageInit } from './link.js';
import { decodeAddressMessage, writeAddressPayload, type AddressMessage, type AddressMessageInit } from './address.js';
import { decodeRouteMessage, writeRoutePayload, type RouteMessage, type RouteMessageInit } from './route.js';
import { decodeNeighbourMessage, writeNeighbourPayload, type NeighbourMessage, type NeighbourMessageInit } from './neighbour.js';
import { decodeRuleMessage, writeRulePayload, type RuleMessage, type RuleMessageInit } from './rule.js';
import { NLM_F_ACK_TLVS, NLM_F_CAPPED, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN } from '../constants/netlink.js';
import {
  RTM_DELADDR,
  RTM_DELLINK,
  RTM_DELNEIGH,
  RTM_DELROUTE,
  RTM_DELRULE,
  RTM_GETADDR,
  RTM_GETLINK,
  RTM_GETNEIGH,
  RTM_GETROUTE,
  RTM_GETRULE,
  RTM_NEWADDR,
  RTM_NEWLINK,
  RTM_NEWNEIGH,
  RTM_NEWROUTE,
  RTM_NEWRULE,
  RTM_SETLINK,
} from '../constants/rtnetlink.js';

export type MessageKind = 'link' | 'address' | 'route' | 'neighbour' | 'rule' | 'error' | 'done' | 'other';

export interface LinkEnvelope {
  kind: 'link';
  header: NlMsgHeader;
  body: LinkMessage;
}
export interface AddressEnvelope {
  kind: 'address';
  header: NlMsgHeader;
  body: AddressMessage;
}
export interface RouteEnvelope {
  kind: 'route';
  header: NlMsgHeader;
  body: RouteMessage;
}
export interface NeighbourEnvelope {
  kind: 'neighbour';
  header: NlMsgHeader;
  body: NeighbourMessage;
}
export interface RuleEnvelope {
  kind: 'rule';
  header: NlMsgHeader;
  body: RuleMessage;
}
export interface ErrorEnvelope {
  kind: 'error';
  header: NlMsgHeader;
  body: ErrorMessage;
}
export interface DoneEnvelope {
  kind: 'done';
  header: NlMsgHeader;
  body: DoneMessage;
}
/** NLMSG_NOOP, NLMSG_OVERRUN and message types this codec does not know: payload kept raw. */
export interface OtherEnvelope {
  kind: 'other';
  header: NlMsgHeader;
  body: Uint8Array;
}

/** A decoded netlink message: its header and its typed body, discriminated by `kind`. */
export type RtnlMessage =
  | LinkEnvelope
  | AddressEnvelope
  | RouteEnvelope
  | NeighbourEnvelope
  | RuleEnvelope
  | ErrorEnvelope
  | DoneEnvelope
  | OtherEnvelope;

/** The body type of each message kind. */
export interface MessageBodies {
  link: LinkMessage;
  address: AddressMessage;
  route: RouteMessage;
  neighbour: NeighbourMessage;
  rule: RuleMessage;
  error: ErrorMessage;
  done: DoneMessage;
  other: Uint8Array;
}

/** What writeMessage accepts: header without length, bodies with optional fixed fields. */
export type RtnlMessageInit =
  | { kind: 'link'; header: NlMsgHeaderInit; body: LinkMessageInit }
  | { kind: 'address'; header: NlMsgHeaderInit; body: AddressMessageInit }
  | { kind: 'route'; header: NlMsgHeaderInit; body: RouteMessageInit }
  | { kind: 'neighbour'; header: NlMsgHeaderInit; body: NeighbourMessageInit }
  | { kind: 'rule'; header: NlMsgHeaderInit; body: RuleMessageInit }
  | { kind: 'error'; header: NlMsgHeaderInit; body: ErrorMessage }
  | { kind: 'done'; header: NlMsgHeaderInit; body: DoneMessage }
  | { kind: 'other'; header: NlMsgHeaderInit; body: Uint8Array };

/** The body kind of an nlmsg_type: RTM_{NEW,DEL,GET,SET}LINK → 'link', etc. */
export function messageKind(type: number): MessageKind {
  switch (type) {
    case RTM_NEWROUTE:
    case RTM_DELROUTE:
    case RTM_GETROUTE:
      return 'route';
    case RTM_NEWLINK:
    case RTM_DELLINK:
    case RTM_GETLINK:
    case RTM_SETLINK:
      return 'link';
    case RTM_NEWADDR:
    case RTM_DELADDR:
    case RTM_GETADDR:
      return 'address';
    case RTM_NEWNEIGH:
    case RTM_DELNEIGH:
    case RTM_GETNEIGH:
      return 'neighbour';
    case RTM_NEWRULE:
    case RTM_DELRULE:
    case RTM_GETRULE:
      return 'rule';
    case NLMSG_ERROR:
      return 'error';
    case NLMSG_DONE:
      return 'done';
    default:
      return 'other';
  }
}

/**
 * Decodes the message whose header is h at off (payload buf[off + 16, off + h.length)).
 * Use decodeMessages for a whole datagram.
 */
export function decodeMessageBody(buf: Buffer, off: number, h: NlMsgHeader): RtnlMessage {
  const start = off + NLMSG_HDRLEN;
  const end = off + h.length;
  switch (messageKind(h.type)) {
    case 'route':
      return { kind: 'route', header: h, body: decodeRouteMessage(buf, start, end) };
    case 'link':
      return { kind: 'link', header: h, body: decodeLinkMessage(buf, start, end) };
    case 'address':
      return { kind: 'address', header: h, body: decodeAddressMessage(buf, start, end) };
    case 'neighbour':
      return { kind: 'neighbour', header: h, body: decodeNeighbourMessage(buf, start, end) };
    case 'rule':
      return { kind: 'rule', header: h, body: decodeRuleMessage(buf, start, end) };
    case 'error':
      return { kind: 'error', header: h, body: decodeErrorMessage(buf, start, end, h.flags) };
    case 'done':
      return { kind: 'done', header: h, body: decodeDoneMessage(buf, start, end, h.flags) };
    default:
      return { kind: 'other', header: h, body: copyBytes(buf, start, end) };
  }
}

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Decodes every message of a datagram (or of any buffer of back-to-back messages). Offsets in
 * errors are relative to the start of `data`. Throws only NetlinkDecodeError.
 */
export function decodeMessages(data: Uint8Array, start = 0, end: number = data.length): RtnlMessage[] {
  if (!(data instanceof Uint8Array)) throw new NetlinkDecodeError('input is not a Uint8Array', 0);
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > data.length || start > end) {
    throw new NetlinkDecodeError(`range [${start}, ${end}) is outside the ${data.length}-byte buffer`, 0);
  }
  const buf = asBuffer(data);
  const out: RtnlMessage[] = [];
  let off = start;
  while (off < end) {
    const h = readHeader(buf, off, end);
    out.push(decodeMessageBody(buf, off, h));
    off = nextMessageOffset(off, h.length);
  }
  return out;
}

/** Appends one message of any kind to the writer. */
export function writeMessage(w: NetlinkWriter, msg: RtnlMessageInit): void {
  let header = msg.header;
  if (msg.kind === 'error' || msg.kind === 'done') {
    // The flags must describe the payload, or the message would not decode back to itself.
    const body = msg.body as ErrorMessage & DoneMessage;
    let flags = header.flags;
    if (msg.kind === 'error' && body.requestPayload === undefined) flags |= NLM_F_CAPPED;
    if (body.extAck !== undefined) flags |= NLM_F_ACK_TLVS;
    if (flags !== header.flags) header = { ...header, flags };
  }
  const start = w.beginMessage(header);
  switch (msg.kind) {
    case 'link':
      writeLinkPayload(w, msg.body);
      break;
    case 'address':
      writeAddressPayload(w, msg.body);
      break;
    case 'route':
      writeRoutePayload(w, msg.body);
      break;
    case 'neighbour':
      writeNeighbourPayload(w, msg.body);
      break;
    case 'rule':
      writeRulePayload(w, msg.body);
      break;
    case 'error':
      writeErrorPayload(w, msg.body);
      break;
    case 'done':
      writeDonePayload(w, msg.body);
      break;
    case 'other':
      if (!(msg.body instanceof Uint8Array)) throw new NetlinkEncodeError('other.body', 'must be a Uint8Array');
      w.bytes(msg.body);
      w.endMessageExact(start);
      return;
    default:
      throw new NetlinkEncodeError('kind', `unknown message kind ${JSON.stringify((msg as { kind: unknown }).kind)}`);
  }
  w.endMessage(start);
}

/** Encodes messages back to back into a new Buffer. */
export function encodeMessages(msgs: readonly RtnlMessageInit[]): Buffer {
  const w = new NetlinkWriter(256 * Math.max(1, msgs.length));
  for (const m of msgs) writeMessage(w, m);
  return w.toBuffer();
}

/** Encodes one message into a new Buffer. */
export function encodeMessage(msg: RtnlMessageInit): Buffer {
  return encodeMessages([msg]);
}
