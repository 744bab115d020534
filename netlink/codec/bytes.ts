/**
 * Reading fixed-size fields out of a Buffer. Index arithmetic rather than Buffer.read*: those
 * re-validate their arguments on every call, and the decoder has already checked the bounds.
 */

/** Little-endian u16 at off (the caller has checked the bounds). */
export function rdU16(b: Buffer, off: number): number {
  return b[off]! | (b[off + 1]! << 8);
}
/** Little-endian u32 at off, unsigned. */
export function rdU32(b: Buffer, off: number): number {
  return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16)) + b[off + 3]! * 0x1000000;
}
/** Little-endian s32 at off. */
export function rdS32(b: Buffer, off: number): number {
  return b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24);
}

/** A copy of buf[start, end): decoded objects must not pin the (large) receive buffer. */
export function copyBytes(buf: Buffer, start: number, end: number): Buffer {
  const out = Buffer.allocUnsafe(end - start);
  buf.copy(out, 0, start, end);
  return out;
}

/** A NUL-terminated string payload, or undefined when it would not re-encode to the same bytes (typed string fields, AttrWalker.string). */
export function readString(buf: Buffer, off: number, len: number): string | undefined {
  if (len === 0 || buf[off + len - 1] !== 0) return undefined;
  const last = off + len - 1;
  for (let i = off; i < last; i++) if (buf[i] === 0) return undefined;
  const s = buf.toString('utf8', off, last);
  // Invalid UTF-8 decodes to U+FFFD and would not re-encode to the same bytes.
  if (s.indexOf('\ufffd') >= 0 && Buffer.compare(Buffer.from(s, 'utf8'), buf.subarray(off, last)) !== 0) return undefined;
  return s;
}
