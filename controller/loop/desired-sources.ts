/**
 * What the desired-state sources have said so far, and whether it is enough to delete anything
 * (fail static, DESIGN.md promise 3): pruning is allowed only once every source has delivered a
 * complete snapshot, and only while every source's latest snapshot is complete. A source that
 * has not reported yet, or reports incomplete (a parse error, an unreachable API server, a
 * contested name), turns pruning off; what it declared last stays in force.
 */
import type { DesiredDevice } from '../desired.js';

interface SourceState {
  devices: DesiredDevice[];
  reported: boolean;
  complete: boolean;
  everComplete: boolean;
}

export class DesiredSources {
  readonly #sources = new Map<string, SourceState>();

  constructor(names: readonly string[]) {
    if (names.length === 0) throw new Error('the loop needs at least one desired-state source');
    for (const n of names) this.#sources.set(n, { devices: [], reported: false, complete: false, everComplete: false });
  }

  /** Records a source's latest snapshot. */
  update(name: string, devices: DesiredDevice[], complete: boolean): void {
    const s = this.#sources.get(name);
    if (!s) throw new Error(`unknown desired-state source ${JSON.stringify(name)} (known: ${[...this.#sources.keys()].join(', ')})`);
    s.devices = devices;
    s.reported = true;
    s.complete = complete;
    s.everComplete ||= complete;
  }

  /** Every source has said something (complete or not): a pass can do useful work. */
  get allReported(): boolean {
    return [...this.#sources.values()].every((s) => s.reported);
  }

  /** Every source has completed a first sync at some point. */
  get firstSyncDone(): boolean {
    return [...this.#sources.values()].every((s) => s.everComplete);
  }

  /** Deleting what is not desired is safe now. */
  get prune(): boolean {
    return [...this.#sources.values()].every((s) => s.everComplete && s.complete);
  }

  /** The union of what every source declares, in source order. */
  desired(): DesiredDevice[] {
    return [...this.#sources.values()].flatMap((s) => s.devices);
  }

  /** Sources whose latest snapshot is incomplete or missing, for status and logs. */
  incomplete(): string[] {
    return [...this.#sources].filter(([, s]) => !s.complete).map(([n]) => n);
  }
}
