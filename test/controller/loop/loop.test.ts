/** The reconcile loop with fake triggers, a manual clock and a fake ReconcileOnce. */
import { describe, expect, it } from '@jest/globals';
import { ManualClock, ReconcileLoop, backoffDelay, type LoopOptions, type WakeReason } from '../../../controller/loop/index.js';
import { device } from '../../helpers/devices.js';
import type { Action } from '../../../controller/plan/actions.js';
import type { ActionFailure, ReconcileInput, ReconcileResult } from '../../../controller/reconcile/types.js';


function action(dev: string): Action {
  return { type: 'set-link', device: dev, ifname: `tk-${dev}`, reason: 'test' } as unknown as Action;
}

function result(outcome: ReconcileResult['outcome'], opts: { actions?: Action[]; failures?: ActionFailure[] } = {}): ReconcileResult {
  const actions = opts.actions ?? [];
  return {
    outcome,
    plan: outcome === 'interrupted' ? null : { actions, refusals: [], conflicts: [], devices: [], retained: [], prune: false },
    applied: actions.length - (opts.failures?.length ?? 0),
    failures: opts.failures ?? [],
    devices: [],
    repairs: {},
  };
}

function failure(dev: string, a = action(dev)): ActionFailure {
  return { action: a, device: dev, code: 'EBUSY', message: 'busy' };
}

/** A ReconcileOnce whose passes the test finishes by hand (or automatically with `auto`). */
class FakeReconcile {
  calls: ReconcileInput[] = [];
  inFlight = 0;
  maxInFlight = 0;
  #open: Array<(r: ReconcileResult) => void> = [];
  auto: ((input: ReconcileInput, n: number) => ReconcileResult | Error) | undefined;

  readonly fn = (input: ReconcileInput): Promise<ReconcileResult> => {
    this.calls.push(input);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const done = <T>(v: T): T => {
      this.inFlight--;
      return v;
    };
    if (this.auto) {
      const r = this.auto(input, this.calls.length);
      return Promise.resolve().then(() => {
        done(0);
        if (r instanceof Error) throw r;
        return r;
      });
    }
    return new Promise<ReconcileResult>((resolve) => this.#open.push(resolve)).then(done);
  };

  /** Finishes the oldest pass in flight. */
  finish(r: ReconcileResult = result('converged')): void {
    const f = this.#open.shift();
    if (!f) throw new Error('no pass in flight');
    f(r);
  }
}

const flush = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
};

interface Harness {
  loop: ReconcileLoop;
  rec: FakeReconcile;
  clock: ManualClock;
  reasons: WakeReason[][];
  retries: Array<{ key: string; attempt: number; delay: number }>;
  fights: Array<{ device: string; streak: number; hold: number }>;
}

/** The storm tests' churn gap (250 ms growing to 1 s) with a 25 ms trailing edge. */
const EDGE_OPTS = { churn: { initialMs: 250, maxMs: 1000, factor: 4, jitter: 0 }, quietMs: 25 } satisfies Partial<LoopOptions>;

function harness(opts: Partial<LoopOptions> = {}): Harness {
  const rec = new FakeReconcile();
  const clock = new ManualClock(1_000_000);
  const reasons: WakeReason[][] = [];
  const retries: Harness['retries'] = [];
  const fights: Harness['fights'] = [];
  const loop = new ReconcileLoop({
    reconcile: rec.fn,
    sources: ['files'],
    clock,
    random: () => 0,
    resyncIntervalMs: 300_000,
    ...opts,
    observer: {
      passStarted: (_i, r) => reasons.push(r),
      retryScheduled: (key, attempt, delay) => retries.push({ key, attempt, delay }),
      fight: (d, streak, hold) => fights.push({ device: d, streak, hold }),
    },
  });
  return { loop, rec, clock, reasons, retries, fights };
}

