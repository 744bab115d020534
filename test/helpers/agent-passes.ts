/**
 * The passes of an in-process agent (startAgent), as its reconciler reports them. A test that
 * checks what a pass did to the kernel waits for that pass here, not for a kernel object to
 * exist: a link exists from the middle of the pass that creates it, before the same pass has set
 * its MTU, addresses and routes (a fresh-clone CI run on a busy machine read mtu 1500 that way).
 * A reported pass has ended: what it applied is in the kernel.
 */
import type { ReconcilerFactory } from '../../controller/agent/agent.js';
import type { ReconcileResult } from '../../controller/reconcile/types.js';

interface Waiter {
  pred: (r: ReconcileResult) => boolean;
  resolve: (r: ReconcileResult) => void;
}

export class PassRecorder {
  readonly #results: ReconcileResult[] = [];
  readonly #waiters = new Set<Waiter>();

  /** `factory` with every pass's result recorded; give it to startAgent as createReconciler. */
  wrap(factory: ReconcilerFactory): ReconcilerFactory {
    return async (opts) => {
      const inner = await factory(opts);
      return {
        reconcile: async (input) => {
          const result = await inner.reconcile(input);
          this.#record(result);
          return result;
        },
        close: () => inner.close(),
      };
    };
  }

  /** How many passes have ended so far: pass it to until() to wait only for later ones. */
  get count(): number {
    return this.#results.length;
  }

  /**
   * The first pass ended after the first `after` ones that satisfies pred (already seen, or the
   * next such one). A generous guard only turns a hang into a message naming what was awaited.
   */
  until(what: string, pred: (r: ReconcileResult) => boolean, opts: { after?: number; guardMs?: number } = {}): Promise<ReconcileResult> {
    const seen = this.#results.slice(opts.after ?? 0).find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const guard = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`gave up waiting for a pass with ${what} (${this.#results.length} passes ended)`));
      }, opts.guardMs ?? 90_000);
      guard.unref();
      const waiter: Waiter = {
        pred,
        resolve: (r) => {
          clearTimeout(guard);
          resolve(r);
        },
      };
      this.#waiters.add(waiter);
    });
  }

  #record(result: ReconcileResult): void {
    this.#results.push(result);
    for (const w of [...this.#waiters]) {
      if (!w.pred(result)) continue;
      this.#waiters.delete(w);
      w.resolve(result);
    }
  }
}

/** The pass converged with `ifname` ready: the kernel holds that device's whole declaration. */
export const convergedWith =
  (ifname: string) =>
  (r: ReconcileResult): boolean =>
    r.outcome === 'converged' && r.devices.some((d) => d.ifname === ifname && d.status === 'ready');
