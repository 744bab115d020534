/** Parsing the address text of requests once, when a request is built, not when it is sent. */
import { NetlinkEncodeError } from '../codec/errors.js';
import { formatIp, writeIp } from '../codec/ip.js';
import { AF_INET, AF_INET6 } from '../constants/rtnetlink.js';

export interface Prefix {
  /** AF_INET or AF_INET6. */
  family: number;
  /** Canonical address text (as `ip` prints it). */
  address: string;
  length: number;
  /** IPv4 only: the address as a u32 in network order, ready to write without parsing again. */
  v4?: number;
}

const scratch = Buffer.alloc(16);

/** The family and canonical text of an address; throws NetlinkEncodeError naming `field`. */
export function parseAddress(text: string, field: string): { family: number; address: string } {
  if (typeof text !== 'string') throw new NetlinkEncodeError(field, 'must be an IP address string');
  const n = writeIp(text, scratch, 0);
  if (n === 0) throw new NetlinkEncodeError(field, `${JSON.stringify(text)} is not an IPv4 or IPv6 address`);
  return { family: n === 4 ? AF_INET : AF_INET6, address: formatIp(scratch, 0, n)! };
}

/**
 * 'a.b.c.d/len', 'v6::/len', or a bare address (a host prefix, full length). `defaultLength`
 * overrides the full length for a bare address. The address is canonicalised.
 */
export function parsePrefix(text: string, field: string, defaultLength?: number): Prefix {
  const p = checkPrefix(text, field, defaultLength);
  p.address = formatIp(scratch, 0, p.family === AF_INET ? 4 : 16)!;
  return p;
}

/**
 * As parsePrefix, but the address text is kept as given (validated, not canonicalised): the
 * cheap form for building tens of thousands of requests.
 */
export function checkPrefix(text: string, field: string, defaultLength?: number): Prefix {
  if (typeof text !== 'string') throw new NetlinkEncodeError(field, 'must be a CIDR string');
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  const n = writeIp(address, scratch, 0);
  if (n === 0) throw new NetlinkEncodeError(field, `${JSON.stringify(text)} is not an IPv4 or IPv6 address or prefix`);
  const family = n === 4 ? AF_INET : AF_INET6;
  const max = n === 4 ? 32 : 128;
  let length = defaultLength ?? max;
  if (slash >= 0) {
    length = parseLength(text, slash + 1);
    if (length < 0) throw new NetlinkEncodeError(field, `${JSON.stringify(text)} has no valid prefix length`);
  }
  if (!Number.isInteger(length) || length < 0 || length > max) {
    throw new NetlinkEncodeError(field, `prefix length ${length} is out of range 0..${max}`);
  }
  const p: Prefix = { family, address, length };
  if (n === 4) p.v4 = scratch.readUInt32BE(0);
  return p;
}

/** The decimal number text[from..] (1-3 digits), or -1. */
function parseLength(text: string, from: number): number {
  const n = text.length - from;
  if (n < 1 || n > 3) return -1;
  let v = 0;
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v;
}

/** A prefix as `ip` shows it in commands: 'default' for /0, else 'address/len'. */
export function formatPrefix(p: Prefix): string {
  return p.length === 0 ? 'default' : `${p.address}/${p.length}`;
}

export function familyName(family: number): string {
  return family === AF_INET ? 'inet' : family === AF_INET6 ? 'inet6' : `family ${family}`;
}

/** Checks an integer option of a request. */
export function checkUint(v: number, field: string, max = 0xffffffff, min = 0): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new NetlinkEncodeError(field, `must be an integer ${min}..${max}`);
  }
  return v;
}
