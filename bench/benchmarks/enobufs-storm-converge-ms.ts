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
 * Targets (issue #16; reported in the log as met or not, never asserted): converged within
 * 100 ms of the storm's end, and at most 5 passes per storm. The first is the loop's trailing edge
 * (controller/loop/loop.ts): once the kernel has been quiet for quietMs, the pass the churn gap
 * deferred runs, instead of waiting out the rest of the gap (before it: 513 ms median on a fresh
 * machine, the gap's remainder). The second is its rate limit: one pass per churn gap (1 s) while
 * the storm lasts, so it holds for storms of about 3 s; a machine that takes longer to run the
 * storm's `ip -batch` gets about one pass per second of it.
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
/** Issue #16's targets, reported as met or not. */
const TARGET_CONVERGE_MS = 100;
const TARGET_PASSES = 5;
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
        const stormMs: number[] = [];
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
          stormMs.push(stormEnd - t0);
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
        const met = (ok: boolean): string => (ok ? 'met' : 'NOT met');
        ctx.log(
          `  enobufs-storm-converge-ms targets: converged <= ${TARGET_CONVERGE_MS} ms after the storm: ${met(Math.max(...figures) <= TARGET_CONVERGE_MS)} ` +
            `(max ${Math.max(...figures).toFixed(1)} ms); <= ${TARGET_PASSES} passes per storm: ${met(Math.max(...passes) <= TARGET_PASSES)} ` +
            `(max ${Math.max(...passes)}, storms of ${Math.min(...stormMs).toFixed(0)}-${Math.max(...stormMs).toFixed(0)} ms)`,
        );
        return { project: median(figures), reference: null, referenceName: null, projectSamples: figures };
      } finally {
        await agent.stop();
      }
    } finally {
      await w.close();
    }
  },
};
