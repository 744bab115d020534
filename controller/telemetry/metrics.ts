/**
 * The agent's Prometheus metrics, in a Registry of its own (not prom-client's global one), so that
 * two agents in one process (tests) or a library user's own metrics never collide.
 *
 * The loop reports through LoopObserver; `loopObserver()` turns its reports into these metrics.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { LoopObserver, PassReport, WakeReason } from '../loop/index.js';
import { WAKE_REASONS } from '../loop/index.js';

type Kind = 'counter' | 'gauge' | 'histogram';
interface Spec<K extends Kind = Kind, N extends string = string, L extends string = string> {
  kind: K;
  name: N;
  help: string;
  labelNames: readonly L[];
  buckets?: number[];
}
const spec =
  <K extends Kind>(kind: K) =>
  <N extends string, L extends string = never>(name: N, help: string, labelNames: readonly L[] = [], buckets?: number[]): Spec<K, N, L> => ({
    kind,
    name,
    help,
    labelNames,
    ...(buckets ? { buckets } : {}),
  });
const counter = spec('counter');
const gauge = spec('gauge');
const histogram = spec('histogram');

/** Every metric the agent exports: one row each, so names, help and labels read as one table. */
const METRICS = {
  reconciles: counter('tunkeeper_reconciles_total', 'Reconcile passes by result (converged, failed, interrupted, error)', ['result']),
  reconcileDuration: histogram('tunkeeper_reconcile_duration_seconds', 'Duration of one reconcile pass (observe, plan, apply)', [], [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]),
  wakeups: counter('tunkeeper_wakeups_total', 'Reasons to look again, by reason (several may fold into one pass)', ['reason']),
  resyncNeeded: counter('tunkeeper_resync_needed_total', 'Times the Monitor lost notifications (ENOBUFS) or could not decode one'),
  driftRepairs: counter('tunkeeper_drift_repairs_total', 'Changes made to bring owned state back to the declaration, by kind', ['kind']),
  applyErrors: counter('tunkeeper_apply_errors_total', 'Actions the kernel refused, by operation and errno', ['operation', 'errno']),
  managedDevices: gauge('tunkeeper_managed_devices', 'Declared devices the last pass reported on, by status (ready, degraded, refused, conflict, held)', ['status']),
  retries: counter('tunkeeper_retries_scheduled_total', 'Retries scheduled with backoff, by scope (device or pass)', ['scope']),
  fights: counter('tunkeeper_device_fights_total', "Repairs of a device changed again behind tunkeeper's back soon after its previous repair", ['device']),
  desiredDevices: gauge('tunkeeper_desired_devices', 'Devices declared by every source together'),
  lastReconcile: gauge('tunkeeper_last_reconcile_timestamp_seconds', 'Unix time the last reconcile pass finished'),
  // A pass that runs long (a full relist of a big table) shows nowhere else until it ends: this is
  // how a scraper (or the bench, waiting for the agent to be at rest) tells "idle" from "busy".
  reconcileRunning: gauge('tunkeeper_reconcile_running', 'Whether a reconcile pass is running (1) or not (0)'),
  sourceComplete: gauge(
    'tunkeeper_source_complete',
    'Whether a desired-state source is complete (1) or not (0: listing, disconnected, invalid or contested declarations; nothing is pruned)',
    ['source'],
  ),
  sourceConflicts: gauge('tunkeeper_source_conflicts', 'Declarations contested by another source (applied from neither)'),
  probeResults: counter(
    'tunkeeper_probe_results_total',
    'Probe outcomes after a change, by kind (route, ping) and result (passed; failed: still failing when the probe timeout ran out)',
    ['kind', 'result'],
  ),
  probePassing: gauge('tunkeeper_probe_passing', 'Whether a probe passed (1) or failed (0) when the device last changed, by device and probe', ['device', 'probe']),
  rollbacks: counter(
    'tunkeeper_rollbacks_total',
    'New versions that failed a probe, by outcome (rolledBack: the last good version is back in force; probeFailed: there was none, the device stays as declared)',
    ['outcome'],
  ),
  kubeWatchRestarts: counter(
    'tunkeeper_kube_watch_restarts_total',
    'Lists and watches of the API server started again, by resource and reason (gone: 410 relist; error; timeout: no answer or a frozen stream)',
    ['resource', 'reason'],
  ),
  kubeConnected: gauge('tunkeeper_kube_connected', 'Whether the cluster source has listed and is currently watching the API server (1) or not (0)'),
  kubeStatusWrites: counter('tunkeeper_kube_status_writes_total', 'TunNodeState writes by result (written, unchanged: skipped as identical, error: retried with backoff)', ['result']),
  kubeLeader: gauge('tunkeeper_kube_status_leader', 'Whether this agent holds the status Lease and writes TunDevice status (1) or not (0)'),
  kubeFleetStatusWrites: counter(
    'tunkeeper_kube_fleet_status_writes_total',
    'TunDevice status writes by the Lease holder, by result (written; conflict: the object moved on, recomputed; error: retried with backoff)',
    ['result'],
  ),
  kubeEvents: counter(
    'tunkeeper_kube_events_total',
    'Kubernetes Events by result (created, series: a repeat counted on an earlier Event, rate-limited, error) and reason',
    ['result', 'reason'],
  ),
} as const;

type Metrics = typeof METRICS;
type Instance<S> =
  S extends Spec<'counter', string, infer L> ? Counter<L> : S extends Spec<'gauge', string, infer L> ? Gauge<L> : S extends Spec<'histogram', string, infer L> ? Histogram<L> : never;
type Instances = { readonly [K in keyof Metrics]: Instance<Metrics[K]> };

export const METRIC_NAMES = Object.fromEntries(Object.entries(METRICS).map(([k, s]) => [k, s.name])) as { readonly [K in keyof Metrics]: Metrics[K]['name'] };

function instantiate(registry: Registry): Instances {
  const make = (s: Spec) => {
    const config = { name: s.name, help: s.help, labelNames: s.labelNames, registers: [registry], ...(s.buckets ? { buckets: s.buckets } : {}) };
    return s.kind === 'counter' ? new Counter(config) : s.kind === 'gauge' ? new Gauge(config) : new Histogram(config);
  };
  return Object.fromEntries(Object.entries(METRICS).map(([k, s]) => [k, make(s)])) as unknown as Instances;
}

// The table's instances become the class's own fields (agent.metrics.kubeEvents.inc(...)).
const MetricFields = class {
  constructor(registry: Registry) {
    Object.assign(this, instantiate(registry));
  }
} as new (registry: Registry) => Instances;

export class AgentMetrics extends MetricFields {
  readonly registry: Registry;

  constructor(opts: { processMetrics?: boolean } = {}) {
    const registry = new Registry();
    super(registry);
    this.registry = registry;
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
