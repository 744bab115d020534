/**
 * The agent's Prometheus metrics, in a Registry of its own (not prom-client's global one), so that
 * two agents in one process (tests) or a library user's own metrics never collide.
 *
 * The loop reports through LoopObserver; `loopObserver()` turns its reports into these metrics.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { LoopObserver, PassReport, WakeReason } from '../loop/index.js';
import { WAKE_REASONS } from '../loop/index.js';

export const METRIC_NAMES = {
  reconciles: 'tunkeeper_reconciles_total',
  reconcileDuration: 'tunkeeper_reconcile_duration_seconds',
  wakeups: 'tunkeeper_wakeups_total',
  resyncNeeded: 'tunkeeper_resync_needed_total',
  driftRepairs: 'tunkeeper_drift_repairs_total',
  applyErrors: 'tunkeeper_apply_errors_total',
  managedDevices: 'tunkeeper_managed_devices',
  retries: 'tunkeeper_retries_scheduled_total',
  fights: 'tunkeeper_device_fights_total',
  desiredDevices: 'tunkeeper_desired_devices',
  lastReconcile: 'tunkeeper_last_reconcile_timestamp_seconds',
  reconcileRunning: 'tunkeeper_reconcile_running',
  sourceComplete: 'tunkeeper_source_complete',
  sourceConflicts: 'tunkeeper_source_conflicts',
  kubeWatchRestarts: 'tunkeeper_kube_watch_restarts_total',
  kubeConnected: 'tunkeeper_kube_connected',
  kubeStatusWrites: 'tunkeeper_kube_status_writes_total',
  kubeEvents: 'tunkeeper_kube_events_total',
} as const;

export class AgentMetrics {
  readonly registry = new Registry();
  readonly reconciles = new Counter({
    name: METRIC_NAMES.reconciles,
    help: 'Reconcile passes by result (converged, failed, interrupted, error)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly reconcileDuration = new Histogram({
    name: METRIC_NAMES.reconcileDuration,
    help: 'Duration of one reconcile pass (observe, plan, apply)',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly wakeups = new Counter({
    name: METRIC_NAMES.wakeups,
    help: 'Reasons to look again, by reason (several may fold into one pass)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly resyncNeeded = new Counter({
    name: METRIC_NAMES.resyncNeeded,
    help: 'Times the Monitor lost notifications (ENOBUFS) or could not decode one',
    registers: [this.registry],
  });
  readonly driftRepairs = new Counter({
    name: METRIC_NAMES.driftRepairs,
    help: 'Changes made to bring owned state back to the declaration, by kind',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly applyErrors = new Counter({
    name: METRIC_NAMES.applyErrors,
    help: 'Actions the kernel refused, by operation and errno',
    labelNames: ['operation', 'errno'] as const,
    registers: [this.registry],
  });
  readonly managedDevices = new Gauge({
    name: METRIC_NAMES.managedDevices,
    help: 'Declared devices the last pass reported on, by status (ready, degraded, refused, conflict, held)',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });
  readonly desiredDevices = new Gauge({
    name: METRIC_NAMES.desiredDevices,
    help: 'Devices declared by every source together',
    registers: [this.registry],
  });
  readonly retries = new Counter({
    name: METRIC_NAMES.retries,
    help: 'Retries scheduled with backoff, by scope (device or pass)',
    labelNames: ['scope'] as const,
    registers: [this.registry],
  });
  readonly fights = new Counter({
    name: METRIC_NAMES.fights,
    help: 'Repairs of a device changed again behind tunkeeper\'s back soon after its previous repair',
    labelNames: ['device'] as const,
    registers: [this.registry],
  });
  readonly lastReconcile = new Gauge({
    name: METRIC_NAMES.lastReconcile,
    help: 'Unix time the last reconcile pass finished',
    registers: [this.registry],
  });
  // A pass that runs long (a full relist of a big table) shows nowhere else until it ends: this is
  // how a scraper (or the bench, waiting for the agent to be at rest) tells "idle" from "busy".
  readonly reconcileRunning = new Gauge({
    name: METRIC_NAMES.reconcileRunning,
    help: 'Whether a reconcile pass is running (1) or not (0)',
    registers: [this.registry],
  });

  readonly sourceComplete = new Gauge({
    name: METRIC_NAMES.sourceComplete,
    help: 'Whether a desired-state source is complete (1) or not (0: listing, disconnected, invalid or contested declarations; nothing is pruned)',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });
  readonly sourceConflicts = new Gauge({
    name: METRIC_NAMES.sourceConflicts,
    help: 'Declarations contested by another source (applied from neither)',
    registers: [this.registry],
  });
  readonly kubeWatchRestarts = new Counter({
    name: METRIC_NAMES.kubeWatchRestarts,
    help: 'Lists and watches of the API server started again, by resource and reason (gone: 410 relist; error; timeout: no answer or a frozen stream)',
    labelNames: ['resource', 'reason'] as const,
    registers: [this.registry],
  });
  readonly kubeConnected = new Gauge({
    name: METRIC_NAMES.kubeConnected,
    help: 'Whether the cluster source has listed and is currently watching the API server (1) or not (0)',
    registers: [this.registry],
  });
  readonly kubeStatusWrites = new Counter({
    name: METRIC_NAMES.kubeStatusWrites,
    help: 'TunNodeState writes by result (written, unchanged: skipped as identical, error: retried with backoff)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly kubeEvents = new Counter({
    name: METRIC_NAMES.kubeEvents,
    help: 'Kubernetes Events by result (created, series: a repeat counted on an earlier Event, rate-limited, error) and reason',
    labelNames: ['result', 'reason'] as const,
    registers: [this.registry],
  });

  constructor(opts: { processMetrics?: boolean } = {}) {
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    // Every reason and result shows up as 0 from the start, so rate() works before the first one.
    for (const r of WAKE_REASONS) this.wakeups.inc({ reason: r }, 0);
    for (const r of ['converged', 'failed', 'interrupted', 'error']) this.reconciles.inc({ result: r }, 0);
    for (const s of ['ready', 'degraded', 'refused', 'conflict']) this.managedDevices.set({ status: s }, 0);
  }

  wake(reason: WakeReason): void {
    this.wakeups.inc({ reason });
    if (reason === 'resync-needed') this.resyncNeeded.inc();
  }

  passFinished(report: PassReport): void {
    this.reconcileRunning.set(0);
    const r = report.result;
    this.reconciles.inc({ result: r?.outcome ?? 'error' });
    this.reconcileDuration.observe(report.durationMs / 1000);
    this.lastReconcile.set(Date.now() / 1000);
    this.desiredDevices.set(report.input.desired.length);
    if (!r) return;
    for (const [kind, n] of Object.entries(r.repairs)) if (n > 0) this.driftRepairs.inc({ kind }, n);
    for (const f of r.failures) this.applyErrors.inc({ operation: f.action.type, errno: f.code });
    if (r.outcome !== 'interrupted') {
      const byStatus: Record<string, number> = { ready: 0, degraded: 0, refused: 0, conflict: 0, held: 0 };
      for (const d of r.devices) byStatus[d.status] = (byStatus[d.status] ?? 0) + 1;
      for (const [status, n] of Object.entries(byStatus)) this.managedDevices.set({ status }, n);
    }
  }

  /** The loop's reports as metrics. */
  loopObserver(): LoopObserver {
    return {
      wake: (reason) => this.wake(reason),
      passStarted: () => this.reconcileRunning.set(1),
      passFinished: (report) => this.passFinished(report),
      retryScheduled: (key) => this.retries.inc({ scope: key === '' ? 'pass' : 'device' }),
      fight: (device) => this.fights.inc({ device }),
    };
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }
}
