/**
 * One TunDevice's fleet summary (TunDevice.status) from what its selected nodes report in their
 * TunNodeStates: a pure function of the inputs and the time, so every rule is tested without an
 * API server, and the same inputs always give the same status (no write when nothing changed).
 *
 * Per selected node, at the device's current generation (metadata.generation):
 * - refused: its Refused condition is True for this generation (invalid, or outside its policy);
 * - not reporting: no readable TunNodeState, no entry for the device, an older generation, or
 *   Ready still Unknown. A node whose agent is down stays here: a dead agent never looks healthy;
 * - conflicted: Conflict True;
 * - ready: Ready True;
 * - degraded: anything else (an apply failing and retried, a repair held in a fight).
 *
 * Conditions, kstatus's abnormal-true pair plus Ready (never Reconciling and Stalled both True):
 * - Stalled True when progress needs a person: a node refused the device or has a conflict, or a
 *   node has been degraded for `persistentFailureMs` (an apply that keeps failing);
 * - otherwise Reconciling True while a node has not reported the current generation or is
 *   degraded (its agent retries);
 * - Ready True when every selected node is ready (also when no node is selected: nothing to do).
 */
import { DEFAULT_ROLLOUT, limitsRollout, type DesiredRollout } from '../../model/desired.js';
import type { LabelSelector } from '../../schema/tundevice.js';
import type { TunCondition, TunDeviceStatus } from '../../schema/tunnodestate.js';
import {
  MAX_FAILING_NODES,
  MAX_NODE_MESSAGE,
  type FailingNode,
  type FleetCondition,
  type FleetConditionType,
  type NodeCounts,
  type TunDeviceFleetStatus,
} from '../../schema/tundevice-status.js';
import { safeSelects } from '../cluster-select.js';
import { grantSlots, SLOT_DEFAULTS } from './rollout-slots.js';
import type { Labels } from '../selector.js';

export interface NodeMeta {
  name: string;
  labels: Labels;
}

/** What one node's TunNodeState says, by device name; or why it cannot be read. */
export type NodeReport = { devices: ReadonlyMap<string, TunDeviceStatus> } | { unreadable: string };

export interface SummaryInput {
  name: string;
  generation: number;
  /** spec.rollout, validated (absent: the defaults: every node moves at once). */
  rollout?: DesiredRollout;
  /** A rollout slot unanswered for probeTimeoutSeconds plus this long is reclaimed. */
  slotGraceMs?: number;
  selector: LabelSelector | undefined;
  nodes: Iterable<NodeMeta>;
  reports: ReadonlyMap<string, NodeReport>;
  /** The status stored now: its lastTransitionTimes are kept while a condition's status holds. */
  previous?: TunDeviceFleetStatus | undefined;
  now: number;
  persistentFailureMs: number;
}

export interface Summary {
  status: TunDeviceFleetStatus;
  /** When the summary would change with the clock alone (a degraded node becoming persistent). */
  recheckAt?: number;
}

type Kind = 'refused' | 'conflicted' | 'degraded' | 'notReporting' | 'ready';
interface Verdict {
  kind: Kind;
  reason: string;
  message: string;
  /** degraded: since when (ms). */
  since?: number;
}

const SEVERITY: readonly Kind[] = ['refused', 'conflicted', 'degraded', 'notReporting'];

