/**
 * What this node remembers about each device's versions across restarts (in its state dir):
 * - `good`: the last version that passed all its probes here, the one a failed change rolls back to
 *   and the one kept in force while the node waits for its rollout slot;
 * - `rejected`: a version whose probes failed here, so that a restart does not try it again until
 *   the spec changes.
 *
 * Written atomically and durably (sources/state-file.ts). A file that cannot be read or understood
 * is reported and ignored: the node then knows no good version (a failing change can only be
 * reported, not rolled back).
 */
import { join } from 'node:path';
import type { DesiredDevice } from '../model/desired.js';
import { persistedDeviceProblem } from '../model/desired-shape.js';
import { readJsonFile, writeFileDurably } from '../sources/state-file.js';

export const ROLLOUT_FILE_NAME = 'rollout-state.json';
export const ROLLOUT_FORMAT_VERSION = 1;

export interface RememberedVersion {
  device: DesiredDevice;
  /** TunDevice metadata.generation (absent for files). */
  generation?: number;
}

export interface RejectedVersion extends RememberedVersion {
  /** The first failing probe and what the kernel answered. */
  probe: string;
  message: string;
  /** ISO time of the decision. */
  at: string;
}

export interface DeviceMemory {
  good?: RememberedVersion;
  rejected?: RejectedVersion;
}

export interface RolloutFile {
  version: typeof ROLLOUT_FORMAT_VERSION;
  devices: Record<string, DeviceMemory>;
}

export type RolloutLoad = { kind: 'loaded'; devices: Map<string, DeviceMemory> } | { kind: 'absent' } | { kind: 'unusable'; problem: string };

export class RolloutStore {
  readonly file: string;
  #writing: Promise<void> = Promise.resolve();

  constructor(readonly dir: string) {
    this.file = join(dir, ROLLOUT_FILE_NAME);
  }

  async load(): Promise<RolloutLoad> {
    const read = await readJsonFile(this.file);
    if (read.kind !== 'read') return read;
    const problem = check(read.value);
    if (problem) return { kind: 'unusable', problem: `${this.file}: ${problem}; ignoring it` };
    return { kind: 'loaded', devices: new Map(Object.entries((read.value as RolloutFile).devices)) };
  }

  /** Saves in call order; a failure is the caller's to report (the in-memory state stays). */
  save(devices: ReadonlyMap<string, DeviceMemory>): Promise<void> {
    const content: RolloutFile = { version: ROLLOUT_FORMAT_VERSION, devices: Object.fromEntries([...devices].sort(([a], [b]) => (a < b ? -1 : 1))) };
    const run = this.#writing.then(() => this.#write(`${JSON.stringify(content)}\n`));
    this.#writing = run.catch(() => undefined);
    return run;
  }

  /** Resolves once every save asked for so far has finished (stop waits for it). */
  idle(): Promise<void> {
    return this.#writing;
  }

  #write(text: string): Promise<void> {
    return writeFileDurably(this.dir, this.file, text);
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function checkVersion(v: unknown, where: string): string | undefined {
  if (!isRecord(v)) return `${where} is not an object`;
  if (v.generation !== undefined && !Number.isSafeInteger(v.generation)) return `${where}.generation is not an integer`;
  return persistedDeviceProblem(v.device, `${where}.device`);
}

function check(v: unknown): string | undefined {
  if (!isRecord(v)) return 'not a rollout state object';
  if (v.version !== ROLLOUT_FORMAT_VERSION) return `format version ${JSON.stringify(v.version)} is not ${ROLLOUT_FORMAT_VERSION}`;
  if (!isRecord(v.devices)) return 'has no device map';
  for (const [name, m] of Object.entries(v.devices)) {
    if (!isRecord(m)) return `devices.${name} is not an object`;
    if (m.good !== undefined) {
      const p = checkVersion(m.good, `devices.${name}.good`);
      if (p) return p;
    }
    if (m.rejected !== undefined) {
      const p = checkVersion(m.rejected, `devices.${name}.rejected`);
      if (p) return p;
      const r = m.rejected as Record<string, unknown>;
      for (const k of ['probe', 'message', 'at']) if (typeof r[k] !== 'string') return `devices.${name}.rejected.${k} is not a string`;
    }
  }
  return undefined;
}
