/**
 * Where `tunkeeper run` gets its probe runner: controller/probe's, against the managed namespace,
 * keeping its sockets for the agent's life. Loaded only once a declared device has probes.
 */
import { ProbeRunner } from '../probe/index.js';
import type { ProberFactory } from './agent.js';

export const createAgentProber: ProberFactory = (opts) => {
  const runner = new ProbeRunner(opts);
  return { run: (device, signal) => runner.run(device, undefined, signal), close: () => runner.close() };
};
