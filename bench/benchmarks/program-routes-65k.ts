import type { Benchmark } from '../benchmark.js';
import { measureRoutes } from '../routes-workload.js';

/** Milliseconds to add 65,280 routes to an empty table: pipelined Rtnl.batch(addRoute) vs `ip -batch`. */
export const programRoutes65k: Benchmark = {
  name: 'program-routes-65k',
  unit: 'ms',
  better: 'lower',
  // Four rounds (two in each order) keep the default run's route budget; --long takes 11.
  defaultSamples: 4,
  description: 'add 65,280 /32 routes to an empty table: tunkeeper Rtnl.batch(addRoute ...) pipelined (warm) vs `ip -batch FILE`',
  run: (ctx) => measureRoutes(ctx, 'program'),
};
