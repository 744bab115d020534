import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { formatAddress, hasHostBits, networkOfPrefix, parseAddress, prefixContainsAddress } from '../../../controller/model/ip.js';
import { ipTextProblem, nonUnicastReason, parseCidr, parseIp } from '../../../controller/schema/ip.js';
import { addressLikeText } from '../model/ip-text.js';

// What is an address, and its canonical text, is model/ip.ts's (test/controller/model/ip.test.ts);
// here: the sentences a user reads, and that they agree with the parser.
describe('IP parsing with reasons', () => {
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

  it('words each reason exactly', () => {
    const error = (text: string) => {
      const p = parseIp(text);
      return p.ok ? 'parsed' : p.error;
    };
    expect(error('192.0.2.010')).toBe('"192.0.2.010": "010" has a leading zero, which some tools read as octal; write 10');
    expect(error('192.0.2')).toBe('"192.0.2" is not an IPv4 address (it needs four dot-separated numbers)');
    expect(error('192.0.2.256')).toBe('"192.0.2.256" is not an IPv4 address (256 is more than 255)');
    expect(error('192.0..1')).toBe('"192.0..1" is not an IPv4 address ("" is not a number from 0 to 255)');
    expect(error('::ffff:192.0.2.1000')).toBe(
      '"::ffff:192.0.2.1000" is not an IPv6 address (the embedded IPv4 part is invalid: "192.0.2.1000" is not an IPv4 address ("1000" is not a number from 0 to 255))',
    );
    expect(error('2001:db8::1::2')).toBe('"2001:db8::1::2" is not an IPv6 address ("::" may appear only once)');
    expect(error('2001:db8:1:2:3:4:5:6:7')).toBe('"2001:db8:1:2:3:4:5:6:7" is not an IPv6 address (it has 9 groups instead of 8)');
    expect(error('2001:db8:1:2:3:4:5::6')).toBe('"2001:db8:1:2:3:4:5::6" is not an IPv6 address ("::" must stand for at least one zero group)');
    expect(error('fe80::1%eth0')).toBe('"fe80::1%eth0" is not an IPv6 address (zone ids such as %eth0 are not allowed here)');
    expect(error('2001:db8::12345')).toBe('"2001:db8::12345" is not an IPv6 address ("12345" is not a group of 1 to 4 hex digits)');
    expect(error('2001:db8:::1')).toBe('"2001:db8:::1" is not an IPv6 address (an empty group)');
    expect(error('host.example')).toBe('"host.example" is not an IPv4 or IPv6 address');
  });

  it('gives a reason exactly when the parser refuses, and the parser\'s value otherwise', () => {
    const text = fc.oneof(addressLikeText, fc.ipV4(), fc.ipV6());
    fc.assert(
      fc.property(text, (t) => {
        const model = parseAddress(t);
        expect([t, ipTextProblem(t) === undefined]).toEqual([t, model !== undefined]);
        const p = parseIp(t);
        if (model === undefined) expect(p).toEqual({ ok: false, error: ipTextProblem(t) });
        else expect(p.ok && p.value.family === model.family && formatAddress(p.value) === formatAddress(model)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('keeps host bits of an address and clears them for a network', () => {
    const p = parseCidr('192.0.2.77/26');
    expect(p.ok).toBe(true);
    if (!p.ok) return;
    expect(hasHostBits(p.value)).toBe(true);
    expect(formatAddress(networkOfPrefix(p.value))).toBe('192.0.2.64');
    const gw = parseIp('192.0.2.126');
    const outside = parseIp('192.0.2.128');
    expect(gw.ok && prefixContainsAddress(p.value, gw.value)).toBe(true);
    expect(outside.ok && prefixContainsAddress(p.value, outside.value)).toBe(false);
    const v6 = parseCidr('2001:db8:1::1/64');
    expect(v6.ok && formatAddress(networkOfPrefix(v6.value))).toBe('2001:db8:1::');
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
    expect(err('2001:db8::1')).toBe('"2001:db8::1" has no prefix length: write it as 2001:db8::1/128 for a single address, or with the subnet\'s length');
    expect(err('192.0.2.1/x')).toBe('"192.0.2.1/x": the prefix length must be a number from 0 to 32');
    expect(err('192.0.2.1000/24')).toBe('"192.0.2.1000" is not an IPv4 address ("1000" is not a number from 0 to 255)');
  });

  it('says why an address cannot be an interface address or a gateway', () => {
    const reason = (t: string) => {
      const p = parseIp(t);
      if (!p.ok) throw new Error(p.error);
      return nonUnicastReason(p.value);
    };
    expect(reason('0.0.0.0')).toBe('it is the unspecified address');
    expect(reason('::')).toBe('it is the unspecified address');
    expect(reason('224.0.0.1')).toBe('it is a multicast address');
    expect(reason('ff02::1')).toBe('it is a multicast address');
    expect(reason('255.255.255.255')).toBe('it is the limited broadcast address');
    expect(reason('::ffff:192.0.2.1')).toBe('IPv4-mapped IPv6 addresses are not interface addresses: write the IPv4 address');
    expect(reason('192.0.2.1')).toBeUndefined();
    expect(reason('fe80::1')).toBeUndefined();
  });
});
