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
import { join } from 'node:path';
import type { DesiredDevice } from '../model/desired.js';
import { persistedDeviceProblem } from '../model/desired-shape.js';
import { readJsonFile, writeFileDurably } from '../sources/state-file.js';

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
    const read = await readJsonFile(this.file);
    if (read.kind !== 'read') return read;
    const problem = checkState(read.value, node);
    if (problem) return { kind: 'unusable', problem: `${this.file}: ${problem}; ignoring it` };
    return { kind: 'loaded', state: read.value as PersistedState };
  }

  async save(state: Omit<PersistedState, 'version' | 'savedAt'>): Promise<void> {
    const full: PersistedState = { version: STATE_FORMAT_VERSION, savedAt: new Date().toISOString(), ...state };
    await writeFileDurably(this.dir, this.file, `${JSON.stringify(full)}\n`);
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
