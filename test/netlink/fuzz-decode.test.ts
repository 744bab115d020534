/**
 * Hostile input: real kernel datagrams mutated at random (bit flips, truncation, length fields
 * overwritten with zero, tiny, huge or off-by-one values, bytes inserted or removed so that
 * everything after is misaligned), random bytes, deep nesting and huge attribute counts.
 * The decoder may only ever succeed or throw NetlinkDecodeError — no other exception, no hang —
 * and whatever it decodes must re-encode and decode to the same objects.
 * FUZZ_RUNS keeps CI to a few seconds; raise it (or set TUNKEEPER_FUZZ_RUNS) to search harder.
 */
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { MAX_NEST_DEPTH, NetlinkDecodeError, decodeAttrTree, decodeMessages, encodeMessages, type RtnlMessage } from '../../netlink/codec/index.js';
import * as C from '../../netlink/constants/index.js';
import { canonicalJson, fixtureNames, hexBuffers, loadFixture } from '../fixtures/netlink/fixtures.js';

const FUZZ_RUNS = Number(process.env.TUNKEEPER_FUZZ_RUNS ?? 100);

const corpus: Buffer[] = fixtureNames().flatMap((n) => {
  const fx = loadFixture(n);
  return [...hexBuffers(fx.datagrams), ...hexBuffers(fx.dumps), ...hexBuffers(fx.requests)];
});

/**
 * Messages as JSON text (bytes as hex) without their length field, which padding normalisation
 * may change. Text, because jest's deep equality walks a 64 KiB Buffer element by element.
 */
const comparable = (msgs: RtnlMessage[]): string => canonicalJson(msgs.map((m) => ({ ...m, header: { ...m.header, length: 0 } })));

/**
 * The contract: decode succeeds or throws NetlinkDecodeError with an offset inside the input;
 * a success re-encodes without error and decodes again to the same objects.
 */
function checkDecode(input: Buffer): void {
  let msgs: RtnlMessage[];
  try {
    msgs = decodeMessages(input);
  } catch (e) {
    if (!(e instanceof NetlinkDecodeError)) throw e;
    expect(e.offset).toBeGreaterThanOrEqual(0);
    expect(e.offset).toBeLessThanOrEqual(input.length);
    return;
  }
  const again = decodeMessages(encodeMessages(msgs));
  expect(comparable(again)).toBe(comparable(msgs));
}

type Mutation =
  | { op: 'flip'; pos: number; bit: number }
  | { op: 'truncate'; at: number }
  | { op: 'u16'; pos: number; value: number }
  | { op: 'u32'; pos: number; value: number }
  | { op: 'insert'; pos: number; bytes: Uint8Array }
  | { op: 'delete'; pos: number; count: number };

const interesting16 = fc.oneof(fc.constantFrom(0, 1, 3, 4, 5, 8, 0x7fff, 0x8000, 0xfffc, 0xffff), fc.integer({ min: 0, max: 0xffff }));
const interesting32 = fc.oneof(fc.constantFrom(0, 1, 15, 16, 17, 20, 0x7fffffff, 0xffffffff), fc.integer({ min: 0, max: 0xffffffff }));
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), pos: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  // Attribute and message length/type fields sit on 2- and 4-byte boundaries: hit those.
  fc.record({ op: fc.constant('u16' as const), pos: fc.nat().map((n) => n & ~1), value: interesting16 }),
  fc.record({ op: fc.constant('u32' as const), pos: fc.nat().map((n) => n & ~3), value: interesting32 }),
  fc.record({ op: fc.constant('insert' as const), pos: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 3 }) }),
  fc.record({ op: fc.constant('delete' as const), pos: fc.nat(), count: fc.integer({ min: 1, max: 3 }) }),
);

function apply(input: Buffer, muts: Mutation[]): Buffer {
  let b = Buffer.from(input);
  for (const m of muts) {
    if (b.length === 0) break;
    switch (m.op) {
      case 'flip':
        b[m.pos % b.length]! ^= 1 << m.bit;
        break;
      case 'truncate':
        b = b.subarray(0, m.at % b.length);
        break;
      case 'u16':
        if (b.length >= 2) b.writeUInt16LE(m.value, m.pos % (b.length - 1));
        break;
      case 'u32':
        if (b.length >= 4) b.writeUInt32LE(m.value, m.pos % (b.length - 3));
        break;
      case 'insert': {
        const at = m.pos % b.length;
        b = Buffer.concat([b.subarray(0, at), Buffer.from(m.bytes), b.subarray(at)]);
        break;
      }
      case 'delete': {
        const at = m.pos % b.length;
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.count)]);
        break;
      }
    }
  }
  return b;
}

