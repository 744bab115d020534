/**
 * The agent's Kubernetes side, put together: the cluster source feeding the loop, the reporter
 * turning passes into TunNodeState status and Events, and the status Lease: whichever agent holds
 * it summarizes every node's report into TunDevice.status (fleet/fleet-status.ts). agent.ts starts it
 * when `kube` options are given.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import equal from 'fast-deep-equal';
import type { Subscription } from 'rxjs';
import type { DesiredDevice } from '../model/desired.js';
import type { Logger } from '../telemetry/logger.js';
import type { ReconcileLoop } from '../loop/loop.js';
import type { RolloutGate } from '../rollout/gate.js';
import type { TunDeviceFleetStatus } from '../schema/tundevice-status.js';
import type { AgentMetrics } from '../telemetry/metrics.js';
import { randomBytes } from 'node:crypto';
import { KubeApi } from './api-client.js';
import { ClusterSource, type ClusterSnapshot } from './cluster-source.js';
import { EventRecorder } from './events.js';
import { FleetStatus, type FleetStatusOptions } from './fleet/fleet-status.js';
import { LeaderElector } from './fleet/leader.js';
import { DEFAULT_NAMESPACE } from './types.js';
import { NodeReporter } from './node-reporter.js';
import { StateStore } from './state-store.js';
import { StatusWriter } from './status-writer.js';

export interface KubeAgentOptions {
  kubeConfig: KubeConfig;
  /** This node's name (NODE_NAME from the downward API). */
  nodeName: string;
  /** Where the last complete desired state is kept; absent: not kept. */
  stateDir?: string;
  /** Server-side watch timeout, s (default 300, jittered). */
  watchTimeoutSeconds?: number;
  /** A watch silent for this long is presumed dead (default 150 s; bookmarks come about every minute). */
  idleTimeoutMs?: number;
  listTimeoutMs?: number;
  statusMinIntervalMs?: number;
  events?: { burst?: number; refillMs?: number; seriesWindowMs?: number };
  /** The release namespace: where the status Lease is (default tunkeeper-system). */
  namespace?: string;
  leaderElection?: { leaseDurationMs?: number; renewDeadlineMs?: number; retryPeriodMs?: number };
  fleetStatus?: Pick<FleetStatusOptions, 'minIntervalMs' | 'persistentFailureMs' | 'debounceMs' | 'slotGraceMs'>;
}

export const KUBE_SOURCE = 'kube';

export interface KubeSide {
  source: ClusterSource;
  reporter: NodeReporter;
  writer: StatusWriter;
  events: EventRecorder;
  elector: LeaderElector;
  fleet: FleetStatus;
  current(): ClusterSnapshot | undefined;
  /** Whether the status Lease holder granted this node a slot to move `device` to `generation`. */
  mayMove(device: DesiredDevice, generation: number | undefined): boolean;
  close(): Promise<void>;
}

