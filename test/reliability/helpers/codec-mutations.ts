/**
 * Hostile netlink input made from real kernel bytes: the golden fixtures (test/fixtures/netlink/,
 * captured from a kernel by capture.py) split into datagrams and single messages, then mutated.
 * Each case is a pure function of (seed, index) so that a failure replays exactly.
 *
 * The mutations aim at what a decoder trusts: bits anywhere; truncation; message and attribute
 * length fields that lie (found by walking the real structure, so the lies land on real length
 * fields, not on random bytes); attribute types changed or their nested/byte-order flags
 * toggled; nesting bombs (thousands of levels) and width bombs (thousands of attributes) put
 * in place of a real attribute; duplicated attributes; message types swapped so one family's
 * payload is read by another's decoder; header flags that change how acks are parsed; bytes
 * inserted and removed so everything after is misaligned; splices of two fixtures at random
 * points and at attribute boundaries.
 */
import { NLA_F_NESTED, NLA_F_NET_BYTEORDER } from '../../../netlink/constants/netlink.js';
import { fixtureNames, hexBuffers, loadFixture } from '../../fixtures/netlink/fixtures.js';
import { Prng } from './prng.js';

const NLMSG_HDRLEN = 16;
const align4 = (n: number): number => (n + 3) & ~3;

/** Fixed header after nlmsghdr, by nlmsg_type (where attributes start). */
const FIXED_LEN: Record<number, number> = {
  2: 4 + NLMSG_HDRLEN, // NLMSG_ERROR: the error and the echoed header, then (maybe) the request and TLVs
  3: 4, // NLMSG_DONE
  16: 16, 17: 16, 18: 16, 19: 16, // links: ifinfomsg
  20: 8, 21: 8, 22: 8, // addresses: ifaddrmsg
  24: 12, 25: 12, 26: 12, // routes: rtmsg
  28: 12, 29: 12, 30: 12, // neighbours: ndmsg
  32: 12, 33: 12, 34: 12, // rules: fib_rule_hdr
};
const MESSAGE_TYPES = [1, 2, 3, 4, 16, 17, 18, 19, 20, 21, 22, 24, 25, 26, 28, 29, 30, 32, 33, 34, 36, 104, 0xffff];
/** Attribute types that are nests somewhere (IFLA_LINKINFO, IFLA_AF_SPEC, RTA_MULTIPATH, RTA_METRICS, IFLA_INFO_DATA ...). */
const NEST_TYPES = [2, 8, 9, 18, 26, 52, 1, 3, 4, 0x3fff];

export interface Corpus {
  /** Whole datagrams as the kernel sent them (dumps carry many messages). */
  datagrams: Buffer[];
  /** Each message of every datagram, alone. */
  messages: Buffer[];
}

export function loadCorpus(): Corpus {
  const datagrams = fixtureNames().flatMap((n) => {
    const fx = loadFixture(n);
    return [...hexBuffers(fx.datagrams), ...hexBuffers(fx.dumps), ...hexBuffers(fx.requests)];
  });
  const messages: Buffer[] = [];
  for (const d of datagrams) for (const m of messageSpans(d)) messages.push(Buffer.from(d.subarray(m.off, m.off + m.len)));
  return { datagrams, messages };
}

interface Span {
  off: number;
  len: number;
}

/** Messages of a buffer, walked leniently (mutated lengths end the walk, they do not throw). */
function messageSpans(b: Buffer): Array<Span & { type: number }> {
  const out: Array<Span & { type: number }> = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= b.length) {
    const len = b.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > b.length) break;
    out.push({ off, len, type: b.readUInt16LE(off + 4) });
    off += align4(len);
  }
  return out;
}

interface AttrAt {
  /** Offset of the attribute header. */
  off: number;
  len: number;
  /** The message (top-level attributes only: their lengths are fixed up after a bomb). */
  msg?: Span;
}

