import { describe, expect, it } from '@jest/globals';
import { NativeError, isNativeError, netnsPath } from '../../tun-native/index.js';
import { native } from '../../tun-native/native.js';
import { describeKernel } from '../helpers/tiers.js';

describe('netnsPath', () => {
  it('maps a bare name to /run/netns and keeps paths', () => {
    expect(netnsPath('blue')).toBe('/run/netns/blue');
    expect(netnsPath('/proc/1/ns/net')).toBe('/proc/1/ns/net');
    expect(() => netnsPath('')).toThrow(TypeError);
  });
});

describeKernel('checkNetns', () => {
  it('throws a typed NativeError naming the namespace when it does not exist', () => {
    let caught: unknown;
    try {
      native.checkNetns('/run/netns/tunkeeper-does-not-exist');
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(NativeError);
    expect(isNativeError(caught, 'ENOENT')).toBe(true);
    const err = caught as NativeError;
    expect(err.syscall).toBe('open');
    expect(err.errno).toBe(2);
    expect(err.message).toContain('/run/netns/tunkeeper-does-not-exist');
  });

  it('enters an existing namespace', () => {
    expect(() => native.checkNetns('/proc/self/ns/net')).not.toThrow();
  });
});
