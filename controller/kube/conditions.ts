/**
 * Per TunDevice selected for this node: its status entry in the TunNodeState, in the
 * metav1.Condition shape. Pure (the time is an argument), so transitions are tested directly.
 *
 * All four condition types are always present, so `kubectl wait --for=condition=Ready` and
 * alerting on `Degraded=True` both work. lastTransitionTime changes only when a condition's status
 * changes (as the API conventions say); reason and message may change without a transition.
 */
import type { DeviceReport } from '../reconcile/types.js';
import type { DeviceView, Phase } from '../rollout/gate.js';
import type { ProbeStatus, RolloutPhase, TunCondition, TunConditionType, TunDeviceStatus, TunNodeStateStatus } from '../schema/tunnodestate.js';

export interface DeviceStatusInput {
  name: string;
  ifname?: string;
  generation?: number;
  /** The last pass's report on this device (absent: no pass has covered it yet). */
  report?: DeviceReport;
  /** Validation problems of the current version. */
  invalid?: string;
  /** The generation `invalid` is about, when another (older, valid) one is in force. */
  refusedGeneration?: number;
  /** A conflict found before planning (two declarations of one name or interface). */
  conflict?: { reason: string; message: string };
  /** What the rollout gate says about the device on this node (probes, rollback, slot). */
  rollout?: DeviceView;
}

type Cond = { status: TunCondition['status']; reason: string; message: string };

const MAX_MESSAGE = 32768;

export function buildDeviceStatus(input: DeviceStatusInput, previous: TunDeviceStatus | undefined, now: string): TunDeviceStatus {
  const conds = decide(input);
  const before = new Map((previous?.conditions ?? []).map((c) => [c.type, c]));
  const conditions: TunCondition[] = (['Ready', 'Degraded', 'Conflict', 'Refused'] as const).map((type) => {
    const c = conds[type];
    const prev = before.get(type);
    const generation = type === 'Refused' && input.invalid !== undefined ? (input.refusedGeneration ?? input.generation) : input.generation;
    return {
      type,
      status: c.status,
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
      lastTransitionTime: prev && prev.status === c.status ? prev.lastTransitionTime : now,
      reason: c.reason,
      message: c.message.slice(0, MAX_MESSAGE),
    };
  });
  const status: TunDeviceStatus = { name: input.name, ifname: input.ifname ?? input.report?.ifname ?? '', conditions };
  if (input.report?.ifindex !== undefined) status.ifindex = input.report.ifindex;
  if (input.generation !== undefined) status.observedGeneration = input.generation;
  const failures = input.report?.failures ?? [];
  if (failures.length > 0) status.lastError = failureText(input.report!).slice(0, MAX_MESSAGE);
  const v = input.rollout;
  if (v && (v.probeKeys.length > 0 || v.phase === 'waiting' || v.rejected)) {
    status.rollout = { phase: PHASE_NAMES[v.phase], message: rolloutText(v) ?? phaseText(v) };
    if (v.generation !== undefined) status.rollout.generation = v.generation;
    if (v.inForceGeneration !== undefined) status.rollout.inForceGeneration = v.inForceGeneration;
    if (v.probeKeys.length > 0) status.probes = probeStatuses(v);
  }
  return status;
}

const PHASE_NAMES: Record<Phase, RolloutPhase> = {
  settled: 'Settled',
  waiting: 'Waiting',
  applying: 'Applying',
  probing: 'Probing',
  rolledBack: 'RolledBack',
  probeFailed: 'ProbeFailed',
};

const gen = (g: number | undefined): string => (g === undefined ? 'the declared version' : `generation ${g}`);

function phaseText(v: DeviceView): string {
  switch (v.phase) {
    case 'settled':
      return v.probeKeys.length > 0 ? `${gen(v.generation)} passed its probes here` : `${gen(v.generation)} is in force`;
    case 'applying':
      return `moving to ${gen(v.generation)}`;
    case 'probing':
      return `${gen(v.generation)} applied; waiting for its probes to pass`;
    default:
      return '';
  }
}

/** The sentence for the states that change Ready and Degraded; undefined for the others. */
function rolloutText(v: DeviceView): string | undefined {
  const r = v.rejected;
  switch (v.phase) {
    case 'waiting':
      return v.nothingInForce
        ? `${gen(v.generation)} waits for a rollout slot; nothing is in force here yet`
        : `${gen(v.generation)} waits for a rollout slot; ${gen(v.inForceGeneration)} stays in force meanwhile`;
    case 'rolledBack':
      return `${gen(r?.generation ?? v.generation)} failed probe ${r?.probe ?? '?'}: ${r?.message ?? ''}; rolled back to ${gen(v.good?.generation)}, which passed its probes here (it is not tried again until the spec changes)`;
    case 'probeFailed':
      return `${gen(r?.generation ?? v.generation)} failed probe ${r?.probe ?? '?'}: ${r?.message ?? ''}; no earlier generation passed its probes on this node, so it stays as declared`;
    default:
      return undefined;
  }
}

