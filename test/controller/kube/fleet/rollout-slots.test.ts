/**
 * The leader's half of a rollout: slots granted from the nodes' own reports (built with the
 * agents' builder, so the contract between node and leader is what is tested), halts, reclaims.
 */
import { describe, expect, it } from '@jest/globals';
import { buildDeviceStatus } from '../../../../controller/kube/conditions.js';
import { summarize } from '../../../../controller/kube/fleet/device-summary.js';
import { grantSlots, resolveMaxUnavailable, type SlotInput } from '../../../../controller/kube/fleet/rollout-slots.js';
import type { DeviceView } from '../../../../controller/rollout/gate.js';
import type { TunDeviceStatus } from '../../../../controller/schema/tunnodestate.js';
import { device } from '../../../helpers/devices.js';

const T0 = Date.parse('2026-12-07T10:00:00Z');
const S = 1000;
const G = 4;
const ready = { device: 'edge', ifname: 'tk-edge0', ifindex: 7, status: 'ready' as const, findings: [], failures: [] };
const probeKeys = ['route 198.51.100.7'];

function view(phase: DeviceView['phase'], extra: Partial<DeviceView> = {}): DeviceView {
  return { name: 'edge', phase, generation: G, inForceGeneration: G, nothingInForce: false, probeKeys, probes: [], ...extra };
}

/** What a node's agent writes for device edge. */
const says = {
  waiting: () => buildDeviceStatus({ name: 'edge', generation: G - 1, report: ready, rollout: view('waiting', { inForceGeneration: G - 1 }) }, undefined, '2026-12-07T10:00:00Z'),
  probing: () => buildDeviceStatus({ name: 'edge', generation: G, report: ready, rollout: view('probing') }, undefined, '2026-12-07T10:00:00Z'),
  settled: () => buildDeviceStatus({ name: 'edge', generation: G, report: ready, rollout: view('settled') }, undefined, '2026-12-07T10:00:00Z'),
  rolledBack: () =>
    buildDeviceStatus(
      {
        name: 'edge',
        generation: G,
        report: ready,
        rollout: view('rolledBack', {
          inForceGeneration: G - 1,
          good: { device: device('edge'), generation: G - 1 },
          rejected: { device: device('edge'), generation: G, probe: 'route 198.51.100.7', message: '198.51.100.7 → dev eth1 via a foreign route 198.51.100.0/25 proto static', at: '2026-12-07T10:00:00Z' },
        }),
      },
      undefined,
      '2026-12-07T10:00:00Z',
    ),
};

function slots(nodes: Record<string, TunDeviceStatus | undefined>, over: Partial<SlotInput> = {}) {
  return grantSlots({ generation: G, maxUnavailable: 1, probeTimeoutSeconds: 30, nodes: new Map(Object.entries(nodes)), previous: undefined, now: T0, slotGraceMs: 60 * S, ...over });
}

