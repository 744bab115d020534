/**
 * The agent's policy as declaration problems, for `tunkeeper validate`: a device whose name the
 * agent may not manage (lo, eth0, anything outside the allowed prefixes) or a default route it may
 * not own would be refused by every reconcile (plan reports it as Refused); validate says so
 * first, at the field, so CI catches it before the file reaches a node. The agent itself keeps
 * reading such files as valid and refuses at plan time, where the refusal is visible per device.
 */
import type { DesiredDevice, Policy } from '../model/desired.js';
import { ifnameRefusal } from '../model/ownership.js';
import type { FieldPath, FieldProblem } from './problem.js';

export function policyProblems(device: DesiredDevice, policy: Policy, ifnamePath: FieldPath): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const refusal = ifnameRefusal(device.ifname, policy);
  if (refusal !== undefined) problems.push({ path: ifnamePath, detail: `the agent refuses this device: ${refusal}` });
  device.routes.forEach((r, i) => {
    if (r.dstLength === 0 && !policy.allowDefaultRoute) {
      problems.push({
        path: ['spec', 'routes', i, 'to'],
        detail: 'is a default route, which the agent may not own (allowDefaultRoute is off; enable it in the agent settings or --allow-default-route)',
      });
    }
  });
  return problems;
}