describe('ReconcileLoop: coalescing', () => {
  it('runs exactly one more pass for any number of triggers during a pass, never two at once', async () => {
    const { loop, rec, reasons } = harness();
    loop.start();
    loop.updateSource('files', [device('a')], true);
    await flush();
    expect(rec.calls).toHaveLength(1);
    for (let i = 0; i < 50; i++) loop.trigger('netlink-event');
    loop.trigger('resync-needed');
    loop.updateSource('files', [device('a'), device('b')], true);
    await flush();
    expect(rec.calls).toHaveLength(1);
    rec.finish();
    await flush();
    expect(rec.calls).toHaveLength(2);
    // The second pass reads the latest desired state and says why it ran.
    expect(rec.calls[1]!.desired.map((d) => d.name)).toEqual(['a', 'b']);
    expect(reasons[1]).toEqual(['netlink-event', 'resync-needed', 'desired-changed']);
    rec.finish();
    await loop.idle();
    expect(rec.calls).toHaveLength(2);
    expect(rec.maxInFlight).toBe(1);
    await loop.stop();
  });

  it('starts one pass for triggers raised in the same tick', async () => {
    const { loop, rec, reasons } = harness();
    loop.updateSource('files', [], true);
    loop.start();
    loop.trigger('netlink-event');
    loop.trigger('netlink-event');
    await flush();
    expect(rec.calls).toHaveLength(1);
    expect(reasons[0]).toEqual(['startup', 'netlink-event', 'desired-changed']);
    rec.finish();
    await loop.idle();
    expect(rec.calls).toHaveLength(1);
    await loop.stop();
  });

  it('never overlaps passes under a storm of triggers across many passes', async () => {
    const { loop, rec } = harness();
    rec.auto = () => result('converged');
    loop.updateSource('files', [device('a')], true);
    loop.start();
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 10; i++) loop.trigger(i % 2 ? 'netlink-event' : 'resync-needed');
      await new Promise<void>((r) => setImmediate(r));
    }
    await loop.idle();
    expect(rec.maxInFlight).toBe(1);
    // Each round's triggers fold into at most one pass, plus the one already running.
    expect(rec.calls.length).toBeGreaterThanOrEqual(2);
    expect(rec.calls.length).toBeLessThanOrEqual(21);
    expect(loop.status().wakeups).toMatchObject({ 'netlink-event': 100, 'resync-needed': 100, startup: 1, 'desired-changed': 1 });
    await loop.stop();
  });

  it('counts wake-ups by reason, including those folded into another pass', async () => {
    const { loop, rec, clock } = harness();
    rec.auto = () => result('converged');
    loop.start();
    loop.updateSource('files', [], true);
    loop.trigger('netlink-event');
    loop.trigger('netlink-event');
    loop.trigger('resync-needed');
    await loop.idle();
    clock.advance(300_000);
    await loop.idle();
    expect(loop.status().wakeups).toEqual({
      startup: 1,
      'netlink-event': 2,
      'resync-needed': 1,
      'desired-changed': 1,
      periodic: 1,
      retry: 0,
      'hold-ended': 0,
    });
    await loop.stop();
  });
});

describe('ReconcileLoop: fail static', () => {
  it('runs nothing before every source has reported, and prunes only after a complete first sync', async () => {
    const { loop, rec } = harness({ sources: ['files', 'kube'] });
    rec.auto = () => result('converged');
    loop.start();
    loop.trigger('netlink-event');
    loop.updateSource('files', [device('a')], true);
    await flush();
    expect(rec.calls).toHaveLength(0);
    loop.updateSource('kube', [device('b')], false);
    await loop.idle();
    expect(rec.calls.map((c) => c.prune)).toEqual([false]);
    expect(rec.calls[0]!.desired.map((d) => d.name)).toEqual(['a', 'b']);
    expect(loop.status()).toMatchObject({ firstSyncDone: false, prunedOnce: false, incompleteSources: ['kube'] });
    loop.updateSource('kube', [device('b')], true);
    await loop.idle();
    expect(rec.calls.at(-1)!.prune).toBe(true);
    expect(loop.status()).toMatchObject({ firstSyncDone: true, prunedOnce: true, incompleteSources: [] });
    // A source that turns incomplete (a parse error, an unreachable API server) turns pruning off again.
    loop.updateSource('files', [device('a')], false);
    await loop.idle();
    expect(rec.calls.at(-1)!.prune).toBe(false);
    loop.updateSource('files', [device('a')], true);
    await loop.idle();
    expect(rec.calls.at(-1)!.prune).toBe(true);
    await loop.stop();
  });

  it('rejects snapshots of a source it was not told about', () => {
    const { loop } = harness();
    expect(() => loop.updateSource('kube', [], true)).toThrow(/unknown desired-state source "kube"/);
  });
});

