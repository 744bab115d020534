/**
 * The reconcile loop: decides WHEN to run one reconcile (observe → plan → apply), never what it
 * does. Every trigger — a Monitor event, a `resync-needed`, a change of desired state, the periodic
 * resync, a retry timer, the end of a fight hold — is only a reason to look again, so triggers are
 * coalesced:
 * - never more than one pass in flight;
 * - any number of triggers while a pass runs causes exactly one more pass after it (the pass
 *   that follows reads everything afresh, so it covers all of them);
 * - triggers that arrive together (same tick) start one pass.
 *
 * Churn. A pass woken only by kernel events (netlink-event, resync-needed) right after a calm
 * period starts at once: a single drift is repaired as fast as a pass can run. But when passes
 * keep ending with new kernel events already queued (an ENOBUFS storm, a routing daemon
 * converging), starting one more at once, pass after pass, spends the CPU relisting a state that
 * is still moving. Then event-woken passes wait a gap after the previous pass, growing with the
 * streak of such passes (`churn` backoff, capped, 1 s by default so latency under churn stays
 * bounded): the rate limit. A pass woken only by kernel events that found nothing to apply also
 * continues the streak, whether or not more events are queued: the kernel keeps moving in ways
 * tunkeeper does not act on (foreign churn, or a held device that another actor keeps changing),
 * and answering each such event at once with a full pass would be the spin the hold exists to
 * prevent. A pass that applied a change and ended with nothing queued resets the streak, as do
 * two gaps' worth of quiet, so the next drift is repaired at once. Changes of desired state,
 * retries, the periodic resync and the end of a hold are never delayed by it.
 *
 * Trailing edge. The gap says how often to look while the kernel moves, not how long to wait
 * once it stopped: a storm that ends just after a pass must not leave the node unrepaired for the
 * rest of the gap. So a pass the gap defers runs as soon as the kernel has been quiet (no kernel
 * event) for `quietMs` (25 ms by default), whichever comes first. Every kernel event pushes that
 * moment back, so during a storm the gap still paces the passes. A quiet spell is not always the
 * end: foreign churn comes in bursts, and an actor fighting a held device pauses between its
 * changes. A trailing-edge pass that applied nothing was such a false end, and it spends the
 * trailing edge: it is re-armed by a pass that applied a change, by the end of the streak, and by
 * a pass the gap itself started while no device is held. So under any churn at most one pass per
 * gap is spent on a quiet spell that was not the end (two passes per gap at most, one with a
 * hold in force), and the state carries nothing from one storm to the next beyond the streak,
 * whose gap is capped: the storm after a hundred others ends as promptly as the first.
 * A kernel event about tunkeeper's own state (`trigger('netlink-event', { ours: true })`: the
 * agent classifies it, controller/agent/own-events.ts) re-arms it too, while no device is held:
 * a drift of ours after a false end is then repaired quietMs after the kernel goes quiet, not at
 * the end of the gap. Foreign churn does not re-arm it, nor does resync-needed (an overflowing
 * socket says nothing about whose state changed, and during an overflow storm it would re-arm
 * constantly), nor an event while a hold is in force (an actor fighting a held device changes
 * our state with each move, and re-arming on each would be a pass per pause of the actor).
 *
 * Retries. A device whose actions failed gets a retry timer with exponential backoff (jitter,
 * capped); it is reset by a pass in which the device has no failures. A pass that could not trust
 * its observation ('interrupted') or threw is retried the same way. Any other trigger may run a
 * pass sooner: the timer is a floor on persistence, not a gate.
 *
 * Fights. A device repaired again soon after its previous repair, with its declaration unchanged,
 * is being changed behind tunkeeper's back (another daemon, an operator's script). Fighting it
 * pass for pass would be a hot loop, each side waking the other. Instead the loop reports it and
 * holds THAT device for a backoff (growing with the streak, capped): passes in the meantime run
 * for every other device as usual and name it in ReconcileInput.hold, so plan leaves its drift
 * unrepaired without pruning it. When the hold ends a pass runs ('hold-ended') and repairs it; a
 * changed declaration of the device ends its hold at once (a new declaration is not a fight).
 *
 * Verification. A reconcile may keep what it learnt of foreign state between passes when it can
 * tell that nothing changed (controller/observe/cache.ts). The loop marks the passes that must
 * trust no such cache (ReconcileInput.verify): the first one, periodic ones, those after lost
 * events (resync-needed), changed declarations and retries, and any pass when the last verified
 * one is a resync interval old (event-woken passes keep pushing the periodic timer back).
 */
