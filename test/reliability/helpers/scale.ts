/**
 * How big a reliability run is: CI-sized by default (bounded, part of `npm test`), larger with
 * `--long` (TUNKEEPER_RELIABILITY=long). Every count in the reliability suite goes through here.
 */
export const longRun = process.env.TUNKEEPER_RELIABILITY === 'long';

/** `ci` in a CI-sized run, `long` with --long. */
export function scale(ci: number, long: number): number {
  return longRun ? long : ci;
}
