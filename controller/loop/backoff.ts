/**
 * Exponential backoff with jitter, capped. The jitter spreads retries of many devices (and many
 * agents after a shared outage) so they do not all hit the kernel or the API server at once; it
 * only ever shortens a delay, so the cap is a real upper bound.
 */
export interface BackoffOptions {
  /** Delay before the first retry, ms. */
  initialMs: number;
  /** Upper bound of any delay, ms. */
  maxMs: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /** Fraction of the delay that may be taken off at random, 0..1 (default 0.2). */
  jitter?: number;
}

/** A source of randomness in [0, 1); injected for deterministic tests. */
export type Random = () => number;

/** The delay before retry number `attempt` (1 for the first retry). */
export function backoffDelay(attempt: number, opts: BackoffOptions, random: Random): number {
  const factor = opts.factor ?? 2;
  const jitter = Math.min(1, Math.max(0, opts.jitter ?? 0.2));
  const exponent = Math.max(0, attempt - 1);
  const base = Math.min(opts.maxMs, opts.initialMs * factor ** exponent);
  const r = Math.min(1, Math.max(0, random()));
  return Math.max(0, Math.round(base * (1 - jitter * r)));
}
