/** Order statistics over repeated samples. Pure. */

function sorted(xs: readonly number[]): number[] {
  if (xs.length === 0) throw new RangeError('no samples');
  for (const x of xs) if (!Number.isFinite(x)) throw new RangeError(`not a finite sample: ${x}`);
  return [...xs].sort((a, b) => a - b);
}

/** The middle sample (the mean of the two middle ones for an even count). */
export function median(xs: readonly number[]): number {
  const s = sorted(xs);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * The nearest-rank percentile: the smallest sample with at least p% of the samples at or below it.
 * With fewer than 100 samples p99 is the maximum, which is what a tail latency should report.
 */
export function percentile(xs: readonly number[], p: number): number {
  if (!(p > 0 && p <= 100)) throw new RangeError(`percentile out of range: ${p}`);
  const s = sorted(xs);
  return s[Math.ceil((p / 100) * s.length) - 1]!;
}
