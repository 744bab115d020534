/**
 * The `ping` probe's judgement, pure: an echo's outcome → passed iff the reply came, with a
 * sentence that says what happened through which device.
 */
import type { ProbeVerdict } from './verdict.js';

export type EchoOutcome =
  | { ok: true; rttMs: number }
  /** No reply in time. */
  | { ok: false; timeoutMs: number }
  /** The kernel refused to open or send (its message says what and why: errno, ping_group_range...). */
  | { ok: false; error: { code?: string; message: string } };

export function judgeEcho(to: string, ifname: string, outcome: EchoOutcome): ProbeVerdict {
  if (outcome.ok) return { passed: true, message: `${to} answered an echo through ${ifname} in ${outcome.rttMs.toFixed(1)} ms` };
  if ('timeoutMs' in outcome) return { passed: false, message: `${to} did not answer an echo through ${ifname} within ${outcome.timeoutMs} ms` };
  return { passed: false, message: `echo to ${to} through ${ifname} failed: ${outcome.error.message}` };
}
