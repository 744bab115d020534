/**
 * The agent (`tunkeeper run`): desired state from the file source and/or the cluster source
 * (TunDevice objects, controller/kube/), wake-ups from the Monitor, the loop deciding when to
 * reconcile, the reconciler doing it, and /metrics, /healthz, /readyz; with the cluster source,
 * also this node's TunNodeState and Events.
 *
 * Start order matters. The Monitor is opened before the first pass: every change made after that
 * wakes the loop, so nothing between the first observation and the first event is missed. The
 * loop's first pass waits for the file source's first snapshot, and prunes only once it is
 * complete (fail static).
 *
 * Stopping leaves every device in place (they are persistent, and owned state outlives the agent
 * by design): it lets a pass in flight finish, then closes sockets, watches and the server.
 */
import type { Observable, Subscription } from 'rxjs';
import { Monitor, type MonitorEvent } from '../../netlink/index.js';
import type { Policy } from '../model/desired.js';
import { startHttpServer, type AgentHttpServer, type Probe } from '../telemetry/http.js';
import type { Logger } from '../telemetry/logger.js';
import { ReconcileLoop, systemClock, type Clock, type LoopObserver, type PassReport, type Random } from '../loop/index.js';
import { AgentMetrics } from '../telemetry/metrics.js';
import type { ReconcileOnce } from '../reconcile/types.js';
// Types only: the cluster side is loaded when asked for (see startAgent).
import type { KubeAgentOptions, KubeSide } from '../kube/kube-agent.js';
import type { Settings } from './settings.js';
import { FileSource, type FileSnapshot } from '../sources/files.js';
import { RolloutGate, type ProbeRun } from '../rollout/gate.js';
import { RolloutStore } from '../rollout/store.js';
import { OwnEvents } from './own-events.js';

export interface AgentReconciler {
  reconcile: ReconcileOnce;
  close(): void | Promise<void>;
}

export type ReconcilerFactory = (opts: { netns?: string; policy: Policy }) => AgentReconciler | Promise<AgentReconciler>;

/** Runs a device's probes in the managed namespace (controller/probe/); opened when first needed. */
export interface AgentProber {
  run: ProbeRun;
  close(): void | Promise<void>;
}
export type ProberFactory = (opts: { netns?: string; policy: Policy }) => AgentProber | Promise<AgentProber>;

/** The kernel's change notifications: wake-ups for the loop (netlink's Monitor). */
export type AgentMonitor = Observable<MonitorEvent> & { close(): void };
export type MonitorFactory = (opts: { netns?: string; rcvbuf: number }) => Promise<AgentMonitor>;

export interface AgentOptions {
  /** Files and directories of TunDevice declarations (may be empty when `kube` is given). */
  paths: string[];
  /** TunDevice objects from the API server, for this node. */
  kube?: KubeAgentOptions;
  netns?: string;
  settings: Settings;
  logger: Logger;
  createReconciler: ReconcilerFactory;
  /** Default: controller/probe's runner, loaded when a declared device first has probes. */
  createProber?: ProberFactory;
  /**
   * Default: a netlink Monitor in the managed namespace. bench/fleet's simulated nodes, whose
   * kernel is an in-memory reconciler, give one that never fires (1,000 nodes in one process
   * would otherwise be 1,000 netlink sockets that can only ever see the host's kernel).
   */
  openMonitor?: MonitorFactory;
  clock?: Clock;
  random?: Random;
  /** A pass running longer than this makes /healthz fail (default 2 minutes). */
  stuckAfterMs?: number;
}

export interface Agent {
  loop: ReconcileLoop;
  metrics: AgentMetrics;
  /** Absent when the metrics address is `off`. */
  http?: AgentHttpServer;
  /** Present with the cluster source. */
  kube?: KubeSide;
  healthz(): Probe;
  readyz(): Probe;
  /** Idempotent; leaves every device in place. */
  stop(): Promise<void>;
}

const FILES_SOURCE = 'files';
/** The trigger option for a kernel event about our own state (one object, not one per event). */
const OURS = Object.freeze({ ours: true });