import type { DesiredDevice } from '../model/desired.js';
import type { ReconcileInput, ReconcileOnce, ReconcileResult } from '../reconcile/types.js';
import { backoffDelay, type BackoffOptions, type Random } from './backoff.js';
import { systemClock, type Clock, type TimerHandle } from './clock.js';
import { DesiredSources, type CrossSourceConflict } from './desired-sources.js';

export const WAKE_REASONS = ['startup', 'netlink-event', 'resync-needed', 'desired-changed', 'periodic', 'retry', 'hold-ended'] as const;
export type WakeReason = (typeof WAKE_REASONS)[number];

/** Reasons that only say "the kernel changed": the ones the churn gap may defer. */
const KERNEL_REASONS: ReadonlySet<WakeReason> = new Set(['netlink-event', 'resync-needed']);

/** Reasons whose pass re-lists everything, whatever a reconcile may have kept (see Verification). */
const VERIFY_REASONS: ReadonlySet<WakeReason> = new Set(['startup', 'resync-needed', 'desired-changed', 'periodic', 'retry']);

/** Retry keys of devices no longer declared (deletions that failed): `undeclared:<name or ifname>`. */
export const UNDECLARED_RETRY_PREFIX = 'undeclared:';

export const LOOP_DEFAULTS = {
  resyncIntervalMs: 5 * 60_000,
  retry: { initialMs: 1_000, maxMs: 2 * 60_000, factor: 2, jitter: 0.2 } satisfies BackoffOptions,
  fight: { initialMs: 1_000, maxMs: 60_000, factor: 2, jitter: 0.2 } satisfies BackoffOptions,
  /** A repair within this long of the previous one (same declaration) continues a fight. */
  fightWindowMs: 2 * 60_000,
  /**
   * Gap before an event-woken pass after the n-th pass in a row that ended with kernel events
   * queued: none after the first (a repair's own notifications), then 250 ms, then 1 s. Passes
   * under churn then cost about one per second of it: bench enobufs-storm-converge-ms measured
   * 6 passes for a 5.2 s storm (main: 12-20 for 3.4-10 s storms), converged 26 ms after it.
   */
  churn: { initialMs: 250, maxMs: 1_000, factor: 4, jitter: 0 } satisfies BackoffOptions,
  /**
   * The trailing edge: a pass the churn gap defers runs once the kernel has been this quiet. Short
   * next to the gap (a storm's end is caught within it plus one pass: bench
   * enobufs-storm-converge-ms), long next to the spacing of notifications inside a storm (a
   * busy `ip -batch` sends thousands a second).
   */
  quietMs: 25,
};

export interface PassReport {
  input: ReconcileInput;
  /** Why the pass ran (every distinct reason seen since the previous pass started). */
  reasons: WakeReason[];
  startedAt: number;
  durationMs: number;
  /** Absent when the reconcile threw. */
  result?: ReconcileResult;
  error?: unknown;
}

/** Hooks for metrics and logs; every method is optional and must not throw. */
export interface LoopObserver {
  wake?(reason: WakeReason): void;
  passStarted?(input: ReconcileInput, reasons: WakeReason[]): void;
  passFinished?(report: PassReport): void;
  /** `key` is a device name, or '' for the whole pass (interrupted or thrown). */
  retryScheduled?(key: string, attempt: number, delayMs: number): void;
  /** A device repaired again within the fight window: it is held (left unrepaired) for `holdMs`. */
  fight?(device: string, streak: number, holdMs: number): void;
}

