/**
 * fleet-converge's eyes: one watch of every TunNodeState and one of the benchmark's TunDevice,
 * opened by the bench itself (two watches among thousands: their events are counted in the API
 * server's figures too, and the log says so). For each generation of the device it records when
 * each node's TunNodeState first said Ready at that generation, and when the TunDevice's own
 * status (written by the Lease holder) first said Ready for it with every selected node ready.
 *
 * Times are the watch's delivery times: what any client of the API server would see.
 */
import type { KubeApi, WatchHandle } from '../../controller/kube/api-client.js';
import { TUN_DEVICES_PATH, TUN_NODE_STATES_PATH } from '../../controller/kube/types.js';

interface Condition {
  type: string;
  status: string;
}
interface NodeStateObject {
  metadata?: { name?: string; resourceVersion?: string };
  status?: { devices?: Array<{ name: string; observedGeneration?: number; conditions?: Condition[] }> };
}
interface DeviceObject {
  metadata?: { name?: string; generation?: number; resourceVersion?: string };
  status?: { observedGeneration?: number; ready?: string; conditions?: Condition[] };
}

const readyTrue = (c: Condition[] | undefined) => c?.some((x) => x.type === 'Ready' && x.status === 'True') === true;

export class FleetObserver {
  /** generation → node → when its TunNodeState first said Ready at it (epoch ms). */
  readonly nodeReadyAt = new Map<number, Map<string, number>>();
  /** generation → when the TunDevice first said Ready at it, with `ready` = "n/n" (and that n). */
  readonly deviceReadyAt = new Map<number, { at: number; n: number }>();
  /** What the TunDevice says now, when it says Ready n/n (undefined while it does not). */
  latestReady: { generation: number; n: number } | undefined;
  #watches: WatchHandle[] = [];
  #waiters: Array<() => void> = [];
  #stopped = false;
  #statesRv = '';
  #deviceRv = '';

  constructor(
    private readonly api: KubeApi,
    private readonly device: string,
  ) {}

  start(): void {
    this.#loop(TUN_NODE_STATES_PATH, {}, () => this.#statesRv, (rv) => (this.#statesRv = rv), (o: NodeStateObject) => this.#onState(o));
    this.#loop(TUN_DEVICES_PATH, { fieldSelector: `metadata.name=${this.device}` }, () => this.#deviceRv, (rv) => (this.#deviceRv = rv), (o: DeviceObject) => this.#onDevice(o));
  }

  stop(): void {
    this.#stopped = true;
    for (const w of this.#watches) w.abort();
  }

  /**
   * Resolves when `pred` holds, checked after every event; rejects after `timeoutMs` with `what`
   * and how far it got (`progress`).
   */
  async until(what: string, pred: () => boolean, timeoutMs: number, progress?: () => string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`fleet-converge: ${what}: not within ${Math.round(timeoutMs / 1000)} s${progress ? ` (${progress()})` : ''}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 1000));
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  readyCount(generation: number): number {
    return this.nodeReadyAt.get(generation)?.size ?? 0;
  }

  /** A watch that reopens itself (the API server restarts under it), resuming from its version. */
  #loop<T>(path: string, query: Record<string, string>, rv: () => string, setRv: (v: string) => void, onObject: (o: T) => void): void {
    const run = async (): Promise<void> => {
      while (!this.#stopped) {
        const w = this.api.watch<T & { metadata?: { resourceVersion?: string } }>(
          path,
          { ...query, resourceVersion: rv() || undefined, allowWatchBookmarks: true, timeoutSeconds: 1800 },
          {
            onEvent: (e) => {
              if (e.type === 'ERROR') {
                // 410: start from the current state (a fresh watch sends every object as ADDED).
                setRv('');
                return;
              }
              const v = e.object?.metadata?.resourceVersion;
              if (v) setRv(v);
              if (e.type !== 'BOOKMARK' && e.type !== 'DELETED') onObject(e.object);
              this.#wake();
            },
          },
          1_800_000,
        );
        this.#watches.push(w);
        const err = await w.done;
        this.#watches = this.#watches.filter((x) => x !== w);
        if (err?.statusCode === 410) setRv('');
        if (!this.#stopped && err) await new Promise((r) => setTimeout(r, 200));
      }
    };
    void run();
  }

  #onState(o: NodeStateObject): void {
    const node = o.metadata?.name ?? '';
    const d = o.status?.devices?.find((x) => x.name === this.device);
    if (!d || d.observedGeneration === undefined || !readyTrue(d.conditions)) return;
    let at = this.nodeReadyAt.get(d.observedGeneration);
    if (!at) this.nodeReadyAt.set(d.observedGeneration, (at = new Map()));
    if (!at.has(node)) at.set(node, Date.now());
  }

  #onDevice(o: DeviceObject): void {
    const s = o.status;
    const g = o.metadata?.generation;
    const m = /^(\d+)\/(\d+)$/.exec(s?.ready ?? '');
    if (!s || g === undefined || s.observedGeneration !== g || !readyTrue(s.conditions) || !m || m[1] !== m[2]) {
      this.latestReady = undefined;
      return;
    }
    this.latestReady = { generation: g, n: Number(m[1]) };
    if (!this.deviceReadyAt.has(g)) this.deviceReadyAt.set(g, { at: Date.now(), n: Number(m[1]) });
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }
}
