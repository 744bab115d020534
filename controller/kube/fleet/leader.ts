/**
 * Leader election over a coordination.k8s.io/v1 Lease: of the DaemonSet's agents (one per node,
 * possibly thousands), exactly one at a time aggregates every node's report into
 * TunDevice.status. client-go's leaderelection semantics, in our own code:
 *
 * - The Lease's spec is the record: holderIdentity, leaseDurationSeconds, acquireTime, renewTime
 *   (RFC3339 with microseconds) and leaseTransitions. Every write is compare-and-swap: a create
 *   (409 AlreadyExists when someone was first) or an update carrying the resourceVersion that was
 *   read (409 Conflict when someone wrote since). So two agents may both believe a lease has
 *   expired, but only one of them gets it: a wrong guess is a hand-over, never two holders.
 * - The leader renews (renewTime = now) every retryPeriod. When it has not renewed successfully
 *   for renewDeadline — measured from when its last successful renew was SENT, by its own clock —
 *   it stops leading at once, even with a request still in flight (that request is aborted). A
 *   renew that meets another holder (409, then a read) stands down at once too.
 * - A candidate takes the lease when it is absent, free (empty holder), or expired. Expired is
 *   either (a) client-go's rule: the record (holder, renewTime, resourceVersion) has not changed
 *   for the record's leaseDuration of the candidate's OWN monotonic clock since the candidate
 *   first saw it — no clocks are compared; or (b) the record's renewTime is older than twice the
 *   leaseDuration by the candidate's wall clock. (b) is safe while clocks disagree by less than
 *   2×leaseDuration − renewDeadline (20 s at the defaults; we promise one lease duration, 15 s):
 *   the leader has stood down renewDeadline after its last renew by then.
 *   Why safe with (a): the leader stands down renewDeadline (10 s) after SENDING its last
 *   successful renew; a candidate saw that record only after it was written and waits
 *   leaseDuration (15 s) more, so the old leader has stopped 5 s before anyone can acquire.
 *
 * Scale. Every agent is a candidate, and a naive poll every retryPeriod (2 s) is 500 GETs/s at
 * 1,000 nodes. So the leader writes `tunkeeper.io/fleet-size: "<n>"` on the Lease (inside its
 * normal renew PUT, never an extra write; n comes from setFleetSize()), and a candidate polls every
 * retryPeriod × max(1, n/16) × [1, 1.5) — the jitter spreads the fleet's polls — capped at
 * maxPollMs (5 min, so a wrong annotation cannot silence the fleet for hours). The fleet as a
 * whole then reads 16/retryPeriod × 1/[1,1.5) = 5.3–8 GETs/s (about 6.5 on average) whatever
 * its size, up to ~3,000 agents (beyond, the cap wins: n/(5 min × 1.25) per second, e.g. 27/s
 * at 10,000). Failing over:
 * - a released lease (stop() on SIGTERM writes an empty holder) is taken at the next poll of
 *   any candidate: with ~6.5 fleet polls a second, about 0.15 s on average;
 * - a crashed leader: in a small fleet (≤ 16, polling every 2–3 s) rule (a) fires after a poll
 *   to see the last record, leaseDuration, and a poll to look again: ~15–21 s. In a large one a
 *   candidate sees the record twice only minutes apart, so rule (b) decides: at the first fleet
 *   poll after renewTime + 2×leaseDuration, ~30 s + 0.15 s, whatever the fleet's size.
 *   (Clean hand-overs, the common case on rollouts and drains, never wait for either rule.)
 *
 * The leader itself renews every 2 s: 0.5 writes/s. Requests are only get, create and update on
 * leases in the namespace (all the RBAC it needs), each with a deadline no longer than
 * renewDeadline and the elector's lifetime signal. Timers are unref'd and none is left after
 * stop(). onStartedLeading and onStoppedLeading strictly alternate (started first), and a throw
 * in either is logged, never fatal.
 */
import type { Logger } from '../../telemetry/logger.js';
import { backoffDelay, type BackoffOptions, type Random } from '../../loop/backoff.js';
import { systemClock, type Clock, type TimerHandle } from '../../loop/clock.js';
import { KubeApiError, type KubeApi, type RequestSpec } from '../api-client.js';
import type { ObjectMeta } from '../types.js';

export const FLEET_SIZE_ANNOTATION = 'tunkeeper.io/fleet-size';

