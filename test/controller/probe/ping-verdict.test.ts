/** The ping probe's judgement: reply, timeout, and a refusal with the kernel's own words. */
import { describe, expect, it } from '@jest/globals';
import { judgeEcho } from '../../../controller/probe/index.js';

describe('judgeEcho', () => {
  it('passes on a reply, fails on a timeout or an error, saying which device', () => {
    expect(judgeEcho('192.0.2.254', 'tk-edge0', { ok: true, rttMs: 0.4321 })).toEqual({ passed: true, message: '192.0.2.254 answered an echo through tk-edge0 in 0.4 ms' });
    expect(judgeEcho('192.0.2.254', 'tk-edge0', { ok: false, timeoutMs: 1000 })).toEqual({
      passed: false,
      message: '192.0.2.254 did not answer an echo through tk-edge0 within 1000 ms',
    });
    expect(judgeEcho('2001:db8::1', 'tk-edge0', { ok: false, error: { code: 'ENETUNREACH', message: 'send an echo request: ENETUNREACH (Network is unreachable)' } })).toEqual({
      passed: false,
      message: 'echo to 2001:db8::1 through tk-edge0 failed: send an echo request: ENETUNREACH (Network is unreachable)',
    });
  });
});
