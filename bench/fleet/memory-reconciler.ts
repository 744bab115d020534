/**
 * The kernel side of a simulated node (fleet-converge): a reconciler whose "kernel" is a map of
 * device name → the declaration last applied. It always succeeds, but it answers like the real
 * one: a pass after a declaration changed applies one `set-link` per changed device (so the
 * reporter records its `Applied` Event, as a real node does), a pass with nothing to do applies
 * nothing (`in-sync`), and pruning removes what is no longer declared. Everything above it — the
 * loop, the rollout gate, the reporter, the status writer, Events — is the agent's own code.
 */
import type { AgentReconciler } from '../../controller/agent/agent.js';
import type { Action, DeviceOutcome } from '../../controller/plan/actions.js';
import type { DeviceReport, ReconcileInput, ReconcileResult } from '../../controller/reconcile/types.js';

export function createMemoryReconciler(): AgentReconciler {
  const kernel = new Map<string, { spec: string; ifname: string; ifindex: number }>();
  let nextIndex = 10;
  const reconcile = async (input: ReconcileInput): Promise<ReconcileResult> => {
    const actions: Action[] = [];
    const devices: DeviceReport[] = [];
    const outcomes: DeviceOutcome[] = [];
    const held = new Set(input.hold ?? []);
    const wanted = new Set<string>();
    for (const d of input.desired) {
      wanted.add(d.name);
      const have = kernel.get(d.name);
      const ifindex = have?.ifindex ?? nextIndex++;
      if (held.has(d.name)) {
        devices.push({ device: d.name, ifname: d.ifname, ifindex, status: 'held', findings: [], failures: [] });
        outcomes.push({ device: d.name, ifname: d.ifname, origin: d.origin, ifindex, status: 'held' });
        continue;
      }
      // origin is where the declaration came from, not what the kernel holds.
      const spec = JSON.stringify({ ...d, origin: undefined });
      if (have?.spec !== spec) {
        actions.push({ type: 'set-link', device: d.name, ifname: d.ifname, ifindex, set: { mtu: d.mtu, up: d.up }, changes: [], sideEffects: [], reason: `${d.ifname}: set as declared (mtu ${d.mtu})` });
        kernel.set(d.name, { spec, ifname: d.ifname, ifindex });
      }
      devices.push({ device: d.name, ifname: d.ifname, ifindex, status: 'ready', findings: [], failures: [] });
      outcomes.push({ device: d.name, ifname: d.ifname, origin: d.origin, ifindex, status: have?.spec === spec ? 'in-sync' : have ? 'update' : 'create' });
    }
    if (input.prune) {
      for (const [name, have] of kernel) {
        if (wanted.has(name)) continue;
        kernel.delete(name);
        actions.push({ type: 'delete-device', device: name, ifname: have.ifname, ifindex: have.ifindex, sideEffects: [], reason: `${have.ifname}: no longer declared` });
      }
    }
    return {
      outcome: 'converged',
      plan: { actions, refusals: [], conflicts: [], devices: outcomes, retained: [], prune: input.prune },
      applied: actions.length,
      failures: [],
      devices,
      repairs: {},
    };
  };
  return { reconcile, close: () => undefined };
}
