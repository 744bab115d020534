/**
 * What this node remembers about each device's versions across restarts (in its state dir):
 * - `good`: the last version that passed all its probes here, the one a failed change rolls back to
 *   and the one kept in force while the node waits for its rollout slot;
 * - `rejected`: a version whose probes failed here, so that a restart does not try it again until
 *   the spec changes.
 *
 * Written like the cluster state (kube/state-store.ts): a temporary file, fsync, rename, fsync of
 * the directory. A file that cannot be read or understood is reported and ignored: the node then
 * knows no good version (a failing change can only be reported, not rolled back).
 */
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { DesiredDevice } from '../model/desired.js';
import { persistedDeviceProblem } from '../model/desired-shape.js';

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
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'absent' };
      return { kind: 'unusable', problem: `${this.file}: cannot read: ${(e as Error).message}` };
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      return { kind: 'unusable', problem: `${this.file}: not valid JSON (${(e as Error).message}); ignoring it` };
    }
    const problem = check(value);
    if (problem) return { kind: 'unusable', problem: `${this.file}: ${problem}; ignoring it` };
    return { kind: 'loaded', devices: new Map(Object.entries((value as RolloutFile).devices)) };
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

  async #write(text: string): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.tmp-${process.pid}`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await rename(tmp, this.file);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
    const dh = await open(this.dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
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
