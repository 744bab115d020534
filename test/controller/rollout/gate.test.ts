/**
 * The rollout gate's decisions, with a probe run the test resolves by hand: which version of a
 * device the loop gets, when probes start, rollback, ProbeFailed, the memory across restarts, and
 * waiting for a rollout slot.
 */
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DesiredDevice } from '../../../controller/model/desired.js';
import type { PassReport } from '../../../controller/loop/loop.js';
import { RolloutGate, type ProbeResult } from '../../../controller/rollout/gate.js';
import { ROLLOUT_FILE_NAME, RolloutStore } from '../../../controller/rollout/store.js';
import { addr, device, route } from '../../helpers/devices.js';

const probes = [{ kind: 'route' as const, family: 4 as const, to: '198.51.100.7' }];
const v1 = device('edge', { addresses: [addr('192.0.2.1/24')], routes: [route('198.51.100.0/24')], probes });
const v2 = { ...v1, mtu: 1400 };
const v3 = { ...v1, mtu: 1300 };

interface Run {
  device: DesiredDevice;
  signal: AbortSignal;
  finish(passed: boolean): void;
}

function pass(desired: DesiredDevice[], status: 'ready' | 'degraded' = 'ready'): PassReport {
  return {
    input: { desired, prune: true },
    reasons: ['desired-changed'],
    startedAt: 0,
    durationMs: 1,
    result: {
      outcome: 'converged',
      plan: null,
      applied: 1,
      failures: [],
      repairs: {},
      devices: desired.map((d) => ({ device: d.name, ifname: d.ifname, status, findings: [], failures: [] })),
    },
  };
}

function harness(opts: { store?: RolloutStore; mayMove?: (s: string, d: DesiredDevice, g: number | undefined) => boolean } = {}) {
  const runs: Run[] = [];
  const handed: Array<{ devices: DesiredDevice[]; complete: boolean }> = [];
  const verdicts: string[] = [];
  const gate = new RolloutGate({
    ...(opts.store ? { store: opts.store } : {}),
    ...(opts.mayMove ? { mayMove: opts.mayMove } : {}),
    probe: (d, signal) =>
      new Promise<ProbeResult[]>((resolve) => {
        runs.push({
          device: d,
          signal,
          finish: (passed) =>
            resolve([{ probe: 'route 198.51.100.7', kind: 'route', to: '198.51.100.7', passed, message: passed ? '198.51.100.7 → dev tk-edge via its route 198.51.100.0/24' : '198.51.100.7 → dev eth1 via a foreign route 198.51.100.0/25 proto static', attempts: 3, at: '2026-12-07T00:00:00Z' }]),
        });
      }),
    onEffective: (_s, devices, complete) => handed.push({ devices, complete }),
    onProbed: (_d, _r, v) => verdicts.push(v),
  });
  const last = () => handed[handed.length - 1]!;
  return { gate, runs, handed, last, verdicts };
}

/** Lets the probe promise's continuation run. */
const settle = () => new Promise<void>((r) => setImmediate(r));

