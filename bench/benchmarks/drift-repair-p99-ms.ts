/**
 * drift-repair-p99-ms: with the agent running beside 100,000 foreign routes in main, an owned
 * route is deleted behind its back (the bench's own Rtnl, as `ip route del` would) and the time
 * until the agent has put it back is measured from just before the delete request to the
 * notification of the route's return (a Monitor of the bench's own). 200 repairs (1,000 with
 * --long), each on a device of its own among as many owned devices; the figure is their p99
 * (median, p90 and max in the log). No reference tool does this work: reference is null.
 */
import { median, percentile } from '../stats.js';
import type { Benchmark } from '../benchmark.js';
import {
  MAIN_TABLE,
  OWNED_PROTOCOL,
  isOwnedRouteAdded,
  metricSum,
  nowMs,
  openWatch,
  ownedRoute,
  prepareControllerWorkload,
  startAgent,
  waitIdle,
} from '../controller-workload.js';

/**
 * Quiet before the first drift. Creating the devices leaves the kernel sending link notifications
 * for a second or so (linkwatch batches operstate changes), and passes woken by changes the agent
 * does not act on grow its churn gap (controller/loop/loop.ts, capped at 1 s), which two gaps of
 * quiet reset: the first repair must start from that rest, not inside the startup's churn.
 */
const REST_MS = 2_500;

/** A repair slower than this is a failure, not a figure. */
const REPAIR_TIMEOUT_MS = 30_000;

export const driftRepairP99Ms: Benchmark = {
  name: 'drift-repair-p99-ms',
  unit: 'ms',
  better: 'lower',
  description: 'p99 time for the running agent to restore an owned route deleted behind its back, with 100k foreign routes in main',
  run: async (ctx) => {
    // One owned device per repair: each is drifted once, so no repair meets the agent's fight hold.
    const repairs = ctx.long ? 1000 : 200;
    const w = await prepareControllerWorkload(ctx, repairs);
    const watch = await openWatch(ctx);
    try {
      const agent = await startAgent(ctx, w);
      try {
        await waitIdle(agent, REST_MS);
        const before = await agent.metrics();
        let waiter: { cidr: string; resolve: (t: number) => void } | null = null;
        const sub = watch.subscribe((e) => {
          if (waiter !== null && isOwnedRouteAdded(e, waiter.cidr)) {
            const w2 = waiter;
            waiter = null;
            w2.resolve(nowMs());
          }
        });
        const times: number[] = [];
        try {
          for (let i = 0; i < repairs; i++) {
            const cidr = ownedRoute(i);
            const back = new Promise<number>((resolve, reject) => {
              waiter = { cidr, resolve };
              setTimeout(() => reject(new Error(`${cidr} was not repaired within ${REPAIR_TIMEOUT_MS} ms`)), REPAIR_TIMEOUT_MS).unref();
            });
            const t0 = nowMs();
            await w.rtnl.deleteRoute({ dst: cidr, table: MAIN_TABLE, protocol: OWNED_PROTOCOL });
            times.push((await back) - t0);
            // Let the agent finish the pass its own repair wakes, so each repair starts from rest.
            await waitIdle(agent, 30);
          }
        } finally {
          sub.unsubscribe();
        }
        const after = await agent.metrics();
        const passes = metricSum(after, 'tunkeeper_reconciles_total') - metricSum(before, 'tunkeeper_reconciles_total');
        const p99 = percentile(times, 99);
        ctx.log(
          `  drift-repair-p99-ms: ${repairs} repairs, median ${median(times).toFixed(1)} ms, p90 ${percentile(times, 90).toFixed(1)} ms, ` +
            `p99 ${p99.toFixed(1)} ms, max ${Math.max(...times).toFixed(1)} ms; ${passes} reconcile passes; agent RSS ${(await agent.rssMb()).toFixed(0)} MiB`,
        );
        return { project: p99, reference: null, referenceName: null, projectSamples: times };
      } finally {
        await agent.stop();
      }
    } finally {
      watch.close();
      await w.close();
    }
  },
};