describe('ReconcileLoop: retries', () => {
  it('retries a failing device with exponential backoff, capped, and resets when it succeeds', async () => {
    const { loop, rec, clock, retries, reasons } = harness({ retry: { initialMs: 1000, maxMs: 10_000, factor: 2, jitter: 0.5 } });
    let failing = true;
    // The failure names the plan's own action, as a reconcile reports it (a failed action is no repair).
    const a = action('a');
    rec.auto = () => (failing ? result('failed', { actions: [a], failures: [failure('a', a)] }) : result('converged'));
    loop.updateSource('files', [device('a'), device('b')], true);
    loop.start();
    await loop.idle();
    for (let i = 0; i < 6; i++) {
      const due = retries.at(-1)!.delay;
      clock.advance(due - 1);
      await flush();
      expect(rec.calls).toHaveLength(i + 1);
      clock.advance(1);
      await loop.idle();
      expect(rec.calls).toHaveLength(i + 2);
      expect(reasons.at(-1)).toEqual(['retry']);
    }
    // random() = 0: no jitter taken off; 1 s doubling up to the 10 s cap.
    expect(retries.map((r) => [r.key, r.attempt, r.delay])).toEqual([
      ['a', 1, 1000],
      ['a', 2, 2000],
      ['a', 3, 4000],
      ['a', 4, 8000],
      ['a', 5, 10_000],
      ['a', 6, 10_000],
      ['a', 7, 10_000],
    ]);
    failing = false;
    clock.advance(10_000);
    await loop.idle();
    expect(loop.status().retries).toEqual({});
    // No retry timer left: only the periodic resync remains.
    expect(clock.pending()).toEqual([clock.now() + 300_000]);
    await loop.stop();
  });

  it('takes jitter off the delay, never beyond the cap', () => {
    const opts = { initialMs: 1000, maxMs: 60_000, factor: 2, jitter: 0.2 };
    expect(backoffDelay(1, opts, () => 0)).toBe(1000);
    expect(backoffDelay(1, opts, () => 0.5)).toBe(900);
    expect(backoffDelay(3, opts, () => 0.999)).toBe(Math.round(4000 * (1 - 0.2 * 0.999)));
    expect(backoffDelay(30, opts, () => 0)).toBe(60_000);
    expect(backoffDelay(30, opts, () => 0.5)).toBe(54_000);
    for (let attempt = 1; attempt < 40; attempt++) {
      for (const r of [0, 0.3, 0.999]) {
        const d = backoffDelay(attempt, opts, () => r);
        expect(d).toBeLessThanOrEqual(60_000);
        expect(d).toBeGreaterThanOrEqual(Math.min(60_000, 1000 * 2 ** (attempt - 1)) * 0.8 - 1);
      }
    }
  });

  it('retries an interrupted pass with backoff and does not count it as ready', async () => {
    const { loop, rec, clock, retries, reasons } = harness();
    let outcome: ReconcileResult['outcome'] = 'interrupted';
    rec.auto = () => result(outcome);
    loop.updateSource('files', [device('a')], true);
    loop.start();
    await loop.idle();
    expect(loop.status()).toMatchObject({ lastOutcome: 'interrupted', prunedOnce: false });
    expect(retries).toEqual([{ key: '', attempt: 1, delay: 1000 }]);
    clock.advance(1000);
    await loop.idle();
    expect(rec.calls).toHaveLength(2);
    expect(retries.at(-1)).toEqual({ key: '', attempt: 2, delay: 2000 });
    outcome = 'converged';
    clock.advance(2000);
    await loop.idle();
    expect(reasons).toEqual([['startup', 'desired-changed'], ['retry'], ['retry']]);
    expect(loop.status()).toMatchObject({ lastOutcome: 'converged', prunedOnce: true, retries: {} });
    await loop.stop();
  });

  it('retries a pass whose reconcile threw', async () => {
    const { loop, rec, clock } = harness();
    rec.auto = (_i, n) => (n === 1 ? new Error('netlink socket closed') : result('converged'));
    loop.updateSource('files', [], true);
    loop.start();
    await loop.idle();
    expect(loop.status()).toMatchObject({ lastOutcome: 'error', retries: { '': { attempt: 1 } } });
    clock.advance(1000);
    await loop.idle();
    expect(rec.calls).toHaveLength(2);
    expect(loop.status()).toMatchObject({ lastOutcome: 'converged', retries: {} });
    await loop.stop();
  });
});

describe('ReconcileLoop: periodic resync', () => {
  it('looks again every interval after the last pass, and not before', async () => {
    const { loop, rec, clock, reasons } = harness({ resyncIntervalMs: 60_000 });
    rec.auto = () => result('converged');
    loop.updateSource('files', [device('a')], true);
    loop.start();
    await loop.idle();
    clock.advance(59_999);
    await flush();
    expect(rec.calls).toHaveLength(1);
    clock.advance(1);
    await loop.idle();
    expect(rec.calls).toHaveLength(2);
    // Another pass pushes the next resync back: the interval counts from the last pass.
    clock.advance(30_000);
    loop.trigger('netlink-event');
    await loop.idle();
    clock.advance(59_999);
    await flush();
    expect(rec.calls).toHaveLength(3);
    clock.advance(1);
    await loop.idle();
    expect(reasons).toEqual([['startup', 'desired-changed'], ['periodic'], ['netlink-event'], ['periodic']]);
    await loop.stop();
  });

  it('does no periodic resync with interval 0, and stop() cancels every timer', async () => {
    const { loop, rec, clock } = harness({ resyncIntervalMs: 0 });
    rec.auto = () => result('failed', { actions: [action('a')], failures: [failure('a')] });
    loop.updateSource('files', [device('a')], true);
    loop.start();
    await loop.idle();
    expect(clock.pending()).toHaveLength(1); // the retry only
    await loop.stop();
    expect(clock.pending()).toHaveLength(0);
    loop.trigger('netlink-event');
    clock.advance(10 * 60_000);
    await flush();
    expect(rec.calls).toHaveLength(1);
  });
});