export async function startAgent(opts: AgentOptions): Promise<Agent> {
  const { logger, settings } = opts;
  const clock = opts.clock ?? systemClock;
  const stuckAfterMs = opts.stuckAfterMs ?? 2 * 60_000;
  const metrics = new AgentMetrics();
  const cleanups: Array<() => unknown> = [];
  const subscriptions: Subscription[] = [];

  const undo = async (): Promise<void> => {
    for (const s of subscriptions) s.unsubscribe();
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch((e: unknown) => logger.warn({ err: e }, 'error while stopping'));
  };

  // Loaded only with the cluster source: @kubernetes/client-node's ~1,000 generated modules cost
  // ~70 MiB of resident memory (their source text alone is ~20 MiB of heap, and a bigger old
  // space makes every full GC of a file-only agent slower). bench: rss-100k-routes-mb.
  const kubeSide = opts.kube ? await import('../kube/kube-agent.js') : undefined;
  const sources = [...(opts.paths.length > 0 ? [FILES_SOURCE] : []), ...(kubeSide ? [kubeSide.KUBE_SOURCE] : [])];
  if (sources.length === 0) throw new Error('nothing to watch: give declaration paths, the cluster source, or both');

  let kube: KubeSide | undefined;
  try {
    const reconciler = await opts.createReconciler({ policy: settings.policy, ...(opts.netns !== undefined ? { netns: opts.netns } : {}) });
    cleanups.push(() => reconciler.close());

    // Which kernel events are about our own state: they re-arm the loop's trailing edge.
    const ownEvents = new OwnEvents(settings.policy);
    const loop = new ReconcileLoop({
      reconcile: reconciler.reconcile,
      sources,
      clock,
      ...(opts.random ? { random: opts.random } : {}),
      resyncIntervalMs: settings.resyncIntervalMs,
      observer: combine(
        metrics.loopObserver(),
        logObserver(logger),
        {
          passStarted: () => kube?.reporter.passStarted(),
          passFinished: (p) => {
            ownEvents.passFinished(p);
            gate.passFinished(p);
            kube?.reporter.passFinished(p);
            reportConflicts();
          },
        },
      ),
    });
    cleanups.push(() => loop.stop());

    // Probes, rollback and rollout slots: the gate decides which version of each device the loop
    // gets (rollout/gate.ts). Its memory is in the state dir; it writes there only for devices
    // with probes or a rollout limit.
    let prober: Promise<AgentProber> | undefined;
    const proberOpts = { policy: settings.policy, ...(opts.netns !== undefined ? { netns: opts.netns } : {}) };
    const createProber = opts.createProber ?? (async (o: { netns?: string; policy: Policy }) => (await import('./prober.js')).createAgentProber(o));
    const gate = new RolloutGate({
      store: new RolloutStore(settings.stateDir),
      probe: async (device, signal) => (await (prober ??= Promise.resolve(createProber(proberOpts)))).run(device, signal),
      mayMove: (source, device, generation) => source !== kubeSide?.KUBE_SOURCE || (kube?.mayMove(device, generation) ?? false),
      onEffective: (source, devices, complete) => loop.updateSource(source, devices, complete),
      onChange: () => kube?.reporter.rolloutChanged(),
      onProbed: (device, results, verdict) => {
        for (const r of results) {
          metrics.probeResults.inc({ kind: r.probe.split(' ')[0] ?? 'probe', result: r.passed ? 'passed' : 'failed' });
          metrics.probePassing.set({ device: device.name, probe: r.probe }, r.passed ? 1 : 0);
        }
        if (verdict !== 'passed') metrics.rollbacks.inc({ outcome: verdict });
        const failed = results.find((r) => !r.passed);
        // A TunDevice's rollback is an Event on it too (a files device has no object to attach one to).
        if (verdict !== 'passed' && kube?.current()?.objects.some((o) => o.name === device.name)) {
          const view = gate.view(device.name);
          kube.events.record({
            device: device.name,
            type: 'Warning',
            reason: verdict === 'rolledBack' ? 'RolledBack' : 'ProbeFailed',
            action: 'Probe',
            note: `${device.ifname}: generation ${view?.generation ?? '?'} failed probe ${failed?.probe}: ${failed?.message}${verdict === 'rolledBack' ? `; generation ${view?.good?.generation ?? '?'} is back in force` : '; nothing earlier passed here, so it stays as declared'}`,
          });
        }
        if (verdict === 'passed') logger.info({ device: device.name, ifname: device.ifname, probes: results.map((r) => r.probe) }, `${device.ifname}: every probe passed; this version is now the one to roll back to`);
        else
          logger.warn(
            { device: device.name, ifname: device.ifname, probe: failed?.probe, verdict },
            verdict === 'rolledBack'
              ? `${device.ifname}: probe ${failed?.probe} failed (${failed?.message}); the last good version is back in force`
              : `${device.ifname}: probe ${failed?.probe} failed (${failed?.message}); no earlier version passed its probes here, so the device stays as declared`,
          );
      },
      onSaveError: (err) => logger.warn({ err, dir: settings.stateDir }, 'cannot save the rollout memory (last good versions); a restart would forget them'),
    });
    cleanups.push(async () => {
      gate.close();
      await gate.idle();
      if (prober) await (await prober).close();
    });
    const memoryProblem = await gate.load();
    if (memoryProblem) logger.warn({ dir: settings.stateDir }, memoryProblem);

    const openMonitor: MonitorFactory = opts.openMonitor ?? ((o) => Monitor.open(o));
    const monitor = await openMonitor({ rcvbuf: settings.monitorRcvbuf, ...(opts.netns !== undefined ? { netns: opts.netns } : {}) });
    cleanups.push(() => monitor.close());
    subscriptions.push(
      monitor.subscribe({
        next: (e) => (e.type === 'resync-needed' ? loop.trigger('resync-needed') : loop.trigger('netlink-event', ownEvents.concerns(e) ? OURS : undefined)),
        error: (e: unknown) => logger.error({ err: e }, 'netlink monitor failed; only the periodic resync notices drift now'),
        complete: () => logger.debug('netlink monitor closed'),
      }),
    );

    // Conflicts between sources: logged once per change (the files' side of the report; the
    // cluster's side is the TunNodeState condition and an Event).
    let lastConflicts = '';
    const reportConflicts = (): void => {
      const conflicts = loop.conflicts();
      metrics.sourceConflicts.set(conflicts.length);
      const key = conflicts.map((c) => c.message).join('\n');
      if (key === lastConflicts) return;
      lastConflicts = key;
      for (const c of conflicts) logger.warn({ source: c.source, device: c.device.name, ifname: c.device.ifname, origin: c.device.origin }, c.message);
    };

    if (opts.paths.length > 0) {
      const source = new FileSource({ paths: opts.paths });
      cleanups.push(() => source.close());
      let lastProblems = '';
      subscriptions.push(
        source.snapshots$.subscribe((snap: FileSnapshot) => {
          const problems = JSON.stringify(snap.problems);
          if (problems !== lastProblems) {
            lastProblems = problems;
            for (const p of snap.problems) logger.warn({ source: FILES_SOURCE, file: p.file, line: p.line, column: p.col }, p.message);
          }
          logger.info({ source: FILES_SOURCE, devices: snap.devices.length, complete: snap.complete, files: snap.files.length }, 'desired state read');
          metrics.sourceComplete.set({ source: FILES_SOURCE }, snap.complete ? 1 : 0);
          gate.update(FILES_SOURCE, snap.devices, snap.complete);
        }),
      );
      await source.start();
    }

    if (opts.kube && kubeSide) {
      kube = await kubeSide.startKubeSide(opts.kube, loop, gate, logger, metrics);
      const side = kube;
      cleanups.push(() => side.close());
    }

    const healthz = (): Probe => {
      const s = loop.status();
      if (s.running && s.passStartedAt !== undefined && clock.now() - s.passStartedAt > stuckAfterMs) {
        return { ok: false, detail: `a reconcile pass has been running for ${Math.round((clock.now() - s.passStartedAt) / 1000)} s` };
      }
      return { ok: true, detail: `alive; ${s.passes} passes` };
    };
    const readyz = (): Probe => {
      const s = loop.status();
      const cluster = kube?.current();
      if (kube && !cluster?.synced) {
        const why = cluster?.problems.join('; ') ?? 'starting';
        return { ok: false, detail: `the cluster source has not completed its first sync (${why})${cluster?.fromDisk ? '; devices from the state saved on disk are kept meanwhile' : ''}` };
      }
      if (!s.firstSyncDone) return { ok: false, detail: `waiting for a complete first sync of: ${s.incompleteSources.join(', ')}` };
      if (!s.prunedOnce) return { ok: false, detail: 'no complete reconcile yet' };
      if (s.lastOutcome === 'interrupted' || s.lastOutcome === 'error') return { ok: false, detail: `last reconcile ${s.lastOutcome === 'error' ? 'failed to run' : 'was interrupted'}; retrying` };
      return { ok: true, detail: `last reconcile ${s.lastOutcome ?? 'pending'}` };
    };

    let http: AgentHttpServer | undefined;
    if (settings.metricsAddress) {
      http = await startHttpServer(settings.metricsAddress, {
        metrics: async () => ({ contentType: metrics.registry.contentType, body: await metrics.text() }),
        healthz,
        readyz,
      });
      const server = http;
      cleanups.push(() => server.close());
      logger.info({ url: server.url }, `serving /metrics, /healthz and /readyz on ${server.url}`);
    }

    loop.start();
    logger.info(
      { paths: opts.paths, kube: opts.kube ? { node: opts.kube.nodeName, stateDir: opts.kube.stateDir ?? null } : null, netns: opts.netns ?? null, policy: settings.policy, resyncIntervalMs: settings.resyncIntervalMs },
      'tunkeeper agent started',
    );

    let stopping: Promise<void> | undefined;
    return {
      loop,
      metrics,
      ...(http ? { http } : {}),
      ...(kube ? { kube } : {}),
      healthz,
      readyz,
      stop: () => (stopping ??= undo().then(() => logger.info('tunkeeper agent stopped; devices left in place'))),
    };
  } catch (e) {
    await undo();
    throw e;
  }
}

