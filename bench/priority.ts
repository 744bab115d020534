/**
 * Scheduling priority for measured processes. With sched_autogroup (the default on many
 * distributions) CPU time is shared between sessions first: `nice` inside our session cannot win
 * a CPU back from a neighbour's build in another session, so a pinned subject still waits for its
 * CPU and measures the neighbour. Each measured process therefore runs in a session of its own
 * (spawned detached, i.e. setsid) whose autogroup gets nice -19; where autogroups are off, the
 * `nice -n -19` prefix does the same job. Both sides of a comparison get the same treatment.
 */
import { writeFileSync } from 'node:fs';

export const BENCH_NICE = -19;

/** The command prefix that lowers the process's own nice value (inherited by its threads). */
export function nicePrefix(): string[] {
  return ['nice', '-n', String(BENCH_NICE)];
}

/** Raises the priority of the autogroup that `pid` (a session leader) is in; false if impossible. */
export function raiseAutogroup(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/autogroup`, String(BENCH_NICE));
    return true;
  } catch {
    return false; // no autogroups in this kernel, or the process is gone
  }
}