describe('decoding hostile input (property)', () => {
  it('the unmutated corpus decodes', () => {
    expect(corpus.length).toBeGreaterThan(30);
    for (const d of corpus) checkDecode(d);
  });

  it('mutated kernel datagrams', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: corpus.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), (i, muts) => {
        checkDecode(apply(corpus[i]!, muts));
      }),
      { numRuns: FUZZ_RUNS * 20 },
    );
  });

  it('random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (b) => checkDecode(Buffer.from(b))),
      { numRuns: FUZZ_RUNS * 5 },
    );
  });

  it('a valid header of every known type over random payload', () => {
    const types = [16, 17, 18, 19, 20, 21, 22, 24, 25, 26, 28, 29, 30, 32, 33, 34, 1, 2, 3, 4, 99];
    fc.assert(
      fc.property(fc.constantFrom(...types), fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ maxLength: 200 }), (type, flags, payload) => {
        const h = Buffer.alloc(16);
        h.writeUInt32LE(16 + payload.length, 0);
        h.writeUInt16LE(type, 4);
        h.writeUInt16LE(flags, 6);
        checkDecode(Buffer.concat([h, Buffer.from(payload)]));
      }),
      { numRuns: FUZZ_RUNS * 10 },
    );
  });
});

// ---- structured extremes -----------------------------------------------------------------------

function attr(type: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt16LE(4 + payload.length, 0);
  h.writeUInt16LE(type, 2);
  return Buffer.concat([h, payload, Buffer.alloc((4 - ((4 + payload.length) % 4)) % 4)]);
}
function message(type: number, fixed: number, attrs: Buffer): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(16 + fixed + attrs.length, 0);
  h.writeUInt16LE(type, 4);
  return Buffer.concat([h, Buffer.alloc(fixed), attrs]);
}
/** `depth` nests of `type` around one u32 attribute, written in place (no copying per level). */
function nested(depth: number, type: number): Buffer {
  const total = 4 * depth + 8;
  const b = Buffer.alloc(total);
  for (let i = 0; i < depth; i++) {
    b.writeUInt16LE(total - 4 * i, 4 * i);
    b.writeUInt16LE(C.NLA_F_NESTED | type, 4 * i + 2);
  }
  b.writeUInt16LE(8, 4 * depth);
  b.writeUInt16LE(1, 4 * depth + 2);
  b.writeUInt32LE(0x04030201, 4 * depth + 4);
  return b;
}

describe('structural extremes', () => {
  it('deep nesting: messages stay decodable, attribute trees stop at the bound', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 16000 }), fc.constantFrom(C.IFLA_LINKINFO, C.IFLA_AF_SPEC, C.IFLA_PROP_LIST, 3000), (depth, type) => {
        const a = nested(depth, type);
        checkDecode(message(C.RTM_NEWLINK, C.IFINFOMSG_LEN, a));
        if (depth > MAX_NEST_DEPTH) expect(() => decodeAttrTree(a)).toThrow(NetlinkDecodeError);
        else expect(decodeAttrTree(a)).toHaveLength(1);
      }),
      { numRuns: Math.ceil(FUZZ_RUNS / 2) },
    );
  });

  it('huge counts: the most attributes and next hops that fit in a message', () => {
    // 16383 empty attributes of one known type: the first typed, the rest kept raw.
    const many = Buffer.concat(Array.from({ length: 16000 }, () => attr(C.RTA_PRIORITY, Buffer.alloc(0))));
    const msgs = decodeMessages(message(C.RTM_NEWROUTE, C.RTMSG_LEN, many));
    expect(msgs[0]!.kind === 'route' && msgs[0]!.body.rawAttrs?.length).toBe(16000);
    // 8000 bare next hops (rtnh_len 8, no attributes).
    const nh = Buffer.alloc(8 * 8000);
    for (let i = 0; i < 8000; i++) nh.writeUInt16LE(8, 8 * i);
    const mp = decodeMessages(message(C.RTM_NEWROUTE, C.RTMSG_LEN, attr(C.RTA_MULTIPATH, nh)));
    expect(mp[0]!.kind === 'route' && mp[0]!.body.multipath?.length).toBe(8000);
    // A zero rtnh_len must not loop: the nest stays raw.
    const zero = decodeMessages(message(C.RTM_NEWROUTE, C.RTMSG_LEN, attr(C.RTA_MULTIPATH, Buffer.alloc(16))));
    expect(zero[0]!.kind === 'route' && zero[0]!.body.rawAttrs?.length).toBe(1);
  });

  it('zero and short lengths are errors, not loops', () => {
    const zeroMsg = Buffer.alloc(32);
    expect(() => decodeMessages(zeroMsg)).toThrow(/shorter than its header/);
    const zeroAttr = message(C.RTM_NEWLINK, C.IFINFOMSG_LEN, Buffer.alloc(8));
    expect(() => decodeMessages(zeroAttr)).toThrow(/shorter than its header/);
    expect(() => decodeMessages(Buffer.alloc(7))).toThrow(NetlinkDecodeError);
    expect(decodeMessages(Buffer.alloc(0))).toEqual([]);
  });

  it('only Uint8Array input, and ranges inside it', () => {
    expect(() => decodeMessages('abc' as unknown as Uint8Array)).toThrow(NetlinkDecodeError);
    expect(() => decodeMessages(Buffer.alloc(16), 8, 32)).toThrow(NetlinkDecodeError);
    const plain = new Uint8Array(message(C.RTM_NEWLINK, C.IFINFOMSG_LEN, attr(C.IFLA_MTU, Buffer.from([0xdc, 5, 0, 0]))));
    const [m] = decodeMessages(plain);
    expect(m!.kind === 'link' && m!.body.mtu).toBe(1500);
  });
});
