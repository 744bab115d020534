/**
 * The last complete desired state from the cluster, kept on the node's disk, so that a node that
 * reboots while the API server is unreachable brings its devices back (fail static across
 * restarts). What is loaded is only ever used as an incomplete snapshot: it can create and repair,
 * never prune; the cluster's own first complete sync replaces it.
 *
 * The file is written atomically (a temporary file in the same directory, fsync, rename, fsync of
 * the directory), so a crash or power cut leaves either the old or the new version, never half of
 * one. It is versioned JSON; a file that cannot be read, parsed or understood is reported and
 * ignored (the agent then starts with no cluster devices until the API server answers).
 */
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { DesiredDevice } from '../model/desired.js';
import { persistedDeviceProblem } from '../model/desired-shape.js';

export const STATE_FILE_NAME = 'kube-desired-state.json';
export const STATE_FORMAT_VERSION = 1;

export interface PersistedState {
  version: typeof STATE_FORMAT_VERSION;
  /** The node the state was selected for: another node's file is not ours to apply. */
  node: string;
  savedAt: string;
  devices: DesiredDevice[];
  /** TunDevice metadata.generation per device name, for status after a restart. */
  generations: Record<string, number>;
}

export type LoadResult = { kind: 'loaded'; state: PersistedState } | { kind: 'absent' } | { kind: 'unusable'; problem: string };

export class StateStore {
  readonly file: string;
  constructor(readonly dir: string) {
    this.file = join(dir, STATE_FILE_NAME);
  }

  async load(node: string): Promise<LoadResult> {
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
    const problem = checkState(value, node);
    if (problem) return { kind: 'unusable', problem: `${this.file}: ${problem}; ignoring it` };
    return { kind: 'loaded', state: value as PersistedState };
  }

  async save(state: Omit<PersistedState, 'version' | 'savedAt'>): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const full: PersistedState = { version: STATE_FORMAT_VERSION, savedAt: new Date().toISOString(), ...state };
    const tmp = `${this.file}.tmp-${process.pid}`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(`${JSON.stringify(full)}\n`);
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
    // The rename itself is durable only once the directory is synced.
    const dh = await open(this.dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Enough of a check that a damaged or foreign file is not handed to plan; undefined when fine. */
function checkState(v: unknown, node: string): string | undefined {
  if (!isRecord(v)) return 'not a state object';
  if (v.version !== STATE_FORMAT_VERSION) return `format version ${JSON.stringify(v.version)} is not ${STATE_FORMAT_VERSION}`;
  if (v.node !== node) return `saved for node ${JSON.stringify(v.node)}, not ${JSON.stringify(node)}`;
  if (!Array.isArray(v.devices)) return 'has no device list';
  if (!isRecord(v.generations) || !Object.values(v.generations).every((g) => Number.isSafeInteger(g))) return 'has no generation map';
  for (const [i, d] of v.devices.entries()) {
    const problem = persistedDeviceProblem(d, `devices[${i}]`);
    if (problem) return problem;
  }
  return undefined;
}
