/**
 * A look at a dumped route's raw bytes (netlink's RoutePeek), before any object is made of it: is it possibly one of
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
 *   - anything unexpected in the layout (RoutePeek.unusual): maybe (the decoder then says what
 *     is wrong, or reads it).
 */
import { constants, RoutePeek, type RawRouteTest } from '../../netlink/index.js';
import type { ForeignScope } from './cache.js';

const { AF_INET, AF_INET6 } = constants;

/** `a.b.c.d` → its value as a signed 32-bit integer (as RoutePeek.dst4 reads it), or undefined. */
function ipv4Value(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0;
  for (const p of parts) {
    const n = Number(p);
    if (!Number.isInteger(n) || n < 0 || n > 255) return undefined;
    v = v * 256 + n;
  }
  return v | 0;
}

/** The raw test for `scope`, tunkeeper's own routes (`protocol`) excluded. */
export function foreignRoutePrefilter(scope: ForeignScope, protocol: number): RawRouteTest {
  // Declared IPv4 destinations by prefix length: small integers only, so a test allocates nothing.
  const v4 = new Map<number, Set<number>>();
  const v6Lengths = new Set<number>();
  for (const p of scope.prefixes) {
    const slash = p.lastIndexOf('/');
    const addr = p.slice(0, slash);
    const len = Number(p.slice(slash + 1));
    const value = addr.includes(':') ? undefined : ipv4Value(addr);
    if (value !== undefined) {
      let set = v4.get(len);
      if (set === undefined) v4.set(len, (set = new Set()));
      set.add(value);
    } else {
      v6Lengths.add(len);
    }
  }
  // Tests run synchronously, one route at a time: one peek serves them all.
  const peek = new RoutePeek();
  return (buf, start, end) => {
    if (!peek.header(buf, start, end)) return true;
    if (peek.protocol === protocol) return false;
    peek.attributes();
    if (peek.unusual || peek.prefsrc || peek.multipath) return true;
    if (peek.oif !== undefined && scope.links.has(peek.oif)) return true;
    const dstLen = peek.dstLen;
    if (peek.family === AF_INET) {
      const declared = v4.get(dstLen);
      if (declared === undefined) return false;
      if (!peek.hasDst) return dstLen !== 0 || declared.has(0);
      const dst = peek.dst4();
      return dst === undefined || declared.has(dst);
    }
    if (peek.family === AF_INET6) {
      if (!v6Lengths.has(dstLen)) return false;
      if (!peek.hasDst) return dstLen !== 0 || scope.prefixes.has('::/0');
      if (peek.dstSize !== 16) return true;
      return scope.prefixes.has(`${peek.dstText()!}/${dstLen}`);
    }
    return true;
  };
}
