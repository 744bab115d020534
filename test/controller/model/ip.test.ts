import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { isIP, isIPv4, isIPv6 } from 'node:net';
import type { IpFamily } from '../../../controller/model/desired.js';
import {
  canonicalIp,
  familyBits,
  formatAddress,
  formatIp,
  formatPrefix,
  hasHostBits,
  isIPv4Mapped,
  isIPv6LinkLocal,
  isIPv6LinkLocalAddress,
  isLimitedBroadcast,
  isMulticast,
  isUnspecified,
  networkOf,
  networkOfPrefix,
  parseAddress,
  parseIp,
  prefixContains,
  prefixContainsAddress,
  sameAddress,
  type IpAddress,
  type IpPrefix,
} from '../../../controller/model/ip.js';
import { addressLikeText } from './ip-text.js';

const canonical = (text: string) => {
  const a = parseAddress(text);
  if (a === undefined) throw new Error(`${text} did not parse`);
  return formatAddress(a);
};

/** The bytes as one number: the oracle the byte arithmetic is checked against. */
const asBigint = (bytes: Uint8Array) => BigInt(`0x${Buffer.from(bytes).toString('hex')}`);
const familyOfBytes = (bytes: Uint8Array): IpFamily => (bytes.length === 4 ? 4 : 6);

const addressBytes = fc.oneof(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.uint8Array({ minLength: 16, maxLength: 16 }));

/** An address, a prefix length of its family, and a second address of the family that shares a random number of leading bits with it. */
const prefixCase = addressBytes.chain((bytes) =>
  fc.record({
    bytes: fc.constant(bytes),
    prefixLength: fc.integer({ min: 0, max: bytes.length * 8 }),
    shared: fc.integer({ min: 0, max: bytes.length * 8 }),
    other: fc.uint8Array({ minLength: bytes.length, maxLength: bytes.length }),
  }),
);

/** `other` with its first `shared` bits taken from `bytes`. */
function sharing(bytes: Uint8Array, other: Uint8Array, shared: number): Uint8Array {
  const out = Uint8Array.from(other);
  for (let bit = 0; bit < shared; bit++) {
    const m = 0x80 >> (bit & 7);
    out[bit >> 3] = (out[bit >> 3]! & ~m) | (bytes[bit >> 3]! & m);
  }
  return out;
}

