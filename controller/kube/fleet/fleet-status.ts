/**
 * TunDevice.status for the whole fleet, written by the one agent that holds the status Lease
 * (leader.ts). While leading it watches every Node (metadata only: labels, for the selectors) and
 * every TunNodeState; the TunDevices come from the cluster source's own watch, so leading costs two
 * watches and the other agents open none (API traffic stays O(N) per change, not O(N²)).
 *
 * Level-triggered, like the node loop: any change (a report, a label, a spec, leading itself) is
 * only a reason to recompute every summary (device-summary.ts) after a short debounce. A summary is
 * written only when its content differs from the status stored on the object (timestamps aside),
 * so a quiet cluster sees no writes at all, and at most once per `minIntervalMs` per object. Each
 * write goes to every node's TunDevice watch, so a change that is only progress (counts, messages,
 * failingNodes) waits longer in a big fleet: at most one per paceMs(N), N × paceMsPerNode up to
 * maxPaceMs (status-pacing.ts); a condition's status, observedGeneration or the rollout's grants
 * changing is written after minIntervalMs. Each write is of the latest summary.
 *
 * Writes are server-side applies of the status subresource with one field manager and the
 * object's resourceVersion as a precondition: two agents that both believe they lead (a hand-over
 * in progress) never interleave stale summaries; the one whose view is older gets 409 and
 * recomputes from the newer object its watch brings. A failed write is retried with a jittered,
 * capped backoff; the last summary stays on the object meanwhile (nothing is ever removed).
 *
 * A TunNodeState that is not what an agent writes (garbage written by hand that the CRD let
 * through) does not count: its node is "not reporting", with the reason, and it is logged once per
 * version.
 */
import equal from 'fast-deep-equal';
import type { Logger } from '../../telemetry/logger.js';
import { backoffDelay, type BackoffOptions, type Random } from '../../loop/backoff.js';
import { fieldMessage } from '../../schema/problem.js';
import { structuralProblems } from '../../schema/structural.js';
import { CONDITION_TYPES, TunNodeStateStatusSchema, type TunDeviceStatus, type TunNodeStateStatus } from '../../schema/tunnodestate.js';
import { API_VERSION, TUN_DEVICE_KIND } from '../../schema/tundevice.js';
import type { TunDeviceFleetStatus } from '../../schema/tundevice-status.js';
import { KubeApiError, type KubeApi } from '../api-client.js';
import { fleetSpecOf } from '../cluster-select.js';
import { summarize, type NodeMeta, type NodeReport } from './device-summary.js';
import { Reflector, type ReflectorChange } from '../reflector.js';
import { paceMs, promptChange } from './status-pacing.js';
import { NODES_PATH, TUN_DEVICES_PATH, TUN_NODE_STATES_PATH, type KubeObject, type TunDeviceObject } from '../types.js';

export const FLEET_FIELD_MANAGER = 'tunkeeper-fleet-status';

export const FLEET_STATUS_DEFAULTS = {
  /** Changes arriving together (a rollout's reports) make one recompute. */
  debounceMs: 100,
  /** At most one status write per TunDevice per this long. */
  minIntervalMs: 1_000,
  /** Progress-only writes (counts, messages) of one TunDevice at most once per reporting nodes × this… */
  paceMsPerNode: 5,
  /** …and at least once per this long while progress is pending (status-pacing.ts). */
  maxPaceMs: 10_000,
  /** A node degraded this long makes the device Stalled (an apply that keeps failing needs a person). */
  persistentFailureMs: 5 * 60_000,
  backoff: { initialMs: 1_000, maxMs: 60_000, factor: 2, jitter: 0.5 } satisfies BackoffOptions,
  requestTimeoutMs: 15_000,
};

export type FleetWriteResult = 'written' | 'conflict' | 'error';

