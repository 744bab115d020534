/**
 * Which nodes may move a TunDevice to its new generation now (spec.rollout.maxUnavailable): the
 * leader's half of a rollout, a pure function of the reports, the grants stored in
 * TunDevice.status.rollout, and the time. The node's half is in rollout/gate.ts: a node without a
 * slot keeps its last good version in force.
 *
 * - A node is moving from its grant until it answers the generation: its probes pass (Settled),
 *   or it rolls back (RolledBack, ProbeFailed), or it refuses the generation or finds a conflict.
 * - At most maxUnavailable nodes move at once (a percentage of the selected nodes, rounded up, at
 *   least 1, as a DaemonSet's maxUnavailable). Free slots go to waiting nodes by name, so the
 *   order is the same whoever leads.
 * - A node that answers with a rollback halts the rollout: nobody else is granted this generation
 *   (the nodes already moving finish). A newer generation starts afresh.
 * - A grant not answered within probeTimeoutSeconds + slotGraceMs is reclaimed (the agent died or
 *   stopped reporting: a crash must not deadlock the rollout); the node goes to the back of the
 *   queue and is granted again only when nobody else waits, and then only after a pause that
 *   doubles with each reclaim (capped), so a node that stays dead costs a status write every few
 *   minutes, not every few seconds. It stays listed as reclaimed until it answers.
 */
import type { TunDeviceStatus } from '../../schema/tunnodestate.js';
import { MAX_RECLAIMED, type RolloutSlots } from '../../schema/tundevice-status.js';

export const SLOT_DEFAULTS = {
  /** Beyond the probe timeout: time to see the grant, apply, and report. */
  slotGraceMs: 60_000,
  /** The longest pause before a reclaimed node is granted again. */
  maxRegrantPauseMs: 10 * 60_000,
};

export interface SlotInput {
  generation: number;
  maxUnavailable: number | string;
  probeTimeoutSeconds: number;
  /** The selected nodes' entries for this device (undefined: no report). */
  nodes: ReadonlyMap<string, TunDeviceStatus | undefined>;
  previous: RolloutSlots | undefined;
  /** Wall clock, epoch ms. */
  now: number;
  slotGraceMs: number;
}

export interface SlotResult {
  rollout: RolloutSlots;
  /** When a grant runs out (epoch ms). */
  recheckAt?: number;
}

/** A percentage or a count, against `selected` nodes: rounded up, at least 1. */
export function resolveMaxUnavailable(value: number | string, selected: number): number {
  if (typeof value === 'number') return Math.max(1, value);
  const pct = Number.parseInt(value, 10);
  return Math.max(1, Math.ceil((selected * (Number.isNaN(pct) ? 100 : pct)) / 100));
}

type Answer = 'none' | 'done' | 'failed';

/** What a node's entry says about generation `g`. */
function answerOf(e: TunDeviceStatus | undefined, g: number): Answer {
  if (!e) return 'none';
  const cond = (t: string) => e.conditions?.find((c) => c.type === t);
  const refused = cond('Refused');
  if (refused?.status === 'True' && (refused.observedGeneration ?? e.observedGeneration) === g) return 'done';
  const r = e.rollout;
  if (r?.generation === g && (r.phase === 'RolledBack' || r.phase === 'ProbeFailed')) return 'failed';
  if (e.observedGeneration !== g) return 'none';
  if (cond('Conflict')?.status === 'True') return 'done';
  if (r && r.generation === g && r.phase === 'Settled') return 'done';
  if (!r && cond('Ready')?.status === 'True') return 'done';
  return 'none';
}

const iso = (ms: number): string => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');

export function grantSlots(input: SlotInput): SlotResult {
  const g = input.generation;
  const prev = input.previous?.generation === g ? input.previous : undefined;
  const max = resolveMaxUnavailable(input.maxUnavailable, input.nodes.size);
  const answers = new Map([...input.nodes].map(([n, e]) => [n, answerOf(e, g)]));
  const failed = [...answers].filter(([, a]) => a === 'failed').map(([n]) => n).sort();
  const deadlineMs = input.probeTimeoutSeconds * 1000 + input.slotGraceMs;

  const reclaimed = new Map((prev?.reclaimed ?? []).map((r) => [r.node, { at: r.at, times: r.times }]));
  const granted: Array<{ node: string; since: string }> = [];
  let recheckAt: number | undefined;
  const due = (ms: number) => (recheckAt = Math.min(recheckAt ?? Infinity, ms));
  for (const grant of prev?.granted ?? []) {
    if (!input.nodes.has(grant.node) || answers.get(grant.node) !== 'none') continue;
    const end = Date.parse(grant.since) + deadlineMs;
    if (end <= input.now) {
      reclaimed.set(grant.node, { at: iso(input.now), times: (reclaimed.get(grant.node)?.times ?? 0) + 1 });
      continue;
    }
    granted.push(grant);
    due(end);
  }

  if (failed.length === 0) {
    const holding = new Set(granted.map((x) => x.node));
    const waiting = [...answers].filter(([n, a]) => a === 'none' && !holding.has(n) && !reclaimed.has(n)).map(([n]) => n).sort(cmp);
    // The reclaimed, only when nobody else waits, each after its pause; longest ago first.
    if (waiting.length === 0) {
      const pauseOf = (times: number) => Math.min(deadlineMs * 2 ** (times - 1), SLOT_DEFAULTS.maxRegrantPauseMs);
      const ready = [...reclaimed].filter(([n]) => answers.get(n) === 'none' && !holding.has(n)).sort((a, b) => cmp(a[1].at, b[1].at) || cmp(a[0], b[0]));
      for (const [node, r] of ready) {
        const at = Date.parse(r.at) + pauseOf(r.times);
        if (at <= input.now) waiting.push(node);
        else due(at);
      }
    }
    for (const node of waiting.slice(0, Math.max(0, max - granted.length))) {
      granted.push({ node, since: iso(input.now) });
      due(input.now + deadlineMs);
    }
  }

  granted.sort((a, b) => cmp(a.node, b.node));
  const rollout: RolloutSlots = {
    generation: g,
    maxUnavailable: max,
    granted,
    done: [...answers.values()].filter((a) => a === 'done').length,
    waiting: [...answers].filter(([n, a]) => a === 'none' && !granted.some((x) => x.node === n)).length,
  };
  // Listed until the node answers (also while granted again), so the reclaim stays visible.
  const stillReclaimed = [...reclaimed].filter(([n]) => answers.get(n) === 'none');
  if (stillReclaimed.length > 0) rollout.reclaimed = stillReclaimed.sort((a, b) => cmp(a[1].at, b[1].at) || cmp(a[0], b[0])).slice(-MAX_RECLAIMED).map(([node, r]) => ({ node, at: r.at, times: r.times }));
  if (failed.length > 0) rollout.haltedBy = failed.slice(0, 10);
  return recheckAt === undefined ? { rollout } : { rollout, recheckAt };
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
