/**
 * What this node says about the TunDevices selected for it: the TunNodeState status (through the
 * StatusWriter) and Events (through the EventRecorder), from the loop's pass reports and the
 * cluster source's snapshots.
 *
 * Which Events: a refusal or conflict when it appears or its wording changes (a standing refusal
 * is in the status, not repeated as an Event every pass); every failed apply and every repair
 * (deduplicated and rate limited by the recorder). Repairs are told apart from declared changes by
 * what woke the pass: drift put right is `Repaired`. A declared change applied as declared is no
 * Event at all: every selected node would write one about the same TunDevice for every spec
 * change (1,000 Events per edit at 1,000 nodes, half the API writes of a rollout: bench
 * fleet-converge), and it says nothing the TunNodeState (Ready at the new generation) and the
 * TunDevice's own status (Ready n/n) do not.
 */
import type { Logger } from '../telemetry/logger.js';
import type { PassReport } from '../loop/loop.js';
import type { CrossSourceConflict } from '../loop/desired-sources.js';
import type { DeviceReport } from '../reconcile/types.js';
import type { RolloutGate } from '../rollout/gate.js';
import type { TunDeviceStatus } from '../schema/tunnodestate.js';
import type { ClusterSnapshot } from './cluster-source.js';
import { buildDeviceStatus, buildNodeStatus, type DeviceStatusInput } from './conditions.js';
import type { EventRecorder, TunEvent } from './events.js';
import type { StatusWriter } from './status-writer.js';

export interface NodeReporterOptions {
  writer: StatusWriter;
  events: EventRecorder;
  logger: Logger;
  /** The loop's current cross-source conflicts. */
  conflicts(): CrossSourceConflict[];
  /** The source name of the cluster in the loop. */
  source: string;
  /** The rollout gate: the version in force per device, probes, rollback, slot. */
  gate?: Pick<RolloutGate, 'view' | 'generationsInForce'>;
  now?: () => Date;
}

interface Reported {
  report: DeviceReport;
  generation?: number;
}

export class NodeReporter {
  readonly #o: NodeReporterOptions;
  #snapshot: ClusterSnapshot | undefined;
  #reports = new Map<string, Reported>();
  #previous = new Map<string, TunDeviceStatus>();
  #generationsAtStart: Record<string, number> = {};
  /** The refusal/conflict wording last told as an Event, per device and reason. */
  #told = new Map<string, string>();
  #seeded: Promise<void> | undefined;

  constructor(opts: NodeReporterOptions) {
    this.#o = opts;
  }

