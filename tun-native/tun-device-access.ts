/**
 * The one rule for a refused open of /dev/net/tun. Opening the device node needs no capability
 * (it is mode 0666); what refuses it with EPERM is the device cgroup of a container whose runtime
 * did not put character device 10:200 on its allowlist. The addon's generic EPERM hint ("needs
 * CAP_NET_ADMIN") then sends the operator the wrong way, so when CAP_NET_ADMIN is in fact
 * effective the error is replaced by one that names the device cgroup and the fix.
 */
import { readFileSync } from 'node:fs';
import { isNativeError, type NativeError } from './errors.js';
import { nativeError } from './tun-errors.js';

const CAP_NET_ADMIN = 12n;

/** Whether a /proc/<pid>/status text shows CAP_NET_ADMIN in the effective set. */
export function netAdminEffective(procStatus: string): boolean {
  const m = /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(procStatus);
  if (!m) return false;
  return ((BigInt(`0x${m[1]}`) >> CAP_NET_ADMIN) & 1n) === 1n;
}

function ownStatus(): string {
  try {
    return readFileSync('/proc/thread-self/status', 'utf8');
  } catch {
    return '';
  }
}

/** The text after "open /dev/net/tun: EPERM (Operation not permitted): ". */
export const DEVICE_CGROUP_DENIED =
  "the container's device cgroup does not allow the TUN device (character device 10:200), though CAP_NET_ADMIN is effective: " +
  'the capability is not what is missing. The container runtime does not allow /dev/net/tun by default ' +
  '(runc 1.2.0 to 1.2.3, crun of 2022 to 2024); give the container the device itself: with the Helm chart, set ' +
  'tunDevice.resourceName to the device plugin resource that hands out /dev/net/tun (charts/tunkeeper/README.md, "Device access"); ' +
  'with podman or docker, --device /dev/net/tun';

/**
 * `err` as the caller should see it: for EPERM from open(/dev/net/tun) while CAP_NET_ADMIN is
 * effective, a NativeError (same code, errno and syscall) that says the device cgroup refused it;
 * anything else unchanged. `procStatus` is for tests; by default the calling thread's own.
 */
export function explainTunOpenError(err: unknown, procStatus: string = ownStatus()): unknown {
  if (!isNativeError(err, 'EPERM') || err.syscall !== 'open' || !err.message.startsWith('open /dev/net/tun:')) return err;
  if (!netAdminEffective(procStatus)) return err;
  const explained: NativeError = nativeError('EPERM', 'open', 'open /dev/net/tun', DEVICE_CGROUP_DENIED);
  Object.defineProperty(explained, 'cause', { value: err, enumerable: false });
  return explained;
}