export interface LoopOptions {
  reconcile: ReconcileOnce;
  /** Names of the desired-state sources; pruning waits for a complete first sync of each. */
  sources: readonly string[];
  clock?: Clock;
  random?: Random;
  /** Period of the full resync, ms; 0 turns it off. Default 5 minutes. */
  resyncIntervalMs?: number;
  retry?: BackoffOptions;
  fight?: BackoffOptions;
  fightWindowMs?: number;
  /** Gap between event-woken passes under churn (LOOP_DEFAULTS.churn). */
  churn?: BackoffOptions;
  /** Quiet that ends a churn gap early: the trailing edge (LOOP_DEFAULTS.quietMs). */
  quietMs?: number;
  observer?: LoopObserver;
}

export interface LoopStatus {
  passes: number;
  running: boolean;
  /** When the pass in flight started (clock ms). */
  passStartedAt?: number;
  lastPassFinishedAt?: number;
  lastOutcome?: ReconcileResult['outcome'] | 'error';
  /** Every source has completed a first sync. */
  firstSyncDone: boolean;
  /** A pass with pruning on has finished. */
  prunedOnce: boolean;
  prune: boolean;
  incompleteSources: string[];
  wakeups: Record<WakeReason, number>;
  /** Retries pending, by key ('' = whole pass). */
  retries: Record<string, { attempt: number; dueAt: number }>;
  /** Devices held because of a fight: until when (clock ms). */
  holds: Record<string, number>;
  /** Passes in a row that ended with kernel events queued (the churn streak). */
  churnStreak: number;
  /** Whether a quiet kernel may end the churn gap early (see Trailing edge). */
  trailingEdgeArmed: boolean;
}

/** What a pass did, for the churn bookkeeping: applied a change, or was kernel-woken and found nothing. */
type PassOutcome = 'applied' | 'idle';

interface Retry {
  attempt: number;
  dueAt: number;
  timer: TimerHandle;
}

interface Hold {
  until: number;
  /** The declaration when the hold began: a changed one ends it. */
  spec: string;
}

interface RepairHistory {
  lastRepairAt: number;
  streak: number;
  /** The declaration at the last repair: a changed declaration is not a fight. */
  spec: string;
}

export class ReconcileLoop {
  readonly #reconcile: ReconcileOnce;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #resyncIntervalMs: number;
  readonly #retryBackoff: BackoffOptions;
  readonly #fightBackoff: BackoffOptions;
  readonly #fightWindowMs: number;
  readonly #churnBackoff: BackoffOptions;
  readonly #quietMs: number;
  readonly #observer: LoopObserver;
  readonly #sources: DesiredSources;

  readonly #pending = new Set<WakeReason>();
  readonly #wakeups = Object.fromEntries(WAKE_REASONS.map((r) => [r, 0])) as Record<WakeReason, number>;
  readonly #retries = new Map<string, Retry>();
  readonly #repairs = new Map<string, RepairHistory>();
  #inFlight: Promise<void> | undefined;
  #scheduled = false;
  #started = false;
  #stopped = false;
  #passes = 0;
  #passStartedAt: number | undefined;
  #lastPassFinishedAt: number | undefined;
  #lastOutcome: LoopStatus['lastOutcome'];
  #prunedOnce = false;
  #periodic: TimerHandle | undefined;
  readonly #holds = new Map<string, Hold>();
  #holdTimer: TimerHandle | undefined;
  #churnStreak = 0;
  #gapTimer: TimerHandle | undefined;
  /** When #gapTimer fires (clock ms). */
  #gapTimerAt = Infinity;
  /** When the latest kernel event (netlink-event, resync-needed) was triggered (clock ms). */
  #lastKernelEventAt = -Infinity;
  #trailingArmed = true;
  /** Whether an event about our own state came since the latest pass started (see Trailing edge). */
  #oursQueued = false;
  /** How the pass about to start was let through: 'gap' or 'quiet' when the churn gap deferred it. */
  #startedBy: 'gap' | 'quiet' | undefined;
  /** When the last pass that trusted no cache finished with a usable observation. */
  #lastVerifiedAt: number | undefined;
  #idleWaiters: Array<() => void> = [];

