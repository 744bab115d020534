/**
 * What the desired-state sources have said so far, and whether it is enough to delete anything
 * (fail static, DESIGN.md promise 3): pruning is allowed only once every source has delivered a
 * complete snapshot, and only while every source's latest snapshot is complete. A source that
 * has not reported yet, or reports incomplete (a parse error, an unreachable API server, a
 * contested name), turns pruning off; what it declared last stays in force.
 *
 * Across sources the rule for files holds too (sources/conflicts.ts): a device name or interface
 * name declared by two sources (a TunDevice object and a file, say) is applied from neither, both
 * are reported, and pruning stops while it lasts — neither source may take over, or delete, a
 * device the other declares.
 */
import type { DesiredDevice } from '../model/desired.js';

interface SourceState {
  devices: DesiredDevice[];
  reported: boolean;
  complete: boolean;
  everComplete: boolean;
}

/** One declaration that another source contests. */
export interface CrossSourceConflict {
  source: string;
  device: DesiredDevice;
  /** The same name or interface name in other sources. */
  others: Array<{ source: string; device: DesiredDevice }>;
  /** For status and logs: what clashes with what. */
  message: string;
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
    return [...this.#sources.values()].every((s) => s.everComplete && s.complete) && this.conflicts().length === 0;
  }

  /** The union of what every source declares, in source order, without contested declarations. */
  desired(): DesiredDevice[] {
    const contested = new Set(this.conflicts().map((c) => c.device));
    return [...this.#sources.values()].flatMap((s) => s.devices.filter((d) => !contested.has(d)));
  }

  /** Declarations whose name or interface name another source declares too. */
  conflicts(): CrossSourceConflict[] {
    if (this.#sources.size < 2) return [];
    const byKey = new Map<string, Array<{ source: string; device: DesiredDevice }>>();
    for (const [source, s] of this.#sources) {
      for (const device of s.devices) {
        // A source declares each name and interface name once (its own conflicts are its own business).
        for (const key of new Set([`name\0${device.name}`, `ifname\0${device.ifname}`])) {
          const list = byKey.get(key) ?? [];
          list.push({ source, device });
          byKey.set(key, list);
        }
      }
    }
    const out = new Map<DesiredDevice, CrossSourceConflict>();
    for (const [key, list] of byKey) {
      if (new Set(list.map((e) => e.source)).size < 2) continue;
      const [what, value] = key.split('\0') as [string, string];
      for (const e of list) {
        const others = list.filter((o) => o.source !== e.source);
        const c = out.get(e.device) ?? { source: e.source, device: e.device, others: [], message: '' };
        for (const o of others) if (!c.others.some((x) => x.device === o.device)) c.others.push(o);
        const said = `${what === 'name' ? `TunDevice "${value}"` : `interface name "${value}"`} is also declared by the ${others.map((o) => `${o.source} source at ${o.device.origin}`).join(', ')}`;
        c.message = c.message === '' ? said : `${c.message}; ${said}`;
        out.set(e.device, c);
      }
    }
    for (const c of out.values()) c.message = `${c.device.origin}: ${c.message}; neither declaration is applied until only one remains`;
    return [...out.values()];
  }

  /** Sources whose latest snapshot is incomplete or missing, for status and logs. */
  incomplete(): string[] {
    return [...this.#sources].filter(([, s]) => !s.complete).map(([n]) => n);
  }
}