function combine(...observers: LoopObserver[]): LoopObserver {
  return {
    wake: (r) => observers.forEach((o) => o.wake?.(r)),
    passStarted: (i, r) => observers.forEach((o) => o.passStarted?.(i, r)),
    passFinished: (p) => observers.forEach((o) => o.passFinished?.(p)),
    retryScheduled: (k, a, d) => observers.forEach((o) => o.retryScheduled?.(k, a, d)),
    fight: (d, s, h) => observers.forEach((o) => o.fight?.(d, s, h)),
  };
}

/** What a person running the agent needs to read: changes, failures, refusals, fights. */
function logObserver(logger: Logger): LoopObserver {
  let lastFindings = '';
  return {
    passStarted: (input, reasons) => logger.debug({ reasons, desired: input.desired.length, prune: input.prune }, 'reconcile started'),
    passFinished: (p: PassReport) => {
      const ms = Math.round(p.durationMs * 10) / 10;
      if (!p.result) {
        logger.error({ err: p.error, reasons: p.reasons, durationMs: ms }, 'reconcile failed to run');
        return;
      }
      const r = p.result;
      for (const f of r.failures) {
        logger.warn({ device: f.device, action: f.action.type, ifname: f.action.ifname, code: f.code }, `${f.action.type} failed: ${f.message}`);
      }
      const findings = [...(r.plan?.refusals ?? []), ...(r.plan?.conflicts ?? [])];
      const key = JSON.stringify(findings);
      if (key !== lastFindings) {
        lastFindings = key;
        for (const f of findings) logger.warn({ device: f.device, ifname: f.ifname, kind: f.kind, code: f.code, origin: f.origin, target: f.target }, f.reason);
      }
      const fields = { outcome: r.outcome, reasons: p.reasons, applied: r.applied, failures: r.failures.length, repairs: r.repairs, prune: p.input.prune, durationMs: ms };
      if (r.outcome === 'interrupted') logger.warn(fields, 'reconcile interrupted (the kernel state changed during the dump); nothing applied, retrying');
      else if (r.applied > 0 || r.failures.length > 0) logger.info(fields, `reconcile ${r.outcome}: ${r.applied} change${r.applied === 1 ? '' : 's'} applied`);
      else logger.debug(fields, 'reconcile: in sync');
    },
    retryScheduled: (key, attempt, delayMs) =>
      logger.info({ device: key === '' ? undefined : key, attempt, delayMs }, key === '' ? `retrying the reconcile in ${delayMs} ms` : `retrying device ${key} in ${delayMs} ms`),
    fight: (device, streak, holdMs) =>
      logger.warn(
        { device, streak, holdMs },
        `device ${device} keeps being changed behind tunkeeper's back (${streak} repairs in a row); repairing again after ${holdMs} ms rather than fighting`,
      ),
  };
}
