/**
 * controller/probe: after apply, the checks that a device works (spec.probes) — the kernel's own
 * route lookup leaves through it (`route`), an echo through it is answered (`ping`) — retried
 * until they pass or spec.rollout.probeTimeoutSeconds runs out. Pure judgement (answer → verdict
 * and message) is separate from the I/O (ProbeRunner).
 */
export { ProbeRunner, type ProbeRunnerOptions } from './probe-runner.js';
export {
  runProbes,
  probeOnce,
  probeTimeoutMs,
  systemProbeClock,
  DEFAULT_PROBE_INTERVALS,
  type ProbeAttempt,
  type ProbeClock,
  type ProbeIntervals,
  type ProbeResult,
  type RunProbesContext,
} from './run-probes.js';
export type { ProbeVerdict } from './verdict.js';
export { judgeRouteAnswer, judgeRouteError, answerIfindexes, type RouteJudgeContext, type RouteLookupFailure } from './route-verdict.js';
export { judgeEcho, type EchoOutcome } from './ping-verdict.js';
export { protocolName, tableName, routeTypeName } from './names.js';