describe('ReconcileLoop: devices changed behind its back', () => {
  it('holds only the fought device, repairs it when the hold ends, with growing holds, and reports it', async () => {
    const { loop, rec, clock, fights, reasons } = harness({ fight: { initialMs: 1000, maxMs: 8000, factor: 2, jitter: 0 } });
    // A reconciler in miniature: each pass repairs every drifted device it is not told to hold.
    const drifted = new Set<string>();
    rec.auto = (input) => {
      const repaired = [...drifted].filter((d) => !(input.hold ?? []).includes(d));
      for (const d of repaired) drifted.delete(d);
      return result('converged', { actions: repaired.map(action) });
    };
    const drift = async (...devices: string[]): Promise<void> => {
      for (const d of devices) drifted.add(d);
      loop.trigger('netlink-event');
      await loop.idle();
    };
    loop.updateSource('files', [device('a'), device('b')], true);
    loop.start();
    await loop.idle();
    // The first repair is not a fight; the second within the window is.
    await drift('a');
    expect(fights).toEqual([]);
    await drift('a');
    expect(fights).toEqual([{ device: 'a', streak: 2, hold: 1000 }]);
    expect(loop.status().holds).toEqual({ a: clock.now() + 1000 });
    // Held: the next event-woken pass runs at once, repairs b, and leaves a as it is.
    await drift('a', 'b');
    expect(rec.calls).toHaveLength(4);
    expect(rec.calls[3]!.hold).toEqual(['a']);
    expect(rec.calls[3]!.desired.map((d) => d.name)).toEqual(['a', 'b']);
    expect([...drifted]).toEqual(['a']);
    // The hold's end is a reason to look again, and a is repaired then.
    clock.advance(999);
    await loop.idle();
    expect(rec.calls).toHaveLength(4);
    clock.advance(1);
    await loop.idle();
    expect(rec.calls).toHaveLength(5);
    expect(reasons.at(-1)).toEqual(['hold-ended']);
    expect(rec.calls[4]!.hold).toEqual([]);
    expect(drifted.size).toBe(0);
    // Each repair after a hold continues the fight: the holds grow to the cap.
    for (let i = 0; i < 4; i++) {
      await drift('a');
      expect(rec.calls.at(-1)!.hold).toEqual(['a']);
      clock.advance(fights.at(-1)!.hold);
      await loop.idle();
      expect(drifted.size).toBe(0);
    }
    expect(fights.map((f) => [f.streak, f.hold])).toEqual([
      [2, 1000],
      [3, 2000],
      [4, 4000],
      [5, 8000],
      [6, 8000],
      [7, 8000],
    ]);
    // A change of a's declaration ends its hold at once, and is not a repair.
    await drift('a');
    expect(rec.calls.at(-1)!.hold).toEqual(['a']);
    loop.updateSource('files', [device('a', { mtu: 1400 }), device('b')], true);
    await loop.idle();
    expect(rec.calls.at(-1)!.hold).toEqual([]);
    expect(rec.calls.at(-1)!.desired[0]!.mtu).toBe(1400);
    expect(drifted.size).toBe(0);
    expect(fights).toHaveLength(6);
    expect(loop.status().holds).toEqual({});
    // ... and the new declaration starts a new streak: its first drift repair is not a fight.
    await drift('a');
    expect(fights).toHaveLength(6);
    await loop.stop();
  });

  it('keeps the pending retry of a held device as it is until a pass takes the device on again', async () => {
    const { loop, rec, clock, fights, reasons } = harness({ fight: { initialMs: 5000, maxMs: 5000, jitter: 0 }, retry: { initialMs: 1000, maxMs: 1000, jitter: 0 } });
    // Each pass that takes b on gets one of its changes through and one refused.
    rec.auto = (input) => {
      if ((input.hold ?? []).includes('b')) return result('converged');
      const ok = action('b');
      const bad = action('b');
      return result('failed', { actions: [ok, bad], failures: [failure('b', bad)] });
    };
    loop.updateSource('files', [device('b')], true);
    loop.start();
    await loop.idle();
    loop.trigger('netlink-event');
    await loop.idle();
    loop.trigger('netlink-event');
    await loop.idle();
    expect(fights).toEqual([{ device: 'b', streak: 2, hold: 5000 }]);
    expect(loop.status().retries).toEqual({ b: { attempt: 3, dueAt: clock.now() + 1000 } });
    // Held passes (woken by events, by the retry timer) neither clear nor advance it.
    loop.trigger('netlink-event');
    await loop.idle();
    clock.advance(1000);
    await loop.idle();
    expect(reasons.at(-1)).toEqual(['retry']);
    expect(rec.calls.at(-1)!.hold).toEqual(['b']);
    expect(loop.status().retries.b!.attempt).toBe(3);
    // The hold ends: b is taken on, fails again, and its retries go on from there.
    clock.advance(4000);
    await loop.idle();
    expect(reasons.at(-1)).toEqual(['hold-ended']);
    expect(loop.status().retries.b!.attempt).toBe(4);
    await loop.stop();
  });

  it('does not call a repair a fight when the next pass finds the device in order', async () => {
    const { loop, rec, clock, fights } = harness();
    let n = 0;
    rec.auto = () => (n++ % 2 === 0 ? result('converged', { actions: [action('a')] }) : result('converged'));
    loop.updateSource('files', [device('a')], true);
    loop.start();
    await loop.idle();
    for (let i = 0; i < 5; i++) {
      loop.trigger('netlink-event');
      await loop.idle();
      clock.advance(3 * 60_000);
    }
    // Repairs minutes apart (each after the window) are single repairs.
    expect(fights).toEqual([]);
    expect(rec.calls).toHaveLength(6);
    await loop.stop();
  });
});

