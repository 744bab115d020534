/**
 * Between the desired-state sources and the loop: which version of each device is in force on
 * this node, decided by its probes and (with the cluster) its rollout slot.
 *
 * For each declared device:
 * - its last good version (all probes passed here, rollout/store.ts) is what a failed change rolls
 *   back to, and what stays in force while the node waits for a rollout slot;
 * - a new version is handed to the loop when the node may move (no rollout limit, or a slot
 *   granted); once a pass reports it applied (`ready`), its probes run, retried until they pass
 *   or `rollout.probeTimeoutSeconds` runs out;
 * - all passed: it becomes the good version. One failed: it is rejected — the good version goes
 *   back into force (RolledBack), or, with none, the new version stays as declared (ProbeFailed).
 *   A rejected version is not tried again until the spec changes (also across restarts).
 *
 * Level-triggered as the rest: the gate only chooses versions; the loop converges the kernel to
 * them, repairs drift of whichever is in force, and prunes as before. A device waiting for its
 * first slot with no good version is left out of the desired state and pruning is off for its
 * source meanwhile (fail static: it may exist from an earlier run).
 */
import equal from 'fast-deep-equal';
import { limitsRollout, probeKey, type DesiredDevice } from '../model/desired.js';
import type { PassReport } from '../loop/loop.js';
import type { ProbeResult } from '../probe/index.js';
import type { DeviceMemory, RejectedVersion, RememberedVersion, RolloutStore } from './store.js';

export type { ProbeResult };

/** Runs every probe of `device` until each passes or the device's probe timeout is up. */
export type ProbeRun = (device: DesiredDevice, signal: AbortSignal) => Promise<ProbeResult[]>;

export type Phase =
  /** The declared version is the good one: nothing to do but keep it. */
  | 'settled'
  /** A rollout limits how many nodes move at once, and this node has no slot yet. */
  | 'waiting'
  /** Handed to the loop; not yet reported applied. */
  | 'applying'
  /** Applied; probes running. */
  | 'probing'
  /** The declared version failed a probe; the good one is back in force. */
  | 'rolledBack'
  /** The declared version failed a probe and there was no good one: it stays as declared. */
  | 'probeFailed';

export interface DeviceView {
  name: string;
  phase: Phase;
  /** Generation of the declared version (what the rollout is about). */
  generation?: number;
  /** Generation of the version in force (absent: none, or files). */
  inForceGeneration?: number;
  /** Nothing is in force (waiting for a first slot). */
  nothingInForce: boolean;
  /** The declared version's probes, by probeKey(). */
  probeKeys: string[];
  /** The latest probe results for the declared version. */
  probes: ProbeResult[];
  rejected?: RejectedVersion;
  good?: RememberedVersion;
}

export interface GateOptions {
  probe: ProbeRun;
  store?: RolloutStore;
  /**
   * May this node move `device` (at `generation`) now? Absent: always (files, or no rollout
   * limit). Called on every decision; `recheck()` after the answer may have changed.
   */
  mayMove?(source: string, device: DesiredDevice, generation: number | undefined): boolean;
  /** The devices the loop should have for a source now. */
  onEffective(source: string, devices: DesiredDevice[], complete: boolean): void;
  /** Something a status shows changed (phase, probe results). */
  onChange?(name: string): void;
  /** A probe run finished (metrics, logs). */
  onProbed?(device: DesiredDevice, results: ProbeResult[], verdict: 'passed' | 'rolledBack' | 'probeFailed'): void;
  /** Saving the memory failed (logs). */
  onSaveError?(err: unknown): void;
  now?: () => Date;
}

interface Entry {
  source: string;
  /**
   * The phase as of the last decision (set by #notify after every change of the declaration, the
   * memory, the probing or the slot): read on every pass for every device, so it is kept rather
   * than recomputed (deep comparisons of whole devices, 2 per device per pass).
   */
  phase?: Phase;
  declared: DesiredDevice;
  generation?: number;
  probing?: { version: DesiredDevice; abort: AbortController };
  results: ProbeResult[];
}

interface SourceState {
  names: string[];
  complete: boolean;
  handed?: { devices: DesiredDevice[]; complete: boolean };
}

/** Two versions are the same when everything but where they were written agrees. */
export function sameVersion(a: DesiredDevice, b: DesiredDevice): boolean {
  const { origin: _a, ...ra } = a;
  const { origin: _b, ...rb } = b;
  return equal(ra, rb);
}

const hasProbes = (d: DesiredDevice): boolean => (d.probes?.length ?? 0) > 0;

