/**
 * The cluster source: TunDevice objects selected for this node, as a stream of snapshots for the
 * loop (the same contract as the file source: devices + complete).
 *
 * Two reflectors: this node's Node object (field selector metadata.name, for its labels and uid)
 * and every TunDevice. Fail static:
 * - complete only once both have listed, while both are connected, the Node exists, and the
 *   selection itself is complete (cluster-select.ts); otherwise nothing is pruned and the last
 *   known objects stay in force;
 * - before the first list, the state saved on disk by a previous run (state-store.ts) is in
 *   force, as an incomplete snapshot: a node rebooted during an outage gets its devices back;
 * - every complete snapshot whose devices differ from the saved ones is saved.
 */
import equal from 'fast-deep-equal';
import { ReplaySubject, type Observable } from 'rxjs';
import type { DesiredDevice } from '../model/desired.js';
import type { Logger } from '../telemetry/logger.js';
import type { Random } from '../loop/backoff.js';
import type { KubeApi, KubeApiError } from './api-client.js';
import { selectForNode, type SelectedObject, type ValidVersion } from './cluster-select.js';
import { Reflector, type ReflectorChange } from './reflector.js';
import type { StateStore } from './state-store.js';
import { NODES_PATH, TUN_DEVICES_PATH, type NodeObject, type TunDeviceObject } from './types.js';

export interface ClusterSnapshot {
  devices: DesiredDevice[];
  complete: boolean;
  /** Both reflectors have listed at least once. */
  synced: boolean;
  /** Both reflectors' latest list or watch works. */
  connected: boolean;
  /** The devices come from the state file, not (yet) from the API server. */
  fromDisk: boolean;
  node?: { name: string; uid: string; labels: Record<string, string> };
  /** Every TunDevice selected for this node (status reports on each). */
  objects: SelectedObject[];
  /** metadata.generation per applied device. */
  generations: Record<string, number>;
  /** Why the snapshot is incomplete, for logs and /readyz. */
  problems: string[];
}

export interface ClusterSourceOptions {
  api: KubeApi;
  nodeName: string;
  store?: StateStore;
  logger: Logger;
  watchTimeoutSeconds?: number;
  idleTimeoutMs?: number;
  listTimeoutMs?: number;
  random?: Random;
  /** A list or watch had to start again (metrics). */
  onRestart?(resource: string, reason: 'gone' | 'error' | 'timeout'): void;
  /** Any TunDevice changed, selected here or not, spec or status (the fleet summary reads them all). */
  onDevicesChanged?(): void;
}

export class ClusterSource {
  readonly #opts: ClusterSourceOptions;
  readonly #subject = new ReplaySubject<ClusterSnapshot>(1);
  readonly #node: Reflector<NodeObject>;
  readonly #devices: Reflector<TunDeviceObject>;
  #valid = new Map<string, ValidVersion>();
  #disk: { devices: DesiredDevice[]; generations: Record<string, number> } | undefined;
  #latest: ClusterSnapshot | undefined;
  #saved: { devices: DesiredDevice[]; generations: Record<string, number> } | undefined;
  #saving: Promise<void> = Promise.resolve();
  #recomputeQueued = false;
  #closed = false;

  readonly snapshots$: Observable<ClusterSnapshot> = this.#subject.asObservable();

