/** Messages between fleet-converge and its simulated-fleet workers (sim-worker.ts), over fork IPC. */
import type { SettingsFlags } from '../../controller/agent/settings.js';

export interface WorkerConfig {
  kubeconfig: string;
  /** The release namespace: the status Lease. */
  namespace: string;
  /** Each node's --state-dir is a folder of its own under this. */
  stateRoot: string;
  logFile: string;
  /** Nodes started at once (each lists, watches, writes its first status). */
  startConcurrency: number;
  /** Flags as `run` takes them (durations as strings). */
  settingsFlags?: SettingsFlags;
}

export type ToWorker = { type: 'config'; config: WorkerConfig } | { type: 'add'; nodes: string[] } | { type: 'rss' } | { type: 'stop' };

export type ToParent =
  | { type: 'ready' }
  | { type: 'added'; count: number; ms: number }
  | { type: 'rss'; rss: number; heapUsed: number; baseline: number; nodes: number }
  | { type: 'conn'; changes: Array<{ node: string; connected: boolean; at: number }> }
  | { type: 'stopped' }
  | { type: 'error'; message: string };
