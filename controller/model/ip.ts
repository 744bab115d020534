/**
 * Address arithmetic plan needs: the network of an address (to predict the kernel's connected
 * routes), containment (gateways, link-local), and RFC 5952 text so computed prefixes compare
 * equal to the canonical strings desired and observed state carry.
 */
import type { IpFamily } from './desired.js';
import { formatIPv6 as formatIPv6Bytes } from '../../netlink/codec/ip.js';

const V4_BITS = 32;
const V6_BITS = 128;

export function familyBits(family: IpFamily): number {
  return family === 4 ? V4_BITS : V6_BITS;
}

export function parseIPv4(text: string): bigint {
  const parts = text.split('.');
  if (parts.length !== 4) throw new TypeError(`not an IPv4 address: ${text}`);
  let value = 0n;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part) || Number(part) > 255) throw new TypeError(`not an IPv4 address: ${text}`);
    value = (value << 8n) | BigInt(Number(part));
  }
  return value;
}

export function parseIPv6(text: string): bigint {
  let head = text;
  let tailV4: bigint | undefined;
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    tailV4 = parseIPv4(text.slice(lastColon + 1));
    head = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const halves = head.split('::');
  if (halves.length > 2) throw new TypeError(`not an IPv6 address: ${text}`);
  const toGroups = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const left = toGroups(halves[0]);
  const right = halves.length === 2 ? toGroups(halves[1]) : [];
  const missing = 8 - left.length - right.length;
  if ((halves.length === 2 && missing < 1) || (halves.length === 1 && missing !== 0)) {
    throw new TypeError(`not an IPv6 address: ${text}`);
  }
  const groups = [...left, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...right];
  let value = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw new TypeError(`not an IPv6 address: ${text}`);
    value = (value << 16n) | BigInt(parseInt(g, 16));
  }
  if (tailV4 !== undefined) value = (value & ~0xffffffffn) | tailV4;
  return value;
}

export function formatIPv4(value: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => ((value >> s) & 0xffn).toString()).join('.');
}

/**
 * The text the kernel's side uses (inet_ntop, as the codec and `ip -j` print it), so a computed
 * prefix compares equal to observed strings; desired strings are canonicalised the same way.
 */
export function formatIPv6(value: bigint): string {
  const bytes = new Uint8Array(16);
  for (let i = 15; i >= 0; i--) {
    bytes[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return formatIPv6Bytes(bytes, 0);
}

export function parseIp(family: IpFamily, text: string): bigint {
  return family === 4 ? parseIPv4(text) : parseIPv6(text);
}

export function formatIp(family: IpFamily, value: bigint): string {
  return family === 4 ? formatIPv4(value) : formatIPv6(value);
}

function mask(family: IpFamily, prefixLength: number): bigint {
  const bits = BigInt(familyBits(family));
  const host = bits - BigInt(prefixLength);
  return ((1n << bits) - 1n) ^ ((1n << host) - 1n);
}

/** The network address (host bits cleared) of address/prefixLength, canonical text. */
export function networkOf(family: IpFamily, address: string, prefixLength: number): string {
  return formatIp(family, parseIp(family, address) & mask(family, prefixLength));
}

/** Whether `address` lies inside network/prefixLength. */
export function prefixContains(family: IpFamily, network: string, prefixLength: number, address: string): boolean {
  const m = mask(family, prefixLength);
  return (parseIp(family, network) & m) === (parseIp(family, address) & m);
}

/** fe80::/10: IPv6 link-local unicast. */
export function isIPv6LinkLocal(address: string): boolean {
  return prefixContains(6, 'fe80::', 10, address);
}

/** Canonical text of any spelling (used by tests and by callers normalising foreign input). */
export function canonicalIp(family: IpFamily, text: string): string {
  return formatIp(family, parseIp(family, text));
}