function probeStatuses(v: DeviceView): ProbeStatus[] {
  const results = new Map(v.probes.map((p) => [p.probe, p]));
  return v.probeKeys.map((probe) => {
    const r = results.get(probe);
    if (!r) return { probe, result: 'Pending', message: v.phase === 'probing' ? 'running' : 'not run yet for this generation' };
    return { probe, result: r.passed ? 'Passed' : 'Failed', message: r.message.slice(0, 1024), attempts: r.attempts, lastProbeTime: r.at.replace(/\.\d{3}Z$/, 'Z') };
  });
}

/** Probes and rollback change what Ready and Degraded say (after conflicts and refusals). */
function applyRollout(out: Record<TunConditionType, Cond>, v: DeviceView): void {
  if (out.Conflict.status === 'True' || out.Refused.status === 'True') return;
  const text = rolloutText(v);
  switch (v.phase) {
    case 'probing':
      out.Ready = { status: 'Unknown', reason: 'Probing', message: phaseText(v) };
      break;
    case 'waiting':
      if (v.nothingInForce) out.Ready = { status: 'Unknown', reason: 'WaitingForRollout', message: text! };
      break;
    case 'rolledBack':
      out.Ready = { status: 'False', reason: 'RolledBack', message: text! };
      out.Degraded = { status: 'True', reason: 'RolledBack', message: text! };
      break;
    case 'probeFailed':
      out.Ready = { status: 'False', reason: 'ProbeFailed', message: text! };
      out.Degraded = { status: 'True', reason: 'ProbeFailed', message: text! };
      break;
  }
}

function decide(input: DeviceStatusInput): Record<TunConditionType, Cond> {
  const out = decideFromReport(input);
  if (input.rollout) applyRollout(out, input.rollout);
  return out;
}

function decideFromReport(input: DeviceStatusInput): Record<TunConditionType, Cond> {
  const ok = {
    Degraded: { status: 'False', reason: 'AsDeclared', message: 'every change was applied' },
    Conflict: { status: 'False', reason: 'NoConflict', message: 'no other declaration or link claims this device' },
    Refused: { status: 'False', reason: 'Accepted', message: 'inside the agent\'s policy and valid' },
  } satisfies Record<string, Cond>;
  const out: Record<TunConditionType, Cond> = { Ready: { status: 'Unknown', reason: 'Pending', message: 'not reconciled on this node yet' }, ...ok };
  const r = input.report;

  if (input.invalid !== undefined) out.Refused = { status: 'True', reason: 'Invalid', message: input.invalid };
  if (input.conflict) {
    out.Conflict = { status: 'True', ...input.conflict };
    out.Ready = { status: 'False', ...input.conflict };
    return out;
  }
  if (!r) {
    if (input.invalid !== undefined) out.Ready = { status: 'False', reason: 'Invalid', message: input.invalid };
    return out;
  }
  const refusals = r.findings.filter((f) => f.kind === 'refused');
  const conflicts = r.findings.filter((f) => f.kind === 'conflict');
  if (refusals.length > 0) out.Refused = { status: 'True', reason: refusals[0]!.code, message: refusals.map((f) => f.reason).join('; ') };
  if (conflicts.length > 0) out.Conflict = { status: 'True', reason: conflicts[0]!.code, message: conflicts.map((f) => f.reason).join('; ') };
  if (r.failures.length > 0) out.Degraded = { status: 'True', reason: 'ApplyFailed', message: `${failureText(r)}; retrying with backoff` };
  switch (r.status) {
    case 'ready':
      out.Ready = { status: 'True', reason: 'Converged', message: `${r.ifname} is as declared` };
      break;
    case 'degraded':
      out.Ready = { status: 'False', reason: 'ApplyFailed', message: failureText(r) };
      break;
    case 'refused':
      out.Ready = { status: 'False', reason: out.Refused.reason, message: out.Refused.message };
      break;
    case 'conflict':
      out.Ready = { status: 'False', reason: out.Conflict.reason, message: out.Conflict.message };
      break;
    case 'held': {
      // The loop saw this device repaired again and again (another actor keeps changing it) and
      // holds its repair for a backoff rather than fight: not Ready, and Degraded says why.
      const message = `${r.ifname} keeps being changed behind tunkeeper's back; its repair waits for a backoff instead of fighting`;
      out.Degraded = { status: 'True', reason: 'RepairHeld', message };
      out.Ready = { status: 'False', reason: 'RepairHeld', message };
      break;
    }
  }
  return out;
}

/** The failures with the kernel's own words (extended ack) where it gave them. */
function failureText(r: DeviceReport): string {
  return r.failures.map((f) => `${f.action.type}${f.action.ifname ? ` ${f.action.ifname}` : ''}: ${f.code}: ${f.message}`).join('; ');
}

/** The whole status; `lastSyncTime` is the time of the write. */
export function buildNodeStatus(devices: TunDeviceStatus[], now: string): TunNodeStateStatus {
  const sorted = [...devices].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return {
    devices: sorted,
    deviceCount: sorted.length,
    readyCount: sorted.filter((d) => d.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length,
    lastSyncTime: now,
  };
}

/** The status without its timestamps: a write is needed only when this changes. */
export function statusContent(s: TunNodeStateStatus): string {
  return JSON.stringify({
    ...s,
    lastSyncTime: undefined,
    devices: s.devices?.map((d) => ({ ...d, conditions: d.conditions?.map((c) => ({ ...c, lastTransitionTime: undefined })) })),
  });
}