describe('RolloutGate', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tk-gate-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('hands a device without probes straight through and settles it once applied', () => {
    const h = harness();
    const plain = device('plain');
    h.gate.update('files', [plain], true);
    expect(h.last()).toEqual({ devices: [plain], complete: true });
    expect(h.gate.view('plain')?.phase).toBe('applying');
    h.gate.passFinished(pass([plain]));
    expect(h.runs).toHaveLength(0);
    expect(h.gate.view('plain')?.phase).toBe('settled');
  });

  it('probes a version once a pass reports it applied, and keeps it when the probes pass', async () => {
    const h = harness({ store: new RolloutStore(dir) });
    h.gate.update('kube', [v1], true, { edge: 1 });
    h.gate.passFinished(pass([v1], 'degraded'));
    expect(h.runs).toHaveLength(0);
    h.gate.passFinished(pass([v1]));
    expect(h.runs).toHaveLength(1);
    expect(h.gate.view('edge')?.phase).toBe('probing');
    h.gate.passFinished(pass([v1]));
    expect(h.runs).toHaveLength(1);
    h.runs[0]!.finish(true);
    await settle();
    expect(h.gate.view('edge')).toMatchObject({ phase: 'settled', generation: 1, inForceGeneration: 1, good: { generation: 1 } });
    expect(h.verdicts).toEqual(['passed']);
    await h.gate.idle();
    const saved = JSON.parse(await readFile(join(dir, ROLLOUT_FILE_NAME), 'utf8'));
    expect(saved.devices.edge.good).toMatchObject({ generation: 1, device: { mtu: 1500 } });
  });

  it('rolls back to the good version when a new one fails a probe, and does not retry it until the spec changes', async () => {
    const store = new RolloutStore(dir);
    const h = harness({ store });
    h.gate.update('kube', [v1], true, { edge: 1 });
    h.gate.passFinished(pass([v1]));
    h.runs[0]!.finish(true);
    await settle();
    h.gate.update('kube', [v2], true, { edge: 2 });
    expect(h.last().devices).toEqual([v2]);
    h.gate.passFinished(pass([v2]));
    h.runs[1]!.finish(false);
    await settle();
    expect(h.last()).toEqual({ devices: [v1], complete: true });
    const view = h.gate.view('edge')!;
    expect(view).toMatchObject({ phase: 'rolledBack', generation: 2, inForceGeneration: 1, rejected: { generation: 2, probe: 'route 198.51.100.7' } });
    expect(view.rejected?.message).toContain('foreign route 198.51.100.0/25');
    expect(h.verdicts).toEqual(['passed', 'rolledBack']);

    // The same spec again (a re-apply, a relist): still rolled back, no new probe run.
    const handedBefore = h.handed.length;
    h.gate.update('kube', [{ ...v2 }], true, { edge: 2 });
    h.gate.passFinished(pass([v1]));
    expect(h.handed.length).toBe(handedBefore);
    expect(h.runs).toHaveLength(2);

    // A restart remembers both the good and the rejected version.
    await store.idle();
    const again = harness({ store });
    expect(await again.gate.load()).toBeUndefined();
    again.gate.update('kube', [v2], true, { edge: 2 });
    expect(again.last().devices).toEqual([v1]);
    expect(again.gate.view('edge')?.phase).toBe('rolledBack');

    // A fix (a new spec) is tried.
    h.gate.update('kube', [v3], true, { edge: 3 });
    expect(h.last().devices).toEqual([v3]);
    expect(h.gate.view('edge')?.phase).toBe('applying');
  });

  it('leaves a first version that fails its probes as declared (ProbeFailed): there is nothing to go back to', async () => {
    const h = harness();
    h.gate.update('files', [v1], true);
    h.gate.passFinished(pass([v1]));
    h.runs[0]!.finish(false);
    await settle();
    expect(h.gate.view('edge')).toMatchObject({ phase: 'probeFailed', nothingInForce: false });
    expect(h.last().devices).toEqual([v1]);
    expect(h.verdicts).toEqual(['probeFailed']);
  });

  it('stops a probe run when the spec changes under it', async () => {
    const h = harness();
    h.gate.update('files', [v1], true);
    h.gate.passFinished(pass([v1]));
    h.gate.update('files', [v2], true);
    expect(h.runs[0]!.signal.aborted).toBe(true);
    h.runs[0]!.finish(false);
    await settle();
    expect(h.gate.view('edge')?.phase).toBe('applying');
    expect(h.last().devices).toEqual([v2]);
  });

  it('keeps the good version while waiting for a rollout slot, and nothing (without pruning) when there is none', async () => {
    let granted = false;
    const limited = (d: DesiredDevice): DesiredDevice => ({ ...d, rollout: { maxUnavailable: 1, probeTimeoutSeconds: 30 } });
    const h = harness({ mayMove: () => granted });
    h.gate.update('kube', [limited(v1)], true, { edge: 1 });
    expect(h.last()).toEqual({ devices: [], complete: false });
    expect(h.gate.view('edge')).toMatchObject({ phase: 'waiting', nothingInForce: true });

    granted = true;
    h.gate.recheck();
    expect(h.last()).toEqual({ devices: [limited(v1)], complete: true });
    h.gate.passFinished(pass([limited(v1)]));
    h.runs[0]!.finish(true);
    await settle();

    granted = false;
    h.gate.update('kube', [limited(v2)], true, { edge: 2 });
    expect(h.last()).toEqual({ devices: [limited(v1)], complete: true });
    expect(h.gate.view('edge')).toMatchObject({ phase: 'waiting', inForceGeneration: 1 });

    granted = true;
    h.gate.recheck();
    h.gate.passFinished(pass([limited(v2)]));
    expect(h.gate.view('edge')?.phase).toBe('probing');
    // The slot is taken back (reclaimed) before the probes pass: back to the good version.
    granted = false;
    h.gate.recheck();
    expect(h.runs[1]!.signal.aborted).toBe(true);
    expect(h.last().devices).toEqual([limited(v1)]);
  });

  it('forgets a device its source no longer declares only when the source is complete', async () => {
    const store = new RolloutStore(dir);
    const h = harness({ store });
    h.gate.update('files', [v1], true);
    h.gate.passFinished(pass([v1]));
    h.runs[0]!.finish(true);
    await settle();
    h.gate.update('files', [], false);
    h.gate.update('files', [v1], true);
    expect(h.gate.view('edge')?.phase).toBe('settled');
    h.gate.update('files', [], true);
    h.gate.update('files', [v2], true);
    expect(h.gate.view('edge')?.phase).toBe('applying');
  });
});
