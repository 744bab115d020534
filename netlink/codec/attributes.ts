/**
 * Attribute (struct nlattr / rtattr) decoding and encoding, driven by per-family tables.
 *
 * How a decoded object stays lossless — the choice and why:
 * Each family's attributes are declared once in a table (attrSpec) mapping an attribute type to a
 * typed field of a plain object (`mtu`, `ifname`, `metrics`...). Callers get convenient typed
 * access, and the same table drives both directions, so decoder and encoder cannot drift apart.
 * Exactness comes from two bookkeeping fields on every attribute set (message, nest, nexthop):
 *   - `attrOrder`: the attribute types (flag bits included) in the order they arrived — set only
 *     when that order differs from the table's (an IPv4 route from the kernel has none: its
 *     order is the table order, which saves an array per route in a 65k-route dump);
 *   - `rawAttrs`: every attribute not held by a typed field, as type + bytes, in arrival order —
 *     unknown types, repeats of a known type, and known types whose bytes the typed field could
 *     not reproduce exactly (a u32 of 8 bytes, a string without its NUL, a flag bit we do not
 *     expect). Nothing is ever dropped, and a typed field only holds what re-encodes identically.
 * The encoder walks `attrOrder`, writing each known type from its typed field and everything else
 * from `rawAttrs`, then appends typed fields that were set but not in the order (a caller added
 * them), in the table's order, then any raw attributes left. An object built by hand has no
 * `attrOrder` and is written in table order, which follows the kernel's own fill order.
 * This was chosen over netlink-packet-route's ordered list of typed variants because the
 * reconciler reads fields far more often than it re-encodes, and plain `route.table` beats a
 * search through a variant list on every comparison.
 *
 * Byte-exactness holds for canonical input, i.e. what the kernel sends: padding bytes are zero
 * and every attribute inside a nest is padded to 4 bytes. A nest whose last attribute is unpadded
 * is kept raw, so even that re-encodes exactly; only an unpadded last attribute of a whole message
 * and non-zero padding bytes are normalised.
 *
 * Safety: every length is checked against its container before use, every loop advances by at
 * least 4 bytes, nesting is bounded (MAX_NEST_DEPTH) and nothing is allocated in proportion to a
 * length field — only to bytes actually present. The only exception thrown is NetlinkDecodeError:
 * for damage to the framing (message lengths, the message's own attribute list). Damage inside a
 * known nest leaves that one attribute raw — its own length is sound, so nothing is lost and the
 * rest of the dump still decodes.
 */
import { NetlinkDecodeError, NetlinkEncodeError } from './errors.js';
import { copyBytes, rdS32, rdU16, rdU32, readString } from './bytes.js';
import { formatIp, formatMac } from './ip.js';
import type { NetlinkWriter } from './writer.js';
import { AttrWalker } from './walker.js';
import { NLA_F_NESTED, NLA_HDRLEN, NLA_TYPE_MASK } from '../constants/netlink.js';

/** An attribute kept as it came: its full type (flag bits included) and its payload bytes. */
export interface RawAttr {
  type: number;
  data: Uint8Array;
}

/** The bookkeeping every decoded attribute set carries (see the module comment). */
export interface AttrLayout {
  /**
   * Attribute types (with NLA_F_* bits) in wire order. Absent when that order is the table
   * order with default flags and no attribute is raw, and on objects built by hand.
   */
  attrOrder?: number[];
  /** Attributes without a typed field, in wire order. */
  rawAttrs?: RawAttr[];
}

/**
 * Deepest attribute nesting any decoder follows. decodeAttrTree throws NetlinkDecodeError past
 * it; the typed tables nest three levels at most, so deeper input there is simply kept raw.
 */
export const MAX_NEST_DEPTH = 16;

const FLAG_BITS = 0xc000;

// Field kinds. Plain numbers so the hot decode switch compiles to a jump table.
export const K_U8 = 0;
export const K_U16 = 1;
export const K_U32 = 2;
export const K_S32 = 3;
export const K_U16BE = 4;
export const K_U32BE = 5;
export const K_U64BE = 6;
export const K_FLAG = 7;
export const K_STRING = 8;
export const K_BYTES = 9;
export const K_IP = 10;
export const K_MAC = 11;
export const K_BOOL8 = 12;
export const K_NEST = 13;
export const K_U32STRUCT = 14;
export const K_U16STRUCT = 15;
export const K_RAWLIST = 16;
export const K_CUSTOM = 17;