describe('IP text: parsing and canonical form', () => {
  it('writes IPv6 as RFC 5952 says', () => {
    expect(canonical('2001:DB8:0:0:0:0:0:1')).toBe('2001:db8::1');
    expect(canonical('2001:0db8:0000:0001:0000:0000:0000:0001')).toBe('2001:db8:0:1::1'); // longest run wins
    expect(canonical('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1'); // first of equal runs
    expect(canonical('2001:db8:0:1:1:1:1:1')).toBe('2001:db8:0:1:1:1:1:1'); // a single zero group stays
    expect(canonical('::')).toBe('::');
    expect(canonical('::1')).toBe('::1');
    expect(canonical('fe80::')).toBe('fe80::');
    // The kernel side's text (inet_ntop, as the codec and `ip -j` print it): dotted tails only for
    // ::a.b.c.d and ::ffff:a.b.c.d, so desired strings compare equal to observed ones.
    expect(canonical('::ffff:192.0.2.1')).toBe('::ffff:192.0.2.1');
    expect(canonical('::102:304')).toBe('::1.2.3.4');
    expect(canonical('2001:db8::192.0.2.1')).toBe('2001:db8::c000:201');
    expect(canonicalIp(6, '2001:DB8:0:0:0:0:0:1')).toBe('2001:db8::1');
    expect(canonicalIp(4, '198.51.100.7')).toBe('198.51.100.7');
  });

  it('refuses ambiguous or malformed text', () => {
    for (const text of [
      '192.0.2.010', // octal to inet_aton, decimal to a human
      '192.0.2',
      '192.0.2.256',
      '2001:db8::1::2',
      '2001:db8:1:2:3:4:5:6:7',
      '2001:db8:1:2:3:4:5::6',
      'fe80::1%eth0', // zone ids mean nothing in a declaration
      '2001:db8::12345',
      '1.2.3.4::',
      '::192.0.2.01',
      'host.example',
      '',
    ]) {
      expect([text, parseAddress(text)]).toEqual([text, undefined]);
    }
  });

  it('takes exactly what node:net calls an address, less zone ids', () => {
    const text = fc.oneof(addressLikeText, fc.ipV4(), fc.ipV6(), addressBytes.map((b) => formatAddress({ family: familyOfBytes(b), bytes: b })));
    fc.assert(
      fc.property(text, (t) => {
        const a = parseAddress(t);
        expect([t, a !== undefined]).toEqual([t, isIP(t) !== 0 && !t.includes('%')]);
        if (a !== undefined) expect(a.family).toBe(isIP(t));
      }),
      { numRuns: 1000 },
    );
  });

  it('round-trips bytes through the canonical text, which node:net accepts', () => {
    fc.assert(
      fc.property(addressBytes, (bytes) => {
        const family = familyOfBytes(bytes);
        const text = formatAddress({ family, bytes });
        expect(family === 4 ? isIPv4(text) : isIPv6(text)).toBe(true);
        expect(text).toBe(text.toLowerCase());
        const back = parseAddress(text);
        expect(back?.family).toBe(family);
        expect(Buffer.from(back!.bytes).equals(Buffer.from(bytes))).toBe(true);
        expect(canonicalIp(family, text)).toBe(text);
      }),
    );
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (text) => {
        const family = isIP(text) as IpFamily;
        const once = canonicalIp(family, text);
        expect(canonicalIp(family, once)).toBe(once);
        expect(canonical(text)).toBe(once);
      }),
    );
  });

  it('counts addresses as numbers (bigint) that agree with the bytes', () => {
    fc.assert(
      fc.property(addressBytes, (bytes) => {
        const family = familyOfBytes(bytes);
        const text = formatAddress({ family, bytes });
        expect(parseIp(family, text)).toBe(asBigint(bytes));
        expect(formatIp(family, asBigint(bytes))).toBe(text);
      }),
    );
  });

  it('refuses text of the other family, or no address, where a family is given', () => {
    expect(() => networkOf(4, '2001:db8::1', 24)).toThrow(TypeError);
    expect(() => networkOf(6, '192.0.2.1', 24)).toThrow(TypeError);
    expect(() => prefixContains(6, '192.0.2.0', 24, '192.0.2.1')).toThrow(TypeError);
    expect(() => prefixContains(4, '192.0.2.0', 24, '2001:db8::1')).toThrow(TypeError);
    expect(() => isIPv6LinkLocal('192.0.2.1')).toThrow(TypeError);
    expect(() => canonicalIp(4, '192.0.2.010')).toThrow(TypeError);
    expect(() => parseIp(6, 'nonsense')).toThrow(TypeError);
  });
});

