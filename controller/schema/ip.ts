/**
 * IP addresses and prefixes as the declarations spell them, parsed strictly and written back in
 * one canonical form, so that plan compares values and never spellings.
 *
 * Canonical text: IPv4 as a dotted quad without leading zeros; IPv6 as RFC 5952 (lowercase, no
 * leading zeros in a group, the longest run of two or more zero groups shortened to `::`, the first
 * one on a tie), with a dotted IPv4 tail exactly where inet_ntop writes one (`::a.b.c.d`,
 * `::ffff:a.b.c.d`). The text comes from the netlink codec's formatter, the one that formats the
 * kernel's bytes, so desired and observed strings agree by construction.
 *
 * Strictness is deliberate: `192.168.010.001` means 192.168.8.1 to inet_aton (octal) and
 * 192.168.10.1 to a human, so leading zeros are refused; zone ids (`fe80::1%eth0`) have no meaning
 * in a declaration and are refused too.
 */
import type { IpFamily } from '../model/desired.js';
import { formatIPv4, formatIPv6 } from '../../netlink/codec/ip.js';

export interface IpAddress {
  family: IpFamily;
  /** 4 bytes for IPv4, 16 for IPv6, network order. */
  bytes: Uint8Array;
}

export interface IpPrefix extends IpAddress {
  prefixLength: number;
}

/** Either the parsed value or a sentence saying what is wrong with the text. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const fail = <T>(error: string): Parsed<T> => ({ ok: false, error });

export function bitLength(family: IpFamily): number {
  return family === 4 ? 32 : 128;
}

function parseIPv4(text: string): Parsed<Uint8Array> {
  const parts = text.split('.');
  if (parts.length !== 4) return fail(`"${text}" is not an IPv4 address (it needs four dot-separated numbers)`);
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i];
    if (!/^[0-9]{1,3}$/.test(part)) return fail(`"${text}" is not an IPv4 address ("${part}" is not a number from 0 to 255)`);
    if (part.length > 1 && part.startsWith('0')) {
      return fail(`"${text}": "${part}" has a leading zero, which some tools read as octal; write ${Number(part)}`);
    }
    const n = Number(part);
    if (n > 255) return fail(`"${text}" is not an IPv4 address (${n} is more than 255)`);
    bytes[i] = n;
  }
  return ok(bytes);
}

function parseIPv6(text: string): Parsed<Uint8Array> {
  const bad = (why: string) => fail<Uint8Array>(`"${text}" is not an IPv6 address (${why})`);
  if (text.includes('%')) return bad('zone ids such as %eth0 are not allowed here');
  const halves = text.split('::');
  if (halves.length > 2) return bad('"::" may appear only once');
  const groupsOf = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const head = groupsOf(halves[0]);
  const tail = halves.length === 2 ? groupsOf(halves[1]) : [];
  // An embedded IPv4 address may only be the last 32 bits, written last.
  let v4: Uint8Array | undefined;
  const lastPart = halves.length === 2 ? tail : head;
  const last = lastPart.length > 0 ? lastPart[lastPart.length - 1] : '';
  if (last.includes('.')) {
    const p = parseIPv4(last);
    if (!p.ok) return bad(`the embedded IPv4 part is invalid: ${p.error}`);
    v4 = p.value;
    lastPart.pop();
  }
  for (const g of [...head, ...tail]) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return bad(g === '' ? 'an empty group' : `"${g}" is not a group of 1 to 4 hex digits`);
  }
  const explicitWords = head.length + tail.length + (v4 ? 2 : 0);
  if (halves.length === 1) {
    if (explicitWords !== 8) return bad(`it has ${explicitWords} groups instead of 8`);
  } else if (explicitWords > 7) {
    return bad('"::" must stand for at least one zero group');
  }
  const words: number[] = [];
  for (const g of head) words.push(parseInt(g, 16));
  for (let i = explicitWords; i < 8; i++) words.push(0);
  for (const g of tail) words.push(parseInt(g, 16));
  const bytes = new Uint8Array(16);
  words.forEach((w, i) => {
    bytes[2 * i] = w >> 8;
    bytes[2 * i + 1] = w & 0xff;
  });
  if (v4) bytes.set(v4, 12);
  return ok(bytes);
}

/** Parses an address without prefix length. */
export function parseIp(text: string): Parsed<IpAddress> {
  if (text.includes(':')) {
    const p = parseIPv6(text);
    return p.ok ? ok({ family: 6, bytes: p.value }) : p;
  }
  if (/^[0-9.]+$/.test(text)) {
    const p = parseIPv4(text);
    return p.ok ? ok({ family: 4, bytes: p.value }) : p;
  }
  return fail(`"${text}" is not an IPv4 or IPv6 address`);
}