export function summarize(input: SummaryInput): Summary {
  const g = input.generation;
  const counts: NodeCounts = { selected: 0, ready: 0, degraded: 0, refused: 0, conflicted: 0, notReporting: 0 };
  const failing: Array<{ node: string; v: Verdict }> = [];
  let persistent = 0;
  let recheckAt: number | undefined;
  const entries = new Map<string, TunDeviceStatus | undefined>();
  for (const node of input.nodes) {
    if (!safeSelects(input.selector, node.labels)) continue;
    counts.selected++;
    const report = input.reports.get(node.name);
    entries.set(node.name, report && 'devices' in report ? report.devices.get(input.name) : undefined);
    const v = verdict(report, input.name, g);
    counts[v.kind]++;
    if (v.kind === 'ready') continue;
    failing.push({ node: node.name, v });
    if (v.kind === 'degraded' && v.since !== undefined) {
      const due = v.since + input.persistentFailureMs;
      if (due <= input.now) persistent++;
      else recheckAt = Math.min(recheckAt ?? Infinity, due);
    }
  }

  const rollout = input.rollout ?? DEFAULT_ROLLOUT;
  const slots = limitsRollout(rollout.maxUnavailable)
    ? grantSlots({
        generation: g,
        maxUnavailable: rollout.maxUnavailable,
        probeTimeoutSeconds: rollout.probeTimeoutSeconds,
        nodes: entries,
        previous: input.previous?.rollout,
        now: input.now,
        slotGraceMs: input.slotGraceMs ?? SLOT_DEFAULTS.slotGraceMs,
      })
    : undefined;
  if (slots?.recheckAt !== undefined) recheckAt = Math.min(recheckAt ?? Infinity, slots.recheckAt);
  // A node that rolled the generation back (or could not, having nothing to go back to) halts it.
  const rolledBack = failing.filter((f) => ROLLBACK_REASONS.has(f.v.reason));
  const stalled = rolledBack.length > 0 ? 'RolloutHalted' : counts.refused > 0 ? 'Refused' : counts.conflicted > 0 ? 'Conflict' : persistent > 0 ? 'ApplyFailing' : undefined;
  const allReady = counts.ready === counts.selected;
  const progressing = !allReady && stalled === undefined;
  const tally = tallyText(counts, g);
  const firstOf = (kind: Kind) => failing.find((f) => f.v.kind === kind);
  const decided: Record<FleetConditionType, { status: 'True' | 'False'; reason: string; message: string }> = {
    Ready: allReady
      ? counts.selected === 0
        ? { status: 'True', reason: 'NoNodesSelected', message: 'no node matches spec.nodeSelector; nothing to do' }
        : { status: 'True', reason: 'Ready', message: `ready on all ${counts.selected} selected node${counts.selected === 1 ? '' : 's'} at generation ${g}` }
      : { status: 'False', reason: stalled ?? (counts.notReporting > 0 ? 'Progressing' : 'Degraded'), message: tally },
    Reconciling: progressing
      ? { status: 'True', reason: counts.notReporting > 0 ? 'Progressing' : 'Retrying', message: tally }
      : { status: 'False', reason: stalled ? 'Stalled' : 'Ready', message: stalled ? 'progress needs a person: see Stalled' : tally },
    Stalled: stalled === 'RolloutHalted'
      ? { status: 'True', reason: stalled, message: haltedText(g, rolledBack) }
      : stalled
      ? { status: 'True', reason: stalled, message: stalledText(stalled, counts, firstOf(stalled === 'Refused' ? 'refused' : stalled === 'Conflict' ? 'conflicted' : 'degraded'), input.persistentFailureMs) }
      : { status: 'False', reason: 'NotStalled', message: 'no node needs a person' },
  };

  const before = new Map((input.previous?.conditions ?? []).map((c) => [c.type, c]));
  const stamp = rfc3339(input.now);
  const conditions: FleetCondition[] = (['Ready', 'Reconciling', 'Stalled'] as const).map((type) => {
    const c = decided[type];
    const prev = before.get(type);
    return { type, status: c.status, observedGeneration: g, lastTransitionTime: prev && prev.status === c.status ? prev.lastTransitionTime : stamp, reason: c.reason, message: c.message };
  });

  failing.sort((a, b) => SEVERITY.indexOf(a.v.kind) - SEVERITY.indexOf(b.v.kind) || cmp(a.node, b.node));
  const failingNodes: FailingNode[] = failing.slice(0, MAX_FAILING_NODES).map(({ node, v }) => ({ node, reason: v.reason, message: shorten(v.message) }));
  const status: TunDeviceFleetStatus = {
    observedGeneration: g,
    ready: `${counts.ready}/${counts.selected}`,
    conditions,
    nodes: counts,
    failingNodes,
    moreFailingNodes: failing.length - failingNodes.length,
  };
  if (slots) status.rollout = slots.rollout;
  return recheckAt === undefined ? { status } : { status, recheckAt };
}

