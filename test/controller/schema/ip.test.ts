import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { isIPv4, isIPv6 } from 'node:net';
import { formatIp, hasHostBits, networkOf, parseCidr, parseIp, prefixContains } from '../../../controller/schema/ip.js';

const canonical = (text: string) => {
  const p = parseIp(text);
  if (!p.ok) throw new Error(p.error);
  return formatIp(p.value.family, p.value.bytes);
};

describe('IP parsing and canonical form', () => {
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
  });

  it('refuses ambiguous or malformed text with a reason', () => {
    const error = (text: string) => {
      const p = parseIp(text);
      return p.ok ? 'parsed' : p.error;
    };
    expect(error('192.0.2.010')).toContain('leading zero');
    expect(error('192.0.2')).toContain('four');
    expect(error('192.0.2.256')).toContain('256 is more than 255');
    expect(error('2001:db8::1::2')).toContain('only once');
    expect(error('2001:db8:1:2:3:4:5:6:7')).toContain('9 groups');
    expect(error('2001:db8:1:2:3:4:5::6')).toContain('at least one zero group');
    expect(error('fe80::1%eth0')).toContain('zone');
    expect(error('2001:db8::12345')).toContain('1 to 4 hex digits');
    expect(error('1.2.3.4::')).not.toBe('parsed');
    expect(error('host.example')).toContain('not an IPv4 or IPv6 address');
  });

  it('agrees with node:net on what is an address, and round-trips through the canonical form', () => {
    const v6 = fc.uint8Array({ minLength: 16, maxLength: 16 });
    fc.assert(
      fc.property(v6, (bytes) => {
        const text = formatIp(6, bytes);
        expect(isIPv6(text)).toBe(true);
        const back = parseIp(text);
        expect(back.ok && Buffer.from(back.value.bytes).equals(Buffer.from(bytes))).toBe(true);
        expect(text).toBe(text.toLowerCase());
      }),
    );
    fc.assert(
      fc.property(fc.ipV6(), (text) => {
        expect(parseIp(text).ok).toBe(true);
      }),
    );
    fc.assert(
      fc.property(fc.ipV4(), (text) => {
        const p = parseIp(text);
        expect(p.ok).toBe(true);
        if (p.ok) expect(isIPv4(formatIp(4, p.value.bytes))).toBe(true);
      }),
    );
  });

  it('keeps host bits of an address and clears them for a network', () => {
    const p = parseCidr('192.0.2.77/26');
    expect(p.ok).toBe(true);
    if (!p.ok) return;
    expect(hasHostBits(p.value)).toBe(true);
    expect(formatIp(4, networkOf(p.value).bytes)).toBe('192.0.2.64');
    const gw = parseIp('192.0.2.126');
    const outside = parseIp('192.0.2.128');
    expect(gw.ok && prefixContains(p.value, gw.value)).toBe(true);
    expect(outside.ok && prefixContains(p.value, outside.value)).toBe(false);
    const v6 = parseCidr('2001:db8:1::1/64');
    expect(v6.ok && formatIp(6, networkOf(v6.value).bytes)).toBe('2001:db8:1::');
  });

  it('needs a prefix length and keeps it within the family', () => {
    const err = (t: string) => {
      const p = parseCidr(t);
      return p.ok ? 'parsed' : p.error;
    };
    expect(err('192.0.2.1')).toContain('192.0.2.1/32');
    expect(err('192.0.2.1/33')).toContain('0 to 32');
    expect(err('2001:db8::/129')).toContain('0 to 128');
    expect(err('192.0.2.0/024')).toContain('0 to 32');
    expect(err('0.0.0.0/0')).toBe('parsed');
  });
});
