/**
 * runProbes / probeOnce with scripted attempts and a manual clock: the retry schedule, the
 * deadline from spec.rollout, cancellation, and the result shape. No real timers.
 */
import { describe, expect, it } from '@jest/globals';
import { ManualClock } from '../../../controller/loop/index.js';
import { probeOnce, runProbes, type ProbeAttempt, type ProbeVerdict } from '../../../controller/probe/index.js';
import type { DesiredProbe } from '../../../controller/model/desired.js';
import { device } from '../../helpers/devices.js';

const ROUTE: DesiredProbe = { kind: 'route', family: 4, to: '198.51.100.7' };
const PING: DesiredProbe = { kind: 'ping', family: 6, to: '2001:db8:1::fe' };
const WALL = new Date('2026-12-07T12:00:00.000Z');

/** Lets every pending promise continuation run (attempts are async even when scripted). */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

interface Call {
  probe: string;
  at: number;
  timeoutMs: number;
}

/** Attempts answered by a script: verdict(probe, n) for the probe's n-th attempt (1-based). */
function scripted(clock: ManualClock, verdict: (p: DesiredProbe, n: number) => ProbeVerdict | Error): { attempt: ProbeAttempt; calls: Call[] } {
  const calls: Call[] = [];
  const counts = new Map<string, number>();
  const attempt: ProbeAttempt = async (p, o) => {
    const n = (counts.get(p.to) ?? 0) + 1;
    counts.set(p.to, n);
    calls.push({ probe: `${p.kind} ${p.to}`, at: clock.now(), timeoutMs: o.timeoutMs });
    const v = verdict(p, n);
    if (v instanceof Error) throw v;
    return v;
  };
  return { attempt, calls };
}

/** Advances the clock in steps, letting attempts run between steps, until the run settles. */
async function drive<T>(clock: ManualClock, run: Promise<T>, stepMs = 100, maxMs = 120_000): Promise<T> {
  let done = false;
  const out = run.finally(() => (done = true));
  await settle();
  for (let t = 0; t < maxMs && !done; t += stepMs) {
    clock.advance(stepMs);
    await settle();
  }
  return out;
}

