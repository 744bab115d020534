/**
 * What `apply` and `plan` say about probes: each device's spec.probes run against the namespace
 * (apply: retried until they pass or the device's probe timeout; plan: one attempt each, what the
 * kernel answers now), one line per probe.
 */
import type { DesiredDevice, Policy } from '../model/desired.js';
import { ProbeRunner, type ProbeResult } from '../probe/index.js';

export interface DeviceProbes {
  device: string;
  ifname: string;
  results: ProbeResult[];
}

/** Runs the probes of every device that has some; `once`: a single attempt each. */
export async function runDeviceProbes(devices: readonly DesiredDevice[], opts: { netns?: string; policy: Policy; once: boolean }): Promise<DeviceProbes[]> {
  const probed = devices.filter((d) => (d.probes?.length ?? 0) > 0);
  if (probed.length === 0) return [];
  const runner = new ProbeRunner({ policy: opts.policy, ...(opts.netns !== undefined ? { netns: opts.netns } : {}) });
  try {
    return await Promise.all(probed.map(async (d) => ({ device: d.name, ifname: d.ifname, results: await (opts.once ? runner.once(d) : runner.run(d)) })));
  } finally {
    runner.close();
  }
}

export function renderProbeLines(list: readonly DeviceProbes[]): string {
  return list
    .flatMap((d) => d.results.map((r) => `${d.ifname}: probe ${r.probe} ${r.passed ? 'passed' : 'FAILED'}${r.attempts > 1 ? ` (${r.attempts} attempts)` : ''}: ${r.message}\n`))
    .join('');
}

export const allPassed = (list: readonly DeviceProbes[]): boolean => list.every((d) => d.results.every((r) => r.passed));