type Obj = Record<string, unknown>;

/** A field whose decoding needs more than its own bytes (e.g. IFLA_INFO_DATA depends on the kind). */
export interface CustomField {
  /** Whether the object holds a value for this attribute. */
  has(obj: Obj): boolean;
  /**
   * Decodes the payload into obj (storing only on success); false means "not representable,
   * keep it raw" — as does a NetlinkDecodeError thrown for damaged contents.
   */
  decode(buf: Buffer, off: number, len: number, type: number, obj: Obj, depth: number): boolean;
  /** Writes the whole attribute (header included) with the given full type. */
  encode(w: NetlinkWriter, type: number, obj: Obj, path: string, depth: number): void;
}

export interface FieldSpec {
  /** Attribute type without flag bits. */
  readonly type: number;
  readonly key: string;
  readonly kind: number;
  /** Flag bits written when the object has no attrOrder (the kernel's own choice). */
  readonly defaultFlags: number;
  /** Position in the table (for the seen/emitted bit sets). */
  index: number;
  readonly nest?: AttrSpec;
  readonly names?: readonly string[];
  readonly custom?: CustomField;
}

/**
 * Constant-key access to the typed fields of a hot family, by field index. Reading or writing
 * `obj[f.key]` with a varying key is a megamorphic property access in V8 — about 40 ns when the
 * property is absent, which is most of them — while `switch (i) { case 0: return o.table; }`
 * compiles each case to an inline cache of its own (~1 ns). Routes come 65k at a time, so their
 * table carries these; a test checks they match the table's keys.
 */
export interface FieldAccess {
  get(obj: Obj, index: number): unknown;
  set(obj: Obj, index: number, value: unknown): void;
}

export interface AttrSpec {
  /** Dotted path used in encode errors, e.g. 'route.metrics'. */
  readonly name: string;
  readonly byType: readonly (FieldSpec | undefined)[];
  readonly fields: readonly FieldSpec[];
  readonly access?: FieldAccess;
}

/** Builds a table. Field order is the encoding order for objects without attrOrder. */
export function attrSpec(name: string, fields: FieldSpec[], access?: FieldAccess): AttrSpec {
  if (fields.length > 64) throw new Error(`attrSpec ${name}: at most 64 typed fields`);
  const byType: (FieldSpec | undefined)[] = [];
  fields.forEach((f, i) => {
    f.index = i;
    if (byType[f.type] !== undefined) throw new Error(`attrSpec ${name}: type ${f.type} declared twice`);
    while (byType.length <= f.type) byType.push(undefined);
    byType[f.type] = f;
  });
  return access === undefined ? { name, byType, fields } : { name, byType, fields, access };
}

function field(type: number, key: string, kind: number, extra: Partial<FieldSpec> = {}): FieldSpec {
  return { type, key, kind, defaultFlags: 0, index: 0, ...extra };
}
export const fU8 = (t: number, k: string): FieldSpec => field(t, k, K_U8);
export const fU16 = (t: number, k: string): FieldSpec => field(t, k, K_U16);
export const fU32 = (t: number, k: string): FieldSpec => field(t, k, K_U32);
export const fS32 = (t: number, k: string): FieldSpec => field(t, k, K_S32);
export const fU16BE = (t: number, k: string): FieldSpec => field(t, k, K_U16BE);
export const fU32BE = (t: number, k: string): FieldSpec => field(t, k, K_U32BE);
export const fU64BE = (t: number, k: string): FieldSpec => field(t, k, K_U64BE);
export const fFlag = (t: number, k: string): FieldSpec => field(t, k, K_FLAG);
export const fString = (t: number, k: string): FieldSpec => field(t, k, K_STRING);
export const fBytes = (t: number, k: string, defaultFlags = 0): FieldSpec => field(t, k, K_BYTES, { defaultFlags });
export const fIp = (t: number, k: string): FieldSpec => field(t, k, K_IP);
export const fMac = (t: number, k: string): FieldSpec => field(t, k, K_MAC);
export const fBool8 = (t: number, k: string): FieldSpec => field(t, k, K_BOOL8);
export const fNest = (t: number, k: string, nest: AttrSpec, defaultFlags = 0): FieldSpec =>
  field(t, k, K_NEST, { nest, defaultFlags });
