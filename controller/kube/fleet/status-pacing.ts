/**
 * How soon a TunDevice status write is due (fleet-status.ts schedules it). Every write of a
 * TunDevice goes to every node's TunDevice watch (each node reads spec and its rollout grant), so
 * one write costs O(N) on the API server and across the fleet. Two kinds of change:
 *
 * - prompt: what someone or something acts on: observedGeneration, the status of any condition
 *   (Ready, Reconciling, Stalled appearing, flipping, going), and anything in status.rollout (the
 *   grants gate the nodes' progress; done and haltedBy say where a rollout is). Written after
 *   minIntervalMs, as before.
 * - progress: only the counts, ready "n/N", failingNodes and messages. Written at most once per
 *   paceMs(N): N × msPerNode, at least minIntervalMs, at most maxMs. With 5 ms per node the
 *   TunDevice events a change sends stay near 200 a second (N events per N × 5 ms) whatever N, and
 *   a rollout at 1,000 nodes gets a progress write every 5 s (every 10 s from 2,000 nodes on)
 *   rather than every second, while Ready n/n still lands within minIntervalMs of the last report.
 */
import equal from 'fast-deep-equal';
import type { TunDeviceFleetStatus } from '../../schema/tundevice-status.js';

/** The change from `stored` to `next` must not wait for the progress pace. */
export function promptChange(next: TunDeviceFleetStatus, stored: TunDeviceFleetStatus | undefined): boolean {
  if (!stored) return true;
  if (next.observedGeneration !== stored.observedGeneration) return true;
  const statuses = (s: TunDeviceFleetStatus) => new Map((s.conditions ?? []).map((c) => [c.type, c.status]));
  const [a, b] = [statuses(next), statuses(stored)];
  if (a.size !== b.size) return true;
  for (const [type, status] of a) if (b.get(type) !== status) return true;
  return !equal(next.rollout, stored.rollout);
}

/** The interval between progress-only writes of one TunDevice, for a fleet of `nodes` reporting nodes. */
export function paceMs(nodes: number, o: { minIntervalMs: number; paceMsPerNode: number; maxPaceMs: number }): number {
  return Math.max(o.minIntervalMs, Math.min(o.maxPaceMs, Math.max(0, nodes) * o.paceMsPerNode));
}
