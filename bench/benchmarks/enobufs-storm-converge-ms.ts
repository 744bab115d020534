/**
 * enobufs-storm-converge-ms: with the agent running (its default 4 MiB Monitor buffer) beside
 * 100,000 foreign routes in main, one `ip -batch` makes a storm of 100,000 route notifications —
 * 50,000 foreign host routes added to table 201 and deleted again — and halfway through deletes
 * an owned route and changes the MTU of its device (device s in sample s). The figure is the time from the end of the storm
 * (ip exits) to the owned state restored, polled every 2 ms through the bench's own Rtnl; the
 * median over the samples. The log says, per storm, how many reconcile passes ran (each re-lists
 * links, addresses and tunkeeper's routes, and the foreign routes unless provably unchanged —
 * during a storm they are not) and how many resync-needed (ENOBUFS) wake-ups the agent saw,
 * from its /metrics.
 * No reference tool does this work: reference is null.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { median } from '../stats.js';
import type { Benchmark } from '../benchmark.js';
import {
  foreignPrefix,
  metricSum,
  nowMs,
  ownedIfname,
  ownedRoute,
  prepareControllerWorkload,
  startAgent,
  waitConverged,
  waitIdle,
} from '../controller-workload.js';

const STORM_TABLE = 201;
const STORM_ROUTES = 50_000;

/** The storm of sample s drifts owned device s (a device of its own, so no fight hold). */
function stormLines(s: number): string[] {
  const lines: string[] = [];
  for (let i = 0; i < STORM_ROUTES; i++) lines.push(`route add ${foreignPrefix(i)} dev fx0 table ${STORM_TABLE} proto static`);
  lines.push(`route del ${ownedRoute(s)} dev ${ownedIfname(s)} proto 116`, `link set ${ownedIfname(s)} mtu 1300`);
  for (let i = 0; i < STORM_ROUTES; i++) lines.push(`route del ${foreignPrefix(i)} dev fx0 table ${STORM_TABLE}`);
  return lines;
}

export const enobufsStormConvergeMs: Benchmark = {
  name: 'enobufs-storm-converge-ms',
  unit: 'ms',
  better: 'lower',
  description: 'ms from the end of a 100k-notification ip -batch storm (owned route and MTU changed in it) to the owned state restored by the running agent',
  run: async (ctx) => {
    const w = await prepareControllerWorkload(ctx, ctx.samples);
    try {
      const agent = await startAgent(ctx, w);
      try {
        const figures: number[] = [];
        const passes: number[] = [];
        for (let s = 0; s < ctx.samples; s++) {
          const batch = join(w.dir, `storm-${s}.batch`);
          await writeFile(batch, stormLines(s).join('\n') + '\n');
          await waitIdle(agent, 300);
          const before = await agent.metrics();
          const t0 = nowMs();
          await ctx.ns.ip('-batch', batch);
          const stormEnd = nowMs();
          const converged = await waitConverged(w, 120_000, 2, s);
          await waitIdle(agent, 500);
          const after = await agent.metrics();
          const delta = (name: string) => metricSum(after, name) - metricSum(before, name);
          const n = delta('tunkeeper_reconciles_total');
          figures.push(converged - stormEnd);
          passes.push(n);
          ctx.log(
            `  enobufs-storm-converge-ms ${s + 1}/${ctx.samples}: storm ${(stormEnd - t0).toFixed(0)} ms, converged ${(converged - stormEnd).toFixed(1)} ms after it; ` +
              `${n} reconcile passes, ${delta('tunkeeper_resync_needed_total')} resync-needed, ` +
              `${delta('tunkeeper_wakeups_total')} wake-ups, ${delta('tunkeeper_drift_repairs_total')} repairs`,
          );
        }
        ctx.log(
          `  enobufs-storm-converge-ms: median ${median(figures).toFixed(1)} ms (max ${Math.max(...figures).toFixed(1)}); ` +
            `passes per storm median ${median(passes)} (max ${Math.max(...passes)}); agent RSS ${(await agent.rssMb()).toFixed(0)} MiB`,
        );
        return { project: median(figures), reference: null, referenceName: null };
      } finally {
        await agent.stop();
      }
    } finally {
      await w.close();
    }
  },
};