export const fU32Struct = (t: number, k: string, names: string[]): FieldSpec => field(t, k, K_U32STRUCT, { names });
export const fU16Struct = (t: number, k: string, names: string[]): FieldSpec => field(t, k, K_U16STRUCT, { names });
/** A nest kept one level deep as a list of raw attributes (e.g. bridge or veth IFLA_INFO_DATA). */
export const fRawList = (t: number, k: string, defaultFlags = 0): FieldSpec => field(t, k, K_RAWLIST, { defaultFlags });
export const fCustom = (t: number, k: string, custom: CustomField, defaultFlags = 0): FieldSpec =>
  field(t, k, K_CUSTOM, { custom, defaultFlags });

// ---------------------------------------------------------------------------------------------
// Reading

/**
 * Parses buf[start, end) as a flat list of attributes. Returns undefined when the bytes are not
 * a canonical attribute list (a length that does not fit, a short header, an unpadded or partial
 * tail): callers then keep the whole payload raw.
 */
export function parseRawList(buf: Buffer, start: number, end: number): RawAttr[] | undefined {
  const out: RawAttr[] = [];
  let pos = start;
  while (pos < end) {
    if (end - pos < NLA_HDRLEN) return undefined;
    const len = rdU16(buf, pos);
    if (len < NLA_HDRLEN || len > end - pos) return undefined;
    out.push({ type: rdU16(buf, pos + 2), data: copyBytes(buf, pos + NLA_HDRLEN, pos + len) });
    pos += (len + 3) & ~3;
  }
  return pos === end ? out : undefined;
}

/** readField's answer when the bytes cannot be held by the typed field (they stay raw). */
const UNTYPED: unique symbol = Symbol('untyped');
/** readField's answer when a custom field stored its value in the object itself. */
const STORED: unique symbol = Symbol('stored');

/** The attribute types of the table-ordered prefix seen so far (fields marked in the bit sets). */
function tablePrefix(spec: AttrSpec, lo: number, hi: number): number[] {
  const order: number[] = [];
  const fields = spec.fields;
  for (let i = 0; i < fields.length; i++) {
    if ((i < 32 ? lo & (1 << i) : hi & (1 << (i - 32))) !== 0) order.push(fields[i]!.type | fields[i]!.defaultFlags);
  }
  return order;
}

/**
 * Decodes the attributes in buf[start, end) into obj by the table spec, then sets
 * obj.attrOrder when the wire order is not the table order, and obj.rawAttrs when some attribute
 * was not typed. Returns true when the list was canonical (ended exactly on a padded boundary).
 */
export function decodeAttrs(buf: Buffer, start: number, end: number, spec: AttrSpec, obj: Obj, depth: number): boolean {
  if (depth > MAX_NEST_DEPTH) throw new NetlinkDecodeError(`attributes nested deeper than ${MAX_NEST_DEPTH} levels`, start);
  let order: number[] | undefined; // stays undefined while the wire order is the table order
  let lastIndex = -1;
  let raw: RawAttr[] | undefined;
  let seenLo = 0; // bit i: typed field i already met (fields 0-31)
  let seenHi = 0; // fields 32-63
  const byType = spec.byType;
  const access = spec.access;
  let pos = start;
  while (pos < end) {
    if (end - pos < NLA_HDRLEN) throw new NetlinkDecodeError(`${end - pos} stray bytes where an attribute header (4 bytes) should start`, pos);
    const len = buf[pos]! | (buf[pos + 1]! << 8);
    const type = buf[pos + 2]! | (buf[pos + 3]! << 8);
    if (len < NLA_HDRLEN) throw new NetlinkDecodeError(`attribute type ${type} has length ${len}, shorter than its header`, pos);
    if (len > end - pos) throw new NetlinkDecodeError(`attribute type ${type} has length ${len}, past the end of its container (${end - pos} bytes left)`, pos);
    const f = byType[type & NLA_TYPE_MASK];
    let value: unknown = UNTYPED;
    let index = -1;
    if (f !== undefined) {
      index = f.index;
      const bit = index < 32 ? 1 << index : 1 << (index - 32);
      const first = ((index < 32 ? seenLo : seenHi) & bit) === 0;
      // Only the first occurrence is typed; later ones (and all after an untypable one) stay raw
      // so that attrOrder replays them in place.
      if (first) value = readField(f, buf, pos + NLA_HDRLEN, len - NLA_HDRLEN, type, obj, depth);
      if (order === undefined && (value === UNTYPED || index <= lastIndex || type !== (f.type | f.defaultFlags))) {
        order = tablePrefix(spec, seenLo, seenHi);
      }
      if (index < 32) seenLo |= bit;
      else seenHi |= bit;
    } else if (order === undefined) {
      order = tablePrefix(spec, seenLo, seenHi);
    }
    if (order === undefined) lastIndex = index;
    else order.push(type);
    if (value === UNTYPED) {
      (raw ??= []).push({ type, data: copyBytes(buf, pos + NLA_HDRLEN, pos + len) });
    } else if (value !== STORED) {
      if (access !== undefined) access.set(obj, index, value);
      else obj[f!.key] = value;
    }
    pos += (len + 3) & ~3;
  }
  if (order !== undefined) obj.attrOrder = order;
  if (raw !== undefined) obj.rawAttrs = raw;
  return pos === end;
}

