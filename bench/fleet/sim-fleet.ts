/**
 * The simulated fleet: worker processes (sim-worker.ts), each holding many nodes. New nodes are
 * dealt round-robin, so a fleet grown for the sweep (100, 300, 1,000) stays even across workers.
 * Workers are ended by pid: cleanly (`stop`: every agent stops, the Lease holder releases) and
 * SIGKILLed if that takes too long or the bench is aborted.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { onAbort } from '../cleanup.js';
import { distBenchDir } from '../paths.js';
import type { ToParent, ToWorker, WorkerConfig } from './protocol.js';

interface Worker {
  child: ChildProcess;
  nodes: number;
  unregister: () => void;
  inbox: ToParent[];
  wake?: () => void;
  failed?: string;
}

export class SimFleet {
  readonly #workers: Worker[] = [];
  /** node → { connected, when it last changed (epoch ms) }. */
  readonly conn = new Map<string, { connected: boolean; at: number }>();
  #next = 0;

  static async start(workers: number, config: Omit<WorkerConfig, 'logFile'>, logDir: string): Promise<SimFleet> {
    const fleet = new SimFleet();
    for (let i = 0; i < workers; i++) fleet.#workers.push(fleet.#fork(i, { ...config, logFile: join(logDir, `sim-worker-${i}.log`) }));
    await Promise.all(fleet.#workers.map((w) => fleet.#expect(w, 'ready', 60_000)));
    return fleet;
  }

  get size(): number {
    return this.#workers.reduce((n, w) => n + w.nodes, 0);
  }
  get workers(): number {
    return this.#workers.length;
  }
  pids(): number[] {
    return this.#workers.map((w) => w.child.pid!).filter((p) => p !== undefined);
  }

  /** Starts these nodes (dealt round-robin) and waits until every worker has started its share. */
  async add(nodes: readonly string[], timeoutMs: number): Promise<void> {
    const shares = this.#workers.map(() => [] as string[]);
    for (const n of nodes) shares[this.#next++ % shares.length]!.push(n);
    const waits = shares.map(async (share, i) => {
      if (share.length === 0) return;
      const w = this.#workers[i]!;
      this.#send(w, { type: 'add', nodes: share });
      await this.#expect(w, 'added', timeoutMs);
      w.nodes += share.length;
    });
    await Promise.all(waits);
  }

  /** Per worker: resident memory now, and before it started any node. */
  async rss(): Promise<Array<{ rss: number; baseline: number; nodes: number; heapUsed: number }>> {
    return Promise.all(
      this.#workers.map(async (w) => {
        this.#send(w, { type: 'rss' });
        const m = (await this.#expect(w, 'rss', 30_000)) as Extract<ToParent, { type: 'rss' }>;
        return { rss: m.rss, baseline: m.baseline, nodes: m.nodes, heapUsed: m.heapUsed };
      }),
    );
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.#workers.map(async (w) => {
        if (w.child.exitCode !== null || w.child.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => w.child.once('exit', () => resolve()));
        this.#send(w, { type: 'stop' });
        const timer = setTimeout(() => w.child.kill('SIGKILL'), 30_000);
        await exited;
        clearTimeout(timer);
        w.unregister();
      }),
    );
  }

  #fork(index: number, config: WorkerConfig): Worker {
    const child = fork(join(distBenchDir, 'fleet', 'sim-worker.js'), [], {
      // --expose-gc: the memory figure is taken after a full collection, not whenever V8 felt like one.
      execArgv: ['--expose-gc'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const w: Worker = { child, nodes: 0, inbox: [], unregister: () => undefined };
    w.unregister = onAbort(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    child.on('message', (raw) => {
      const m = raw as ToParent;
      if (m.type === 'conn') {
        for (const c of m.changes) this.conn.set(c.node, { connected: c.connected, at: c.at });
        return;
      }
      if (m.type === 'error') w.failed = `sim-worker ${index}: ${m.message}`;
      w.inbox.push(m);
      w.wake?.();
    });
    child.on('exit', (code, signal) => {
      w.failed ??= `sim-worker ${index} exited (${code ?? signal})`;
      w.wake?.();
    });
    this.#send(w, { type: 'config', config });
    return w;
  }

  #send(w: Worker, m: ToWorker): void {
    if (w.child.connected) w.child.send(m);
  }

  async #expect(w: Worker, type: ToParent['type'], timeoutMs: number): Promise<ToParent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = w.inbox.findIndex((m) => m.type === type);
      if (i >= 0) return w.inbox.splice(i, 1)[0]!;
      if (w.failed) throw new Error(w.failed);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`sim-worker pid ${w.child.pid}: no '${type}' within ${Math.round(timeoutMs / 1000)} s`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        w.wake = () => {
          clearTimeout(t);
          w.wake = undefined;
          resolve();
        };
      });
    }
  }
}
