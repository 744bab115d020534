/**
 * A look at a dumped route's raw bytes, before any object is made of it: is it possibly one of
 * the foreign routes observe keeps (observe.ts foreignScope)? A full relist of a main table with
 * 100k foreign routes decoded every one of them into an object with strings, to keep a handful:
 * ~100 ms of decoding and tens of MiB of garbage a pass (bench rss-100k-routes-mb). Here a route
 * costs a few byte reads, and only candidates are decoded — and then judged by the same scope
 * test as before, so this may only ever say "maybe" too often, never "no" wrongly:
 *   - tunkeeper's own protocol: no (those come from the protocol dump);
 *   - a preferred source or next hops (RTA_PREFSRC, RTA_MULTIPATH): maybe (rare; decoded);
 *   - through one of our links (RTA_OIF): maybe;
 *   - a destination prefix a declaration names: maybe (IPv4 compared as numbers, IPv6 as the
 *     codec's own text, only for prefix lengths some declaration uses);
 *   - anything unexpected in the layout: maybe (the decoder then says what is wrong).
 */
import { formatIPv6 } from '../../netlink/codec/ip.js';
import { RTA_DST, RTA_MULTIPATH, RTA_OIF, RTA_PREFSRC, RTMSG_LEN } from '../../netlink/constants/route.js';
import { AF_INET, AF_INET6 } from '../../netlink/constants/rtnetlink.js';
import type { ForeignScope } from './cache.js';

export type RawRouteTest = (buf: Buffer, start: number, end: number) => boolean;

/** `a.b.c.d` → its value, or undefined. */
function ipv4Value(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0;
  for (const p of parts) {
    const n = Number(p);
    if (!Number.isInteger(n) || n < 0 || n > 255) return undefined;
    v = v * 256 + n;
  }
  return v;
}

/** The raw test for `scope`, tunkeeper's own routes (`protocol`) excluded. */
export function foreignRoutePrefilter(scope: ForeignScope, protocol: number): RawRouteTest {
  const v4 = new Set<number>();
  const v4Lengths = new Set<number>();
  const v6Lengths = new Set<number>();
  for (const p of scope.prefixes) {
    const slash = p.lastIndexOf('/');
    const addr = p.slice(0, slash);
    const len = Number(p.slice(slash + 1));
    const value = addr.includes(':') ? undefined : ipv4Value(addr);
    if (value !== undefined) {
      v4.add(value * 64 + len);
      v4Lengths.add(len);
    } else {
      v6Lengths.add(len);
    }
  }
  return (buf, start, end) => {
    if (end - start < RTMSG_LEN) return true;
    const family = buf[start]!;
    const dstLen = buf[start + 1]!;
    if (buf[start + 5] === protocol) return false;
    let dstAt = -1;
    let dstBytes = 0;
    for (let a = start + RTMSG_LEN; a + 4 <= end; ) {
      const alen = buf.readUInt16LE(a);
      if (alen < 4 || a + alen > end) return true;
      const type = buf.readUInt16LE(a + 2) & 0x3fff;
      if (type === RTA_PREFSRC || type === RTA_MULTIPATH) return true;
      if (type === RTA_OIF) {
        if (alen < 8) return true;
        if (scope.links.has(buf.readUInt32LE(a + 4))) return true;
      } else if (type === RTA_DST) {
        dstAt = a + 4;
        dstBytes = alen - 4;
      }
      a += (alen + 3) & ~3;
    }
    if (family === AF_INET) {
      if (!v4Lengths.has(dstLen)) return false;
      if (dstAt < 0) return dstLen !== 0 || v4.has(0);
      if (dstBytes !== 4) return true;
      return v4.has(buf.readUInt32BE(dstAt) * 64 + dstLen);
    }
    if (family === AF_INET6) {
      if (!v6Lengths.has(dstLen)) return false;
      if (dstAt < 0) return dstLen !== 0 || scope.prefixes.has('::/0');
      if (dstBytes !== 16) return true;
      return scope.prefixes.has(`${formatIPv6(buf, dstAt)}/${dstLen}`);
    }
    return true;
  };
}