export interface FleetStatusOptions {
  api: KubeApi;
  logger: Logger;
  /** Every TunDevice, from the cluster source's watch; undefined until it has listed. */
  devices(): readonly TunDeviceObject[] | undefined;
  debounceMs?: number;
  minIntervalMs?: number;
  paceMsPerNode?: number;
  maxPaceMs?: number;
  persistentFailureMs?: number;
  /** A rollout slot unanswered for the probe timeout plus this long is reclaimed (rollout-slots.ts). */
  slotGraceMs?: number;
  backoff?: BackoffOptions;
  random?: Random;
  requestTimeoutMs?: number;
  watchTimeoutSeconds?: number;
  idleTimeoutMs?: number;
  listTimeoutMs?: number;
  /** Wall clock, epoch ms: condition timestamps and how long a node has been failing. */
  now?: () => number;
  /** Monotonic ms, for pacing writes: a wall clock stepped back must not stall them. */
  clock?: () => number;
  onWrite?(result: FleetWriteResult): void;
  /** How many agents have reported (TunNodeStates): the Lease tells candidates, to pace their polls. */
  onFleetSize?(n: number): void;
  onRestart?(resource: string, reason: 'gone' | 'error' | 'timeout'): void;
}

interface NodeStateObject extends KubeObject {
  status?: unknown;
}
interface DeviceWithStatus extends TunDeviceObject {
  status?: TunDeviceFleetStatus;
}

/** A summary waiting to be written. */
interface Pending {
  status: TunDeviceFleetStatus;
  resourceVersion: string;
  /** Not only progress: due after minIntervalMs, not after the fleet's pace (status-pacing.ts). */
  prompt: boolean;
}

export class FleetStatus {
  readonly #o: FleetStatusOptions & Required<Pick<FleetStatusOptions, 'debounceMs' | 'minIntervalMs' | 'paceMsPerNode' | 'maxPaceMs' | 'persistentFailureMs' | 'backoff' | 'requestTimeoutMs' | 'random' | 'now' | 'clock'>>;
  #nodes: Reflector<KubeObject> | undefined;
  #states: Reflector<NodeStateObject> | undefined;
  #leading = false;
  #closed = false;
  #debounce: NodeJS.Timeout | undefined;
  #recheck: NodeJS.Timeout | undefined;
  #writeTimer: NodeJS.Timeout | undefined;
  /** When the armed write timer fires (clock ms): a write due sooner re-arms it. */
  #writeTimerAt = 0;
  #writing: Promise<void> | undefined;
  readonly #pending = new Map<string, Pending>();
  readonly #lastWriteAt = new Map<string, number>();
  /** By device, the version this agent's last write replaced: a summary computed from it could only get 409. */
  readonly #replaced = new Map<string, string>();
  readonly #failures = new Map<string, number>();
  /** Parsed TunNodeStates by node, kept while their resourceVersion holds. */
  readonly #reports = new Map<string, { rv: string; report: NodeReport }>();
  /** Selector and rollout by device, kept while the spec (uid + generation) holds. */
  readonly #specs = new Map<string, { key: string; spec: ReturnType<typeof fleetSpecOf> }>();
  #fleetSize = -1;
  #lifetime = new AbortController();

  constructor(opts: FleetStatusOptions) {
    this.#o = { ...FLEET_STATUS_DEFAULTS, random: Math.random, now: Date.now, clock: () => performance.now(), ...opts };
  }

  get leading(): boolean {
    return this.#leading;
  }