  constructor(opts: LoopOptions) {
    this.#reconcile = opts.reconcile;
    this.#clock = opts.clock ?? systemClock;
    this.#random = opts.random ?? Math.random;
    this.#resyncIntervalMs = opts.resyncIntervalMs ?? LOOP_DEFAULTS.resyncIntervalMs;
    this.#retryBackoff = opts.retry ?? LOOP_DEFAULTS.retry;
    this.#fightBackoff = opts.fight ?? LOOP_DEFAULTS.fight;
    this.#fightWindowMs = opts.fightWindowMs ?? LOOP_DEFAULTS.fightWindowMs;
    this.#churnBackoff = opts.churn ?? LOOP_DEFAULTS.churn;
    this.#quietMs = opts.quietMs ?? LOOP_DEFAULTS.quietMs;
    this.#observer = opts.observer ?? {};
    this.#sources = new DesiredSources(opts.sources);
  }

  /** Starts passing: the first pass runs once every source has reported. */
  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    this.trigger('startup');
  }

  /**
   * A reason to look again. Cheap; safe to call from any event handler. `ours`: a kernel event
   * about tunkeeper's own state, which re-arms the trailing edge (see Trailing edge).
   */
  trigger(reason: WakeReason, opts?: { ours?: boolean }): void {
    if (this.#stopped) return;
    this.#wakeups[reason]++;
    if (KERNEL_REASONS.has(reason)) {
      this.#lastKernelEventAt = this.#clock.now();
      if (opts?.ours === true && reason === 'netlink-event') {
        this.#oursQueued = true;
        if (!this.#trailingArmed && !this.#anyHeld()) this.#trailingArmed = true;
      }
    }
    this.#observer.wake?.(reason);
    this.#pending.add(reason);
    this.#kick();
  }

  /** A desired-state source's latest snapshot. */
  updateSource(name: string, devices: DesiredDevice[], complete: boolean): void {
    this.#sources.update(name, devices, complete);
    this.trigger('desired-changed');
  }

  /** Declarations two sources contest (applied from neither); see desired-sources.ts. */
  conflicts(): CrossSourceConflict[] {
    return this.#sources.conflicts();
  }

  /** Stops timers, lets a pass in flight finish, and runs no more. Idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#pending.clear();
    this.#periodic?.cancel();
    this.#holdTimer?.cancel();
    this.#gapTimer?.cancel();
    this.#gapTimerAt = Infinity;
    for (const r of this.#retries.values()) r.timer.cancel();
    this.#retries.clear();
    await this.#inFlight;
    this.#wakeIdle();
  }

  /** Resolves when no pass is in flight or about to start (for tests and orderly shutdown). */
  idle(): Promise<void> {
    if (!this.#busy()) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  status(): LoopStatus {
    const retries: LoopStatus['retries'] = {};
    for (const [k, r] of this.#retries) retries[k] = { attempt: r.attempt, dueAt: r.dueAt };
    const now = this.#clock.now();
    const holds: LoopStatus['holds'] = {};
    for (const [device, h] of this.#holds) if (h.until > now) holds[device] = h.until;
    return {
      passes: this.#passes,
      running: this.#inFlight !== undefined,
      ...(this.#passStartedAt !== undefined ? { passStartedAt: this.#passStartedAt } : {}),
      ...(this.#lastPassFinishedAt !== undefined ? { lastPassFinishedAt: this.#lastPassFinishedAt } : {}),
      ...(this.#lastOutcome !== undefined ? { lastOutcome: this.#lastOutcome } : {}),
      firstSyncDone: this.#sources.firstSyncDone,
      prunedOnce: this.#prunedOnce,
      prune: this.#sources.prune,
      incompleteSources: this.#sources.incomplete(),
      wakeups: { ...this.#wakeups },
      retries,
      holds,
      churnStreak: this.#churnStreak,
      trailingEdgeArmed: this.#trailingArmed,
    };
  }

  #busy(): boolean {
    return this.#inFlight !== undefined || this.#scheduled;
  }

  #wakeIdle(): void {
    if (this.#busy() && !this.#stopped) return;
    const w = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const f of w) f();
  }

  #kick(): void {
    if (!this.#started || this.#stopped || this.#busy() || this.#pending.size === 0) return;
    if (!this.#sources.allReported) return;
    const now = this.#clock.now();
    // Two gaps' worth of quiet ends a streak.
    if (this.#lastPassFinishedAt !== undefined && now - this.#lastPassFinishedAt > 2 * this.#churnBackoff.maxMs) this.#endStreak();
    const gap = this.#churnGap();
    let startedBy: 'gap' | 'quiet' | undefined;
    if (gap > 0 && this.#lastPassFinishedAt !== undefined && [...this.#pending].every((r) => KERNEL_REASONS.has(r))) {
      const gapDue = this.#lastPassFinishedAt + gap;
      // The trailing edge: quiet since the latest event. Events only push it later, so a timer
      // set for an earlier moment is merely early: it finds the new moment and waits again.
      const quietDue = this.#trailingArmed ? this.#lastKernelEventAt + this.#quietMs : Infinity;
      const due = Math.min(gapDue, quietDue);
      if (due > now) {
        if (due < this.#gapTimerAt) {
          this.#gapTimer?.cancel();
          this.#gapTimerAt = due;
          this.#gapTimer = this.#clock.setTimer(due - now, () => {
            this.#gapTimer = undefined;
            this.#gapTimerAt = Infinity;
            this.#kick();
          });
        }
        return;
      }
      startedBy = gapDue <= now ? 'gap' : 'quiet';
    }
    this.#startedBy = startedBy;
    this.#scheduled = true;
    // A microtask, so that triggers raised together in one tick share a pass.
    queueMicrotask(() => {
      if (this.#stopped) {
        this.#scheduled = false;
        this.#wakeIdle();
        return;
      }
      const startedBy = this.#startedBy;
      this.#startedBy = undefined;
      // #scheduled stays set until #inFlight is: a trigger raised synchronously by the reconcile
      // itself must wait for this pass, not start a second one beside it.
      this.#inFlight = this.#pass().catch(() => undefined).then((outcome) => {
        this.#inFlight = undefined;
        this.#afterPass(startedBy, outcome);
        this.#kick();
        this.#wakeIdle();
      });
      this.#scheduled = false;
    });
  }

  /**
   * The churn bookkeeping after a pass (see Churn and Trailing edge). `applied`: whether the pass
   * applied a change (undefined when it threw or was woken by more than the kernel and applied
   * nothing: neither a sign of churn nor of a repair).
   */
  #afterPass(startedBy: 'gap' | 'quiet' | undefined, outcome: PassOutcome | undefined): void {
    // Kernel events that arrived during the pass, or a kernel-woken pass with nothing to do:
    // the kernel is still moving.
    const eventsQueued = [...this.#pending].some((r) => KERNEL_REASONS.has(r));
    if (eventsQueued || outcome === 'idle') this.#churnStreak++;
    else this.#endStreak();
    if (outcome === 'applied') this.#trailingArmed = true;
    else if (startedBy === 'quiet' && outcome === 'idle') this.#trailingArmed = false;
    else if (startedBy === 'gap' && !this.#anyHeld()) this.#trailingArmed = true;
    // An event about our state during the pass is news the pass may not have seen: a false end
    // must not spend the edge it re-armed.
    if (this.#oursQueued && !this.#anyHeld()) this.#trailingArmed = true;
  }

  #endStreak(): void {
    this.#churnStreak = 0;
    this.#trailingArmed = true;
  }

  #anyHeld(): boolean {
    const now = this.#clock.now();
    for (const h of this.#holds.values()) if (h.until > now) return true;
    return false;
  }

  /** The wait before an event-woken pass: none after a calm pass or the first busy one. */
  #churnGap(): number {
    return this.#churnStreak < 2 ? 0 : backoffDelay(this.#churnStreak - 1, this.#churnBackoff, this.#random);
  }

  /**
   * Runs one pass; resolves 'idle' when it was woken only by kernel events and applied nothing,
   * 'applied' when it applied a change, undefined otherwise.
   */
  async #pass(): Promise<PassOutcome | undefined> {
    const reasons = WAKE_REASONS.filter((r) => this.#pending.has(r));
    this.#pending.clear();
    this.#oursQueued = false;
    this.#gapTimer?.cancel();
    this.#gapTimer = undefined;
    this.#gapTimerAt = Infinity;
    const startedAt = this.#clock.now();
    const desired = this.#sources.desired();
    const input: ReconcileInput = {
      desired,
      prune: this.#sources.prune,
      hold: this.#currentHolds(desired, startedAt),
      verify: this.#mustVerify(reasons, startedAt),
    };
    this.#passStartedAt = startedAt;
    this.#passes++;
    this.#observer.passStarted?.(input, reasons);
    let result: ReconcileResult | undefined;
    let error: unknown;
    try {
      result = await this.#reconcile(input);
    } catch (e) {
      error = e ?? new Error('reconcile failed');
    }
    const finishedAt = this.#clock.now();
    this.#passStartedAt = undefined;
    this.#lastPassFinishedAt = finishedAt;
    this.#lastOutcome = result?.outcome ?? 'error';
    if (result && result.outcome !== 'interrupted' && input.prune) this.#prunedOnce = true;
    if (result && result.outcome !== 'interrupted' && input.verify === true) this.#lastVerifiedAt = finishedAt;
    if (!this.#stopped) {
      this.#scheduleRetries(input, result);
      this.#noticeFights(input, reasons, result, finishedAt);
      this.#armHoldTimer();
      this.#armPeriodic();
    }
    this.#observer.passFinished?.({
      input,
      reasons,
      startedAt,
      durationMs: finishedAt - startedAt,
      ...(result ? { result } : { error }),
    });
    if (result === undefined) return undefined;
    if (result.applied > 0) return 'applied';
    return reasons.every((r) => KERNEL_REASONS.has(r)) && result.outcome === 'converged' ? 'idle' : undefined;
  }

  #mustVerify(reasons: readonly WakeReason[], now: number): boolean {
    if (this.#lastVerifiedAt === undefined || reasons.some((r) => VERIFY_REASONS.has(r))) return true;
    return this.#resyncIntervalMs > 0 && now - this.#lastVerifiedAt >= this.#resyncIntervalMs;
  }

  /** The devices held in this pass; holds that ended, or whose declaration changed, are dropped. */
  #currentHolds(desired: readonly DesiredDevice[], now: number): string[] {
    if (this.#holds.size === 0) return [];
    const specs = new Map(desired.map((d) => [d.name, JSON.stringify(d)]));
    for (const [device, h] of this.#holds) if (h.until <= now || specs.get(device) !== h.spec) this.#holds.delete(device);
    return [...this.#holds.keys()].sort();
  }

  /** A pass when the earliest hold ends, so that device's drift is then repaired. */
  #armHoldTimer(): void {
    this.#holdTimer?.cancel();
    this.#holdTimer = undefined;
    let earliest = Infinity;
    for (const h of this.#holds.values()) earliest = Math.min(earliest, h.until);
    if (earliest === Infinity) return;
    this.#holdTimer = this.#clock.setTimer(Math.max(0, earliest - this.#clock.now()), () => {
      this.#holdTimer = undefined;
      this.trigger('hold-ended');
    });
  }

  #armPeriodic(): void {
    this.#periodic?.cancel();
    this.#periodic = undefined;
    if (this.#resyncIntervalMs <= 0) return;
    // From the end of the last pass: a full look at least this often, whatever woke the others.
    this.#periodic = this.#clock.setTimer(this.#resyncIntervalMs, () => {
      this.#periodic = undefined;
      this.trigger('periodic');
    });
  }

  #scheduleRetries(input: ReconcileInput, result: ReconcileResult | undefined): void {
    if (!result || result.outcome === 'interrupted') {
      // Nothing was applied, so per-device retries stay as they were; the whole pass is retried.
      this.#retry('');
      return;
    }
    this.#clearRetry('');
    // A device no longer declared whose deletion fails keeps a retry of its own, under a key that
    // cannot be a declared name: under '' (the whole pass's key, cleared by every pass that ran)
    // its attempt count would restart each time and it would be retried every second forever.
    const declared = new Set(input.desired.map((d) => d.name));
    const keyOf = (f: ReconcileResult['failures'][number]): string =>
      declared.has(f.device) ? f.device : `${UNDECLARED_RETRY_PREFIX}${f.device !== '' ? f.device : (f.action.ifname ?? '?')}`;
    const failing = new Set(result.failures.map(keyOf));
    // A held device was not looked at: its retry (if any) stands until a pass takes it on again.
    const held = new Set(input.hold ?? []);
    for (const key of [...this.#retries.keys()]) if (key !== '' && !failing.has(key) && !held.has(key)) this.#clearRetry(key);
    for (const key of failing) this.#retry(key);
  }

  #retry(key: string): void {
    const previous = this.#retries.get(key);
    previous?.timer.cancel();
    const attempt = (previous?.attempt ?? 0) + 1;
    const delay = backoffDelay(attempt, this.#retryBackoff, this.#random);
    const timer = this.#clock.setTimer(delay, () => {
      const r = this.#retries.get(key);
      // The entry stays (with its attempt count) until a pass shows the device healthy.
      if (r?.timer === timer) this.trigger('retry');
    });
    this.#retries.set(key, { attempt, dueAt: this.#clock.now() + delay, timer });
    this.#observer.retryScheduled?.(key, attempt, delay);
  }

  #clearRetry(key: string): void {
    this.#retries.get(key)?.timer.cancel();
    this.#retries.delete(key);
  }

  #noticeFights(input: ReconcileInput, reasons: WakeReason[], result: ReconcileResult | undefined, now: number): void {
    if (!result?.plan || result.outcome === 'interrupted') return;
    // Changes made because the declarations arrived or changed are not drift repairs.
    if (reasons.includes('startup') || reasons.includes('desired-changed')) return;
    const failed = new Set(result.failures.map((f) => f.action));
    const repaired = new Set<string>();
    for (const a of result.plan.actions) if (a.device !== undefined && !failed.has(a)) repaired.add(a.device);
    for (const [device, h] of this.#repairs) if (now - h.lastRepairAt > this.#fightWindowMs) this.#repairs.delete(device);
    if (repaired.size === 0) return;
    // Only the repaired declarations are serialised: this runs every pass, beside 200+ devices.
    const declared = new Map<string, DesiredDevice>();
    for (const d of input.desired) if (repaired.has(d.name)) declared.set(d.name, d);
    for (const device of repaired) {
      const d = declared.get(device);
      if (d === undefined) continue; // a deletion of an undeclared device is not a repair
      const spec = JSON.stringify(d);
      const h = this.#repairs.get(device);
      const streak = h && h.spec === spec && now - h.lastRepairAt <= this.#fightWindowMs ? h.streak + 1 : 1;
      this.#repairs.set(device, { lastRepairAt: now, streak, spec });
      if (streak < 2) continue;
      const hold = backoffDelay(streak - 1, this.#fightBackoff, this.#random);
      this.#holds.set(device, { until: now + hold, spec });
      this.#observer.fight?.(device, streak, hold);
    }
  }
}
