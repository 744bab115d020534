/**
 * The fleet summary (TunDevice.status) from the nodes' reports. The reports are built with the
 * agents' own builder (buildDeviceStatus), so this also pins the contract between the node side
 * and the leader: what a node writes is what the summary reads.
 */
import { describe, expect, it } from '@jest/globals';
import { buildDeviceStatus, type DeviceStatusInput } from '../../../../controller/kube/conditions.js';
import { summarize, type NodeMeta, type NodeReport, type SummaryInput } from '../../../../controller/kube/fleet/device-summary.js';
import type { Finding } from '../../../../controller/plan/actions.js';
import type { DeviceReport } from '../../../../controller/reconcile/types.js';
import { MAX_FAILING_NODES, type TunDeviceFleetStatus } from '../../../../controller/schema/tundevice-status.js';

const T0 = Date.parse('2026-12-07T10:00:00Z');
const MIN = 60_000;
const PERSISTENT = 5 * MIN;

const report = (status: DeviceReport['status'], extra: Partial<DeviceReport> = {}): DeviceReport => ({ device: 'edge', ifname: 'tk-edge0', ifindex: 7, status, findings: [], failures: [], ...extra });
const failed = (): DeviceReport =>
  report('degraded', {
    failures: [
      {
        device: 'edge',
        code: 'ENETUNREACH',
        message: 'Nexthop has invalid gateway',
        action: { type: 'replace-route', device: 'edge', ifname: 'tk-edge0', reason: 'declared', changes: [], route: { family: 4, table: 254, dst: '198.51.100.0', dstLength: 24, tos: 0, metric: 0, protocol: 116, type: 'unicast', scope: 'universe', onLink: false } },
      },
    ],
  });

/** One node's report of device `edge`, as its agent writes it, at time `at`. */
function entry(input: Omit<DeviceStatusInput, 'name'>, at = T0): NodeReport {
  const s = buildDeviceStatus({ name: 'edge', ...input }, undefined, new Date(at).toISOString());
  return { devices: new Map([['edge', s]]) };
}
const node = (name: string, labels: Record<string, string> = { pool: 'edge' }): NodeMeta => ({ name, labels });

function run(over: Partial<SummaryInput> & { reports: Map<string, NodeReport>; nodes: NodeMeta[] }): TunDeviceFleetStatus {
  return summarize({ name: 'edge', generation: 3, selector: { matchLabels: { pool: 'edge' } }, now: T0, persistentFailureMs: PERSISTENT, ...over }).status;
}
const cond = (s: TunDeviceFleetStatus, type: string) => s.conditions!.find((c) => c.type === type)!;
const flags = (s: TunDeviceFleetStatus) => `Ready=${cond(s, 'Ready').status} Reconciling=${cond(s, 'Reconciling').status} Stalled=${cond(s, 'Stalled').status}`;

