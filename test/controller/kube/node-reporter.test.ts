/**
 * NodeReporter's Events at fleet scale: a declared change applied as declared is told by the
 * status (one TunNodeState write), not by an Event from every node (bench fleet-converge measured
 * one Event write per node per change before); drift put right is still a `Repaired` Event.
 */
import { describe, expect, it } from '@jest/globals';
import type { ClusterSnapshot } from '../../../controller/kube/cluster-source.js';
import type { EventRecorder, TunEvent } from '../../../controller/kube/events.js';
import { NodeReporter } from '../../../controller/kube/node-reporter.js';
import type { StatusWriter } from '../../../controller/kube/status-writer.js';
import type { PassReport, WakeReason } from '../../../controller/loop/loop.js';
import type { Action } from '../../../controller/plan/actions.js';
import type { TunNodeStateStatus } from '../../../controller/schema/tunnodestate.js';
import { createLogger } from '../../../controller/telemetry/logger.js';

function reporter() {
  const events: TunEvent[] = [];
  const writes: TunNodeStateStatus[] = [];
  const writer = { update: (_uid: string, s: TunNodeStateStatus) => writes.push(s), read: async () => undefined } as unknown as StatusWriter;
  const recorder = { record: (e: TunEvent) => events.push(e) } as unknown as EventRecorder;
  const r = new NodeReporter({ writer, events: recorder, logger: createLogger('silent'), conflicts: () => [], source: 'kube' });
  return { r, events, writes };
}

const snapshot = (generation: number): ClusterSnapshot => ({
  devices: [],
  complete: true,
  synced: true,
  connected: true,
  fromDisk: false,
  node: { name: 'n1', uid: 'uid-n1', labels: {} },
  objects: [{ name: 'edge', ifname: 'tk-edge0', generation }],
  generations: { edge: generation },
  problems: [],
});

const setMtu: Action = { type: 'set-link', device: 'edge', ifname: 'tk-edge0', ifindex: 7, set: { mtu: 1380 }, changes: [], sideEffects: [], reason: 'tk-edge0: mtu 1400 → 1380' };

const pass = (reasons: WakeReason[], actions: Action[]): PassReport => ({
  input: { desired: [], prune: true },
  reasons,
  startedAt: 0,
  durationMs: 1,
  result: {
    outcome: 'converged',
    plan: { actions, refusals: [], conflicts: [], devices: [], retained: [], prune: true },
    applied: actions.length,
    failures: [],
    devices: [{ device: 'edge', ifname: 'tk-edge0', ifindex: 7, status: 'ready', findings: [], failures: [] }],
    repairs: {},
  },
});

describe('NodeReporter Events', () => {
  it('records no Event for a declared change applied as declared; the status says it', () => {
    const { r, events, writes } = reporter();
    r.sourceChanged(snapshot(2));
    r.passStarted();
    r.passFinished(pass(['desired-changed'], [setMtu]));
    expect(events).toEqual([]);
    const last = writes[writes.length - 1]!;
    expect(last.devices?.[0]).toMatchObject({ name: 'edge', observedGeneration: 2 });
    expect(last.devices?.[0]?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
  });

  it('records no Event for the first apply at startup either', () => {
    const { r, events } = reporter();
    r.sourceChanged(snapshot(1));
    r.passStarted();
    r.passFinished(pass(['startup'], [setMtu]));
    expect(events).toEqual([]);
  });

  it('still records drift put right as Repaired', () => {
    const { r, events } = reporter();
    r.sourceChanged(snapshot(2));
    r.passStarted();
    r.passFinished(pass(['netlink-event'], [setMtu]));
    expect(events).toEqual([expect.objectContaining({ device: 'edge', type: 'Normal', reason: 'Repaired', note: 'tk-edge0: mtu 1400 → 1380' })]);
  });
});
