/**
 * The link dump of every pass, read straight into ObservedLinks.
 *
 * Why: every pass re-lists every link (level-triggered), and decoding each into a lossless
 * LinkMessage first was a third of everything a drift-repair pass allocated (~1 MiB a pass with
 * 200 links; profile of the bench agent) and ~3 ms of its CPU, for the handful of fields
 * toObservedLink reads. netlink's LinkFieldReader reads just those fields off the wire (one
 * reader for the whole dump, no object per attribute or message); convert.ts maps them, the same
 * mapping as toObservedLink's.
 *
 * The answer must be exactly toObservedLink(decodeLinkMessage(...)), and fail with the same
 * NetlinkDecodeError: a differential test (test/controller/observe/links.test.ts) holds it to
 * that, on real kernel dumps and generated messages.
 */
import { linkDump, LinkFieldReader, type DumpSpec } from '../../netlink/index.js';
import type { ObservedLink } from '../model/observed.js';
import { observedLinkOf } from './convert.js';

/** A link dump whose items are ObservedLinks (null for a link without a name, dropped). */
export function observedLinkDump(): DumpSpec<ObservedLink | null> {
  const spec = linkDump({});
  return { ...spec, decode: decodeObservedLink, keep: (l) => l !== null };
}

// Decoding is synchronous: one reader serves every message of every dump.
const reader = new LinkFieldReader();

export function decodeObservedLink(buf: Buffer, start: number, end: number): ObservedLink | null {
  const f = reader.read(buf, start, end);
  return observedLinkOf(f, f.kind, f.tun) ?? null;
}