describe('runProbes', () => {
  it('passes at once when the first attempt passes: one attempt, the message of that attempt', async () => {
    const clock = new ManualClock(1000);
    const { attempt, calls } = scripted(clock, (p) => ({ passed: true, message: `${p.to} ok` }));
    const results = await runProbes(device('edge', { probes: [ROUTE, PING] }), { attempt, clock, wallClock: () => WALL });
    expect(results).toEqual([
      { probe: 'route 198.51.100.7', kind: 'route', to: '198.51.100.7', passed: true, message: '198.51.100.7 ok', attempts: 1, at: WALL.toISOString() },
      { probe: 'ping 2001:db8:1::fe', kind: 'ping', to: '2001:db8:1::fe', passed: true, message: '2001:db8:1::fe ok', attempts: 1, at: WALL.toISOString() },
    ]);
    expect(calls.map((c) => c.timeoutMs)).toEqual([500, 1000]);
  });

  it('retries a failing probe at its interval (route 500 ms) until it passes', async () => {
    const clock = new ManualClock(0);
    const { attempt, calls } = scripted(clock, (_p, n) => ({ passed: n >= 4, message: `attempt ${n}` }));
    const [r] = await drive(clock, runProbes(device('edge', { probes: [ROUTE] }), { attempt, clock, wallClock: () => WALL }));
    expect(r).toMatchObject({ passed: true, attempts: 4, message: 'attempt 4' });
    expect(calls.map((c) => c.at)).toEqual([0, 500, 1000, 1500]);
  });

  it('gives up at the deadline of spec.rollout.probeTimeoutSeconds, reporting the last answer', async () => {
    const clock = new ManualClock(0);
    const { attempt, calls } = scripted(clock, (_p, n) => ({ passed: false, message: `still wrong (${n})` }));
    const dev = device('edge', { probes: [ROUTE, PING], rollout: { maxUnavailable: 1, probeTimeoutSeconds: 3 } });
    const results = await drive(clock, runProbes(dev, { attempt, clock, wallClock: () => WALL }));
    const route = calls.filter((c) => c.probe.startsWith('route'));
    const ping = calls.filter((c) => c.probe.startsWith('ping'));
    expect(route.map((c) => c.at)).toEqual([0, 500, 1000, 1500, 2000, 2500]);
    expect(ping.map((c) => c.at)).toEqual([0, 1000, 2000]);
    expect(results.map((r) => [r.probe, r.passed, r.attempts, r.message])).toEqual([
      ['route 198.51.100.7', false, 6, 'still wrong (6)'],
      ['ping 2001:db8:1::fe', false, 3, 'still wrong (3)'],
    ]);
  });

  it('an attempt never waits past the deadline, and one that took its whole interval is retried at once', async () => {
    const clock = new ManualClock(0);
    const calls: Call[] = [];
    // Every echo times out: it returns only after its timeout went by on the clock.
    const attempt: ProbeAttempt = (p, o) => {
      calls.push({ probe: p.to, at: clock.now(), timeoutMs: o.timeoutMs });
      return new Promise((resolve) => clock.setTimer(o.timeoutMs, () => resolve({ passed: false, message: 'no reply' })));
    };
    const dev = device('edge', { probes: [PING], rollout: { maxUnavailable: 1, probeTimeoutSeconds: 2.5 } });
    const [r] = await drive(clock, runProbes(dev, { attempt, clock, wallClock: () => WALL }), 50);
    expect(calls.map((c) => [c.at, c.timeoutMs])).toEqual([
      [0, 1000],
      [1000, 1000],
      [2000, 500],
    ]);
    expect(r).toMatchObject({ passed: false, attempts: 3 });

    // With 100 ms left after the second attempt, a third (an echo allowed 100 ms) is not made.
    calls.length = 0;
    const short = device('edge', { probes: [PING], rollout: { maxUnavailable: 1, probeTimeoutSeconds: 2.1 } });
    const [s] = await drive(clock, runProbes(short, { attempt, clock, wallClock: () => WALL }), 50);
    expect(calls.map((c) => c.timeoutMs)).toEqual([1000, 1000]);
    expect(s).toMatchObject({ passed: false, attempts: 2, message: 'no reply' });
  });

  it('gives each attempt whole milliseconds even when the clock is fractional', async () => {
    const clock = new ManualClock(0.25);
    const timeouts: number[] = [];
    const attempt: ProbeAttempt = (_p, o) => {
      timeouts.push(o.timeoutMs);
      return new Promise((resolve) => clock.setTimer(o.timeoutMs - 0.4, () => resolve({ passed: false, message: 'no reply' })));
    };
    const dev = device('edge', { probes: [PING], rollout: { maxUnavailable: 1, probeTimeoutSeconds: 2.5 } });
    await drive(clock, runProbes(dev, { attempt, clock }), 0.3);
    expect(timeouts.length).toBeGreaterThan(1);
    expect(timeouts.every((t) => Number.isInteger(t) && t >= 1)).toBe(true);
  });

  it('uses DEFAULT_ROLLOUT (30 s) when the device has no rollout, and the caller may override it', async () => {
    const clock = new ManualClock(0);
    const { attempt, calls } = scripted(clock, () => ({ passed: false, message: 'no' }));
    await drive(clock, runProbes(device('edge', { probes: [ROUTE] }), { attempt, clock }), 500);
    expect(calls.length).toBe(60);
    const again = scripted(clock, () => ({ passed: false, message: 'no' }));
    await drive(clock, runProbes(device('edge', { probes: [ROUTE] }), { attempt: again.attempt, clock, timeoutMs: 1000 }), 500);
    expect(again.calls.length).toBe(2);
  });

  it('an attempt that throws is a failed attempt with the error text, and is retried', async () => {
    const clock = new ManualClock(0);
    const { attempt } = scripted(clock, (_p, n) => (n === 1 ? new Error('socket closed') : { passed: true, message: 'ok' }));
    const [r] = await drive(clock, runProbes(device('edge', { probes: [ROUTE] }), { attempt, clock }));
    expect(r).toMatchObject({ passed: true, attempts: 2 });
    const failing = scripted(clock, () => new Error('socket closed'));
    const [f] = await drive(clock, runProbes(device('edge', { probes: [ROUTE] }), { attempt: failing.attempt, clock, timeoutMs: 400 }));
    expect(f).toMatchObject({ passed: false, attempts: 1, message: 'route 198.51.100.7: socket closed' });
  });

  it('is cancelled by its signal: rejects with the reason and attempts no more', async () => {
    const clock = new ManualClock(0);
    const { attempt, calls } = scripted(clock, () => ({ passed: false, message: 'no' }));
    const ac = new AbortController();
    const run = runProbes(device('edge', { probes: [ROUTE, PING] }), { attempt, clock, signal: ac.signal });
    const outcome = run.then(
      () => 'resolved',
      (e: unknown) => e,
    );
    await settle();
    clock.advance(500);
    await settle();
    const before = calls.length;
    const reason = new Error('superseded by generation 4');
    ac.abort(reason);
    await settle();
    expect(await outcome).toBe(reason);
    clock.advance(5000);
    await settle();
    expect(calls.length).toBe(before);
    expect(clock.pending()).toEqual([]);
  });

  it('an already aborted signal runs nothing; a device without probes resolves to []', async () => {
    const clock = new ManualClock(0);
    const { attempt, calls } = scripted(clock, () => ({ passed: true, message: 'ok' }));
    const ac = new AbortController();
    ac.abort();
    await expect(runProbes(device('edge', { probes: [ROUTE] }), { attempt, clock, signal: ac.signal })).rejects.toMatchObject({ name: 'AbortError' });
    expect(calls).toEqual([]);
    expect(await runProbes(device('edge'), { attempt, clock })).toEqual([]);
  });
});

describe('probeOnce', () => {
  it('one attempt per probe, no retry, at the probe kind interval as timeout', async () => {
    const clock = new ManualClock(0);
    const { attempt, calls } = scripted(clock, (p) => ({ passed: p.kind === 'route', message: p.kind }));
    const results = await probeOnce(device('edge', { probes: [ROUTE, PING] }), { attempt, wallClock: () => WALL });
    expect(results.map((r) => [r.probe, r.passed, r.attempts, r.at])).toEqual([
      ['route 198.51.100.7', true, 1, WALL.toISOString()],
      ['ping 2001:db8:1::fe', false, 1, WALL.toISOString()],
    ]);
    expect(calls.map((c) => c.timeoutMs)).toEqual([500, 1000]);
  });
});
