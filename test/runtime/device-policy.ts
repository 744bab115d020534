/**
 * Which devices the container's device cgroup allows, by the runtime being played.
 *
 * - 'runc-1.1': what this machine's runc does: the OCI spec's rules, then runc's built-in
 *   allowlist appended, which in runc 1.1 includes c 10:200 (/dev/net/tun) for every container.
 * - 'without-tun': a runtime whose built-in list lacks tun (crun; runc 1.2.0 to 1.2.3): only the
 *   spec's own rules allow c 10:200. Played with the real kernel: after `runc create` (podman
 *   init), while the container's process has not started, the rule runc appended for tun is
 *   taken back in the container's own cgroup v1 devices controller, unless the OCI spec itself
 *   allows the device (as it does when the container was given the device, e.g. by a device
 *   plugin through the kubelet). The agent then meets the kernel's own EPERM on open.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type DevicePolicy = 'runc-1.1' | 'without-tun';

export interface DevicePolicyOutcome {
  policy: DevicePolicy;
  /** Whether the OCI spec's own device rules allow c 10:200. */
  specAllowsTun: boolean;
  /** The container's devices.list after the policy was applied. */
  devicesList: string[];
}

interface DeviceRule {
  allow: boolean;
  type?: string;
  major?: number;
  minor?: number;
  access?: string;
}

/** Whether the spec's rules, applied in order as the kernel would, end with c 10:200 readable and writable. */
export function specAllowsTun(spec: object): boolean {
  const rules = ((spec as { linux?: { resources?: { devices?: DeviceRule[] } } }).linux?.resources?.devices ?? []) as DeviceRule[];
  let allowed = false;
  for (const r of rules) {
    const type = r.type ?? 'a';
    const matches = (type === 'a' || type === 'c') && (r.major === undefined || r.major === -1 || r.major === 10) && (r.minor === undefined || r.minor === -1 || r.minor === 200);
    const rw = (r.access ?? 'rwm').includes('r') && (r.access ?? 'rwm').includes('w');
    if (matches && rw) allowed = r.allow;
    else if (matches && !r.allow) allowed = false;
  }
  return allowed;
}

/** The container's directory in the cgroup v1 devices hierarchy, from its process's /proc/PID/cgroup. */
export function devicesCgroup(pid: number): string {
  const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8')
    .split('\n')
    .find((l) => l.split(':')[1]?.split(',').includes('devices'));
  if (!line) throw new Error(`process ${pid} is in no cgroup v1 devices hierarchy: the device policy needs one`);
  return join('/sys/fs/cgroup/devices', line.split(':').slice(2).join(':'));
}

export function applyDevicePolicy(policy: DevicePolicy, pid: number, spec: object): DevicePolicyOutcome {
  const dir = devicesCgroup(pid);
  const fromSpec = specAllowsTun(spec);
  if (policy === 'without-tun' && !fromSpec) writeFileSync(join(dir, 'devices.deny'), 'c 10:200 rwm');
  const devicesList = readFileSync(join(dir, 'devices.list'), 'utf8').trim().split('\n');
  return { policy, specAllowsTun: fromSpec, devicesList };
}