/** The typed value of one attribute payload, UNTYPED when it would not re-encode identically. */
function readField(f: FieldSpec, buf: Buffer, p: number, len: number, type: number, obj: Obj, depth: number): unknown {
  const flags = type & FLAG_BITS;
  switch (f.kind) {
    case K_U8:
      return len === 1 && flags === 0 ? buf[p] : UNTYPED;
    case K_U16:
      return len === 2 && flags === 0 ? rdU16(buf, p) : UNTYPED;
    case K_U32:
      return len === 4 && flags === 0 ? rdU32(buf, p) : UNTYPED;
    case K_S32:
      return len === 4 && flags === 0 ? rdS32(buf, p) : UNTYPED;
    case K_U16BE:
      return len === 2 && flags === 0 ? (buf[p]! << 8) | buf[p + 1]! : UNTYPED;
    case K_U32BE:
      return len === 4 && flags === 0 ? buf[p]! * 0x1000000 + ((buf[p + 1]! << 16) | (buf[p + 2]! << 8) | buf[p + 3]!) : UNTYPED;
    case K_U64BE:
      return len === 8 && flags === 0 ? buf.readBigUInt64BE(p) : UNTYPED;
    case K_FLAG:
      return len === 0 && flags === 0 ? true : UNTYPED;
    case K_STRING:
      return flags === 0 ? (readString(buf, p, len) ?? UNTYPED) : UNTYPED;
    case K_BYTES:
      return copyBytes(buf, p, p + len);
    case K_IP:
      return flags === 0 ? (formatIp(buf, p, len) ?? UNTYPED) : UNTYPED;
    case K_MAC:
      return flags === 0 ? formatMac(buf, p, len) : UNTYPED;
    case K_BOOL8: {
      if (len !== 1 || flags !== 0) return UNTYPED;
      const v = buf[p]!;
      return v > 1 ? UNTYPED : v === 1;
    }
    case K_NEST: {
      if ((flags & ~NLA_F_NESTED) !== 0) return UNTYPED;
      const inner: Obj = {};
      try {
        return decodeAttrs(buf, p, p + len, f.nest!, inner, depth + 1) ? inner : UNTYPED;
      } catch (e) {
        if (e instanceof NetlinkDecodeError) return UNTYPED;
        throw e;
      }
    }
    case K_U32STRUCT: {
      const names = f.names!;
      if (len !== names.length * 4 || flags !== 0) return UNTYPED;
      const s: Obj = {};
      for (let i = 0; i < names.length; i++) s[names[i]!] = rdU32(buf, p + 4 * i);
      return s;
    }
    case K_U16STRUCT: {
      const names = f.names!;
      if (len !== names.length * 2 || flags !== 0) return UNTYPED;
      const s: Obj = {};
      for (let i = 0; i < names.length; i++) s[names[i]!] = rdU16(buf, p + 2 * i);
      return s;
    }
    case K_RAWLIST:
      if ((flags & ~NLA_F_NESTED) !== 0) return UNTYPED;
      return parseRawList(buf, p, p + len) ?? UNTYPED;
    case K_CUSTOM:
      try {
        return f.custom!.decode(buf, p, len, type, obj, depth) ? STORED : UNTYPED;
      } catch (e) {
        if (e instanceof NetlinkDecodeError) return UNTYPED;
        throw e;
      }
    default:
      return UNTYPED;
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

const LONE_SURROGATE = /\p{Cs}/u;

function bad(spec: AttrSpec, key: string, reason: string): NetlinkEncodeError {
  return new NetlinkEncodeError(`${spec.name}.${key}`, reason);
}

/**
 * Writes obj's attributes by the table spec: in attrOrder when present, then typed fields not
 * covered by it, then leftover raw attributes (see the module comment).
 */
export function encodeAttrs(w: NetlinkWriter, spec: AttrSpec, obj: Obj, depth = 0): void {
  if (depth > MAX_NEST_DEPTH) throw new NetlinkEncodeError(spec.name, `nested deeper than ${MAX_NEST_DEPTH} levels`);
  const order = obj.attrOrder as number[] | undefined;
  const raw = obj.rawAttrs as RawAttr[] | undefined;
  let rawNext = 0;
  let doneLo = 0;
  let doneHi = 0;
  const byType = spec.byType;
  if (order !== undefined) {
    for (let k = 0; k < order.length; k++) {
      const type = order[k]!;
      const f = byType[type & NLA_TYPE_MASK];
      if (f !== undefined) {
        const i = f.index;
        let first: boolean;
        if (i < 32) {
          first = (doneLo & (1 << i)) === 0;
          doneLo |= 1 << i;
        } else {
          first = (doneHi & (1 << (i - 32))) === 0;
          doneHi |= 1 << (i - 32);
        }
        if (first) {
          const v = fieldValue(spec, f, obj);
          if (v !== undefined) {
            encodeField(w, spec, f, type, v, obj, depth);
            continue;
          }
        }
      }
      // Not typed here: the next raw attribute stands in this slot if it is of this type (it is
      // missing if the caller removed it, and then nothing is written for the slot).
      if (raw !== undefined && rawNext < raw.length && raw[rawNext]?.type === type) writeRaw(w, spec, raw[rawNext++]!);
    }
  }
  const fields = spec.fields;
  for (let i = 0; i < fields.length; i++) {
    const done = i < 32 ? (doneLo & (1 << i)) !== 0 : (doneHi & (1 << (i - 32))) !== 0;
    if (done) continue;
    const f = fields[i]!;
    const v = fieldValue(spec, f, obj);
    if (v !== undefined) encodeField(w, spec, f, f.type | f.defaultFlags, v, obj, depth);
  }
  if (raw !== undefined) {
    for (; rawNext < raw.length; rawNext++) writeRaw(w, spec, raw[rawNext]!);
  }
}

function writeRaw(w: NetlinkWriter, spec: AttrSpec, r: RawAttr, key = 'rawAttrs'): void {
  if (r === null || typeof r !== 'object' || !(r.data instanceof Uint8Array) || (r.type & 0xffff) !== r.type) {
    throw bad(spec, key, 'entries must be { type: u16, data: Uint8Array }');
  }
  w.attrBytes(r.type, r.data);
}

/** The value of a typed field, undefined when absent (custom fields answer STORED when present). */
function fieldValue(spec: AttrSpec, f: FieldSpec, obj: Obj): unknown {
  if (f.kind === K_CUSTOM) return f.custom!.has(obj) ? STORED : undefined;
  return spec.access !== undefined ? spec.access.get(obj, f.index) : obj[f.key];
}

function encodeField(w: NetlinkWriter, spec: AttrSpec, f: FieldSpec, type: number, v: unknown, obj: Obj, depth: number): void {
  switch (f.kind) {
    case K_U8:
      if (typeof v !== 'number' || (v & 0xff) !== v) throw bad(spec, f.key, 'must be an integer 0..255');
      w.attrU8(type, v);
      return;
    case K_U16:
      if (typeof v !== 'number' || (v & 0xffff) !== v) throw bad(spec, f.key, 'must be an integer 0..65535');
      w.attrU16(type, v);
      return;
    case K_U16BE:
      if (typeof v !== 'number' || (v & 0xffff) !== v) throw bad(spec, f.key, 'must be an integer 0..65535');
      w.attrU16BE(type, v);
      return;
    case K_U32:
      if (typeof v !== 'number' || v >>> 0 !== v) throw bad(spec, f.key, 'must be an integer 0..4294967295');
      w.attrU32(type, v);
      return;
    case K_U32BE:
      if (typeof v !== 'number' || v >>> 0 !== v) throw bad(spec, f.key, 'must be an integer 0..4294967295');
      w.attrU32BE(type, v);
      return;
    case K_S32:
      if (typeof v !== 'number' || (v | 0) !== v) throw bad(spec, f.key, 'must be a 32-bit signed integer');
      w.attrS32(type, v);
      return;
    case K_U64BE:
      if (typeof v !== 'bigint' || v < 0n || v > 0xffffffffffffffffn) throw bad(spec, f.key, 'must be a bigint 0..2^64-1');
      w.attrU64BE(type, v);
      return;
    case K_FLAG:
      if (v !== true) throw bad(spec, f.key, 'must be true or absent');
      w.attrFlag(type);
      return;
    case K_STRING:
      if (typeof v !== 'string' || v.indexOf('\0') >= 0) throw bad(spec, f.key, 'must be a string without NUL characters');
      // A lone surrogate has no UTF-8 form: it would be written as U+FFFD and read back changed.
      if (LONE_SURROGATE.test(v)) throw bad(spec, f.key, 'must be well-formed Unicode (it has a lone surrogate)');
      w.attrString(type, v);
      return;
    case K_BYTES:
      if (!(v instanceof Uint8Array)) throw bad(spec, f.key, 'must be a Uint8Array');
      w.attrBytes(type, v);
      return;
    case K_IP:
      if (typeof v !== 'string' || !w.attrIp(type, v)) throw bad(spec, f.key, `${JSON.stringify(v)} is not an IPv4 or IPv6 address`);
      return;
    case K_MAC:
      if (typeof v !== 'string' || !w.attrMac(type, v)) throw bad(spec, f.key, `${JSON.stringify(v)} is not a colon-hex hardware address`);
      return;
    case K_BOOL8:
      if (typeof v !== 'boolean') throw bad(spec, f.key, 'must be a boolean');
      w.attrU8(type, v ? 1 : 0);
      return;
    case K_NEST: {
      if (v === null || typeof v !== 'object') throw bad(spec, f.key, 'must be an object');
      const start = w.beginNest(type);
      encodeAttrs(w, f.nest!, v as Obj, depth + 1);
      w.endNest(start);
      return;
    }
    case K_U32STRUCT:
    case K_U16STRUCT: {
      if (v === null || typeof v !== 'object') throw bad(spec, f.key, 'must be an object');
      const names = f.names!;
      const s = v as Obj;
      const wide = f.kind === K_U32STRUCT;
      w.attrHeader(type, names.length * (wide ? 4 : 2));
      for (const n of names) {
        const x = s[n];
        if (wide) {
          if (typeof x !== 'number' || x >>> 0 !== x) throw bad(spec, `${f.key}.${n}`, 'must be an integer 0..4294967295');
          w.buf.writeUInt32LE(x, w.pos);
          w.pos += 4;
        } else {
          if (typeof x !== 'number' || (x & 0xffff) !== x) throw bad(spec, `${f.key}.${n}`, 'must be an integer 0..65535');
          w.buf.writeUInt16LE(x, w.pos);
          w.pos += 2;
        }
      }
      return;
    }
    case K_RAWLIST: {
      if (!Array.isArray(v)) throw bad(spec, f.key, 'must be an array of raw attributes');
      const start = w.beginNest(type);
      for (const r of v as RawAttr[]) writeRaw(w, spec, r, f.key);
      w.endNest(start);
      return;
    }
    case K_CUSTOM:
      f.custom!.encode(w, type, obj, `${spec.name}.${f.key}`, depth);
      return;
  }
}

// ---------------------------------------------------------------------------------------------
// Generic tree decoding, for tools that show unknown payloads (bounded depth).

export interface AttrNode {
  type: number;
  /** Children when the NLA_F_NESTED bit is set and the payload parses as attributes. */
  children?: AttrNode[];
  /** Payload bytes of a leaf. */
  data?: Uint8Array;
}

/**
 * Decodes buf[start, end) into a tree, descending into attributes flagged NLA_F_NESTED.
 * Throws NetlinkDecodeError on malformed lengths or nesting deeper than maxDepth.
 */
export function decodeAttrTree(buf: Buffer, start = 0, end = buf.length, maxDepth = MAX_NEST_DEPTH, depth = 0): AttrNode[] {
  if (depth > maxDepth) throw new NetlinkDecodeError(`attributes nested deeper than ${maxDepth} levels`, start);
  const out: AttrNode[] = [];
  // The depth bound is this function's own (maxDepth), so the walker is aimed at depth 0.
  const w = new AttrWalker().reset(buf, start, end);
  while (w.next()) {
    const type = w.rawType;
    if (w.nested) {
      out.push({ type, children: decodeAttrTree(buf, w.offset, w.offset + w.length, maxDepth, depth + 1) });
    } else {
      out.push({ type, data: w.bytes() });
    }
  }
  return out;
}
