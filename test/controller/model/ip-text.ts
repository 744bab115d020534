/**
 * Text that is nearly an IP address: pieces of real ones (groups, octets with and without leading
 * zeros, '::', dotted tails, zone ids, prefix lengths) glued at random, so a property meets the
 * edge cases of the address grammar far more often than with random strings.
 */
import fc from 'fast-check';

const PIECES = [':', '::', '.', '/', '%', '%eth0', '0', '00', '01', '1', '10', '255', '256', '999', '0000', '12345', 'ffff', 'FFFF', 'fe80', 'db8', 'g', ' ', ''];

export const addressLikeText: fc.Arbitrary<string> = fc
  .array(
    fc.oneof(
      fc.constantFrom(...PIECES),
      fc.integer({ min: 0, max: 300 }).map(String),
      fc.integer({ min: 0, max: 0x1ffff }).map((n) => n.toString(16)),
    ),
    { maxLength: 20 },
  )
  .map((pieces) => pieces.join(''));