  /** Carries the stored conditions' transition times over a restart (best effort). */
  seed(): Promise<void> {
    this.#seeded ??= this.#o.writer.read().then((status) => {
      for (const d of status?.devices ?? []) if (!this.#previous.has(d.name)) this.#previous.set(d.name, d);
    });
    return this.#seeded;
  }

  sourceChanged(snapshot: ClusterSnapshot): void {
    this.#snapshot = snapshot;
    if (snapshot.synced) {
      // A device no longer selected starts afresh if it comes back.
      const names = new Set(snapshot.objects.map((o) => o.name));
      for (const key of this.#told.keys()) if (!names.has(key.split('\n')[0]!)) this.#told.delete(key);
    }
    for (const o of snapshot.objects) {
      if (o.invalid !== undefined) this.#tell(o.name, { type: 'Warning', reason: 'Invalid', action: 'Validate', note: o.invalid });
      if (o.conflict !== undefined) this.#tell(o.name, { type: 'Warning', reason: 'Conflict', action: 'Validate', note: o.conflict });
    }
    this.#refresh();
  }

  passStarted(): void {
    // The generation of each version the pass applies: with the gate, the one in force (the
    // previous generation while this node waits for a slot, or after a rollback).
    this.#generationsAtStart = { ...(this.#snapshot?.generations ?? {}), ...(this.#o.gate?.generationsInForce() ?? {}) };
  }

  passFinished(p: PassReport): void {
    const r = p.result;
    if (!r || r.outcome === 'interrupted') return;
    const ours = new Set(this.#snapshot?.objects.map((o) => o.name) ?? []);
    const reports = new Map<string, Reported>();
    for (const d of r.devices) {
      if (!ours.has(d.device)) continue;
      const g = this.#generationsAtStart[d.device];
      reports.set(d.device, { report: d, ...(g !== undefined ? { generation: g } : {}) });
      const refusals = d.findings.filter((f) => f.kind === 'refused').map((f) => f.reason);
      const conflicts = d.findings.filter((f) => f.kind === 'conflict').map((f) => f.reason);
      if (refusals.length > 0) this.#tell(d.device, { type: 'Warning', reason: 'Refused', action: 'Reconcile', note: `${d.ifname}: ${refusals.join('; ')}` });
      if (conflicts.length > 0) this.#tell(d.device, { type: 'Warning', reason: 'Conflict', action: 'Reconcile', note: `${d.ifname}: ${conflicts.join('; ')}` });
      if (refusals.length === 0) this.#told.delete(`${d.device}\nRefused`);
      if (conflicts.length === 0) this.#told.delete(`${d.device}\nConflict`);
      for (const f of d.failures) {
        this.#o.events.record({ device: d.device, type: 'Warning', reason: 'ApplyFailed', action: 'Reconcile', note: `${f.action.type}${f.action.ifname ? ` ${f.action.ifname}` : ''}: ${f.code}: ${f.message}` });
      }
    }
    const declared = p.reasons.includes('startup') || p.reasons.includes('desired-changed');
    const failed = new Set(r.failures.map((f) => f.action));
    const repaired = new Map<string, string[]>();
    for (const a of declared ? [] : (r.plan?.actions ?? [])) {
      if (a.device === undefined || failed.has(a) || !reports.has(a.device)) continue;
      repaired.set(a.device, [...(repaired.get(a.device) ?? []), a.reason]);
    }
    for (const [device, reasons] of repaired) {
      const note = reasons.length > 3 ? `${reasons.slice(0, 3).join('; ')}; and ${reasons.length - 3} more` : reasons.join('; ');
      this.#o.events.record({ device, type: 'Normal', reason: 'Repaired', action: 'Reconcile', note });
    }
    this.#reports = reports;
    this.#refresh();
  }

  /** The gate changed a device's phase or probe results. */
  rolloutChanged(): void {
    this.#refresh();
  }

  /** Builds the status from what is known now and hands it to the writer. */
  #refresh(): void {
    const snap = this.#snapshot;
    // Status describes the cluster's view: nothing to say before the first list, or without a Node.
    if (!snap?.synced || !snap.node?.uid) return;
    const cross = new Map<string, CrossSourceConflict>();
    for (const c of this.#o.conflicts()) if (c.source === this.#o.source) cross.set(c.device.name, c);
    const now = (this.#o.now?.() ?? new Date()).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const statuses: TunDeviceStatus[] = [];
    for (const o of snap.objects) {
      const reported = this.#reports.get(o.name);
      const input: DeviceStatusInput = { name: o.name };
      const ifname = o.ifname ?? reported?.report.ifname;
      if (ifname !== undefined) input.ifname = ifname;
      const view = this.#o.gate?.view(o.name);
      // Probing, or rejected: the node is answering the declared generation, whatever is in force.
      const answering = view && (view.phase === 'probing' || view.phase === 'rolledBack' || view.phase === 'probeFailed') ? view.generation : undefined;
      const generation = answering ?? reported?.generation ?? o.generation;
      if (generation !== undefined) input.generation = generation;
      if (view && o.invalid === undefined) input.rollout = view;
      if (o.invalid !== undefined) input.invalid = o.invalid;
      if (o.refusedGeneration !== undefined) input.refusedGeneration = o.refusedGeneration;
      const c = cross.get(o.name);
      if (o.conflict !== undefined) {
        input.conflict = { reason: 'DeclaredTwice', message: o.conflict };
      } else if (c) {
        input.conflict = { reason: 'DeclaredByAnotherSource', message: c.message };
        this.#tell(o.name, { type: 'Warning', reason: 'Conflict', action: 'Reconcile', note: c.message });
      } else if (reported) {
        input.report = reported.report;
      }
      const status = buildDeviceStatus(input, this.#previous.get(o.name), now);
      statuses.push(status);
    }
    this.#previous = new Map(statuses.map((s) => [s.name, s]));
    this.#o.writer.update(snap.node.uid, buildNodeStatus(statuses, now));
  }

  /** A refusal or conflict Event, once per wording. */
  #tell(device: string, e: Omit<TunEvent, 'device'>): void {
    const key = `${device}\n${e.reason}`;
    if (this.#told.get(key) === e.note) return;
    this.#told.set(key, e.note);
    this.#o.events.record({ device, ...e });
  }
}
