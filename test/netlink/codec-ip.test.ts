/** IP and hardware address text: the form `ip -j` prints (inet_ntop), and strict parsing. */
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { canonicalIp, formatIPv4, formatIPv6, formatMac, parseIp, writeMac } from '../../netlink/codec/index.js';

const v6 = (hex: string): string => formatIPv6(Buffer.from(hex.replace(/ /g, ''), 'hex'), 0);

describe('IPv6 formatting follows glibc inet_ntop', () => {
  it.each([
    ['0000 0000 0000 0000 0000 0000 0000 0000', '::'],
    ['0000 0000 0000 0000 0000 0000 0000 0001', '::1'],
    ['0000 0000 0000 0000 0000 0000 0000 0002', '::2'],
    ['0001 0000 0000 0000 0000 0000 0000 0000', '1::'],
    ['2001 0db8 0000 0000 0000 0000 0000 0001', '2001:db8::1'],
    ['2001 0db8 0000 0001 0001 0001 0001 0001', '2001:db8:0:1:1:1:1:1'], // a single zero group stays
    ['2001 0db8 0000 0000 0001 0000 0000 0001', '2001:db8::1:0:0:1'], // first of two equal runs
    ['2001 0000 0000 0001 0000 0000 0000 0001', '2001:0:0:1::1'], // the longest run wins
    ['fe80 0000 0000 0000 00ff fe00 0010 0000', 'fe80::ff:fe00:10:0'],
    ['ABCD EF01 0000 0000 0000 0000 0000 0000', 'abcd:ef01::'], // lowercase
    ['0000 0000 0000 0000 0000 ffff c000 0201', '::ffff:192.0.2.1'], // IPv4-mapped
    ['0000 0000 0000 0000 0000 0000 c000 0201', '::192.0.2.1'], // IPv4-compatible
    ['0000 0000 0000 0000 0000 ffff 0000 0001', '::ffff:0.0.0.1'],
    ['0000 0000 0000 0000 0001 ffff c000 0201', '::1:ffff:c000:201'],
  ])('%s → %s', (hex, text) => {
    expect(v6(hex)).toBe(text);
  });

  it('agrees with the WHATWG URL serializer (RFC 5952) wherever glibc does not write a dotted tail', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.integer({ min: 0, max: 0xff }), (bytes, mask) => {
        // Zero out random groups so that runs of zeros are common.
        const b = Buffer.from(bytes);
        for (let g = 0; g < 8; g++) if (mask & (1 << g)) b.writeUInt16BE(0, 2 * g);
        const ours = formatIPv6(b, 0);
        expect(parseIp(ours)).toEqual(b);
        if (!ours.includes('.')) expect(ours).toBe(new URL(`http://[${ours}]/`).hostname.slice(1, -1));
      }),
      { numRuns: 500 },
    );
  });
});

describe('the formatting cache', () => {
  it('never answers with another address that shares its slot', () => {
    // 20,000 addresses in 1,024 slots: every slot is reused many times, in both orders.
    const v4 = Array.from({ length: 20000 }, (_, i) => Buffer.from([198, 18 + (i & 1), (i * 7919) >> 8, i & 255]));
    for (const b of [...v4, ...v4.reverse()]) expect(formatIPv4(b, 0)).toBe(Array.from(b).join('.'));
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (b) => {
        expect(parseIp(formatIPv6(b, 0))).toEqual(Buffer.from(b));
      }),
      { numRuns: 5000 },
    );
  });
});

describe('address parsing is strict', () => {
  it.each([
    '1.2.3.4',
    '0.0.0.0',
    '255.255.255.255',
    '::',
    '::1',
    '1::',
    '1:2:3:4:5:6:7::',
    '::2:3:4:5:6:7:8',
    '2001:DB8::A',
    '1:2:3:4:5:6:1.2.3.4',
    '::ffff:192.0.2.1',
    '2001:0db8:0000:0000:0000:0000:0000:0001',
  ])('accepts %s', (text) => {
    expect(parseIp(text)).toBeDefined();
  });

  it.each([
    '',
    ' ',
    '1.2.3',
    '1.2.3.4.5',
    '256.1.1.1',
    '01.2.3.4',
    '1..2.3',
    '1.2.3.4 ',
    '-1.2.3.4',
    '1:2:3:4:5:6:7:8:9',
    '1::2::3',
    ':1',
    '1:',
    ':::',
    '12345::',
    'g::',
    '::1.2.3',
    '1.2.3.4:5',
    '1:2:3:4:5:6:7:1.2.3.4',
    '::1.2.3.256',
    '::1%eth0',
    '1:2:3:4:5:6:7:8::',
  ])('rejects %j', (text) => {
    expect(parseIp(text)).toBeUndefined();
  });

  it('canonicalises what it accepts', () => {
    expect(canonicalIp('2001:DB8:0:0:0::1')).toBe('2001:db8::1');
    expect(canonicalIp('::FFFF:C000:0201')).toBe('::ffff:192.0.2.1');
    expect(canonicalIp('198.51.100.7')).toBe('198.51.100.7');
    expect(canonicalIp('nonsense')).toBeUndefined();
  });

  it('IPv4 text round-trips for every address shape', () => {
    fc.assert(
      fc.property(fc.ipV4(), (text) => {
        expect(canonicalIp(text)).toBe(text);
      }),
      { numRuns: 300 },
    );
  });
});

describe('hardware addresses', () => {
  it('format as lowercase colon-hex of any length', () => {
    expect(formatMac(Buffer.from('02000000000aff', 'hex'), 0, 6)).toBe('02:00:00:00:00:0a');
    expect(formatMac(Buffer.from('c0000201', 'hex'), 0, 4)).toBe('c0:00:02:01');
    expect(formatMac(Buffer.alloc(0), 0, 0)).toBe('');
  });
  it('parse back, rejecting malformed text', () => {
    const b = Buffer.alloc(8);
    expect(writeMac('AA:bb:0:1', b, 0)).toBe(4);
    expect(b.subarray(0, 4).toString('hex')).toBe('aabb0001');
    for (const bad of ['aa::bb', 'aa:bbb', 'zz', ':aa', 'aa:']) expect(writeMac(bad, b, 0)).toBe(-1);
  });
});