describe('rollout slots', () => {
  it('resolves a percentage against the selected nodes, rounded up, at least one', () => {
    expect(resolveMaxUnavailable('25%', 10)).toBe(3);
    expect(resolveMaxUnavailable('1%', 10)).toBe(1);
    expect(resolveMaxUnavailable('100%', 7)).toBe(7);
    expect(resolveMaxUnavailable(2, 10)).toBe(2);
  });

  it('grants maxUnavailable waiting nodes by name, and the next one only when a node has answered', () => {
    const first = slots({ c: says.waiting(), a: says.waiting(), b: says.waiting() });
    expect(first.rollout).toMatchObject({ generation: G, maxUnavailable: 1, granted: [{ node: 'a' }], done: 0, waiting: 2 });
    expect(first.recheckAt).toBe(T0 + 90 * S);

    const moving = slots({ a: says.probing(), b: says.waiting(), c: says.waiting() }, { previous: first.rollout, now: T0 + 5 * S });
    expect(moving.rollout.granted.map((g) => g.node)).toEqual(['a']);

    const next = slots({ a: says.settled(), b: says.waiting(), c: says.waiting() }, { previous: moving.rollout, now: T0 + 10 * S });
    expect(next.rollout).toMatchObject({ granted: [{ node: 'b' }], done: 1, waiting: 1 });

    const doneAll = slots({ a: says.settled(), b: says.settled(), c: says.settled() }, { previous: next.rollout, now: T0 + 20 * S });
    expect(doneAll.rollout).toMatchObject({ granted: [], done: 3, waiting: 0 });
    expect(doneAll.recheckAt).toBeUndefined();
  });

  it('halts on a rollback: nobody else is granted the generation; a newer generation starts afresh', () => {
    const first = slots({ a: says.waiting(), b: says.waiting() });
    const halted = slots({ a: says.rolledBack(), b: says.waiting() }, { previous: first.rollout, now: T0 + 5 * S });
    expect(halted.rollout).toMatchObject({ granted: [], haltedBy: ['a'], waiting: 1 });
    const later = slots({ a: says.rolledBack(), b: says.waiting() }, { previous: halted.rollout, now: T0 + 600 * S });
    expect(later.rollout.granted).toEqual([]);
    // Generation G+1: the old answers are about G, so both nodes wait for it and one is granted.
    const fix = slots({ a: says.rolledBack(), b: says.waiting() }, { generation: G + 1, previous: later.rollout, now: T0 + 601 * S });
    expect(fix.rollout).toMatchObject({ generation: G + 1, granted: [{ node: 'a' }] });
    expect(fix.rollout.haltedBy).toBeUndefined();
  });

  it('reclaims a slot not answered in time, and grants the node again only when nobody else waits, after a pause that doubles', () => {
    const first = slots({ a: says.waiting(), b: says.waiting() });
    const late = slots({ a: says.probing(), b: says.waiting() }, { previous: first.rollout, now: T0 + 91 * S });
    expect(late.rollout).toMatchObject({ granted: [{ node: 'b' }], reclaimed: [{ node: 'a', times: 1 }] });
    const bDone = slots({ a: says.probing(), b: says.settled() }, { previous: late.rollout, now: T0 + 95 * S });
    // The pause after a first reclaim is one deadline (probe timeout + grace: 90 s).
    expect(bDone.rollout).toMatchObject({ granted: [], done: 1, waiting: 1, reclaimed: [{ node: 'a', times: 1 }] });
    expect(bDone.recheckAt).toBe(T0 + 181 * S);
    const again = slots({ a: says.probing(), b: says.settled() }, { previous: bDone.rollout, now: T0 + 181 * S });
    expect(again.rollout).toMatchObject({ granted: [{ node: 'a' }], reclaimed: [{ node: 'a', times: 1 }] });
    // Still silent: reclaimed a second time, and the next pause is twice as long.
    const twice = slots({ a: says.probing(), b: says.settled() }, { previous: again.rollout, now: T0 + 272 * S });
    expect(twice.rollout).toMatchObject({ granted: [], reclaimed: [{ node: 'a', times: 2 }] });
    expect(twice.recheckAt).toBe(T0 + (272 + 180) * S);
    // Back and answering: no longer listed.
    const answered = slots({ a: says.settled(), b: says.settled() }, { previous: twice.rollout, now: T0 + 300 * S });
    expect(answered.rollout).toMatchObject({ granted: [], done: 2, waiting: 0 });
    expect(answered.rollout.reclaimed).toBeUndefined();
  });

  it('makes the device Stalled with reason RolloutHalted, naming the generation and the node', () => {
    const summary = summarize({
      name: 'edge',
      generation: G,
      selector: undefined,
      rollout: { maxUnavailable: 1, probeTimeoutSeconds: 30 },
      nodes: [{ name: 'a', labels: {} }, { name: 'b', labels: {} }],
      reports: new Map([
        ['a', { devices: new Map([['edge', says.rolledBack()]]) }],
        ['b', { devices: new Map([['edge', says.waiting()]]) }],
      ]),
      now: T0,
      persistentFailureMs: 300 * S,
    });
    const stalled = summary.status.conditions!.find((c) => c.type === 'Stalled')!;
    expect(stalled).toMatchObject({ status: 'True', reason: 'RolloutHalted' });
    expect(stalled.message).toContain(`generation ${G} is halted`);
    expect(stalled.message).toContain('a: generation 4 failed probe route 198.51.100.7');
    expect(summary.status.conditions!.find((c) => c.type === 'Reconciling')!.status).toBe('False');
    expect(summary.status.rollout).toMatchObject({ haltedBy: ['a'], granted: [] });
    // The node held back says why, in the failing list.
    expect(summary.status.failingNodes).toContainEqual({ node: 'b', reason: 'WaitingForRollout', message: 'generation 4 waits for a rollout slot; generation 3 stays in force meanwhile' });
  });

  it('writes no rollout section at the default 100%', () => {
    const summary = summarize({ name: 'edge', generation: G, selector: undefined, nodes: [{ name: 'a', labels: {} }], reports: new Map(), now: T0, persistentFailureMs: 300 * S });
    expect(summary.status.rollout).toBeUndefined();
  });
});
