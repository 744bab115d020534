/**
 * PingSocket / icmpEcho argument checks: everything a caller can get wrong is refused before any
 * syscall, with ERR_INVALID_ARG and a message that says what and why. (No privileges needed: no
 * socket is opened.)
 */
import { describe, expect, it } from '@jest/globals';
import { icmpEcho, IcmpEchoTimeoutError, isIcmpEchoTimeoutError, isPingGroupRangeError, NativeError, PingSocket } from '../../tun-native/index.js';

const GOOD = { family: 4 as const, to: '192.0.2.254', ifname: 'tk-edge0', timeoutMs: 1000 };

async function refusal(p: () => Promise<unknown>): Promise<{ name: string; code: string; message: string }> {
  try {
    await p();
  } catch (e) {
    const err = e as Error & { code: string };
    return { name: err.name, code: err.code, message: err.message };
  }
  throw new Error('expected a refusal');
}

describe('icmpEcho argument checks', () => {
  it.each([
    [{ family: 5 }, 'RangeError', /family must be 4 or 6, got 5/],
    [{ family: '4' }, 'TypeError', /family must be 4 or 6/],
    [{ to: '2001:db8::1' }, 'RangeError', /to must be an IPv4 address, got "2001:db8::1"/],
    [{ family: 6, to: '192.0.2.1' }, 'RangeError', /to must be an IPv6 address/],
    [{ family: 6, to: 'fe80::1%eth0' }, 'RangeError', /to must be an IPv6 address/],
    [{ to: 'example.com' }, 'RangeError', /to must be an IPv4 address/],
    [{ to: 7 }, 'TypeError', /to must be an IP address/],
    [{ timeoutMs: 0 }, 'RangeError', /timeoutMs must be an integer from 1 to 2147483647, got 0/],
    [{ timeoutMs: 1.5 }, 'RangeError', /timeoutMs must be an integer/],
    [{ timeoutMs: 2 ** 31 }, 'RangeError', /timeoutMs must be an integer/],
    [{ timeoutMs: '1000' }, 'TypeError', /timeoutMs must be a number/],
    [{ sequence: 65536 }, 'RangeError', /sequence must be an integer from 0 to 65535/],
    [{ sequence: -1 }, 'RangeError', /sequence must be an integer/],
    [{ ifname: '' }, 'RangeError', /ifname must be a device name of 1 to 15 characters/],
    [{ ifname: 'a-name-too-long-0' }, 'RangeError', /ifname must be a device name/],
    [{ ifname: 'tk/0' }, 'RangeError', /ifname must be a device name/],
    [{ ifname: 'tk 0' }, 'RangeError', /ifname must be a device name/],
    [{ ifname: undefined }, 'TypeError', /ifname must be a device name \(a string\)/],
  ])('%j is refused', async (over, name, message) => {
    const r = await refusal(() => icmpEcho({ ...GOOD, ...(over as object) } as Parameters<typeof icmpEcho>[0]));
    expect(r.name).toBe(name);
    expect(r.code).toBe('ERR_INVALID_ARG');
    expect(r.message).toMatch(message);
  });

  it('refuses a missing options object, and PingSocket.open checks the same way', async () => {
    expect(await refusal(() => icmpEcho(undefined as never))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG' });
    expect(await refusal(() => PingSocket.open(null as never))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG' });
    expect(await refusal(() => PingSocket.open({ family: 4, ifname: 'x'.repeat(16) }))).toMatchObject({ code: 'ERR_INVALID_ARG' });
  });
});

describe('the typed errors', () => {
  it('a timeout says who did not answer through which device, code ETIMEDOUT, and is no NativeError', () => {
    const e = new IcmpEchoTimeoutError('192.0.2.254', 'tk-edge0', 7, 1000);
    expect(e.message).toBe('no echo reply from 192.0.2.254 through tk-edge0 within 1000 ms (sequence 7)');
    expect(e.code).toBe('ETIMEDOUT');
    expect(isIcmpEchoTimeoutError(e)).toBe(true);
    expect(e instanceof NativeError).toBe(false);
    expect(isPingGroupRangeError(e)).toBe(false);
  });
});
