/**
 * How much of a pinned CPU other tenants took while a sample ran. A benchmark machine may be
 * shared (builds, test runs): a subject that waits for its CPU measures the neighbours, not
 * itself, and one that has two threads wins a bigger share than one with one thread. The runner
 * uses this to retry contended samples and to say when figures are unreliable.
 *
 * From /proc/stat (busy ticks per CPU) minus /proc/PID/stat (ticks of our own pinned processes,
 * all threads), both in USER_HZ ticks.
 */
import { readFileSync } from 'node:fs';

export interface LoadSnapshot {
  cpus: Map<string, { busy: number; total: number }>;
  pids: Map<number, number>;
}

function readCpus(): Map<string, { busy: number; total: number }> {
  const out = new Map<string, { busy: number; total: number }>();
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    // user nice system idle iowait irq softirq steal guest guest_nice (guest time is inside user)
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = m[2]!.split(/\s+/).map(Number);
    const busy = user + nice + system + irq + softirq + steal;
    out.set(m[1]!, { busy, total: busy + idle + iowait });
  }
  return out;
}

function readPidTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces): state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0; // already gone
  }
}

export function snapshot(pids: readonly number[]): LoadSnapshot {
  return { cpus: readCpus(), pids: new Map(pids.map((p) => [p, readPidTicks(p)])) };
}

/**
 * The share (0..1) of `cpu` that processes other than `ours` (the ones pinned to that CPU) used
 * between two snapshots. Ticks are 10 ms, so over a one-second window the figure is good to about
 * a percent.
 */
export function foreignShare(before: LoadSnapshot, after: LoadSnapshot, cpu: string, ours: readonly number[]): number {
  const a = before.cpus.get(cpu);
  const b = after.cpus.get(cpu);
  if (!a || !b || b.total <= a.total) return 0;
  const own = ours.reduce((sum, pid) => sum + ((after.pids.get(pid) ?? 0) - (before.pids.get(pid) ?? 0)), 0);
  return Math.min(1, Math.max(0, (b.busy - a.busy - own) / (b.total - a.total)));
}

/** A sample during which others took more than this share of a measured CPU did not have it to itself. */
export const CONTENDED_SHARE = 0.1;

/**
 * The worst foreign share over the pinned CPUs, each with the one process of ours pinned to it;
 * null when nothing is pinned (then neighbours cannot be told apart from our own threads).
 */
export function contention(before: LoadSnapshot, after: LoadSnapshot, pinned: ReadonlyArray<{ cpu: string | null; pid: number }>): number | null {
  if (pinned.length === 0 || pinned.some((p) => p.cpu === null)) return null;
  return Math.max(...pinned.map((p) => foreignShare(before, after, p.cpu!, [p.pid])));
}

export function isContended(share: number | null): boolean {
  return share !== null && share > CONTENDED_SHARE;
}
