/**
 * The message for a refused open of /dev/net/tun (tun-native/tun-device-access.ts): the device
 * cgroup is named, with the fix, only when CAP_NET_ADMIN is effective; every other error passes
 * through untouched. test/runtime/device-access.test.ts gets the real refusal from a container.
 */
import { describe, expect, it } from '@jest/globals';
import { NativeError } from '../../tun-native/index.js';
import { DEVICE_CGROUP_DENIED, explainTunOpenError, netAdminEffective } from '../../tun-native/tun-device-access.js';

/** A NativeError as the addon makes it. */
function addonError(code: string, errno: number, syscall: string, message: string): NativeError {
  const err = new NativeError(message);
  Object.defineProperties(err, {
    code: { value: code, enumerable: true },
    errno: { value: errno, enumerable: true },
    syscall: { value: syscall, enumerable: true },
  });
  return err;
}

const status = (capEff: string) => `Name:\tnode\nCapInh:\t0000000000000000\nCapPrm:\t${capEff}\nCapEff:\t${capEff}\nNoNewPrivs:\t1\n`;
// What the chart's agent has (NET_ADMIN only), a container runtime's default set without NET_ADMIN, and full root.
const ONLY_NET_ADMIN = status('0000000000001000');
const RUNTIME_DEFAULT = status('00000000a80425fb');
const FULL = status('000001ffffffffff');

const refusedOpen = () =>
  addonError('EPERM', 1, 'open', 'open /dev/net/tun: EPERM (Operation not permitted): the process needs CAP_NET_ADMIN in the device\'s network namespace');

describe('netAdminEffective', () => {
  it('reads bit 12 of CapEff', () => {
    expect(netAdminEffective(ONLY_NET_ADMIN)).toBe(true);
    expect(netAdminEffective(FULL)).toBe(true);
    expect(netAdminEffective(RUNTIME_DEFAULT)).toBe(false);
    expect(netAdminEffective(status('0000000000000000'))).toBe(false);
  });

  it('is false when the status has no CapEff line', () => {
    expect(netAdminEffective('Name:\tnode\n')).toBe(false);
  });
});

describe('explainTunOpenError', () => {
  it('names the device cgroup and the fix for EPERM from open(/dev/net/tun) with CAP_NET_ADMIN effective', () => {
    const original = refusedOpen();
    const explained = explainTunOpenError(original, ONLY_NET_ADMIN) as NativeError;
    expect(explained).toBeInstanceOf(NativeError);
    expect({ code: explained.code, errno: explained.errno, syscall: explained.syscall }).toEqual({ code: 'EPERM', errno: 1, syscall: 'open' });
    expect(explained.message).toBe(`open /dev/net/tun: EPERM (Operation not permitted): ${DEVICE_CGROUP_DENIED}`);
    expect(explained.message).toContain('device cgroup');
    expect(explained.message).toContain('character device 10:200');
    expect(explained.message).toContain('tunDevice.resourceName');
    expect(explained.message).toContain('--device /dev/net/tun');
    // The capability is not blamed.
    expect(explained.message).not.toContain('needs CAP_NET_ADMIN');
    expect((explained as { cause?: unknown }).cause).toBe(original);
  });

  it('leaves the error alone when CAP_NET_ADMIN is not effective: then the capability may well be the cause', () => {
    const original = refusedOpen();
    expect(explainTunOpenError(original, RUNTIME_DEFAULT)).toBe(original);
  });

  it('leaves EPERM from TUNSETIFF alone (attaching to a device owned by another uid)', () => {
    const ioctl = addonError('EPERM', 1, 'ioctl(TUNSETIFF)', "create or attach to TUN device 'tk0': EPERM (Operation not permitted): ...");
    expect(explainTunOpenError(ioctl, ONLY_NET_ADMIN)).toBe(ioctl);
  });

  it('leaves other errnos of the open alone', () => {
    const missing = addonError('ENOENT', 2, 'open', 'open /dev/net/tun: ENOENT (No such file or directory): no such file');
    const denied = addonError('EACCES', 13, 'open', 'open /dev/net/tun: EACCES (Permission denied): permission denied');
    expect(explainTunOpenError(missing, FULL)).toBe(missing);
    expect(explainTunOpenError(denied, FULL)).toBe(denied);
  });

  it('leaves errors that are not the addon\'s alone', () => {
    const plain = new Error('open /dev/net/tun: EPERM');
    expect(explainTunOpenError(plain, FULL)).toBe(plain);
  });
});
