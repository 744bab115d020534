/**
 * Per TunDevice selected for this node: its status entry in the TunNodeState, in the
 * metav1.Condition shape. Pure (the time is an argument), so transitions are tested directly.
 *
 * All four condition types are always present, so `kubectl wait --for=condition=Ready` and
 * alerting on `Degraded=True` both work. lastTransitionTime changes only when a condition's status
 * changes (as the API conventions say); reason and message may change without a transition.
 */
import type { DeviceReport } from '../reconcile/types.js';
import type { TunCondition, TunConditionType, TunDeviceStatus, TunNodeStateStatus } from '../schema/tunnodestate.js';

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
  return status;
}

function decide(input: DeviceStatusInput): Record<TunConditionType, Cond> {
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