/** Every attribute header of every message, descending into payloads that parse as attribute lists. */
function attributeHeaders(b: Buffer): AttrAt[] {
  const out: AttrAt[] = [];
  const walk = (start: number, end: number, depth: number, msg: Span | undefined): void => {
    let off = start;
    while (off + 4 <= end) {
      const len = b.readUInt16LE(off);
      if (len < 4 || off + len > end) return;
      out.push(msg ? { off, len, msg } : { off, len });
      if (depth < 6 && len > 8 && looksLikeAttrList(b, off + 4, off + len)) walk(off + 4, off + len, depth + 1, undefined);
      off += align4(len);
    }
  };
  for (const m of messageSpans(b)) {
    const fixed = FIXED_LEN[m.type];
    if (fixed === undefined) continue;
    let start = m.off + NLMSG_HDRLEN + fixed;
    // NLMSG_ERROR echoes the request (unless capped) before its TLVs.
    if (m.type === 2 && start <= m.off + m.len && (b.readUInt16LE(m.off + 6) & 0x100) === 0) {
      const echoed = b.readUInt32LE(m.off + NLMSG_HDRLEN + 4) - NLMSG_HDRLEN;
      if (echoed < 0 || echoed > m.len) continue;
      start += align4(echoed);
    }
    if (start < m.off + m.len) walk(start, m.off + m.len, 0, m);
  }
  return out;
}

function looksLikeAttrList(b: Buffer, start: number, end: number): boolean {
  let off = start;
  while (off + 4 <= end) {
    const len = b.readUInt16LE(off);
    if (len < 4 || off + len > end) return false;
    off += align4(len);
  }
  return off >= end;
}

function interesting16(rng: Prng, actual: number, room: number): number {
  return rng.pick([0, 1, 2, 3, 4, 5, 7, 8, actual - 1, actual + 1, actual - 4, actual + 4, room, room + 1, room + 4, 0x7fff, 0x8000, 0xfffc, 0xffff, rng.below(0x10000)]) & 0xffff;
}

function interesting32(rng: Prng, actual: number, room: number): number {
  return rng.pick([0, 1, 15, 16, 17, 19, 20, actual - 1, actual + 1, actual - 4, actual + 4, room, room + 4, 0x7fffffff, 0x80000000, 0xffffffff, rng.u32()]) >>> 0;
}

/** `depth` nests of `type` around one u32 attribute: the payload of a nesting bomb. */
function nest(depth: number, type: number): Buffer {
  const total = 4 * depth + 8;
  const b = Buffer.alloc(total);
  for (let i = 0; i < depth; i++) {
    b.writeUInt16LE(total - 4 * i, 4 * i);
    b.writeUInt16LE(NLA_F_NESTED | type, 4 * i + 2);
  }
  b.writeUInt16LE(8, 4 * depth);
  b.writeUInt16LE(1, 4 * depth + 2);
  b.writeUInt32LE(0x04030201, 4 * depth + 4);
  return b;
}

/** Replaces bytes [at, at + oldLen) with `insert`, keeping the lengths of the message and the attribute at `a` true. */
function replaceAttrPayload(b: Buffer, a: AttrAt, insert: Buffer): Buffer {
  const payloadStart = a.off + 4;
  const oldEnd = a.off + align4(a.len);
  const out = Buffer.concat([b.subarray(0, payloadStart), insert, Buffer.alloc(align4(insert.length) - insert.length), b.subarray(oldEnd)]);
  out.writeUInt16LE(Math.min(0xffff, 4 + insert.length), a.off);
  if (a.msg) out.writeUInt32LE(a.msg.len - (oldEnd - a.off) + align4(4 + insert.length), a.msg.off);
  return out;
}

type Mutator = (b: Buffer, rng: Prng, corpus: Corpus) => [Buffer, string];