  constructor(opts: ClusterSourceOptions) {
    this.#opts = opts;
    const common = {
      api: opts.api,
      ...(opts.watchTimeoutSeconds !== undefined ? { watchTimeoutSeconds: opts.watchTimeoutSeconds } : {}),
      ...(opts.idleTimeoutMs !== undefined ? { idleTimeoutMs: opts.idleTimeoutMs } : {}),
      ...(opts.listTimeoutMs !== undefined ? { listTimeoutMs: opts.listTimeoutMs } : {}),
      ...(opts.random ? { random: opts.random } : {}),
    };
    const observer = {
      onChange: (r: Reflector<never>, change: ReflectorChange) => {
        if (change === 'disconnected') opts.logger.warn({ resource: r.resource, err: r.lastError }, `lost the ${r.resource} watch; keeping the last known state in force (nothing is deleted) and reconnecting`);
        if (change === 'connected') opts.logger.info({ resource: r.resource }, `${r.resource} watch is back`);
        this.#queueRecompute();
        if ((r as unknown) === this.#devices) opts.onDevicesChanged?.();
      },
      onRestart: (resource: string, reason: 'gone' | 'error' | 'timeout', err?: KubeApiError) => {
        opts.logger.debug({ resource, reason, err: err?.message }, `${resource}: list/watch restarting (${reason})`);
        opts.onRestart?.(resource, reason);
      },
    };
    this.#node = new Reflector<NodeObject>({ ...common, path: NODES_PATH, resource: 'node', fieldSelector: `metadata.name=${opts.nodeName}` }, observer);
    this.#devices = new Reflector<TunDeviceObject>({ ...common, path: TUN_DEVICES_PATH, resource: 'tundevices' }, observer);
  }

  /** Loads the saved state (reported at once, incomplete) and starts listing and watching. */
  async start(): Promise<void> {
    const loaded = await this.#opts.store?.load(this.#opts.nodeName);
    if (loaded?.kind === 'loaded') {
      this.#disk = { devices: loaded.state.devices, generations: loaded.state.generations };
      this.#saved = this.#disk;
      // The saved devices were valid then: a later invalid edit keeps them in force.
      for (const d of loaded.state.devices) {
        const g = loaded.state.generations[d.name];
        this.#valid.set(d.name, { device: d, ...(g !== undefined ? { generation: g } : {}) });
      }
      this.#opts.logger.info(
        { file: this.#opts.store?.file, devices: loaded.state.devices.length, savedAt: loaded.state.savedAt },
        'loaded the last known cluster state from disk; it stays in force (without pruning) until the API server answers',
      );
    } else if (loaded?.kind === 'unusable') {
      this.#opts.logger.warn({ file: this.#opts.store?.file }, loaded.problem);
    }
    this.#emit(this.#compute());
    this.#node.start();
    this.#devices.start();
  }

  current(): ClusterSnapshot | undefined {
    return this.#latest;
  }

  /** Every TunDevice as listed and watched (one watch serves this node and the fleet summary); undefined before the first list. */
  tunDevices(): readonly TunDeviceObject[] | undefined {
    return this.#devices.synced ? this.#devices.objects() : undefined;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([this.#node.stop(), this.#devices.stop()]);
    await this.#saving;
    this.#subject.complete();
  }

  #queueRecompute(): void {
    if (this.#recomputeQueued || this.#closed) return;
    this.#recomputeQueued = true;
    // Events that arrive together (a relist) make one snapshot.
    queueMicrotask(() => {
      this.#recomputeQueued = false;
      if (!this.#closed) this.#emit(this.#compute());
    });
  }

  #compute(): ClusterSnapshot {
    const synced = this.#node.synced && this.#devices.synced;
    const connected = this.#node.connected && this.#devices.connected;
    const problems: string[] = [];
    if (!this.#node.synced) problems.push(`node ${this.#opts.nodeName}: not listed yet${this.#node.lastError ? ` (${this.#node.lastError})` : ''}`);
    if (!this.#devices.synced) problems.push(`tundevices: not listed yet${this.#devices.lastError ? ` (${this.#devices.lastError})` : ''}`);
    if (synced && !connected) {
      for (const r of [this.#node, this.#devices]) if (!r.connected) problems.push(`${r.resource}: disconnected${r.lastError ? ` (${r.lastError})` : ''}`);
    }
    if (!synced) {
      const disk = this.#disk;
      return {
        devices: disk?.devices ?? [],
        complete: false,
        synced,
        connected,
        fromDisk: disk !== undefined,
        objects: [],
        generations: disk?.generations ?? {},
        problems,
      };
    }
    const nodeObj = this.#node.objects().find((n) => n.metadata?.name === this.#opts.nodeName);
    if (!nodeObj) problems.push(`node ${this.#opts.nodeName} does not exist: no labels to select TunDevices with`);
    const labels = nodeObj?.metadata?.labels ?? {};
    const selection = selectForNode(this.#devices.objects(), labels, this.#valid);
    this.#valid = selection.valid;
    problems.push(...selection.incompleteBecause);
    const snapshot: ClusterSnapshot = {
      devices: nodeObj ? selection.devices : this.#latest?.devices ?? [],
      complete: connected && nodeObj !== undefined && selection.complete,
      synced,
      connected,
      fromDisk: false,
      objects: nodeObj ? selection.objects : [],
      generations: selection.generations,
      problems,
    };
    if (nodeObj) snapshot.node = { name: this.#opts.nodeName, uid: nodeObj.metadata?.uid ?? '', labels: { ...labels } };
    return snapshot;
  }

  #emit(snapshot: ClusterSnapshot): void {
    if (this.#latest && equal(this.#latest, snapshot)) return;
    this.#latest = snapshot;
    this.#subject.next(snapshot);
    if (snapshot.complete) this.#persist(snapshot);
  }

  #persist(snapshot: ClusterSnapshot): void {
    const store = this.#opts.store;
    if (!store) return;
    const state = { devices: snapshot.devices, generations: snapshot.generations };
    if (this.#saved && equal(this.#saved, state)) return;
    this.#saved = state;
    this.#saving = this.#saving
      .then(() => store.save({ node: this.#opts.nodeName, ...state }))
      .then(
        () => this.#opts.logger.debug({ file: store.file, devices: state.devices.length }, 'saved the cluster state to disk'),
        (e: unknown) => {
          this.#saved = undefined;
          this.#opts.logger.warn({ err: e, file: store.file }, 'cannot save the cluster state to disk; a restart during an API server outage would start without it');
        },
      );
  }
}