export const LEADER_DEFAULTS = {
  leaseName: 'tunkeeper-status-leader',
  /** client-go's standard timings. */
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
  /** A candidate's poll period is retryPeriod × max(1, fleetSize / this). */
  fleetPollDivisor: 16,
  /** No candidate polls less often than this (before jitter), whatever the annotation says. */
  maxPollMs: 300_000,
  /** stop()'s hand-over write, all of it (a read and two writes at most). */
  releaseTimeoutMs: 2_000,
};

export interface LeaderElectorOptions {
  /** Only `request` is used (get, create, update of one Lease). */
  api: Pick<KubeApi, 'request'>;
  namespace: string;
  leaseName?: string;
  /** `${nodeName}_${random suffix}`: the holderIdentity, so operators see which node leads. */
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  maxPollMs?: number;
  releaseTimeoutMs?: number;
  logger: Logger;
  random?: Random;
  /** Wall clock, epoch ms: renewTime and acquireTime written, rule (b) read. Default Date.now. */
  now?: () => number;
  /** Monotonic time and timers: durations (rule (a), renewDeadline) and waits. Default systemClock. */
  clock?: Clock;
  onStartedLeading(): void;
  onStoppedLeading(): void;
}

export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

export interface LeaseObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta & { annotations?: Record<string, string> };
  spec?: LeaseSpec;
}

const LEASES_API = '/apis/coordination.k8s.io/v1';