describe('fleet summary', () => {
  it('is Ready when every selected node reports Ready at the current generation; unselected nodes do not count', () => {
    const reports = new Map([
      ['a', entry({ generation: 3, report: report('ready') })],
      ['b', entry({ generation: 3, report: report('ready') })],
    ]);
    const s = run({ nodes: [node('a'), node('b'), node('other', { pool: 'core' })], reports });
    expect(s).toMatchObject({ observedGeneration: 3, ready: '2/2', nodes: { selected: 2, ready: 2, degraded: 0, refused: 0, conflicted: 0, notReporting: 0 }, failingNodes: [], moreFailingNodes: 0 });
    expect(flags(s)).toBe('Ready=True Reconciling=False Stalled=False');
    expect(cond(s, 'Ready')).toMatchObject({ reason: 'Ready', observedGeneration: 3 });
  });

  it('counts a selected node without any report as not reporting: a dead agent never looks healthy', () => {
    const reports = new Map([['a', entry({ generation: 3, report: report('ready') })]]);
    const s = run({ nodes: [node('a'), node('b')], reports });
    expect(s).toMatchObject({ ready: '1/2', nodes: { selected: 2, ready: 1, notReporting: 1 } });
    expect(flags(s)).toBe('Ready=False Reconciling=True Stalled=False');
    expect(cond(s, 'Ready').reason).toBe('Progressing');
    expect(s.failingNodes).toEqual([{ node: 'b', reason: 'NotReporting', message: expect.stringContaining('no TunNodeState') }]);
  });

  it('is Reconciling (kstatus InProgress) until every node reports the new generation', () => {
    const reports = new Map([
      ['a', entry({ generation: 3, report: report('ready') })],
      ['b', entry({ generation: 2, report: report('ready') })],
      ['c', entry({ generation: 3 })], // listed, not reconciled yet: Ready Unknown
    ]);
    const s = run({ nodes: [node('a'), node('b'), node('c')], reports });
    expect(s.nodes).toMatchObject({ ready: 1, notReporting: 2 });
    expect(flags(s)).toBe('Ready=False Reconciling=True Stalled=False');
    expect(s.failingNodes!.find((f) => f.node === 'b')!.message).toBe('last reported generation 2; waiting for 3');
  });

  it('is Stalled (kstatus Failed) when a node refuses the device, and then not Reconciling', () => {
    const refusal: Finding = { kind: 'refused', code: 'NameNotAllowed', device: 'edge', ifname: 'eth7', origin: 'TunDevice/edge', subject: 'device', reason: 'eth7 does not start with an allowed prefix (tk-, tun-, tap-)' };
    const reports = new Map([
      ['a', entry({ generation: 3, report: report('refused', { findings: [refusal] }) })],
      ['b', entry({ generation: 2, report: report('ready') })],
    ]);
    const s = run({ nodes: [node('a'), node('b')], reports });
    expect(s.nodes).toMatchObject({ refused: 1, notReporting: 1 });
    expect(flags(s)).toBe('Ready=False Reconciling=False Stalled=True');
    expect(cond(s, 'Stalled')).toMatchObject({ reason: 'Refused', message: expect.stringContaining('a: eth7 does not start') });
    expect(s.failingNodes!.map((f) => f.node)).toEqual(['a', 'b']);
  });

  it('counts an invalid new generation refused even where the last valid one stays in force', () => {
    // The node keeps generation 2 applied and refuses 3: its entry says 2, its Refused condition 3.
    const reports = new Map([['a', entry({ generation: 2, report: report('ready'), invalid: 'spec.mtu must be from 68 to 65535, got 50', refusedGeneration: 3 })]]);
    const s = run({ nodes: [node('a')], reports });
    expect(s.nodes).toMatchObject({ refused: 1 });
    expect(cond(s, 'Stalled').reason).toBe('Refused');
    // And once the fix (generation 4) is reported, the old refusal no longer counts.
    expect(run({ generation: 4, nodes: [node('a')], reports }).nodes).toMatchObject({ refused: 0, notReporting: 1 });
  });

  it('is Stalled on a conflict', () => {
    const reports = new Map([['a', entry({ generation: 3, conflict: { reason: 'DeclaredTwice', message: 'tk-edge0 is also declared by TunDevice/other' } })]]);
    const s = run({ nodes: [node('a')], reports });
    expect(s.nodes).toMatchObject({ conflicted: 1 });
    expect(cond(s, 'Stalled').reason).toBe('Conflict');
  });

  it('treats a failing apply as Reconciling (retried) until it has lasted persistentFailureMs, then Stalled, and says when to look again', () => {
    const reports = new Map([['a', entry({ generation: 3, report: failed() }, T0)]]);
    const early = summarize({ name: 'edge', generation: 3, selector: undefined, nodes: [node('a')], reports, now: T0 + MIN, persistentFailureMs: PERSISTENT });
    expect(flags(early.status)).toBe('Ready=False Reconciling=True Stalled=False');
    expect(cond(early.status, 'Reconciling').reason).toBe('Retrying');
    expect(early.recheckAt).toBe(T0 + PERSISTENT);
    const late = summarize({ name: 'edge', generation: 3, selector: undefined, nodes: [node('a')], reports, now: T0 + PERSISTENT, persistentFailureMs: PERSISTENT });
    expect(flags(late.status)).toBe('Ready=False Reconciling=False Stalled=True');
    expect(cond(late.status, 'Stalled')).toMatchObject({ reason: 'ApplyFailing', message: expect.stringContaining('Nexthop has invalid gateway') });
    expect(late.recheckAt).toBeUndefined();
  });

  it('does not count an unreadable TunNodeState, and says why', () => {
    const s = run({ nodes: [node('a')], reports: new Map([['a', { unreadable: 'devices.0.conditions must be a list' }]]) });
    expect(s.nodes).toMatchObject({ notReporting: 1, ready: 0 });
    expect(s.failingNodes![0]).toMatchObject({ node: 'a', reason: 'Unreadable' });
  });

  it('does not count a report of a generation newer than the object (no agent can have seen it)', () => {
    const s = run({ nodes: [node('a')], reports: new Map([['a', entry({ generation: 99, report: report('ready') })]]) });
    expect(s.nodes).toMatchObject({ ready: 0, notReporting: 1 });
    expect(s.failingNodes![0]).toMatchObject({ node: 'a', reason: 'Unreadable', message: expect.stringContaining('generation 99, newer') });
  });

  it('is Ready with no node selected (nothing to do), and says so', () => {
    const s = run({ nodes: [node('x', { pool: 'core' })], reports: new Map() });
    expect(s).toMatchObject({ ready: '0/0', nodes: { selected: 0 } });
    expect(cond(s, 'Ready')).toMatchObject({ status: 'True', reason: 'NoNodesSelected' });
  });

  it('names at most MAX_FAILING_NODES nodes, the most serious first, and counts the rest', () => {
    const nodes = Array.from({ length: 5_000 }, (_, i) => node(`n${String(i).padStart(4, '0')}`));
    const reports = new Map<string, NodeReport>(nodes.slice(0, 4_000).map((n) => [n.name, entry({ generation: 3, report: report('ready') })]));
    reports.set('n4999', entry({ generation: 3, report: failed() }));
    const s = run({ nodes, reports });
    expect(s.nodes).toMatchObject({ selected: 5_000, ready: 4_000, degraded: 1, notReporting: 999 });
    expect(s.failingNodes).toHaveLength(MAX_FAILING_NODES);
    expect(s.failingNodes![0]).toMatchObject({ node: 'n4999', reason: 'ApplyFailed' });
    expect(s.moreFailingNodes).toBe(1_000 - MAX_FAILING_NODES);
    expect(JSON.stringify(s).length).toBeLessThan(4_096);
  });

  it('keeps lastTransitionTime while a condition holds and moves it when it changes', () => {
    const nodes = [node('a')];
    const pending = run({ nodes, reports: new Map() });
    const stillPending = run({ nodes, reports: new Map(), previous: pending, now: T0 + MIN });
    expect(stillPending).toEqual(pending);
    const done = run({ nodes, reports: new Map([['a', entry({ generation: 3, report: report('ready') })]]), previous: pending, now: T0 + 2 * MIN });
    expect(cond(done, 'Ready').lastTransitionTime).toBe(new Date(T0 + 2 * MIN).toISOString().replace('.000Z', 'Z'));
    expect(cond(done, 'Stalled').lastTransitionTime).toBe(cond(pending, 'Stalled').lastTransitionTime);
  });

  it('never has Reconciling and Stalled both True, over every mix of node states', () => {
    const kinds: Array<() => NodeReport | undefined> = [
      () => entry({ generation: 3, report: report('ready') }),
      () => entry({ generation: 3, report: failed() }),
      () => entry({ generation: 3, invalid: 'bad' }),
      () => entry({ generation: 3, conflict: { reason: 'DeclaredTwice', message: 'x' } }),
      () => undefined,
    ];
    for (let mask = 0; mask < kinds.length ** 3; mask++) {
      const reports = new Map<string, NodeReport>();
      for (let i = 0, m = mask; i < 3; i++, m = Math.floor(m / kinds.length)) {
        const r = kinds[m % kinds.length]!();
        if (r) reports.set(`n${i}`, r);
      }
      const s = run({ nodes: [node('n0'), node('n1'), node('n2')], reports });
      expect(cond(s, 'Reconciling').status === 'True' && cond(s, 'Stalled').status === 'True').toBe(false);
      expect(cond(s, 'Ready').status === 'True').toBe(s.nodes!.ready === 3);
    }
  });
});