export class RolloutGate {
  readonly #o: GateOptions;
  readonly #entries = new Map<string, Entry>();
  readonly #memory = new Map<string, DeviceMemory>();
  readonly #sources = new Map<string, SourceState>();
  #closed = false;

  constructor(opts: GateOptions) {
    this.#o = opts;
  }

  /** Loads what the node remembers; a problem is returned for the caller to log. */
  async load(): Promise<string | undefined> {
    const loaded = await this.#o.store?.load();
    if (loaded?.kind === 'loaded') for (const [name, m] of loaded.devices) this.#memory.set(name, m);
    return loaded?.kind === 'unusable' ? loaded.problem : undefined;
  }

  /** A source's latest declarations (`generations`: TunDevice metadata.generation by name). */
  update(source: string, devices: readonly DesiredDevice[], complete: boolean, generations: Readonly<Record<string, number>> = {}): void {
    const state = this.#sources.get(source) ?? { names: [], complete };
    const names = devices.map((d) => d.name);
    for (const gone of state.names) {
      if (names.includes(gone)) continue;
      const e = this.#entries.get(gone);
      if (e?.source !== source) continue;
      e.probing?.abort.abort();
      this.#entries.delete(gone);
      // Only a complete source says the device is gone; an incomplete one may just not know.
      if (complete && this.#memory.delete(gone)) this.#save();
    }
    for (const d of devices) {
      const prev = this.#entries.get(d.name);
      const generation = generations[d.name];
      if (prev && sameVersion(prev.declared, d) && prev.source === source) {
        prev.declared = d;
        if (generation !== undefined) prev.generation = generation;
        continue;
      }
      prev?.probing?.abort.abort();
      const entry: Entry = { source, declared: d, results: [] };
      if (generation !== undefined) entry.generation = generation;
      this.#entries.set(d.name, entry);
      // Back to the good version: a rejection of another version no longer applies.
      const m = this.#memory.get(d.name);
      if (m?.good && sameVersion(m.good.device, d) && m.rejected) {
        delete m.rejected;
        this.#save();
      }
      this.#notify(entry);
    }
    state.names = names;
    state.complete = complete;
    this.#sources.set(source, state);
    this.#hand(source);
  }

  /** The answer of `mayMove` may have changed (a slot granted or taken back). */
  recheck(): void {
    for (const e of this.#entries.values()) {
      // Only a device with a rollout limit asks for a slot: the others cannot change here.
      if (!limitsRollout(e.declared.rollout?.maxUnavailable)) continue;
      const before = e.phase;
      if (e.probing && !this.#may(e)) {
        e.probing.abort.abort();
        delete e.probing;
      }
      if (this.#phase(e) !== before) this.#notify(e);
    }
    for (const source of this.#sources.keys()) this.#hand(source);
  }

  /** After each pass: a version reported applied starts its probes. */
  passFinished(p: PassReport): void {
    const r = p.result;
    if (!r || r.outcome === 'interrupted' || this.#closed) return;
    let applied: Map<string, DesiredDevice> | undefined;
    for (const report of r.devices) {
      const e = this.#entries.get(report.device);
      // Most devices are settled on most passes: that is decided without looking further.
      if (!e || report.status !== 'ready' || e.probing || this.#current(e) !== 'applying') continue;
      applied ??= new Map(p.input.desired.map((d) => [d.name, d]));
      const version = applied.get(report.device);
      if (!version || !sameVersion(version, e.declared)) continue;
      if (!hasProbes(e.declared)) {
        this.#accept(e, []);
        continue;
      }
      this.#probe(e);
    }
  }

  view(name: string): DeviceView | undefined {
    const e = this.#entries.get(name);
    if (!e) return undefined;
    const m = this.#memory.get(name);
    const inForce = this.#inForce(e);
    const view: DeviceView = { name, phase: this.#current(e), nothingInForce: inForce === undefined, probeKeys: (e.declared.probes ?? []).map(probeKey), probes: e.results };
    if (e.generation !== undefined) view.generation = e.generation;
    const g = inForce === undefined ? undefined : inForce === e.declared ? e.generation : m?.good?.generation;
    if (g !== undefined) view.inForceGeneration = g;
    if (m?.rejected && sameVersion(m.rejected.device, e.declared)) view.rejected = m.rejected;
    if (m?.good) view.good = m.good;
    return view;
  }

  /** Generation of the version in force, by device name (for status of the pass about to run). */
  generationsInForce(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const name of this.#entries.keys()) {
      const g = this.view(name)?.inForceGeneration;
      if (g !== undefined) out[name] = g;
    }
    return out;
  }

  /** Every save asked for so far has finished. */
  idle(): Promise<void> {
    return this.#o.store?.idle() ?? Promise.resolve();
  }

  close(): void {
    this.#closed = true;
    for (const e of this.#entries.values()) e.probing?.abort.abort();
  }

  #may(e: Entry): boolean {
    return !limitsRollout(e.declared.rollout?.maxUnavailable) || !this.#o.mayMove || this.#o.mayMove(e.source, e.declared, e.generation);
  }

  #phase(e: Entry): Phase {
    const m = this.#memory.get(e.declared.name);
    if (m?.rejected && sameVersion(m.rejected.device, e.declared)) return m.good ? 'rolledBack' : 'probeFailed';
    if (m?.good && sameVersion(m.good.device, e.declared)) return 'settled';
    if (e.probing) return 'probing';
    if (!this.#may(e)) return 'waiting';
    return 'applying';
  }

  /** The version the loop should keep for this entry; undefined: none (waiting, nothing good). */
  #inForce(e: Entry): DesiredDevice | undefined {
    const phase = this.#current(e);
    const good = this.#memory.get(e.declared.name)?.good?.device;
    if (phase === 'rolledBack' || phase === 'waiting') return good;
    return e.declared;
  }

  #hand(source: string): void {
    const state = this.#sources.get(source);
    if (!state || this.#closed) return;
    const devices: DesiredDevice[] = [];
    let complete = state.complete;
    for (const name of state.names) {
      const e = this.#entries.get(name);
      if (!e) continue;
      const d = this.#inForce(e);
      if (d) devices.push(d);
      else complete = false;
    }
    const next = { devices, complete };
    if (state.handed && equal(state.handed, next)) return;
    state.handed = next;
    this.#o.onEffective(source, devices, complete);
  }

  #probe(e: Entry): void {
    const abort = new AbortController();
    const version = e.declared;
    e.probing = { version, abort };
    e.results = [];
    this.#notify(e);
    this.#o.probe(version, abort.signal).then(
      (results) => {
        if (abort.signal.aborted || this.#entries.get(version.name) !== e) return;
        delete e.probing;
        e.results = results;
        const failed = results.find((r) => !r.passed);
        if (!failed) this.#accept(e, results);
        else this.#reject(e, failed, results);
      },
      (err: unknown) => {
        if (abort.signal.aborted || this.#entries.get(version.name) !== e) return;
        delete e.probing;
        const at = (this.#o.now?.() ?? new Date()).toISOString();
        const first = version.probes?.[0];
        const failed: ProbeResult = {
          probe: first ? probeKey(first) : 'probes',
          kind: first?.kind ?? 'route',
          to: first?.to ?? '',
          passed: false,
          message: `the probes could not run: ${(err as Error).message ?? String(err)}`,
          attempts: 1,
          at,
        };
        e.results = [failed];
        this.#reject(e, failed, e.results);
      },
    );
  }

  #accept(e: Entry, results: ProbeResult[]): void {
    const m = this.#memory.get(e.declared.name) ?? {};
    m.good = { device: e.declared, ...(e.generation !== undefined ? { generation: e.generation } : {}) };
    delete m.rejected;
    this.#memory.set(e.declared.name, m);
    e.results = results;
    this.#save();
    if (hasProbes(e.declared)) this.#o.onProbed?.(e.declared, results, 'passed');
    this.#notify(e);
    this.#hand(e.source);
  }

  #reject(e: Entry, failed: ProbeResult, results: ProbeResult[]): void {
    const m = this.#memory.get(e.declared.name) ?? {};
    m.rejected = {
      device: e.declared,
      ...(e.generation !== undefined ? { generation: e.generation } : {}),
      probe: failed.probe,
      message: failed.message,
      at: failed.at,
    };
    this.#memory.set(e.declared.name, m);
    this.#save();
    this.#o.onProbed?.(e.declared, results, m.good ? 'rolledBack' : 'probeFailed');
    this.#notify(e);
    this.#hand(e.source);
  }

  #current(e: Entry): Phase {
    return (e.phase ??= this.#phase(e));
  }

  #notify(e: Entry): void {
    e.phase = this.#phase(e);
    this.#o.onChange?.(e.declared.name);
  }

  /**
   * Saved when anything here can matter after a restart: a device with probes or a rollout limit,
   * or a rejection. A node with neither writes nothing (its versions are the declared ones).
   */
  #save(): void {
    const store = this.#o.store;
    if (!store) return;
    const matters = [...this.#entries.values()].some((e) => hasProbes(e.declared) || limitsRollout(e.declared.rollout?.maxUnavailable)) || [...this.#memory.values()].some((m) => m.rejected);
    if (!matters) return;
    store.save(this.#memory).catch((err: unknown) => this.#o.onSaveError?.(err));
  }
}