/** RFC3339 with microseconds, as metav1.MicroTime is written: 2026-12-07T08:00:00.000000Z. */
export function microTime(epochMs: number): string {
  return new Date(epochMs).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** Epoch ms of an RFC3339 time (any number of fraction digits), or undefined. */
export function parseMicroTime(s: string | undefined): number | undefined {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/.exec(s ?? '');
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (!Number.isFinite(ms)) return undefined;
  return ms + Number(`0.${m[2] ?? '0'}`) * 1000;
}

type Outcome = 'done' | 'lost-race';

export class LeaderElector {
  readonly #o: Required<Omit<LeaderElectorOptions, 'onStartedLeading' | 'onStoppedLeading'>>;
  readonly #onStarted: () => void;
  readonly #onStopped: () => void;
  readonly #path: string;
  readonly #durationS: number;
  readonly #renewBackoff: BackoffOptions;
  readonly #lifetime = new AbortController();

  #running: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  #stopped = false;
  #leading = false;
  /** Incremented whenever leadership starts or ends: an answer from another term is stale. */
  #term = 0;
  /** The Lease as last written or read (its resourceVersion is what the next update carries). */
  #lease: LeaseObject | undefined;
  /** Monotonic time the last successful renew (or the acquisition) was sent. */
  #renewedAt = 0;
  #renewFailures = 0;
  #watchdog: TimerHandle | undefined;
  /** Rule (a): the record last seen and when (monotonic) it was first seen. */
  #observed: { key: string; at: number } | undefined;
  #holder: string | undefined;
  #fleetSize: number | undefined;
  #inFlight: { abort: AbortController; acquiring: boolean } | undefined;
  /** An acquiring write was aborted by stop(): it may have succeeded; look before leaving. */
  #mayHold = false;
  #sleep: { timer: TimerHandle; wake: () => void } | undefined;
  /** The last look lost a race (409): the next look comes at once, but only once in a row. */
  #lostRaceBefore = false;
  /** The last reason this candidate could not read or create the lease, warned about once. */
  #problem: string | undefined;

  constructor(opts: LeaderElectorOptions) {
    const o = {
      ...LEADER_DEFAULTS,
      random: Math.random,
      now: Date.now,
      clock: systemClock,
      ...stripUndefined(opts),
    };
    if (!o.identity) throw new Error('leader election needs an identity');
    if (!o.namespace) throw new Error('leader election needs a namespace');
    if (!(o.leaseDurationMs >= 1000)) throw new Error(`leaseDurationMs must be at least 1000 (got ${o.leaseDurationMs})`);
    if (!(o.renewDeadlineMs < o.leaseDurationMs)) throw new Error(`renewDeadlineMs (${o.renewDeadlineMs}) must be shorter than leaseDurationMs (${o.leaseDurationMs})`);
    if (!(o.retryPeriodMs > 0 && o.retryPeriodMs < o.renewDeadlineMs)) throw new Error(`retryPeriodMs (${o.retryPeriodMs}) must be positive and shorter than renewDeadlineMs (${o.renewDeadlineMs})`);
    this.#o = o;
    this.#onStarted = opts.onStartedLeading;
    this.#onStopped = opts.onStoppedLeading;
    this.#path = `${LEASES_API}/namespaces/${encodeURIComponent(o.namespace)}/leases`;
    // Whole seconds on the wire; rounding up only makes the others wait longer (safer).
    this.#durationS = Math.ceil(o.leaseDurationMs / 1000);
    // A failed renew is retried soon, then every retryPeriod, until renewDeadline.
    this.#renewBackoff = { initialMs: o.retryPeriodMs / 4, maxMs: o.retryPeriodMs, factor: 2, jitter: 0.5 };
  }

  get isLeader(): boolean {
    return this.#leading;
  }

  /** The holderIdentity last observed (our own while leading); undefined when none (free or never seen). */
  get holder(): string | undefined {
    return this.#holder;
  }

  get identity(): string {
    return this.#o.identity;
  }

  start(): void {
    if (this.#stopped) return;
    this.#running ??= this.#run();
  }

  /**
   * How many agents exist (the leader knows: it aggregates their reports). Written on the Lease at
   * the next renew while leading; the candidates' poll period follows it.
   */
  setFleetSize(n: number): void {
    if (!Number.isFinite(n) || n < 1) return;
    this.#fleetSize = Math.round(n);
  }

  /**
   * Stops; when leading, stops leading first (onStoppedLeading) and then hands the lease back
   * (empty holder, so a candidate takes it at its next poll instead of waiting for expiry).
   * Best effort with a short deadline; never throws.
   */
  stop(): Promise<void> {
    return (this.#stopping ??= this.#stop());
  }

  async #stop(): Promise<void> {
    this.#stopped = true;
    const wasLeading = this.#leading;
    // The aggregator stops writing before anyone else may start: stand down, then release.
    if (wasLeading) this.#standDown('stopping');
    if (this.#inFlight) {
      if (this.#inFlight.acquiring) this.#mayHold = true;
      this.#inFlight.abort.abort();
    }
    this.#wake();
    await this.#running;
    if (wasLeading || this.#mayHold) await this.#release(wasLeading ? this.#lease : undefined);
    this.#lifetime.abort();
    this.#watchdog?.cancel();
    this.#watchdog = undefined;
  }

  async #run(): Promise<void> {
    let delay = 0;
    while (!this.#stopped) {
      await this.#pause(delay);
      if (this.#stopped) break;
      try {
        delay = this.#leading ? await this.#renewOnce() : await this.#candidateOnce();
      } catch (e) {
        // Nothing above should throw; if it does, the elector must not die of it.
        this.#o.logger.error({ err: (e as Error).message }, 'leader election: unexpected error');
        delay = this.#o.retryPeriodMs;
      }
    }
  }

  // ---- candidate ----------------------------------------------------------------------------

  /** One look at the lease, and an acquisition when it is there for the taking. Returns the next delay. */
  async #candidateOnce(): Promise<number> {
    const outcome = await this.#tryAcquire();
    if (outcome === 'lost-race' && !this.#lostRaceBefore) {
      // Someone else won just now: look again at once to learn who (once; never a hot loop).
      this.#lostRaceBefore = true;
      return 0;
    }
    this.#lostRaceBefore = false;
    return this.#leading ? this.#o.retryPeriodMs : this.#pollDelay();
  }

  async #tryAcquire(): Promise<Outcome> {
    const timeoutMs = this.#o.renewDeadlineMs;
    let lease: LeaseObject | undefined;
    try {
      lease = await this.#call<LeaseObject>({ method: 'GET', path: this.#leasePath() }, timeoutMs, false);
    } catch (e) {
      if (!isStatus(e, 404)) {
        this.#warnOnce('cannot read the status lease', e);
        return 'done';
      }
    }
    if (this.#stopped) return 'done';
    const sentAt = this.#o.clock.now();
    const wall = this.#o.now();

    if (!lease) {
      const created: LeaseObject = {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: this.#o.leaseName, namespace: this.#o.namespace },
        spec: { holderIdentity: this.#o.identity, leaseDurationSeconds: this.#durationS, acquireTime: microTime(wall), renewTime: microTime(wall), leaseTransitions: 0 },
      };
      try {
        const got = await this.#call<LeaseObject>({ method: 'POST', path: this.#path, body: created }, timeoutMs, true);
        this.#acquired(got, sentAt, 'created the lease');
        return 'done';
      } catch (e) {
        if (isStatus(e, 409)) {
          this.#o.logger.debug('leader election: another agent created the lease first');
          return 'lost-race';
        }
        // A missing namespace or a forbidden create: no agent will ever write TunDevice status, so say so.
        this.#warnOnce('cannot create the status lease', e);
        return 'done';
      }
    }

    this.#observe(lease);
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const ours = holder === this.#o.identity;
    const why = holder === '' ? 'free' : ours ? 'ours' : this.#expiry(spec);
    if (why === undefined) return 'done';

    const body: LeaseObject = {
      ...lease,
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      spec: {
        ...spec,
        holderIdentity: this.#o.identity,
        leaseDurationSeconds: this.#durationS,
        acquireTime: ours && spec.acquireTime ? spec.acquireTime : microTime(wall),
        renewTime: microTime(wall),
        leaseTransitions: (spec.leaseTransitions ?? 0) + (ours ? 0 : 1),
      },
    };
    try {
      const got = await this.#call<LeaseObject>({ method: 'PUT', path: this.#leasePath(), body }, timeoutMs, true);
      this.#acquired(got, sentAt, why === 'ours' ? 'the lease still named us' : why === 'free' ? 'the lease was free' : `the lease of ${holder} expired (${why})`);
      return 'done';
    } catch (e) {
      if (isStatus(e, 409)) {
        this.#o.logger.debug({ holder }, 'leader election: another agent took the lease first');
        return 'lost-race';
      }
      this.#o.logger.debug({ err: (e as Error).message }, 'leader election: cannot take the lease');
      return 'done';
    }
  }

  /** Why the record held by someone else has expired ('unchanged' = rule (a), 'stale' = rule (b)), or undefined. */
  #expiry(spec: LeaseSpec): 'unchanged' | 'stale' | undefined {
    const durationMs = Math.max(1, spec.leaseDurationSeconds ?? this.#durationS) * 1000;
    if (this.#observed && this.#o.clock.now() - this.#observed.at >= durationMs) return 'unchanged';
    const renewed = parseMicroTime(spec.renewTime ?? spec.acquireTime);
    if (renewed !== undefined && this.#o.now() - renewed > 2 * durationMs) return 'stale';
    return undefined;
  }

  /** Records what a read showed: rule (a)'s first sighting, the holder (logged when it changes), the fleet size. */
  #observe(lease: LeaseObject): void {
    const spec = lease.spec ?? {};
    const key = `${spec.holderIdentity ?? ''}\n${spec.renewTime ?? ''}\n${lease.metadata?.resourceVersion ?? ''}`;
    if (this.#observed?.key !== key) this.#observed = { key, at: this.#o.clock.now() };
    this.#lease = lease;
    const holder = spec.holderIdentity || undefined;
    if (holder !== this.#holder) {
      this.#holder = holder;
      const fields = { holder: holder ?? '', transitions: spec.leaseTransitions ?? 0, lease: this.#o.leaseName };
      if (holder === this.#o.identity) this.#o.logger.debug(fields, 'the status lease names this agent');
      else this.#o.logger.info(fields, holder ? `the status leader is ${holder}` : 'the status lease is free');
    }
  }

  /** Warns the first time a problem appears (and again when it changes), debug after: a poll repeats it every few seconds. */
  #warnOnce(what: string, e: unknown): void {
    const problem = `${what}: ${(e as Error).message}`;
    const log = problem === this.#problem ? this.#o.logger.debug.bind(this.#o.logger) : this.#o.logger.warn.bind(this.#o.logger);
    this.#problem = problem;
    log({ namespace: this.#o.namespace, lease: this.#o.leaseName }, `${problem}; no TunDevice status is written until an agent holds it (retrying)`);
  }

  #acquired(lease: LeaseObject, sentAt: number, why: string): void {
    if (this.#stopped) {
      // Won while stop() was underway: stop() hands it back.
      this.#lease = lease;
      this.#mayHold = true;
      return;
    }
    this.#observe(lease);
    this.#problem = undefined;
    this.#leading = true;
    this.#term++;
    this.#renewFailures = 0;
    this.#renewed(sentAt);
    const spec = lease.spec ?? {};
    this.#o.logger.info({ holder: this.#o.identity, transitions: spec.leaseTransitions ?? 0, lease: this.#o.leaseName, reason: why }, 'started leading: this agent aggregates TunDevice status');
    try {
      this.#onStarted();
    } catch (e) {
      this.#o.logger.error({ err: (e as Error).message }, 'onStartedLeading failed');
    }
  }

  /** A candidate's wait: retryPeriod × max(1, fleetSize/16), capped, × [1, 1.5). */
  #pollDelay(): number {
    const annotated = Number(this.#lease?.metadata?.annotations?.[FLEET_SIZE_ANNOTATION]);
    const fleet = Number.isFinite(annotated) && annotated >= 1 ? annotated : 1;
    const base = Math.min(this.#o.maxPollMs, this.#o.retryPeriodMs * Math.max(1, fleet / LEADER_DEFAULTS.fleetPollDivisor));
    return Math.round(base * (1 + 0.5 * Math.min(1, Math.max(0, this.#o.random()))));
  }

  // ---- leader -------------------------------------------------------------------------------

  /** One renew. Returns the next delay. */
  async #renewOnce(): Promise<number> {
    const term = this.#term;
    const sentAt = this.#o.clock.now();
    const timeoutMs = this.#remaining(sentAt);
    const lease = this.#lease ?? {};
    const annotations = { ...lease.metadata?.annotations };
    if (this.#fleetSize !== undefined) annotations[FLEET_SIZE_ANNOTATION] = String(this.#fleetSize);
    const body: LeaseObject = {
      ...lease,
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { ...lease.metadata, ...(Object.keys(annotations).length > 0 ? { annotations } : {}) },
      spec: { ...lease.spec, holderIdentity: this.#o.identity, leaseDurationSeconds: this.#durationS, renewTime: microTime(this.#o.now()) },
    };
    try {
      const got = await this.#call<LeaseObject>({ method: 'PUT', path: this.#leasePath(), body }, timeoutMs, false);
      if (term !== this.#term || this.#stopped) return 0;
      this.#lease = got;
      this.#observe(got);
      this.#renewFailures = 0;
      this.#renewed(sentAt);
      this.#o.logger.debug({ resourceVersion: got.metadata?.resourceVersion }, 'renewed the status lease');
      return this.#o.retryPeriodMs;
    } catch (e) {
      if (term !== this.#term || this.#stopped) return 0;
      if (isStatus(e, 409)) return await this.#afterConflict(term);
      if (isStatus(e, 404)) {
        // Deleted behind our back: whoever creates it next leads; we may not go on meanwhile.
        this.#standDown('the lease was deleted');
        return 0;
      }
      this.#renewFailures++;
      const delay = Math.min(backoffDelay(this.#renewFailures, this.#renewBackoff, this.#o.random), this.#remaining(this.#o.clock.now()));
      this.#o.logger.debug({ err: (e as Error).message, attempt: this.#renewFailures, delayMs: delay }, 'cannot renew the status lease; retrying');
      return delay;
    }
  }

  /** A renew met a newer version: read it and decide. Still ours: retry (at once the first time). Another holder: stand down. */
  async #afterConflict(term: number): Promise<number> {
    let got: LeaseObject;
    try {
      got = await this.#call<LeaseObject>({ method: 'GET', path: this.#leasePath() }, this.#remaining(this.#o.clock.now()), false);
    } catch (e) {
      if (term !== this.#term || this.#stopped) return 0;
      if (isStatus(e, 404)) {
        this.#standDown('the lease was deleted');
        return 0;
      }
      this.#renewFailures++;
      return Math.min(backoffDelay(this.#renewFailures, this.#renewBackoff, this.#o.random), this.#remaining(this.#o.clock.now()));
    }
    if (term !== this.#term || this.#stopped) return 0;
    const holder = got.spec?.holderIdentity ?? '';
    if (holder !== this.#o.identity) {
      this.#standDown(holder ? `the lease is held by ${holder}` : 'the lease was released by someone else');
      this.#observe(got);
      return this.#pollDelay();
    }
    // Still ours (someone touched the object, e.g. an annotation): renew on the new version.
    this.#lease = got;
    this.#renewFailures++;
    this.#o.logger.debug({ resourceVersion: got.metadata?.resourceVersion }, 'the status lease changed under us but still names us; renewing again');
    return this.#renewFailures === 1 ? 0 : Math.min(backoffDelay(this.#renewFailures, this.#renewBackoff, this.#o.random), this.#remaining(this.#o.clock.now()));
  }

  /** ms left before renewDeadline runs out (at least 1: a request needs some deadline). */
  #remaining(at: number): number {
    return Math.max(1, this.#renewedAt + this.#o.renewDeadlineMs - at);
  }

  /** A renew (or the acquisition) sent at `sentAt` succeeded: the deadline moves on. */
  #renewed(sentAt: number): void {
    this.#renewedAt = sentAt;
    this.#watchdog?.cancel();
    const term = this.#term;
    this.#watchdog = this.#o.clock.setTimer(this.#remaining(this.#o.clock.now()), () => {
      if (term !== this.#term || !this.#leading) return;
      this.#standDown(`could not renew the lease for ${this.#o.renewDeadlineMs} ms`);
    });
  }

  /** Stops leading at once: the aggregator is told before anyone else could be leading. */
  #standDown(reason: string): void {
    if (!this.#leading) return;
    this.#leading = false;
    this.#term++;
    this.#watchdog?.cancel();
    this.#watchdog = undefined;
    // A renew still in flight belongs to the old term: it is abandoned.
    this.#inFlight?.abort.abort();
    this.#holder = undefined;
    // Rule (a) starts afresh: we have not watched anyone else's record yet.
    this.#observed = undefined;
    this.#o.logger.info({ holder: this.#o.identity, transitions: this.#lease?.spec?.leaseTransitions ?? 0, lease: this.#o.leaseName, reason }, `stopped leading: ${reason}`);
    try {
      this.#onStopped();
    } catch (e) {
      this.#o.logger.error({ err: (e as Error).message }, 'onStoppedLeading failed');
    }
    // A renew backoff in progress ends: look at the lease as a candidate now.
    this.#wake();
  }

  /** stop()'s hand-over: holder '', leaseDurationSeconds 1, renewTime now. Never throws. */
  async #release(cached: LeaseObject | undefined): Promise<void> {
    const clock = this.#o.clock;
    const until = clock.now() + this.#o.releaseTimeoutMs;
    const left = (): number => Math.max(1, until - clock.now());
    let lease = cached;
    try {
      for (let attempt = 0; attempt < 2; attempt++) {
        if (!lease || attempt > 0) {
          lease = await this.#call<LeaseObject>({ method: 'GET', path: this.#leasePath() }, left(), false);
          if (lease.spec?.holderIdentity !== this.#o.identity) return;
        }
        const body: LeaseObject = {
          ...lease,
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(this.#o.now()) },
        };
        try {
          const got = await this.#call<LeaseObject>({ method: 'PUT', path: this.#leasePath(), body }, left(), false);
          this.#lease = got;
          this.#holder = undefined;
          this.#o.logger.info({ lease: this.#o.leaseName, transitions: got.spec?.leaseTransitions ?? 0 }, 'released the status lease');
          return;
        } catch (e) {
          if (!isStatus(e, 409)) throw e;
        }
      }
      this.#o.logger.warn({ lease: this.#o.leaseName }, 'could not release the status lease (it kept changing); it will expire instead');
    } catch (e) {
      if (isStatus(e, 404)) return;
      this.#o.logger.warn({ err: (e as Error).message, lease: this.#o.leaseName }, 'could not release the status lease; it will expire instead');
    }
  }

  // ---- plumbing -----------------------------------------------------------------------------

  #leasePath(): string {
    return `${this.#path}/${encodeURIComponent(this.#o.leaseName)}`;
  }

  /** One request with a deadline, abortable by stop() and by standing down (the lifetime signal, per request). */
  async #call<T>(spec: Omit<RequestSpec, 'timeoutMs' | 'signal'>, timeoutMs: number, acquiring: boolean): Promise<T> {
    const abort = new AbortController();
    const onLifetime = (): void => abort.abort();
    this.#lifetime.signal.addEventListener('abort', onLifetime, { once: true });
    const entry = { abort, acquiring };
    this.#inFlight = entry;
    try {
      return await this.#o.api.request<T>({ ...spec, timeoutMs: Math.min(timeoutMs, this.#o.renewDeadlineMs), signal: abort.signal });
    } finally {
      this.#lifetime.signal.removeEventListener('abort', onLifetime);
      if (this.#inFlight === entry) this.#inFlight = undefined;
    }
  }

  #pause(ms: number): Promise<void> {
    if (ms <= 0 || this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = (): void => {
        this.#sleep?.timer.cancel();
        this.#sleep = undefined;
        resolve();
      };
      this.#sleep = { timer: this.#o.clock.setTimer(ms, wake), wake };
    });
  }

  #wake(): void {
    this.#sleep?.wake();
  }
}

function isStatus(e: unknown, code: number): boolean {
  return e instanceof KubeApiError && e.statusCode === code;
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
