/**
 * IP addresses and prefixes as a declaration spells them, with the sentence a user reads when one
 * is wrong. Whether text is an address, and which, is model/ip.ts's decision (the strict parser
 * and canonical form the whole controller uses); this file only says why not, and which addresses
 * an interface or a gateway cannot have.
 */
import { familyBits, isIPv4Mapped, isLimitedBroadcast, isMulticast, isUnspecified, parseAddress, type IpAddress, type IpPrefix } from '../model/ip.js';

/** Either the parsed value or a sentence saying what is wrong with the text. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const fail = <T>(error: string): Parsed<T> => ({ ok: false, error });

function ipv4Problem(text: string): string | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return `"${text}" is not an IPv4 address (it needs four dot-separated numbers)`;
  for (const part of parts) {
    if (!/^[0-9]{1,3}$/.test(part)) return `"${text}" is not an IPv4 address ("${part}" is not a number from 0 to 255)`;
    if (part.length > 1 && part.startsWith('0')) return `"${text}": "${part}" has a leading zero, which some tools read as octal; write ${Number(part)}`;
    if (Number(part) > 255) return `"${text}" is not an IPv4 address (${Number(part)} is more than 255)`;
  }
  return undefined;
}

function ipv6Problem(text: string): string | undefined {
  const bad = (why: string) => `"${text}" is not an IPv6 address (${why})`;
  if (text.includes('%')) return bad('zone ids such as %eth0 are not allowed here');
  const halves = text.split('::');
  if (halves.length > 2) return bad('"::" may appear only once');
  const groupsOf = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const head = groupsOf(halves[0]);
  const tail = halves.length === 2 ? groupsOf(halves[1]) : [];
  // An embedded IPv4 address may only be the last 32 bits, written last.
  const lastPart = halves.length === 2 ? tail : head;
  const last = lastPart.length > 0 ? lastPart[lastPart.length - 1] : '';
  const v4Tail = last.includes('.');
  if (v4Tail) {
    const p = ipv4Problem(last);
    if (p !== undefined) return bad(`the embedded IPv4 part is invalid: ${p}`);
    lastPart.pop();
  }
  for (const g of [...head, ...tail]) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return bad(g === '' ? 'an empty group' : `"${g}" is not a group of 1 to 4 hex digits`);
  }
  const explicitWords = head.length + tail.length + (v4Tail ? 2 : 0);
  if (halves.length === 1) {
    if (explicitWords !== 8) return bad(`it has ${explicitWords} groups instead of 8`);
  } else if (explicitWords > 7) {
    return bad('"::" must stand for at least one zero group');
  }
  return undefined;
}

/**
 * Why `text` is not an address, or undefined when it is one. It follows the same rules as the
 * parser (a test holds the two together); it runs only after the parser has refused the text.
 */
export function ipTextProblem(text: string): string | undefined {
  if (text.includes(':')) return ipv6Problem(text);
  if (/^[0-9.]+$/.test(text)) return ipv4Problem(text);
  return `"${text}" is not an IPv4 or IPv6 address`;
}

/** Parses an address without prefix length. */
export function parseIp(text: string): Parsed<IpAddress> {
  const a = parseAddress(text);
  return a !== undefined ? ok(a) : fail(ipTextProblem(text) ?? `"${text}" is not an IPv4 or IPv6 address`);
}

/** Parses `address/prefixLength`; the prefix length is required. Host bits are kept. */
export function parseCidr(text: string): Parsed<IpPrefix> {
  const slash = text.indexOf('/');
  if (slash < 0) {
    const bare = parseIp(text);
    if (!bare.ok) return bare;
    const max = familyBits(bare.value.family);
    return fail(`"${text}" has no prefix length: write it as ${text}/${max} for a single address, or with the subnet's length`);
  }
  const addr = parseIp(text.slice(0, slash));
  if (!addr.ok) return addr;
  const lenText = text.slice(slash + 1);
  const max = familyBits(addr.value.family);
  if (!/^[0-9]{1,3}$/.test(lenText) || (lenText.length > 1 && lenText.startsWith('0')) || Number(lenText) > max) {
    return fail(`"${text}": the prefix length must be a number from 0 to ${max}`);
  }
  return ok({ ...addr.value, prefixLength: Number(lenText) });
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
