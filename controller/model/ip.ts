/**
 * The controller's one IP module: parsing, canonical text, and the arithmetic of prefixes (network
 * of a prefix, containment, host bits, the special ranges). Everything else in controller/ asks
 * here; schema/ip.ts only adds the sentences a user reads when a declaration is wrong.
 *
 * Text ↔ bytes is the netlink codec's, the code that writes requests and formats the kernel's
 * answers, so there is one parser and one formatter in the project:
 *   - parsing is strict (inet_pton's rules): dotted quads without leading zeros (`192.168.010.001`
 *     is 192.168.8.1 to inet_aton and 192.168.10.1 to a human), RFC 4291 IPv6 with an optional
 *     dotted tail, no zone ids (`fe80::1%eth0` means nothing in a declaration);
 *   - canonical text is inet_ntop's, as `ip -j` prints it: RFC 5952 IPv6 (lowercase, no leading
 *     zeros, the longest run of two or more zero groups as `::`, the first on a tie) with a dotted
 *     tail exactly for `::a.b.c.d` and `::ffff:a.b.c.d`. Desired and observed strings therefore
 *     agree by construction, and plan compares values, never spellings.
 *
 * Two views of an address:
 *   - IpAddress / IpPrefix (family + network-order bytes): what schema builds while validating;
 *   - canonical text with its family (networkOf, prefixContains, isIPv6LinkLocal, canonicalIp):
 *     what desired and observed state carry. These run on plan's hot path (per pass, per route), so
 *     they parse into module scratch buffers and allocate nothing but the string they return.
 * Both go through the same byte primitives below. parseIp/formatIp add a bigint view for callers
 * that count addresses (tests picking a neighbour inside a subnet).
 */
import type { IpFamily } from './desired.js';
import { codec } from '../../netlink/index.js';

const { formatIp: formatIpBytes, writeIp } = codec;

export interface IpAddress {
  family: IpFamily;
  /** 4 bytes for IPv4, 16 for IPv6, network order. */
  bytes: Uint8Array;
}

export interface IpPrefix extends IpAddress {
  prefixLength: number;
}

export function familyBits(family: IpFamily): number {
  return family === 4 ? 32 : 128;
}

// Parse targets of the text functions below. Nothing here calls out while one is in use, so two
// suffice, and the hot path allocates nothing but the string it returns.
const scratchA = new Uint8Array(16);
const scratchB = new Uint8Array(16);

// ---- byte primitives: every containment and network computation in the controller is one of these

/** Clears the bits of bytes[0, length) after the first `prefixLength`, in place. */
function clearHostBits(bytes: Uint8Array, length: number, prefixLength: number): void {
  let i = prefixLength >> 3;
  const rest = prefixLength & 7;
  if (rest !== 0 && i < length) {
    bytes[i] = bytes[i]! & (0xff << (8 - rest));
    i++;
  }
  bytes.fill(0, i, length);
}

function hostBitsSet(bytes: Uint8Array, prefixLength: number): boolean {
  let i = prefixLength >> 3;
  const rest = prefixLength & 7;
  if (rest !== 0 && i < bytes.length && (bytes[i++]! & (0xff >> rest)) !== 0) return true;
  for (; i < bytes.length; i++) if (bytes[i] !== 0) return true;
  return false;
}

/** Whether the first `prefixLength` bits of `a` and `b` (same length) are equal. */
function samePrefixBits(a: Uint8Array, b: Uint8Array, prefixLength: number): boolean {
  const whole = prefixLength >> 3;
  for (let i = 0; i < whole; i++) if (a[i] !== b[i]) return false;
  const rest = prefixLength & 7;
  if (rest === 0) return true;
  const mask = 0xff << (8 - rest);
  return ((a[whole]! ^ b[whole]!) & mask) === 0;
}

// ---- IpAddress / IpPrefix

/** Parses an address without prefix length (strict, see above); undefined when it is not one. */
export function parseAddress(text: string): IpAddress | undefined {
  const n = writeIp(text, scratchA, 0);
  if (n === 0) return undefined;
  return { family: n === 4 ? 4 : 6, bytes: scratchA.slice(0, n) };
}

/** Canonical text of an address. */
export function formatAddress(a: IpAddress): string {
  return formatIpBytes(a.bytes, 0, a.bytes.length)!;
}

/** Canonical `address/length` (host bits as they are). */
export function formatPrefix(p: IpPrefix): string {
  return `${formatAddress(p)}/${p.prefixLength}`;
}