const MUTATORS: Record<string, Mutator> = {
  flip(b, rng) {
    const n = rng.range(1, 8);
    const out = Buffer.from(b);
    const at: number[] = [];
    for (let i = 0; i < n && out.length > 0; i++) {
      const pos = rng.below(out.length);
      out[pos]! ^= 1 << rng.below(8);
      at.push(pos);
    }
    return [out, `flip@${at.join(',')}`];
  },
  truncate(b, rng) {
    const at = rng.chance(0.5) ? rng.below(b.length) & ~3 : rng.below(b.length);
    return [b.subarray(0, at), `truncate@${at}`];
  },
  messageLength(b, rng) {
    const msgs = messageSpans(b);
    if (msgs.length === 0) return [b, 'messageLength:none'];
    const m = rng.pick(msgs);
    const out = Buffer.from(b);
    const v = interesting32(rng, m.len, b.length - m.off);
    out.writeUInt32LE(v, m.off);
    return [out, `nlmsg_len@${m.off}=${v}`];
  },
  attrLength(b, rng) {
    const attrs = attributeHeaders(b);
    if (attrs.length === 0) return [b, 'attrLength:none'];
    const a = rng.pick(attrs);
    const out = Buffer.from(b);
    const v = interesting16(rng, a.len, b.length - a.off);
    out.writeUInt16LE(v, a.off);
    return [out, `nla_len@${a.off}=${v}`];
  },
  attrType(b, rng) {
    const attrs = attributeHeaders(b);
    if (attrs.length === 0) return [b, 'attrType:none'];
    const a = rng.pick(attrs);
    const out = Buffer.from(b);
    const old = out.readUInt16LE(a.off + 2);
    const v = rng.pick([old ^ NLA_F_NESTED, old ^ NLA_F_NET_BYTEORDER, rng.below(64), rng.below(0x10000), old + 1, old - 1]) & 0xffff;
    out.writeUInt16LE(v, a.off + 2);
    return [out, `nla_type@${a.off}=${v}`];
  },
  nestingBomb(b, rng) {
    const attrs = attributeHeaders(b).filter((a) => a.msg);
    if (attrs.length === 0) return [b, 'nestingBomb:none'];
    const a = rng.pick(attrs);
    const depth = rng.pick([rng.range(1, 40), rng.range(60, 70), rng.range(100, 2000), rng.range(2000, 16000)]);
    const type = rng.chance(0.5) ? b.readUInt16LE(a.off + 2) & 0x3fff : rng.pick(NEST_TYPES);
    return [replaceAttrPayload(b, a, nest(depth, type)), `nestingBomb@${a.off} depth ${depth} type ${type}`];
  },
  widthBomb(b, rng) {
    const attrs = attributeHeaders(b).filter((a) => a.msg);
    if (attrs.length === 0) return [b, 'widthBomb:none'];
    const a = rng.pick(attrs);
    const count = rng.range(100, 8000);
    const size = rng.pick([4, 8]);
    const list = Buffer.alloc(count * size);
    const type = rng.below(40);
    const stray = rng.below(0x10000);
    const strayEvery = rng.range(2, 64);
    for (let i = 0; i < count; i++) {
      list.writeUInt16LE(size, i * size);
      list.writeUInt16LE(i % strayEvery === 0 ? stray : type, i * size + 2);
    }
    return [replaceAttrPayload(b, a, list.subarray(0, Math.min(list.length, 0xfff0))), `widthBomb@${a.off} ${count}x${size}`];
  },
  duplicateAttr(b, rng) {
    const attrs = attributeHeaders(b).filter((a) => a.msg);
    if (attrs.length === 0) return [b, 'duplicateAttr:none'];
    const a = rng.pick(attrs);
    const copy = b.subarray(a.off, a.off + align4(a.len));
    const out = Buffer.concat([b.subarray(0, a.off + align4(a.len)), copy, b.subarray(a.off + align4(a.len))]);
    out.writeUInt32LE(a.msg!.len + copy.length, a.msg!.off);
    return [out, `duplicateAttr@${a.off}`];
  },
  messageType(b, rng) {
    const msgs = messageSpans(b);
    if (msgs.length === 0) return [b, 'messageType:none'];
    const m = rng.pick(msgs);
    const out = Buffer.from(b);
    const v = rng.pick(MESSAGE_TYPES);
    out.writeUInt16LE(v, m.off + 4);
    return [out, `nlmsg_type@${m.off}=${v}`];
  },
  messageFlags(b, rng) {
    const msgs = messageSpans(b);
    if (msgs.length === 0) return [b, 'messageFlags:none'];
    const m = rng.pick(msgs);
    const out = Buffer.from(b);
    // NLM_F_CAPPED 0x100 and NLM_F_ACK_TLVS 0x200 change how an ack is laid out; DUMP_INTR 0x10.
    const v = (out.readUInt16LE(m.off + 6) ^ rng.pick([0x100, 0x200, 0x300, 0x10, 0x2, rng.below(0x10000)])) & 0xffff;
    out.writeUInt16LE(v, m.off + 6);
    return [out, `nlmsg_flags@${m.off}=${v}`];
  },
  insert(b, rng) {
    const at = rng.below(b.length + 1);
    const n = rng.range(1, 8);
    return [Buffer.concat([b.subarray(0, at), rng.bytes(n), b.subarray(at)]), `insert@${at}+${n}`];
  },
  remove(b, rng) {
    const at = rng.below(b.length);
    const n = rng.range(1, 8);
    return [Buffer.concat([b.subarray(0, at), b.subarray(at + n)]), `remove@${at}-${n}`];
  },
  splice(b, rng, corpus) {
    const other = rng.chance(0.5) ? rng.pick(corpus.messages) : rng.pick(corpus.datagrams);
    let cutA: number;
    let cutB: number;
    if (rng.chance(0.5)) {
      // At attribute boundaries: structurally plausible, semantically from two different objects.
      const aa = attributeHeaders(b);
      const bb = attributeHeaders(other);
      cutA = aa.length ? rng.pick(aa).off : rng.below(b.length);
      cutB = bb.length ? rng.pick(bb).off : rng.below(other.length);
    } else {
      cutA = rng.below(b.length + 1);
      cutB = rng.below(other.length + 1);
    }
    const out = Buffer.concat([b.subarray(0, cutA), other.subarray(cutB)]);
    // Half the time the first message's length is made to cover the splice, so it is decoded as one.
    if (rng.chance(0.5) && out.length >= NLMSG_HDRLEN) out.writeUInt32LE(out.length, 0);
    return [out, `splice ${cutA}|${cutB} of a ${other.length}-byte fixture`];
  },
};
/** How often each is picked: the bombs cost a thousand times a bit flip, so they come rarer. */
const WEIGHTS: Record<string, number> = { nestingBomb: 1, widthBomb: 1, splice: 4, duplicateAttr: 3 };
const MUTATOR_NAMES = Object.keys(MUTATORS).flatMap((name) => Array<string>(WEIGHTS[name] ?? 6).fill(name));