describe('IP prefixes: network, containment, host bits', () => {
  it('keeps host bits of an address and clears them for a network', () => {
    const p: IpPrefix = { ...parseAddress('192.0.2.77')!, prefixLength: 26 };
    expect(hasHostBits(p)).toBe(true);
    expect(formatPrefix(networkOfPrefix(p))).toBe('192.0.2.64/26');
    expect(hasHostBits(networkOfPrefix(p))).toBe(false);
    expect(formatAddress(p)).toBe('192.0.2.77'); // networkOfPrefix copies
    expect(networkOf(4, '192.0.2.77', 26)).toBe('192.0.2.64');
    expect(prefixContainsAddress(p, parseAddress('192.0.2.126')!)).toBe(true);
    expect(prefixContainsAddress(p, parseAddress('192.0.2.128')!)).toBe(false);
    expect(prefixContains(4, '192.0.2.77', 26, '192.0.2.126')).toBe(true);
    expect(prefixContains(4, '192.0.2.77', 26, '192.0.2.128')).toBe(false);
    expect(networkOf(6, '2001:db8:1::1', 64)).toBe('2001:db8:1::');
    expect(networkOf(6, '2001:db8:1:ffff::1', 49)).toBe('2001:db8:1:8000::');
    expect(networkOf(4, '198.51.100.7', 0)).toBe('0.0.0.0');
    expect(networkOf(4, '198.51.100.7', 32)).toBe('198.51.100.7');
    // Families never contain each other, even where the bytes would match.
    expect(prefixContainsAddress({ ...parseAddress('::')!, prefixLength: 0 }, parseAddress('192.0.2.1')!)).toBe(false);
  });

  it('computes networks, host bits and containment as bigint arithmetic does, in text and in bytes alike', () => {
    fc.assert(
      fc.property(prefixCase, ({ bytes, prefixLength, shared, other }) => {
        const family = familyOfBytes(bytes);
        const hostBits = BigInt(familyBits(family) - prefixLength);
        const value = asBigint(bytes);
        const net = (value >> hostBits) << hostBits;
        const prefix: IpPrefix = { family, bytes, prefixLength };
        const text = formatAddress(prefix);

        expect(formatIp(family, net)).toBe(networkOf(family, text, prefixLength));
        expect(formatAddress(networkOfPrefix(prefix))).toBe(networkOf(family, text, prefixLength));
        expect(hasHostBits(prefix)).toBe(net !== value);

        const o: IpAddress = { family, bytes: sharing(bytes, other, shared) };
        const inside = asBigint(o.bytes) >> hostBits === value >> hostBits;
        expect(prefixContainsAddress(prefix, o)).toBe(inside);
        expect(prefixContains(family, text, prefixLength, formatAddress(o))).toBe(inside);
        expect(sameAddress(prefix, o)).toBe(asBigint(o.bytes) === value);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('IP special ranges', () => {
  it('knows link-local, multicast, unspecified, broadcast and IPv4-mapped addresses', () => {
    const a = (t: string) => parseAddress(t)!;
    expect(isIPv6LinkLocal('fe80::1')).toBe(true);
    expect(isIPv6LinkLocal('febf:ffff::1')).toBe(true);
    expect(isIPv6LinkLocal('fec0::1')).toBe(false);
    expect(isIPv6LinkLocal('2001:db8::1')).toBe(false);
    expect(isIPv6LinkLocalAddress(a('fe80::5'))).toBe(true);
    expect(isIPv6LinkLocalAddress(a('192.0.2.1'))).toBe(false);
    expect(isMulticast(a('224.0.0.1'))).toBe(true);
    expect(isMulticast(a('239.255.255.255'))).toBe(true);
    expect(isMulticast(a('240.0.0.1'))).toBe(false);
    expect(isMulticast(a('ff02::1'))).toBe(true);
    expect(isMulticast(a('fe80::1'))).toBe(false);
    expect(isUnspecified(a('0.0.0.0'))).toBe(true);
    expect(isUnspecified(a('::'))).toBe(true);
    expect(isUnspecified(a('::1'))).toBe(false);
    expect(isLimitedBroadcast(a('255.255.255.255'))).toBe(true);
    expect(isLimitedBroadcast(a('198.51.100.255'))).toBe(false);
    expect(isIPv4Mapped(a('::ffff:192.0.2.1'))).toBe(true);
    expect(isIPv4Mapped(a('::192.0.2.1'))).toBe(false);
    expect(isIPv4Mapped(a('192.0.2.1'))).toBe(false);
  });

  it('agrees with the ranges written as numbers', () => {
    fc.assert(
      fc.property(addressBytes, fc.constantFrom(0, 0xfe, 0xff, 0xe0), (raw, first) => {
        const bytes = Uint8Array.from(raw);
        if (first !== 0) bytes[0] = first; // land in the interesting ranges often
        const family = familyOfBytes(bytes);
        const a: IpAddress = { family, bytes };
        const v = asBigint(bytes);
        expect(isUnspecified(a)).toBe(v === 0n);
        expect(isMulticast(a)).toBe(family === 4 ? v >> 28n === 0xen : v >> 120n === 0xffn);
        expect(isLimitedBroadcast(a)).toBe(family === 4 && v === 0xffffffffn);
        expect(isIPv4Mapped(a)).toBe(family === 6 && v >> 32n === 0xffffn);
        const linkLocal = family === 6 && v >> 118n === 0x3fan;
        expect(isIPv6LinkLocalAddress(a)).toBe(linkLocal);
        if (family === 6) expect(isIPv6LinkLocal(formatAddress(a))).toBe(linkLocal);
      }),
      { numRuns: 1000 },
    );
  });
});