/** The kernel keeps moving: a netlink event every `everyMs` of clock time, for `ms`. */
async function churnFor(loop: ReconcileLoop, clock: ManualClock, ms: number, everyMs = 5): Promise<void> {
  for (let t = 0; t < ms; t += everyMs) {
    clock.advance(Math.min(everyMs, ms - t));
    loop.trigger('netlink-event');
    await flush();
  }
}

describe('ReconcileLoop: churn', () => {
  it('starts an event-woken pass at once after calm, and spaces them out while every pass ends with new events', async () => {
    const { loop, rec, clock, reasons } = harness({ churn: { initialMs: 250, maxMs: 1000, factor: 4, jitter: 0 } });
    loop.updateSource('files', [device('a')], true);
    loop.start();
    await flush();
    const passWithEvents = async (): Promise<void> => {
      // Events arrive while the pass runs (a storm; or the pass's own repair notifications).
      loop.trigger('netlink-event');
      loop.trigger('resync-needed');
      rec.finish();
      await flush();
    };
    await passWithEvents();
    // The first busy pass is followed at once: its events may be its own repairs.
    expect(rec.calls).toHaveLength(2);
    await passWithEvents();
    expect(loop.status().churnStreak).toBe(2);
    expect(rec.calls).toHaveLength(2);
    // The kernel keeps moving through the gap: no quiet spell ends it early.
    await churnFor(loop, clock, 249);
    expect(rec.calls).toHaveLength(2);
    clock.advance(1);
    await flush();
    expect(rec.calls).toHaveLength(3);
    await passWithEvents();
    await churnFor(loop, clock, 999);
    expect(rec.calls).toHaveLength(3);
    clock.advance(1);
    await flush();
    expect(rec.calls).toHaveLength(4);
    // The cap holds however long it goes on.
    await passWithEvents();
    await churnFor(loop, clock, 999);
    expect(rec.calls).toHaveLength(4);
    clock.advance(1);
    await flush();
    expect(rec.calls).toHaveLength(5);
    // A change of desired state is not delayed by the gap (and takes the waiting events along).
    await passWithEvents();
    expect(rec.calls).toHaveLength(5);
    loop.updateSource('files', [device('a', { mtu: 1400 })], true);
    await flush();
    expect(rec.calls).toHaveLength(6);
    expect(reasons.at(-1)).toEqual(['netlink-event', 'resync-needed', 'desired-changed']);
    // A pass that ends with nothing queued ends the streak: the next event is served at once.
    rec.finish();
    await flush();
    expect(loop.status().churnStreak).toBe(0);
    loop.trigger('netlink-event');
    await flush();
    expect(rec.calls).toHaveLength(7);
    rec.finish();
    await loop.idle();
    await loop.stop();
  });

  it('spaces out kernel-woken passes that find nothing to apply (a held device another actor keeps changing), and serves the next drift at once after a repair or quiet', async () => {
    const { loop, rec, clock } = harness({ churn: { initialMs: 250, maxMs: 1000, factor: 4, jitter: 0 } });
    loop.updateSource('files', [device('a')], true);
    loop.start();
    await flush();
    rec.finish();
    await flush();
    // Events come one at a time, each after the previous pass ended; every pass has nothing to do.
    const idleEventPass = async (): Promise<void> => {
      loop.trigger('netlink-event');
      await flush();
      rec.finish();
      await flush();
    };
    await idleEventPass();
    await idleEventPass();
    expect(rec.calls).toHaveLength(3);
    expect(loop.status().churnStreak).toBe(2);
    loop.trigger('netlink-event');
    await flush();
    expect(rec.calls).toHaveLength(3);
    clock.advance(250);
    await flush();
    expect(rec.calls).toHaveLength(4);
    rec.finish();
    await flush();
    loop.trigger('netlink-event');
    clock.advance(999);
    await flush();
    expect(rec.calls).toHaveLength(4);
    clock.advance(1);
    await flush();
    expect(rec.calls).toHaveLength(5);
    // This one repairs something, with nothing queued after it: the streak ends.
    rec.finish(result('converged', { actions: [action('a')] }));
    await flush();
    expect(loop.status().churnStreak).toBe(0);
    loop.trigger('netlink-event');
    await flush();
    expect(rec.calls).toHaveLength(6);
    // Idle passes again, then two gaps' worth of quiet: the next event is served at once.
    rec.finish();
    await flush();
    await idleEventPass();
    expect(loop.status().churnStreak).toBe(2);
    clock.advance(2001);
    loop.trigger('netlink-event');
    await flush();
    expect(rec.calls).toHaveLength(8);
    rec.finish();
    await loop.idle();
    await loop.stop();
  });

  it('runs a pass the gap deferred once the kernel has been quiet for quietMs (the trailing edge), not at the end of the gap', async () => {
    const { loop, rec, clock, reasons } = harness(EDGE_OPTS);
    // A storm: every pass ends with more events queued, and the streak grows to the 1 s gap.
    let storming = true;
    rec.auto = () => {
      if (storming) loop.trigger('netlink-event');
      return result('converged');
    };
    loop.updateSource('files', [device('a')], true);
    loop.start();
    await churnFor(loop, clock, 3_000);
    storming = false;
    await flush();
    expect(loop.status().churnStreak).toBeGreaterThanOrEqual(3);
    const calls = rec.calls.length;
    // The storm's last events, 20 ms apart: each pushes the edge back.
    loop.trigger('netlink-event');
    clock.advance(20);
    loop.trigger('resync-needed');
    await flush();
    clock.advance(24);
    await flush();
    expect(rec.calls).toHaveLength(calls);
    // 25 ms after the last one: a pass, ~975 ms before the gap would have let it.
    clock.advance(1);
    await flush();
    expect(rec.calls).toHaveLength(calls + 1);
    expect(reasons.at(-1)).toEqual(['netlink-event', 'resync-needed']);
    await loop.idle();
    await loop.stop();
  });

  /**
   * A reconciler in miniature for the storm tests: each pass repairs every drifted device it is
   * not told to hold, and says when (clock time) it did.
   */
  function miniKernel(h: Harness): { drift(d: string): void; repairedAt: Map<string, number> } {
    const drifted = new Set<string>();
    const repairedAt = new Map<string, number>();
    h.rec.auto = (input) => {
      const repaired = [...drifted].filter((d) => !(input.hold ?? []).includes(d));
      for (const d of repaired) {
        drifted.delete(d);
        repairedAt.set(d, h.clock.now());
      }
      return result('converged', { actions: repaired.map(action) });
    };
    return { drift: (d) => void drifted.add(d), repairedAt };
  }

  /** A loop with EDGE_OPTS (and `extra`) over a mini kernel holding `names`, started and idle. */
  async function edgeLoop(names: string[], extra: Partial<LoopOptions> = {}): Promise<Harness & { kernel: ReturnType<typeof miniKernel> }> {
    const h = harness({ ...EDGE_OPTS, ...extra });
    const kernel = miniKernel(h);
    h.loop.updateSource('files', names.map((d) => device(d)), true);
    h.loop.start();
    await h.loop.idle();
    return { ...h, kernel };
  }

  it('keeps event-woken passes rate-limited while a storm goes on, and repairs a drift made at its very end within quietMs', async () => {
    const { loop, rec, clock, kernel } = await edgeLoop(['a', 'b']);
    const before = rec.calls.length;
    // 10 s of events every 2 ms; a drifts in the middle, b with the storm's last event.
    await churnFor(loop, clock, 5_000, 2);
    kernel.drift('a');
    await churnFor(loop, clock, 5_000, 2);
    kernel.drift('b');
    loop.trigger('netlink-event');
    const lastEventAt = clock.now();
    await flush();
    const during = rec.calls.length - before;
    // At most one pass per capped gap, plus the short gaps at the start and after a's repair
    // (a spin would be a pass per event: 5,000).
    expect(during).toBeLessThanOrEqual(10 + 6);
    expect(kernel.repairedAt.get('a')).toBeLessThan(lastEventAt);
    clock.advance(25);
    await loop.idle();
    expect(kernel.repairedAt.get('b')).toBe(lastEventAt + 25);
    await loop.stop();
  });

  it('spends at most one pass per gap on a quiet spell that was not the end of the churn (bursts of foreign changes)', async () => {
    const { loop, rec, clock, kernel } = await edgeLoop(['a']);
    const before = rec.calls.length;
    // 10 s of bursts: 50 ms of events, then 50 ms of quiet (twice quietMs) — none of it ours.
    for (let i = 0; i < 100; i++) {
      await churnFor(loop, clock, 50, 2);
      clock.advance(50);
      await flush();
    }
    const passes = rec.calls.length - before;
    // A pass per burst would be 100; the gap's pass and one false end per gap are at most 2 per 1 s.
    expect(passes).toBeLessThanOrEqual(2 * 10 + 4);
    // The churn over, a drift right after its last burst: nothing tells it from one more burst,
    // so it is repaired by the next gap's pass at the latest, if a false end spent the trailing edge...
    kernel.drift('a');
    loop.trigger('netlink-event');
    const t = clock.now();
    for (let i = 0; i < 200; i++) {
      clock.advance(5);
      await flush();
    }
    await loop.idle();
    expect(kernel.repairedAt.get('a')).toBeLessThanOrEqual(t + 1_000);
    // ... and that repair re-arms it: the next drift is repaired once the kernel is quiet.
    expect(loop.status().trailingEdgeArmed).toBe(true);
    kernel.drift('a');
    loop.trigger('netlink-event');
    const t2 = clock.now();
    clock.advance(25);
    await loop.idle();
    expect(kernel.repairedAt.get('a')).toBe(t2 + 25);
    await loop.stop();
  });

  /** A storm that grows the gap to 1 s, then a quiet spell whose pass finds nothing: a false end. */
  async function spendTrailingEdge(h: Harness): Promise<void> {
    const { loop, clock } = h;
    await churnFor(loop, clock, 3_000, 2);
    clock.advance(25);
    await loop.idle();
    expect(loop.status().trailingEdgeArmed).toBe(false);
    expect(loop.status().churnStreak).toBeGreaterThanOrEqual(3);
  }

  it('re-arms a spent trailing edge for an event about our own state: that drift is repaired quietMs after the kernel goes quiet, not at the gap', async () => {
    const h = await edgeLoop(['a']);
    const { loop, clock, kernel } = h;
    await spendTrailingEdge(h);
    // The storm goes on (foreign), our drift comes in the middle of it, then more foreign events.
    await churnFor(loop, clock, 10, 2);
    kernel.drift('a');
    loop.trigger('netlink-event', { ours: true });
    expect(loop.status().trailingEdgeArmed).toBe(true);
    await churnFor(loop, clock, 10, 2);
    const lastEventAt = clock.now();
    for (let i = 0; i < 24; i++) {
      clock.advance(1);
      await flush();
    }
    expect(kernel.repairedAt.has('a')).toBe(false);
    clock.advance(1);
    await loop.idle();
    expect(kernel.repairedAt.get('a')).toBe(lastEventAt + 25);
    await loop.stop();
  });

  it('keeps a spent trailing edge spent for events not marked ours (foreign churn): that drift waits for the gap', async () => {
    const h = await edgeLoop(['a']);
    const { loop, clock, kernel } = h;
    await spendTrailingEdge(h);
    const falseEndAt = clock.now();
    kernel.drift('a');
    loop.trigger('netlink-event');
    loop.trigger('resync-needed');
    expect(loop.status().trailingEdgeArmed).toBe(false);
    for (let i = 0; i < 250; i++) {
      clock.advance(5);
      await flush();
    }
    await loop.idle();
    expect(kernel.repairedAt.get('a')).toBe(falseEndAt + 1_000);
    await loop.stop();
  });

  it('keeps the trailing edge armed when an event about our state comes while a quiet-spell pass runs that then finds nothing', async () => {
    const h = harness(EDGE_OPTS);
    const { loop, rec, clock } = h;
    let storming = true;
    let oursDuringPass = false;
    rec.auto = () => {
      if (storming) loop.trigger('netlink-event');
      else if (oursDuringPass) loop.trigger('netlink-event', { ours: true });
      return result('converged');
    };
    loop.updateSource('files', [device('a')], true);
    loop.start();
    await churnFor(loop, clock, 3_000);
    storming = false;
    await loop.idle();
    // A quiet-spell pass during which our state changes (after it looked): it applied nothing,
    // but it must not spend the edge.
    oursDuringPass = true;
    loop.trigger('netlink-event');
    clock.advance(25);
    await flush();
    oursDuringPass = false;
    expect(loop.status().trailingEdgeArmed).toBe(true);
    const calls = rec.calls.length;
    clock.advance(25);
    await loop.idle();
    expect(rec.calls).toHaveLength(calls + 1);
    await loop.stop();
  });

  it('answers an actor fighting a held device with the gap, not with a pass per pause of the actor, and re-arms the trailing edge with the repair', async () => {
    const { loop, rec, clock, kernel } = await edgeLoop(['a', 'b'], { fight: { initialMs: 60_000, maxMs: 60_000, jitter: 0 } });
    // Two repairs of a in a row: a fight, a is held for a minute.
    for (let i = 0; i < 2; i++) {
      kernel.drift('a');
      loop.trigger('netlink-event');
      await loop.idle();
    }
    expect(Object.keys(loop.status().holds)).toEqual(['a']);
    const before = rec.calls.length;
    // The actor goes on changing a every 100 ms for 10 s; each pass finds nothing it may do.
    // Its changes are about our state, but with a hold in force they do not re-arm the edge.
    for (let i = 0; i < 100; i++) {
      kernel.drift('a');
      loop.trigger('netlink-event', { ours: true });
      clock.advance(100);
      await flush();
    }
    const passes = rec.calls.length - before;
    // One per capped gap, the short gaps at the start, and one false end: a pass per change would be 100.
    expect(passes).toBeLessThanOrEqual(10 + 4);
    expect(loop.status().trailingEdgeArmed).toBe(false);
    // Another device drifts meanwhile: repaired with the next gap's pass, and that repair re-arms
    // the trailing edge.
    kernel.drift('b');
    loop.trigger('netlink-event');
    clock.advance(1_000);
    await loop.idle();
    expect(kernel.repairedAt.has('b')).toBe(true);
    expect(loop.status().trailingEdgeArmed).toBe(true);
    await loop.stop();
  });

  it('carries nothing from storm to storm: the 20th storm ends as promptly, in as few passes, as the first', async () => {
    const h = harness(EDGE_OPTS);
    const { loop, rec, clock } = h;
    const kernel = miniKernel(h);
    const devices = Array.from({ length: 20 }, (_, i) => `d${i}`);
    loop.updateSource('files', devices.map((d) => device(d)), true);
    loop.start();
    await loop.idle();
    const latency: number[] = [];
    const passes: number[] = [];
    for (const [i, d] of devices.entries()) {
      const before = rec.calls.length;
      // 3 s of events, a device of its own (no fight) drifted in the storm's last event, and then
      // 500 ms of quiet: less than the two gaps that end a streak, so the streak carries over.
      await churnFor(loop, clock, 3_000 - (i % 3) * 7, 2);
      kernel.drift(d);
      loop.trigger('netlink-event');
      const end = clock.now();
      // (The manual clock runs a pass only when the test yields: in steps.)
      for (let t = 0; t < 500; t += 5) {
        clock.advance(5);
        await flush();
      }
      await loop.idle();
      latency.push(kernel.repairedAt.get(d)! - end);
      passes.push(rec.calls.length - before);
    }
    expect(latency).toEqual(devices.map(() => 25));
    // At most one per gap and the edges; storm 20 no more than storm 2 (the first starts from calm).
    expect(Math.max(...passes)).toBeLessThanOrEqual(3 + 3);
    expect(passes.at(-1)).toBeLessThanOrEqual(passes[1]!);
    await loop.stop();
  });

  it('marks the passes that must trust no cache: startup, lost events, changed declarations, retries, and one per resync interval', async () => {
    const { loop, rec, clock } = harness({ resyncIntervalMs: 300_000 });
    rec.auto = () => result('converged');
    loop.updateSource('files', [device('a')], true);
    loop.start();
    await loop.idle();
    const pass = async (reason: 'netlink-event' | 'resync-needed'): Promise<boolean | undefined> => {
      loop.trigger(reason);
      await loop.idle();
      return rec.calls.at(-1)!.verify;
    };
    expect(rec.calls[0]!.verify).toBe(true);
    expect(await pass('netlink-event')).toBe(false);
    expect(await pass('resync-needed')).toBe(true);
    // Event-woken passes every 100 s keep pushing the periodic timer back; every 300 s one verifies all the same.
    const verified: Array<boolean | undefined> = [];
    for (let i = 0; i < 6; i++) {
      clock.advance(100_000);
      verified.push(await pass('netlink-event'));
    }
    expect(verified).toEqual([false, false, true, false, false, true]);
    loop.updateSource('files', [device('a', { mtu: 1400 })], true);
    await loop.idle();
    expect(rec.calls.at(-1)!.verify).toBe(true);
    await loop.stop();
  });
});
