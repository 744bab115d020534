/**
 * Running a device's probes until they pass or time runs out. No I/O here: one attempt of one
 * probe is a function the caller gives (ProbeRunner's kernel attempts, or a script in unit tests),
 * and time is an injected clock, so the retry schedule is tested without real timers.
 *
 * Every probe runs its own retry loop, all at once: a probe passes if one attempt passes before
 * the deadline (spec.rollout.probeTimeoutSeconds after the run started); a failing attempt is
 * repeated at the probe's interval (route lookups are cheap: 500 ms; an echo waits up to its
 * interval for the reply: 1 s; none is started with less than a quarter interval left). A run is cancelled through its AbortSignal (a newer spec
 * supersedes it): it then rejects with the signal's reason and attempts no more.
 */
import { DEFAULT_ROLLOUT, probeKey, type DesiredDevice, type DesiredProbe } from '../model/desired.js';
import type { ProbeVerdict } from './verdict.js';

/** The shape of controller/loop's Clock (structurally): monotonic ms and one-shot timers. */
export interface ProbeClock {
  now(): number;
  setTimer(ms: number, fn: () => void): { cancel(): void };
}

export const systemProbeClock: ProbeClock = {
  now: () => performance.now(),
  setTimer(ms, fn) {
    const t = setTimeout(fn, Math.max(0, ms));
    return { cancel: () => clearTimeout(t) };
  },
};

/** Retry intervals per probe kind, ms. */
export interface ProbeIntervals {
  route: number;
  ping: number;
}

export const DEFAULT_PROBE_INTERVALS: ProbeIntervals = { route: 500, ping: 1000 };

/** One attempt of one probe. `timeoutMs` is how long it may wait (an echo's reply). */
export type ProbeAttempt = (probe: DesiredProbe, opts: { timeoutMs: number; signal: AbortSignal }) => Promise<ProbeVerdict>;

/** A probe's outcome, as status, metrics and logs report it. */
export interface ProbeResult {
  /** probeKey(): `route 198.51.100.7`. */
  probe: string;
  kind: DesiredProbe['kind'];
  to: string;
  passed: boolean;
  /** The last attempt's answer in words. */
  message: string;
  attempts: number;
  /** When the last attempt ended (wall clock, ISO 8601). */
  at: string;
}

export interface RunProbesContext {
  attempt: ProbeAttempt;
  clock?: ProbeClock;
  /** Wall clock for ProbeResult.at; default new Date(). */
  wallClock?: () => Date;
  signal?: AbortSignal;
  intervals?: ProbeIntervals;
  /** Overrides device.rollout.probeTimeoutSeconds (e.g. for a plan that must not wait). */
  timeoutMs?: number;
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The probe run was aborted', 'AbortError');
}

/** Resolves after ms on the clock, or rejects when the signal aborts first. */
function sleep(clock: ProbeClock, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(abortReason(signal));
      return;
    }
    const onAbort = (): void => {
      timer.cancel();
      reject(abortReason(signal));
    };
    const timer = clock.setTimer(ms, () => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** An attempt that throws (a bug, a closed socket) is a failed attempt with the error's text. */
async function attemptOnce(ctx: RunProbesContext, probe: DesiredProbe, timeoutMs: number, signal: AbortSignal): Promise<ProbeVerdict> {
  try {
    return await ctx.attempt(probe, { timeoutMs, signal });
  } catch (e) {
    if (signal.aborted) throw abortReason(signal);
    return { passed: false, message: `${probeKey(probe)}: ${e instanceof Error ? e.message : String(e)}` };
  }
}

function result(probe: DesiredProbe, v: ProbeVerdict, attempts: number, at: Date): ProbeResult {
  return { probe: probeKey(probe), kind: probe.kind, to: probe.to, passed: v.passed, message: v.message, attempts, at: at.toISOString() };
}

async function runOne(probe: DesiredProbe, ctx: RunProbesContext, clock: ProbeClock, deadline: number, signal: AbortSignal): Promise<ProbeResult> {
  const interval = (ctx.intervals ?? DEFAULT_PROBE_INTERVALS)[probe.kind];
  const wall = ctx.wallClock ?? (() => new Date());
  for (let attempts = 1; ; attempts++) {
    const start = clock.now();
    // The last attempt may still wait its full interval: an echo answered late is a failure, one
    // answered in time is not, whatever the deadline.
    // Whole milliseconds: the clock is fractional, timers and the echo facade take integers.
    const timeoutMs = Math.max(1, Math.floor(Math.min(interval, deadline - start)));
    const verdict = await attemptOnce(ctx, probe, timeoutMs, signal);
    if (signal.aborted) throw abortReason(signal);
    const now = clock.now();
    if (verdict.passed || now >= deadline) return result(probe, verdict, attempts, wall());
    const wait = Math.min(Math.max(0, start + interval - now), deadline - now);
    if (wait > 0) await sleep(clock, wait, signal);
    // An attempt squeezed into the last sliver before the deadline (an echo allowed 1 ms) would
    // only report a meaningless timeout: the last full attempt's answer stands.
    if (deadline - clock.now() < interval / 4) return result(probe, verdict, attempts, wall());
  }
}

/** The probe timeout of a device, ms: its spec.rollout, else the default. */
export function probeTimeoutMs(device: Pick<DesiredDevice, 'rollout'>): number {
  return (device.rollout ?? DEFAULT_ROLLOUT).probeTimeoutSeconds * 1000;
}

/**
 * Runs every probe of the device until each passes or the deadline passes; one result per probe,
 * in the device's order. Rejects only when aborted.
 */
export async function runProbes(device: Pick<DesiredDevice, 'probes' | 'rollout'>, ctx: RunProbesContext): Promise<ProbeResult[]> {
  const clock = ctx.clock ?? systemProbeClock;
  const signal = ctx.signal ?? new AbortController().signal;
  if (signal.aborted) throw abortReason(signal);
  const deadline = clock.now() + (ctx.timeoutMs ?? probeTimeoutMs(device));
  return Promise.all((device.probes ?? []).map((p) => runOne(p, ctx, clock, deadline, signal)));
}

/** One attempt of each probe, no retry (what `tunkeeper plan` shows). */
export async function probeOnce(device: Pick<DesiredDevice, 'probes'>, ctx: Pick<RunProbesContext, 'attempt' | 'wallClock' | 'signal' | 'intervals'>): Promise<ProbeResult[]> {
  const signal = ctx.signal ?? new AbortController().signal;
  if (signal.aborted) throw abortReason(signal);
  const intervals = ctx.intervals ?? DEFAULT_PROBE_INTERVALS;
  const wall = ctx.wallClock ?? (() => new Date());
  return Promise.all(
    (device.probes ?? []).map(async (p) => {
      const v = await attemptOnce({ attempt: ctx.attempt }, p, intervals[p.kind], signal);
      return result(p, v, 1, wall());
    }),
  );
}