/** The prefix's network address: host bits cleared. */
export function networkOfPrefix(p: IpPrefix): IpPrefix {
  const bytes = p.bytes.slice();
  clearHostBits(bytes, bytes.length, p.prefixLength);
  return { family: p.family, bytes, prefixLength: p.prefixLength };
}

export function hasHostBits(p: IpPrefix): boolean {
  return hostBitsSet(p.bytes, p.prefixLength);
}

/** Whether `addr` lies inside `prefix` (the prefix's own host bits do not matter). */
export function prefixContainsAddress(prefix: IpPrefix, addr: IpAddress): boolean {
  return prefix.family === addr.family && samePrefixBits(prefix.bytes, addr.bytes, prefix.prefixLength);
}

export function sameAddress(a: IpAddress, b: IpAddress): boolean {
  return a.family === b.family && samePrefixBits(a.bytes, b.bytes, a.bytes.length * 8);
}

function builtInPrefix(text: string): IpPrefix {
  const slash = text.indexOf('/');
  const a = parseAddress(text.slice(0, slash));
  if (a === undefined) throw new Error(`bad built-in prefix ${text}`);
  return { ...a, prefixLength: Number(text.slice(slash + 1)) };
}
const V4_MULTICAST = builtInPrefix('224.0.0.0/4');
const V6_MULTICAST = builtInPrefix('ff00::/8');
const V6_LINK_LOCAL = builtInPrefix('fe80::/10');
const V6_V4_MAPPED = builtInPrefix('::ffff:0:0/96');

export function isUnspecified(a: IpAddress): boolean {
  return a.bytes.every((b) => b === 0);
}
export function isMulticast(a: IpAddress): boolean {
  return prefixContainsAddress(a.family === 4 ? V4_MULTICAST : V6_MULTICAST, a);
}
/** fe80::/10: IPv6 link-local unicast. */
export function isIPv6LinkLocalAddress(a: IpAddress): boolean {
  return prefixContainsAddress(V6_LINK_LOCAL, a);
}
export function isIPv4Mapped(a: IpAddress): boolean {
  return prefixContainsAddress(V6_V4_MAPPED, a);
}
export function isLimitedBroadcast(a: IpAddress): boolean {
  return a.family === 4 && a.bytes.every((b) => b === 255);
}

// ---- canonical text with its family: plan's hot path

/** Parses `text` of `family` into `buf`; a string of the other family, or none, is a caller's bug. */
function parseInto(family: IpFamily, text: string, buf: Uint8Array): number {
  const n = writeIp(text, buf, 0);
  if (n !== (family === 4 ? 4 : 16)) throw new TypeError(`not an IPv${family} address: ${text}`);
  return n;
}

/** The network address (host bits cleared) of address/prefixLength, canonical text. */
export function networkOf(family: IpFamily, address: string, prefixLength: number): string {
  const n = parseInto(family, address, scratchA);
  clearHostBits(scratchA, n, prefixLength);
  return formatIpBytes(scratchA, 0, n)!;
}

/** Whether `address` lies inside network/prefixLength. */
export function prefixContains(family: IpFamily, network: string, prefixLength: number, address: string): boolean {
  parseInto(family, network, scratchA);
  parseInto(family, address, scratchB);
  return samePrefixBits(scratchA, scratchB, prefixLength);
}

/** fe80::/10: IPv6 link-local unicast. `address` is IPv6 text. */
export function isIPv6LinkLocal(address: string): boolean {
  parseInto(6, address, scratchA);
  return samePrefixBits(V6_LINK_LOCAL.bytes, scratchA, V6_LINK_LOCAL.prefixLength);
}

/** Canonical text of any spelling of an address of `family`. */
export function canonicalIp(family: IpFamily, text: string): string {
  const n = parseInto(family, text, scratchA);
  return formatIpBytes(scratchA, 0, n)!;
}

// ---- bigint view: addresses as numbers

export function parseIp(family: IpFamily, text: string): bigint {
  const n = parseInto(family, text, scratchA);
  let value = 0n;
  for (let i = 0; i < n; i++) value = (value << 8n) | BigInt(scratchA[i]!);
  return value;
}

export function formatIp(family: IpFamily, value: bigint): string {
  const n = family === 4 ? 4 : 16;
  for (let i = n - 1; i >= 0; i--) {
    scratchA[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return formatIpBytes(scratchA, 0, n)!;
}
