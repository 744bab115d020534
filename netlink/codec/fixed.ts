/** Checks for the fixed-struct fields of a message (ifinfomsg, rtmsg, ...) when encoding. */
import { NetlinkEncodeError } from './errors.js';

/** T with the keys K made optional: what the encoders accept (missing fixed fields are 0). */
export type WithOptional<T, K extends keyof T> = Omit<T, K> & Partial<Pick<T, K>>;

export function u8Field(v: number | undefined, path: string): number {
  if (v === undefined) return 0;
  if (typeof v !== 'number' || (v & 0xff) !== v) throw new NetlinkEncodeError(path, 'must be an integer 0..255');
  return v;
}
export function u16Field(v: number | undefined, path: string): number {
  if (v === undefined) return 0;
  if (typeof v !== 'number' || (v & 0xffff) !== v) throw new NetlinkEncodeError(path, 'must be an integer 0..65535');
  return v;
}
export function u32Field(v: number | undefined, path: string): number {
  if (v === undefined) return 0;
  if (typeof v !== 'number' || v >>> 0 !== v) throw new NetlinkEncodeError(path, 'must be an integer 0..4294967295');
  return v;
}
export function s32Field(v: number | undefined, path: string): number {
  if (v === undefined) return 0;
  if (typeof v !== 'number' || (v | 0) !== v) throw new NetlinkEncodeError(path, 'must be a 32-bit signed integer');
  return v;
}
