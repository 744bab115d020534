/**
 * How big a reliability run is. CI runs every reliability test at the CI size (inside `npm test`,
 * bounded so the whole tier fits in a few minutes on 2 cores); `npm run test:reliability -- --long`
 * or TUNKEEPER_RELIABILITY=long searches harder with the long counts. One switch for every file
 * under test/reliability/, so a run is either CI-sized or long throughout.
 */

export type ReliabilitySize = 'ci' | 'long';

export function reliabilitySize(): ReliabilitySize {
  const v = (process.env.TUNKEEPER_RELIABILITY ?? 'ci').trim().toLowerCase();
  if (v === 'long') return 'long';
  if (v === 'ci' || v === '') return 'ci';
  // A typo must not silently run the small suite while someone believes it ran the long one.
  throw new Error(`TUNKEEPER_RELIABILITY must be "ci" or "long", got ${JSON.stringify(process.env.TUNKEEPER_RELIABILITY)}`);
}

/** The count for this run: `ci` in CI-sized runs, `long` in long ones. */
export function scale(ci: number, long: number): number {
  return reliabilitySize() === 'long' ? long : ci;
}

/**
 * A test's hang guard (its jest timeout), sized from its counts: `fixedMs` for setup and teardown
 * plus a generous `perItemMs` for each of `count` storms, reconciles, rounds. It only ends a run
 * that has stopped making progress, so it grows with the work asked for; it never says how fast
 * the work must be (speed is measured in bench/, not asserted here).
 */
export function hangGuardMs(count: number, perItemMs: number, fixedMs = 60_000): number {
  return fixedMs + count * perItemMs;
}
