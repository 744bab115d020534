/**
 * One worker process of fleet-converge's simulated fleet: many nodes, each the agent `run --kube`
 * starts (controller/agent/agent.ts startAgent: the cluster source's watches of its Node and of
 * TunDevices, selection, the state store, the rollout gate, the loop, the reporter writing its
 * TunNodeState, Events, the status Lease candidate and, if it wins, the fleet summary), with two
 * things replaced: the reconciler (memory-reconciler.ts) and the Monitor (never fires). No
 * /metrics server (`off`), as the kernel side has nothing to serve.
 *
 * Driven over the fork IPC channel (protocol.ts): `add` starts nodes, `rss` measures the process,
 * `stop` stops every node cleanly (leases released) and exits. Every change of a node's cluster
 * connection (ClusterSnapshot.connected) is sent back, time-stamped, so the parent can time how
 * long a fleet takes to re-sync after an API server restart.
 */
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { NEVER } from 'rxjs';
import { startAgent, type Agent, type AgentMonitor } from '../../controller/agent/agent.js';
import { loadSettings } from '../../controller/agent/settings.js';
import { loadKubeConfig } from '../../controller/kube/kubeconfig.js';
import { createLogger } from '../../controller/telemetry/logger.js';
import { createMemoryReconciler } from './memory-reconciler.js';
import type { ToParent, ToWorker, WorkerConfig } from './protocol.js';

const send = (m: ToParent): void => {
  process.send?.(m);
};

/** A Monitor that never fires: the simulated kernel never changes behind the agent's back. */
const silentMonitor = async (): Promise<AgentMonitor> => Object.assign(NEVER.pipe(), { close: () => undefined }) as AgentMonitor;

async function main(config: WorkerConfig): Promise<void> {
  const { kubeConfig } = loadKubeConfig({ file: config.kubeconfig });
  const log = createWriteStream(config.logFile, { flags: 'a' });
  const logger = createLogger('warn', log);
  const agents = new Map<string, Agent>();
  const baseline = process.memoryUsage().rss;
  let pendingConn: Array<{ node: string; connected: boolean; at: number }> = [];
  let flushTimer: NodeJS.Timeout | undefined;
  const noteConn = (node: string, connected: boolean): void => {
    pendingConn.push({ node, connected, at: Date.now() });
    flushTimer ??= setTimeout(() => {
      flushTimer = undefined;
      send({ type: 'conn', changes: pendingConn });
      pendingConn = [];
    }, 50);
  };

  const startNode = async (node: string): Promise<void> => {
    const stateDir = join(config.stateRoot, node);
    await mkdir(stateDir, { recursive: true });
    const settings = await loadSettings({ flags: { metricsAddress: 'off', stateDir, logLevel: 'warn', ...config.settingsFlags } });
    const agent = await startAgent({
      paths: [],
      kube: {
        kubeConfig,
        nodeName: node,
        stateDir: settings.stateDir,
        namespace: config.namespace,
        leaderElection: settings.leaderElection,
        fleetStatus: { slotGraceMs: settings.rolloutSlotGraceMs },
      },
      settings,
      logger: logger.child({ node }),
      createReconciler: () => createMemoryReconciler(),
      openMonitor: silentMonitor,
    });
    agents.set(node, agent);
    let was: boolean | undefined;
    agent.kube!.source.snapshots$.subscribe((s) => {
      const connected = s.synced && s.connected;
      if (connected === was) return;
      was = connected;
      noteConn(node, connected);
    });
  };

  process.on('message', (raw) => {
    const m = raw as ToWorker;
    if (m.type === 'add') {
      void (async () => {
        const started = Date.now();
        // A few at a time, as a DaemonSet's pods come up: not 250 LISTs in the same millisecond.
        const queue = [...m.nodes];
        const lanes = Array.from({ length: Math.min(config.startConcurrency, queue.length) }, async () => {
          for (let node = queue.shift(); node !== undefined; node = queue.shift()) await startNode(node);
        });
        try {
          await Promise.all(lanes);
          send({ type: 'added', count: agents.size, ms: Date.now() - started });
        } catch (e) {
          send({ type: 'error', message: `starting nodes: ${(e as Error).stack ?? String(e)}` });
        }
      })();
    } else if (m.type === 'rss') {
      global.gc?.();
      const mem = process.memoryUsage();
      send({ type: 'rss', rss: mem.rss, heapUsed: mem.heapUsed, baseline, nodes: agents.size });
    } else if (m.type === 'stop') {
      void (async () => {
        await Promise.all([...agents.values()].map((a) => a.stop().catch(() => undefined)));
        send({ type: 'stopped' });
        log.end(() => process.exit(0));
      })();
    }
  });
  send({ type: 'ready' });
}

process.once('message', (raw) => {
  const m = raw as ToWorker;
  if (m.type !== 'config') throw new Error(`sim-worker: expected config first, got ${m.type}`);
  main(m.config).catch((e: unknown) => {
    send({ type: 'error', message: (e as Error).stack ?? String(e) });
    process.exit(1);
  });
});
// The parent died: nothing is left to report to.
process.on('disconnect', () => process.exit(0));