export interface FuzzCase {
  bytes: Buffer;
  /** What was done, for the failure report. */
  steps: string[];
}

/** Case `index` of the run seeded with `seed`. */
export function makeCase(corpus: Corpus, seed: number, index: number): FuzzCase {
  const rng = new Prng(seed, index);
  let bytes: Buffer;
  const pickBase = rng.below(20);
  const steps: string[] = [];
  if (pickBase < 13) {
    bytes = rng.pick(corpus.messages);
    steps.push(`message(${bytes.length})`);
  } else if (pickBase < 17) {
    // A whole dump datagram costs as much as its dozens of messages: the big ones come rarer.
    bytes = rng.pick(corpus.datagrams);
    if (bytes.length > 2048 && rng.chance(0.8)) bytes = rng.pick(corpus.datagrams);
    steps.push(`datagram(${bytes.length})`);
  } else {
    const parts = Array.from({ length: rng.range(2, 4) }, () => rng.pick(corpus.messages));
    bytes = Buffer.concat(parts);
    steps.push(`concat(${parts.map((p) => p.length).join('+')})`);
  }
  const n = rng.pick([1, 1, 1, 2, 2, 3, 4]);
  for (let i = 0; i < n && bytes.length > 0; i++) {
    const name = rng.pick(MUTATOR_NAMES);
    const [next, what] = MUTATORS[name]!(bytes, rng, corpus);
    bytes = next;
    steps.push(what);
  }
  return { bytes, steps };
}