/** Parses `address/prefixLength`; the prefix length is required. Host bits are kept. */
export function parseCidr(text: string): Parsed<IpPrefix> {
  const slash = text.indexOf('/');
  if (slash < 0) {
    const bare = parseIp(text);
    if (!bare.ok) return bare;
    const max = bitLength(bare.value.family);
    return fail(`"${text}" has no prefix length: write it as ${text}/${max} for a single address, or with the subnet's length`);
  }
  const addr = parseIp(text.slice(0, slash));
  if (!addr.ok) return addr;
  const lenText = text.slice(slash + 1);
  const max = bitLength(addr.value.family);
  if (!/^[0-9]{1,3}$/.test(lenText) || (lenText.length > 1 && lenText.startsWith('0')) || Number(lenText) > max) {
    return fail(`"${text}": the prefix length must be a number from 0 to ${max}`);
  }
  return ok({ ...addr.value, prefixLength: Number(lenText) });
}

/**
 * Canonical text of an address: exactly what the kernel side prints (inet_ntop, via the netlink
 * codec), so desired and observed strings compare equal — one formatter, not two that might drift.
 */
export function formatIp(family: IpFamily, bytes: Uint8Array): string {
  return family === 4 ? formatIPv4(bytes, 0) : formatIPv6(bytes, 0);
}

export function formatAddress(a: IpAddress): string {
  return formatIp(a.family, a.bytes);
}

export function formatPrefix(p: IpPrefix): string {
  return `${formatIp(p.family, p.bytes)}/${p.prefixLength}`;
}

/** The prefix's network address: host bits cleared. */
export function networkOf(p: IpPrefix): IpPrefix {
  const bytes = new Uint8Array(p.bytes);
  for (let bit = p.prefixLength; bit < bytes.length * 8; bit++) bytes[bit >> 3] &= ~(0x80 >> (bit & 7));
  return { family: p.family, bytes, prefixLength: p.prefixLength };
}

export function hasHostBits(p: IpPrefix): boolean {
  for (let bit = p.prefixLength; bit < p.bytes.length * 8; bit++) if (p.bytes[bit >> 3] & (0x80 >> (bit & 7))) return true;
  return false;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

export function sameAddress(a: IpAddress, b: IpAddress): boolean {
  return a.family === b.family && sameBytes(a.bytes, b.bytes);
}

/** Whether `addr` lies inside `prefix`. */
export function prefixContains(prefix: IpPrefix, addr: IpAddress): boolean {
  if (prefix.family !== addr.family) return false;
  const whole = prefix.prefixLength >> 3;
  for (let i = 0; i < whole; i++) if (prefix.bytes[i] !== addr.bytes[i]) return false;
  const rest = prefix.prefixLength & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (prefix.bytes[whole] & mask) === (addr.bytes[whole] & mask);
}

const prefixOf = (family: IpFamily, text: string): IpPrefix => {
  const p = parseCidr(text);
  if (!p.ok || p.value.family !== family) throw new Error(`bad built-in prefix ${text}`);
  return p.value;
};
const V4_MULTICAST = prefixOf(4, '224.0.0.0/4');
const V6_MULTICAST = prefixOf(6, 'ff00::/8');
const V6_LINK_LOCAL = prefixOf(6, 'fe80::/10');
const V6_V4_MAPPED = prefixOf(6, '::ffff:0:0/96');

export function isUnspecified(a: IpAddress): boolean {
  return a.bytes.every((b) => b === 0);
}
export function isMulticast(a: IpAddress): boolean {
  return prefixContains(a.family === 4 ? V4_MULTICAST : V6_MULTICAST, a);
}
export function isIPv6LinkLocal(a: IpAddress): boolean {
  return prefixContains(V6_LINK_LOCAL, a);
}
export function isIPv4Mapped(a: IpAddress): boolean {
  return prefixContains(V6_V4_MAPPED, a);
}
export function isLimitedBroadcast(a: IpAddress): boolean {
  return a.family === 4 && a.bytes.every((b) => b === 255);
}

/**
 * Why an address cannot be a unicast address of an interface (or a gateway), or undefined if it
 * can. The kernel accepts some of these, but none of them does what a declaration means.
 */
export function nonUnicastReason(a: IpAddress): string | undefined {
  if (isUnspecified(a)) return 'it is the unspecified address';
  if (isMulticast(a)) return 'it is a multicast address';
  if (isLimitedBroadcast(a)) return 'it is the limited broadcast address';
  if (isIPv4Mapped(a)) return 'IPv4-mapped IPv6 addresses are not interface addresses: write the IPv4 address';
  return undefined;
}
