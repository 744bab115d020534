/**
 * What every decoder must do with hostile bytes, checked the way the project reads them:
 * - decodeMessages (the generic path: `tunkeeper monitor`, tests, tools) succeeds or throws
 *   NetlinkDecodeError with an offset inside the input;
 * - the per-family decoders the dump client calls (message by message, after readHeader) and the
 *   ack decoders it calls for NLMSG_ERROR / NLMSG_DONE throw nothing but NetlinkDecodeError, also
 *   when handed another family's payload (a lying nlmsg_type);
 * - decodeEvents (the Monitor) never throws, and reports success whenever decodeMessages did;
 * - whatever decodes re-encodes, decodes again to the same objects (the length field aside,
 *   which padding normalisation may change), and encodes again to the same bytes.
 * A failure is a sentence; undefined means the contract held.
 */
import {
  NetlinkDecodeError,
  decodeAddressMessage,
  decodeDoneMessage,
  decodeErrorMessage,
  decodeLinkMessage,
  decodeMessages,
  decodeNeighbourMessage,
  decodeRouteMessage,
  decodeRuleMessage,
  encodeMessages,
  readHeader,
  nextMessageOffset,
  type RtnlMessage,
} from '../../../netlink/codec/index.js';
import { decodeEvents, type MonitorEvent } from '../../../netlink/monitor-events.js';

type Decoder = (buf: Buffer, start: number, end: number, flags: number) => unknown;
const FAMILY_DECODERS: Array<[string, Decoder]> = [
  ['decodeLinkMessage', (b, s, e) => decodeLinkMessage(b, s, e)],
  ['decodeAddressMessage', (b, s, e) => decodeAddressMessage(b, s, e)],
  ['decodeRouteMessage', (b, s, e) => decodeRouteMessage(b, s, e)],
  ['decodeNeighbourMessage', (b, s, e) => decodeNeighbourMessage(b, s, e)],
  ['decodeRuleMessage', (b, s, e) => decodeRuleMessage(b, s, e)],
  ['decodeErrorMessage', (b, s, e, f) => decodeErrorMessage(b, s, e, f)],
  ['decodeDoneMessage', (b, s, e, f) => decodeDoneMessage(b, s, e, f)],
];

export interface OracleResult {
  /** decodeMessages succeeded (and the round trip was checked). */
  decoded: boolean;
  failure?: string;
}

function describe(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** Deep equality of decoded values; `length` of message headers is ignored (see above). */
export function sameDecoded(a: unknown, b: unknown, inHeader = false): boolean {
  if (a === b) return true;
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && Buffer.compare(a, b) === 0;
  }
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    if (a.length !== bb.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameDecoded(a[i], bb[i])) return false;
    return true;
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const keys = new Set([...Object.keys(ao), ...Object.keys(bo)]);
  for (const k of keys) {
    if (inHeader && k === 'length') continue;
    if (!sameDecoded(ao[k], bo[k], k === 'header')) return false;
  }
  return true;
}

export function checkBytes(input: Buffer, familyRotation: number): OracleResult {
  // 1. The generic path and its round trip.
  let msgs: RtnlMessage[] | undefined;
  try {
    msgs = decodeMessages(input);
  } catch (e) {
    if (!(e instanceof NetlinkDecodeError)) return { decoded: false, failure: `decodeMessages threw ${describe(e)}` };
    if (!(e.offset >= 0 && e.offset <= input.length)) return { decoded: false, failure: `NetlinkDecodeError offset ${e.offset} is outside the ${input.length}-byte input` };
  }
  if (msgs !== undefined) {
    let encoded: Buffer;
    try {
      encoded = encodeMessages(msgs);
    } catch (e) {
      return { decoded: true, failure: `what decoded does not encode: ${describe(e)}` };
    }
    let again: RtnlMessage[];
    try {
      again = decodeMessages(encoded);
    } catch (e) {
      return { decoded: true, failure: `the re-encoded bytes do not decode: ${describe(e)}` };
    }
    if (!sameDecoded(again, msgs)) return { decoded: true, failure: 'decode → encode → decode changed the objects' };
    const encodedAgain = encodeMessages(again);
    if (Buffer.compare(encodedAgain, encoded) !== 0) return { decoded: true, failure: 'encode is not stable: encode(decode(encode(x))) differs from encode(x)' };
  }

  // 2. Message by message, as the dump client reads a datagram.
  let off = 0;
  while (off < input.length) {
    let h;
    try {
      h = readHeader(input, off, input.length);
    } catch (e) {
      if (!(e instanceof NetlinkDecodeError)) return { decoded: msgs !== undefined, failure: `readHeader threw ${describe(e)}` };
      break;
    }
    const start = off + 16;
    const end = off + h.length;
    // The decoder the type asks for, and one other (the type may be a lie). When decodeMessages
    // succeeded it has already run the matching decoder on these very bytes.
    const matching = msgs === undefined ? FAMILY_DECODERS.findIndex(([name]) => name === decoderFor(h.type)) : -1;
    const other = (familyRotation + off) % FAMILY_DECODERS.length;
    for (const i of matching >= 0 && matching !== other ? [matching, other] : [other]) {
      const [name, decode] = FAMILY_DECODERS[i]!;
      try {
        decode(input, start, end, h.flags);
      } catch (e) {
        if (!(e instanceof NetlinkDecodeError)) return { decoded: msgs !== undefined, failure: `${name} threw ${describe(e)}` };
      }
    }
    off = nextMessageOffset(off, h.length);
  }

  // 3. The Monitor's path.
  let eventsOk: boolean;
  const events: MonitorEvent[] = [];
  try {
    eventsOk = decodeEvents(input, events);
  } catch (e) {
    return { decoded: msgs !== undefined, failure: `decodeEvents threw ${describe(e)}` };
  }
  if (msgs !== undefined && !eventsOk) return { decoded: true, failure: 'decodeMessages decoded it but decodeEvents reported a failure' };
  return { decoded: msgs !== undefined };
}

function decoderFor(type: number): string | undefined {
  if (type >= 16 && type <= 19) return 'decodeLinkMessage';
  if (type >= 20 && type <= 22) return 'decodeAddressMessage';
  if (type >= 24 && type <= 26) return 'decodeRouteMessage';
  if (type >= 28 && type <= 30) return 'decodeNeighbourMessage';
  if (type >= 32 && type <= 34) return 'decodeRuleMessage';
  if (type === 2) return 'decodeErrorMessage';
  if (type === 3) return 'decodeDoneMessage';
  return undefined;
}