  /** This agent now holds the Lease: watch Nodes and TunNodeStates, then summarize. */
  startLeading(): void {
    if (this.#leading || this.#closed) return;
    this.#leading = true;
    this.#lifetime = new AbortController();
    const common = {
      api: this.#o.api,
      random: this.#o.random,
      ...(this.#o.watchTimeoutSeconds !== undefined ? { watchTimeoutSeconds: this.#o.watchTimeoutSeconds } : {}),
      ...(this.#o.idleTimeoutMs !== undefined ? { idleTimeoutMs: this.#o.idleTimeoutMs } : {}),
      ...(this.#o.listTimeoutMs !== undefined ? { listTimeoutMs: this.#o.listTimeoutMs } : {}),
    };
    const observer = {
      onChange: (_r: unknown, change: ReflectorChange) => {
        if (change !== 'disconnected') this.changed();
      },
      onRestart: (resource: string, reason: 'gone' | 'error' | 'timeout') => this.#o.onRestart?.(resource, reason),
    };
    this.#nodes = new Reflector<KubeObject>({ ...common, path: NODES_PATH, resource: 'nodes', metadataOnly: true }, observer);
    this.#states = new Reflector<NodeStateObject>({ ...common, path: TUN_NODE_STATES_PATH, resource: 'tunnodestates' }, observer);
    this.#nodes.start();
    this.#states.start();
  }

  /** Another agent leads now (or this one stops): drop the watches and everything waiting. */
  async stopLeading(): Promise<void> {
    if (!this.#leading) return;
    this.#leading = false;
    this.#lifetime.abort();
    for (const t of [this.#debounce, this.#recheck, this.#writeTimer]) clearTimeout(t);
    this.#debounce = this.#recheck = this.#writeTimer = undefined;
    const [nodes, states] = [this.#nodes, this.#states];
    this.#nodes = this.#states = undefined;
    // Cleared before waiting: a new term may start while the old watches and write wind down.
    this.#pending.clear();
    this.#failures.clear();
    this.#reports.clear();
    this.#fleetSize = -1;
    await Promise.all([nodes?.stop(), states?.stop(), this.#writing]);
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.stopLeading();
  }

  /** Something may have changed (the TunDevices, a report, a label): recompute soon. */
  changed(): void {
    if (!this.#leading || this.#debounce) return;
    this.#debounce = setTimeout(() => {
      this.#debounce = undefined;
      this.#recompute();
    }, this.#o.debounceMs);
    this.#debounce.unref();
  }

  #recompute(): void {
    const devices = this.#o.devices() as readonly DeviceWithStatus[] | undefined;
    const [nodes, states] = [this.#nodes, this.#states];
    if (!this.#leading || !devices || !nodes?.synced || !states?.synced) return;
    const nodeMetas: NodeMeta[] = nodes.objects().map((n) => ({ name: n.metadata?.name ?? '', labels: n.metadata?.labels ?? {} }));
    const reports = this.#readReports(states.objects());
    if (reports.size !== this.#fleetSize) {
      this.#fleetSize = reports.size;
      this.#o.onFleetSize?.(reports.size);
    }
    const now = this.#o.now();
    let recheckAt = Infinity;
    const names = new Set<string>();
    for (const d of devices) {
      const name = d.metadata?.name;
      const generation = d.metadata?.generation;
      if (!name || generation === undefined) continue;
      names.add(name);
      const spec = this.#specOf(d);
      const summary = summarize({
        name,
        generation,
        selector: spec.selector,
        ...(spec.rollout ? { rollout: spec.rollout } : {}),
        ...(this.#o.slotGraceMs !== undefined ? { slotGraceMs: this.#o.slotGraceMs } : {}),
        nodes: nodeMetas,
        reports,
        previous: d.status,
        now,
        persistentFailureMs: this.#o.persistentFailureMs,
      });
      if (summary.recheckAt !== undefined) recheckAt = Math.min(recheckAt, summary.recheckAt);
      if (sameContent(summary.status, d.status)) {
        this.#pending.delete(name);
        continue;
      }
      this.#pending.set(name, { status: summary.status, resourceVersion: d.metadata?.resourceVersion ?? '', prompt: promptChange(summary.status, d.status) });
    }
    for (const name of [...this.#pending.keys()]) if (!names.has(name)) this.#pending.delete(name);
    for (const name of [...this.#specs.keys()]) if (!names.has(name)) this.#specs.delete(name);
    for (const name of [...this.#lastWriteAt.keys()]) if (!names.has(name)) this.#lastWriteAt.delete(name);
    for (const name of [...this.#replaced.keys()]) if (!names.has(name)) this.#replaced.delete(name);
    clearTimeout(this.#recheck);
    this.#recheck = undefined;
    if (recheckAt !== Infinity) {
      this.#recheck = setTimeout(() => this.changed(), Math.max(0, recheckAt - now) + 10);
      this.#recheck.unref();
    }
    this.#scheduleWrite();
  }

  #readReports(objects: readonly NodeStateObject[]): Map<string, NodeReport> {
    const out = new Map<string, NodeReport>();
    const seen = new Set<string>();
    for (const o of objects) {
      const node = o.metadata?.name ?? '';
      const rv = o.metadata?.resourceVersion ?? '';
      seen.add(node);
      let cached = this.#reports.get(node);
      if (!cached || cached.rv !== rv) {
        cached = { rv, report: parseReport(o) };
        this.#reports.set(node, cached);
        if ('unreadable' in cached.report) this.#o.logger.warn({ node, resourceVersion: rv, problem: cached.report.unreadable }, `TunNodeState ${node} is not what an agent writes; it does not count (the node counts as not reporting)`);
      }
      out.set(node, cached.report);
    }
    for (const node of [...this.#reports.keys()]) if (!seen.has(node)) this.#reports.delete(node);
    return out;
  }

  #specOf(d: TunDeviceObject): ReturnType<typeof fleetSpecOf> {
    const name = d.metadata?.name ?? '';
    const key = `${d.metadata?.uid ?? ''}/${d.metadata?.generation ?? ''}`;
    const cached = this.#specs.get(name);
    if (cached?.key === key) return cached.spec;
    const spec = fleetSpecOf(d);
    this.#specs.set(name, { key, spec });
    return spec;
  }

  /**
   * One write at a time; each object at most once per minIntervalMs (progress only: per paceMs), and not while it backs off.
   * The timer is for the object due first: one backing off never holds up the others.
   */
  #scheduleWrite(): void {
    if (!this.#leading || this.#writing || this.#pending.size === 0) return;
    const now = this.#o.clock();
    let next: { name: string; at: number } | undefined;
    for (const name of this.#pending.keys()) {
      const at = (this.#lastWriteAt.get(name) ?? -Infinity) + this.#delayFor(name);
      if (!next || at < next.at) next = { name, at };
    }
    if (!next) return;
    if (this.#writeTimer && this.#writeTimerAt <= next.at) return;
    clearTimeout(this.#writeTimer);
    this.#writeTimerAt = next.at;
    const { name } = next;
    this.#writeTimer = setTimeout(
      () => {
        this.#writeTimer = undefined;
        this.#writing = this.#write(name).finally(() => {
          this.#writing = undefined;
          this.#scheduleWrite();
        });
      },
      Math.max(0, next.at - now),
    );
    this.#writeTimer.unref();
  }

  #delayFor(name: string): number {
    const failures = this.#failures.get(name) ?? 0;
    const interval = this.#pending.get(name)?.prompt === false ? paceMs(this.#fleetSize, this.#o) : this.#o.minIntervalMs;
    return failures === 0 ? interval : Math.max(interval, backoffDelay(failures, this.#o.backoff, this.#o.random));
  }

  async #write(name: string): Promise<void> {
    const p = this.#pending.get(name);
    if (!p || !this.#leading) return;
    this.#pending.delete(name);
    // Computed from the version this agent's own write replaced (a recompute while that write was
    // under way, or before the owner's watch brought the new version): the precondition can only
    // fail. Not sent; the new version's watch event makes the recompute that counts.
    if (p.resourceVersion === this.#replaced.get(name)) return;
    this.#lastWriteAt.set(name, this.#o.clock());
    // This term's signal: a write aborted by stopLeading must not count as this term's (or the next one's) failure.
    const signal = this.#lifetime.signal;
    try {
      const written = await this.#o.api.request<{ metadata?: { resourceVersion?: string } }>({
        method: 'PATCH',
        path: `${TUN_DEVICES_PATH}/${encodeURIComponent(name)}/status`,
        query: { fieldManager: FLEET_FIELD_MANAGER, force: true },
        // The resourceVersion is a precondition: a summary computed from an older object is refused.
        body: { apiVersion: API_VERSION, kind: TUN_DEVICE_KIND, metadata: { name, resourceVersion: p.resourceVersion }, status: p.status },
        contentType: 'application/apply-patch+yaml',
        timeoutMs: this.#o.requestTimeoutMs,
        signal,
      });
      this.#failures.delete(name);
      // Only if the object moved on: an apply that changed nothing keeps the version, which stays current.
      const rv = written?.metadata?.resourceVersion;
      if (rv !== undefined && rv !== p.resourceVersion) this.#replaced.set(name, p.resourceVersion);
      this.#o.onWrite?.('written');
      this.#o.logger.debug({ device: name, ready: p.status.ready, observedGeneration: p.status.observedGeneration }, 'TunDevice status written');
    } catch (e) {
      if (signal.aborted || !this.#leading) return;
      const err = e as KubeApiError;
      if (err instanceof KubeApiError && err.statusCode === 404) {
        // Deleted meanwhile (its watch event drops it); said, in case it is a CRD without the status subresource.
        this.#o.logger.info({ device: name, err: err.message }, `TunDevice ${name} is gone; its status is not written`);
        return;
      }
      if (err instanceof KubeApiError && err.statusCode === 409) {
        // The object moved on (a spec change, or another writer): its watch event brings the newer
        // version and a recompute; meanwhile do not hammer it.
        this.#failures.set(name, (this.#failures.get(name) ?? 0) + 1);
        this.#o.onWrite?.('conflict');
        this.#o.logger.debug({ device: name }, 'TunDevice changed while its status was being written; recomputing from the newer version');
        this.changed();
        return;
      }
      const failures = (this.#failures.get(name) ?? 0) + 1;
      this.#failures.set(name, failures);
      if (!this.#pending.has(name)) this.#pending.set(name, p);
      this.#o.onWrite?.('error');
      this.#o.logger.warn({ device: name, err: err.message, attempt: failures }, `cannot write TunDevice ${name} status; the last one stays and the write is retried with backoff`);
    }
  }
}

/**
 * A node's report, if it reads as one. The CRD already refuses a status of the wrong shape; what
 * passes it but no agent would write (by hand, or by a broken client) does not count:
 * - counts that disagree with the list (an agent writes them from it);
 * - an entry without exactly the four condition types an agent always writes;
 * - Ready True next to Refused or Conflict True.
 * A generation newer than the object's is caught per device (device-summary.ts).
 */
function parseReport(o: NodeStateObject): NodeReport {
  const status = o.status;
  if (status === undefined) return { devices: new Map() };
  const { problems } = structuralProblems(TunNodeStateStatusSchema, status);
  if (problems.length > 0) return { unreadable: problems.slice(0, 3).map(fieldMessage).join('; ') };
  const s = status as TunNodeStateStatus;
  const devices = s.devices ?? [];
  const isTrue = (d: TunDeviceStatus, type: string) => d.conditions?.some((c) => c.type === type && c.status === 'True') === true;
  if (s.deviceCount !== undefined && s.deviceCount !== devices.length) return { unreadable: `deviceCount ${s.deviceCount} but ${devices.length} devices listed` };
  const ready = devices.filter((d) => isTrue(d, 'Ready')).length;
  if (s.readyCount !== undefined && s.readyCount !== ready) return { unreadable: `readyCount ${s.readyCount} but ${ready} devices listed Ready` };
  for (const d of devices) {
    const types = (d.conditions ?? []).map((c) => c.type).sort();
    if (types.join() !== [...CONDITION_TYPES].sort().join()) return { unreadable: `device ${d.name}: conditions ${types.join(', ') || 'none'}, not ${CONDITION_TYPES.join(', ')}` };
    if (isTrue(d, 'Ready') && (isTrue(d, 'Refused') || isTrue(d, 'Conflict'))) return { unreadable: `device ${d.name}: Ready and ${isTrue(d, 'Refused') ? 'Refused' : 'Conflict'} both True` };
  }
  return { devices: new Map(devices.map((d) => [d.name, d])) };
}

/**
 * The summary equals the stored status. summarize keeps each lastTransitionTime while its condition
 * holds, so this is exact. Structural, not textual: the API server returns a custom resource's
 * fields in its own (sorted) order, which would make every stored status look different.
 */
function sameContent(a: TunDeviceFleetStatus, b: TunDeviceFleetStatus | undefined): boolean {
  return equal(a, b);
}