export async function startKubeSide(opts: KubeAgentOptions, loop: ReconcileLoop, gate: RolloutGate, logger: Logger, metrics: AgentMetrics): Promise<KubeSide> {
  const log = logger.child({ source: KUBE_SOURCE, node: opts.nodeName });
  const api = new KubeApi(opts.kubeConfig);
  const source = new ClusterSource({
    api,
    nodeName: opts.nodeName,
    logger: log,
    ...(opts.stateDir !== undefined ? { store: new StateStore(opts.stateDir) } : {}),
    ...(opts.watchTimeoutSeconds !== undefined ? { watchTimeoutSeconds: opts.watchTimeoutSeconds } : {}),
    ...(opts.idleTimeoutMs !== undefined ? { idleTimeoutMs: opts.idleTimeoutMs } : {}),
    ...(opts.listTimeoutMs !== undefined ? { listTimeoutMs: opts.listTimeoutMs } : {}),
    onRestart: (resource, reason) => metrics.kubeWatchRestarts.inc({ resource, reason }),
    onDevicesChanged: () => {
      fleet.changed();
      // A grant may have come or gone (TunDevice.status.rollout).
      gate.recheck();
    },
  });
  const writer = new StatusWriter({
    api,
    nodeName: opts.nodeName,
    logger: log,
    ...(opts.statusMinIntervalMs !== undefined ? { minIntervalMs: opts.statusMinIntervalMs } : {}),
    onWrite: (result) => metrics.kubeStatusWrites.inc({ result }),
  });
  const events = new EventRecorder({
    api,
    nodeName: opts.nodeName,
    nodeUid: () => source.current()?.node?.uid,
    logger: log,
    ...opts.events,
    onResult: (result, reason) => metrics.kubeEvents.inc({ result, reason }),
  });
  const fleet: FleetStatus = new FleetStatus({
    api,
    logger: log.child({ component: 'fleet-status' }),
    devices: () => source.tunDevices(),
    ...(opts.watchTimeoutSeconds !== undefined ? { watchTimeoutSeconds: opts.watchTimeoutSeconds } : {}),
    ...(opts.idleTimeoutMs !== undefined ? { idleTimeoutMs: opts.idleTimeoutMs } : {}),
    ...(opts.listTimeoutMs !== undefined ? { listTimeoutMs: opts.listTimeoutMs } : {}),
    ...opts.fleetStatus,
    onWrite: (result) => metrics.kubeFleetStatusWrites.inc({ result }),
    onFleetSize: (n) => elector.setFleetSize(n),
    onRestart: (resource, reason) => metrics.kubeWatchRestarts.inc({ resource, reason }),
  });
  const elector: LeaderElector = new LeaderElector({
    api,
    namespace: opts.namespace ?? DEFAULT_NAMESPACE,
    // The node name first, so `kubectl get lease` shows which node leads; a suffix per run, so a
    // restarted agent is a new holder (its predecessor's lease is not silently inherited).
    identity: `${opts.nodeName}_${randomBytes(4).toString('hex')}`,
    logger: log.child({ component: 'leader' }),
    ...opts.leaderElection,
    onStartedLeading: () => {
      metrics.kubeLeader.set(1);
      fleet.startLeading();
    },
    onStoppedLeading: () => {
      metrics.kubeLeader.set(0);
      void fleet.stopLeading();
    },
  });
  const reporter = new NodeReporter({ writer, events, logger: log, conflicts: () => loop.conflicts(), source: KUBE_SOURCE, gate });
  for (const result of ['written', 'unchanged', 'error']) metrics.kubeStatusWrites.inc({ result }, 0);
  for (const result of ['written', 'conflict', 'error']) metrics.kubeFleetStatusWrites.inc({ result }, 0);
  metrics.kubeConnected.set(0);
  metrics.kubeLeader.set(0);

  let handed: { devices: DesiredDevice[]; complete: boolean; generations: Record<string, number> } | undefined;
  let lastProblems = '';
  let wasConnected = false;
  const subscription: Subscription = source.snapshots$.subscribe((snap) => {
    const connected = snap.synced && snap.connected;
    metrics.kubeConnected.set(connected ? 1 : 0);
    if (connected && !wasConnected) writer.retryNow();
    wasConnected = connected;
    metrics.sourceComplete.set({ source: KUBE_SOURCE }, snap.complete ? 1 : 0);
    const problems = snap.problems.join('\n');
    if (problems !== lastProblems) {
      lastProblems = problems;
      if (snap.problems.length > 0) log.warn({ complete: snap.complete, problems: snap.problems }, 'cluster source incomplete: nothing is pruned until it is complete again');
    }
    // The reporter first, so that a pass started by updateSource sees this snapshot's generations.
    reporter.sourceChanged(snap);
    const next = { devices: snap.devices, complete: snap.complete, generations: snap.generations };
    if (handed && equal(handed, next)) return;
    handed = next;
    log.info({ devices: snap.devices.length, complete: snap.complete, fromDisk: snap.fromDisk, synced: snap.synced, selected: snap.objects.length }, 'desired state read');
    gate.update(KUBE_SOURCE, snap.devices, snap.complete, snap.generations);
  });
  void reporter.seed();
  await source.start();
  elector.start();

  return {
    source,
    reporter,
    writer,
    events,
    elector,
    fleet,
    current: () => source.current(),
    mayMove: (device, generation) => {
      const obj = source.tunDevices()?.find((d) => d.metadata?.name === device.name) as { status?: TunDeviceFleetStatus } | undefined;
      const r = obj?.status?.rollout;
      return r !== undefined && r.generation === generation && r.granted.some((x) => x.node === opts.nodeName);
    },
    close: async () => {
      subscription.unsubscribe();
      // The summary's last write first, then the Lease goes (released: the next holder starts at once).
      await fleet.close();
      await elector.stop();
      await source.close();
      await Promise.all([writer.close(), events.close()]);
      api.close();
    },
  };
}
