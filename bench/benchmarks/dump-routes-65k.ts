import type { Benchmark } from '../benchmark.js';
import { measureRoutes } from '../routes-workload.js';

/** Milliseconds to dump and decode a 65,280-route table: Rtnl.routes() vs `ip route show`. */
export const dumpRoutes65k: Benchmark = {
  name: 'dump-routes-65k',
  unit: 'ms',
  better: 'lower',
  // Four rounds (two in each order) keep the default run's route budget; --long takes 11.
  defaultSamples: 4,
  description: 'dump + decode 65,280 IPv4 routes of one table (1,000 links around): tunkeeper Rtnl.routes() (warm) vs `ip route show table 100 >/dev/null`',
  run: (ctx) => measureRoutes(ctx, 'dump'),
};