function verdict(report: NodeReport | undefined, device: string, g: number): Verdict {
  if (!report) return { kind: 'notReporting', reason: 'NotReporting', message: "no TunNodeState from this node's agent: is it running?" };
  if ('unreadable' in report) return { kind: 'notReporting', reason: 'Unreadable', message: `its TunNodeState is not readable: ${report.unreadable}` };
  const e = report.devices.get(device);
  if (!e) return { kind: 'notReporting', reason: 'NotReporting', message: `the agent has not reported this device yet` };
  const cond = (t: TunCondition['type']) => e.conditions?.find((c) => c.type === t);
  const refused = cond('Refused');
  if (refused?.status === 'True' && (refused.observedGeneration ?? e.observedGeneration) === g) return { kind: 'refused', reason: refused.reason, message: refused.message };
  if ((e.observedGeneration ?? 0) > g) return { kind: 'notReporting', reason: 'Unreadable', message: `reports generation ${e.observedGeneration}, newer than the object's ${g}: not written by its agent` };
  if (e.observedGeneration !== g) {
    // A rollout holds this node back: say so, rather than "not reporting".
    if (e.rollout?.generation === g && e.rollout.phase === 'Waiting') return { kind: 'notReporting', reason: 'WaitingForRollout', message: e.rollout.message ?? `waits for a rollout slot for generation ${g}` };
    const last = e.observedGeneration === undefined ? 'no generation' : `generation ${e.observedGeneration}`;
    return { kind: 'notReporting', reason: 'NotReporting', message: `last reported ${last}; waiting for ${g}` };
  }
  const conflict = cond('Conflict');
  if (conflict?.status === 'True') return { kind: 'conflicted', reason: conflict.reason, message: conflict.message };
  const ready = cond('Ready');
  if (ready?.status === 'True') return { kind: 'ready', reason: ready.reason, message: ready.message };
  if (!ready || ready.status === 'Unknown') return { kind: 'notReporting', reason: ready?.reason ?? 'NotReporting', message: ready?.message ?? 'no Ready condition yet' };
  const degraded = cond('Degraded');
  const since = Date.parse(degraded?.status === 'True' ? degraded.lastTransitionTime : ready.lastTransitionTime);
  return { kind: 'degraded', reason: ready.reason, message: degraded?.status === 'True' ? degraded.message : ready.message, ...(Number.isNaN(since) ? {} : { since }) };
}

const ROLLBACK_REASONS = new Set(['RolledBack', 'ProbeFailed']);

function haltedText(g: number, nodes: Array<{ node: string; v: Verdict }>): string {
  const first = nodes[0]!;
  return `the rollout of generation ${g} is halted: ${nodes.length} node${nodes.length === 1 ? '' : 's'} failed its probes (${nodes
    .slice(0, 3)
    .map((n) => n.node)
    .join(', ')}${nodes.length > 3 ? ', …' : ''}), e.g. ${first.node}: ${shorten(first.v.message)}; no further node starts it, and a new generation starts a new rollout`;
}

function tallyText(c: NodeCounts, g: number): string {
  const parts = [`${c.ready}/${c.selected} nodes ready at generation ${g}`];
  if (c.notReporting > 0) parts.push(`${c.notReporting} not reporting it yet`);
  if (c.degraded > 0) parts.push(`${c.degraded} degraded`);
  if (c.refused > 0) parts.push(`${c.refused} refused`);
  if (c.conflicted > 0) parts.push(`${c.conflicted} in conflict`);
  return parts.join('; ');
}

function stalledText(why: string, c: NodeCounts, first: { node: string; v: Verdict } | undefined, persistentMs: number): string {
  const n = why === 'Refused' ? c.refused : why === 'Conflict' ? c.conflicted : c.degraded;
  const what = why === 'Refused' ? 'refused' : why === 'Conflict' ? 'in conflict' : `failing to apply for over ${Math.round(persistentMs / 1000)} s`;
  return `${n} node${n === 1 ? '' : 's'} ${what}${first ? `, e.g. ${first.node}: ${shorten(first.v.message)}` : ''}`;
}

const shorten = (s: string): string => (s.length > MAX_NODE_MESSAGE ? `${s.slice(0, MAX_NODE_MESSAGE)}…` : s);
const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
/** metav1.Time: seconds, UTC. */
const rfc3339 = (ms: number): string => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
