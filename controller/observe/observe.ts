/**
 * observe: one snapshot of what tunkeeper may own, from complete, strict-checked rtnetlink dumps.
 *
 * Scope (what plan needs, and no more of the routing table than that):
 *   - every link, with its tun attributes (ownership is read from the links themselves);
 *   - every address (plan checks a preferred source is held by some link, and which routes an
 *     address removal takes along);
 *   - every route of tunkeeper's protocol, in any table;
 *   - the routes of the main table and of each table a desired route uses, whatever their
 *     protocol, that plan can reason about (foreignScope): a declared route whose key a
 *     foreign route holds is a conflict, never a replace, and the main table carries the foreign
 *     routes a change of ours takes along. Per-table dumps are cheap: a strict-checked kernel
 *     walks only the table asked for.
 *
 * Those foreign routes may come from a ForeignRouteCache instead (cache.ts): only while
 * no notification since their dump can have changed them, and never on a verifying pass.
 *
 * Fail static: a dump that stayed interrupted (NLM_F_DUMP_INTR) through the client's retries, or
 * failed in any other way, yields no snapshot at all — ObservationError — never a partial one.
 */
import type { Rtnl, RouteMessage } from '../../netlink/index.js';
import { constants, NetlinkDumpInterruptedError, routeCandidateDump } from '../../netlink/index.js';
import { foreignRoutePrefilter } from './prefilter.js';
import type { ForeignRoute, ForeignRouteCache, ForeignScope } from './cache.js';
import { OWNER_MARKER_PREFIX, type DesiredDevice, type Policy } from '../model/desired.js';
import { networkOf } from '../model/ip.js';
import { RT_TABLE_MAIN, type ObservedAddress, type ObservedLink, type ObservedRoute, type ObservedState } from '../model/observed.js';
import { toObservedAddress, toObservedRoute } from './convert.js';
import { observedLinkDump } from './links.js';

const { AF_INET, AF_INET6 } = constants;

export interface ObserveOptions {
  policy: Pick<Policy, 'routeProtocol'>;
  /** The desired devices: their route tables are dumped in full (conflict detection). */
  desired?: readonly DesiredDevice[];
  /**
   * Where the relevant foreign routes may be kept between passes (cache.ts: reused only
   * while provably unchanged). Absent: every table is dumped every time.
   */
  cache?: ForeignRouteCache;
  /** Reuse nothing from the cache (it is refilled): a verifying pass. */
  verify?: boolean;
}

export class ObservationError extends Error {
  override name = 'ObservationError';
  readonly code: string;
  readonly interrupted: boolean;
  constructor(cause: unknown) {
    const e = cause as { code?: unknown; message?: unknown };
    super(`observation incomplete, nothing applied: ${typeof e?.message === 'string' ? e.message : String(cause)}`, { cause });
    this.interrupted = cause instanceof NetlinkDumpInterruptedError;
    this.code = this.interrupted ? 'DumpInterrupted' : typeof e?.code === 'string' ? e.code : 'EIO';
  }
}

/** The tables whose every route plan must see. */
export function observedTables(desired: readonly DesiredDevice[] = []): number[] {
  const tables = new Set<number>([RT_TABLE_MAIN]);
  for (const d of desired) for (const r of d.routes) tables.add(r.table);
  return [...tables].sort((a, b) => a - b);
}

export async function observe(rtnl: Rtnl, options: ObserveOptions): Promise<ObservedState> {
  const protocol = options.policy.routeProtocol;
  const cache = options.cache;
  const desired = options.desired ?? [];
  const tables = observedTables(desired);
  try {
    // Before any dump: what the cache may reuse is what no notification has touched since.
    const generation = cache !== undefined ? await cache.sync(tables) : undefined;
    // Queued together: the client runs dumps one after another on its socket.
    // Links straight into ObservedLinks (links.ts): every pass lists them all.
    const [linkList, addrMsgs] = await Promise.all([rtnl.dump(observedLinkDump()), rtnl.addresses()]);
    const links = linkList as ObservedLink[]; // keep dropped the nameless (null) ones
    const addresses: ObservedAddress[] = [];
    for (const m of addrMsgs) {
      const a = toObservedAddress(m);
      if (a !== undefined) addresses.push(a);
    }
    const scope = foreignScope(links, addresses, desired);
    const kept = generation !== undefined ? cache?.get(generation, scope, options.verify === true) : undefined;
    const routes: ObservedRoute[] = [];
    const add = (m: RouteMessage): void => {
      const r = toObservedRoute(m);
      if (r !== undefined) routes.push(r);
    };
    if (kept !== undefined) {
      // tunkeeper's own routes, afresh: IPv4 table by table (one walk of each), all of IPv6.
      const owned = await Promise.all([...tables.map((table) => rtnl.routes({ family: 4, table, protocol })), rtnl.routes({ family: 6, protocol })]);
      for (const list of owned) for (const m of list) add(m);
      routes.push(...kept.ownedElsewhere);
      // Kept for a scope at least as wide: narrowed to this pass's.
      for (const f of kept.foreign) {
        const r = f.route;
        if (inScope(scope, r.family === 4 ? AF_INET : AF_INET6, r.oif, r.prefsrc, f.multipath, r.dst, r.dstLength)) routes.push(r);
      }
      return { links, addresses, routes };
    }
    const candidate = foreignRoutePrefilter(scope, protocol);
    const [owned, ...perTable] = await Promise.all([rtnl.routes({ protocol }), ...tables.map((table) => rtnl.dump(routeCandidateDump({ table }, candidate)))]);
    const ownedElsewhere: ObservedRoute[] = [];
    for (const m of owned) {
      const r = toObservedRoute(m);
      if (r === undefined) continue;
      routes.push(r);
      if (r.family === 4 && !tables.includes(r.table)) ownedElsewhere.push(r);
    }
    // Owned routes of these tables are in the protocol dump already. Of the foreign ones, only
    // those plan can ever reason about are kept: a node may carry 100k foreign routes, and
    // converting and indexing them all made every pass cost seconds (bench: drift-repair-p99-ms).
    const foreign: ForeignRoute[] = [];
    for (const list of perTable) {
      for (const m of list) {
        if (m === null || m.protocol === protocol || !inScope(scope, m.family, m.oif, m.prefsrc, m.multipath !== undefined, m.dst, m.dstLen)) continue;
        const r = toObservedRoute(m);
        if (r === undefined) continue;
        routes.push(r);
        foreign.push({ route: r, multipath: m.multipath !== undefined });
      }
    }
    if (generation !== undefined) cache?.put(generation, scope, { foreign, ownedElsewhere });
    return { links, addresses, routes };
  } catch (e) {
    throw new ObservationError(e);
  }
}

/**
 * Which foreign routes plan needs to see (conservatively; when in doubt, keep), in the tables
 * observedTables names:
 *   - routes through a link that is, or may become, tunkeeper's (marked, or holding a declared
 *     ifname): what a change of ours takes along, gateways reachable through our links;
 *   - routes whose preferred source is an address on such a link (removing it takes them along);
 *   - routes whose destination prefix is one a declaration names, as a route or as the network of
 *     an address (a key held by a foreign route is a conflict, never a replace);
 *   - multipath routes (their next hops may use our links; they are few).
 * Anything else can neither conflict with a declaration nor be affected by an action of ours.
 */
export function foreignScope(links: readonly ObservedLink[], addresses: readonly ObservedAddress[], desired: readonly DesiredDevice[]): ForeignScope {
  const declaredNames = new Set(desired.map((d) => d.ifname));
  const ourLinks = new Set<number>();
  for (const l of links) if (l.alias?.startsWith(OWNER_MARKER_PREFIX) || declaredNames.has(l.ifname)) ourLinks.add(l.ifindex);
  const ourSources = new Set<string>();
  for (const a of addresses) if (ourLinks.has(a.ifindex)) ourSources.add(a.address);
  const prefixes = new Set<string>();
  for (const d of desired) {
    for (const r of d.routes) prefixes.add(`${r.dst}/${r.dstLength}`);
    for (const a of d.addresses) {
      ourSources.add(a.address);
      prefixes.add(`${networkOf(a.family, a.address, a.prefixLength)}/${a.prefixLength}`);
    }
  }
  return { tables: observedTables(desired), links: ourLinks, sources: ourSources, prefixes };
}

/** Whether a route (its family as AF_INET / AF_INET6, and the fields the filter reads) is in scope (exported for the prefilter test). */
export function inScope(scope: ForeignScope, family: number, oif: number | undefined, prefsrc: string | undefined, multipath: boolean, dst: string | undefined, dstLength: number): boolean {
  return (
    (oif !== undefined && scope.links.has(oif)) ||
    (prefsrc !== undefined && scope.sources.has(prefsrc)) ||
    multipath ||
    scope.prefixes.has(`${dst ?? (family === AF_INET ? '0.0.0.0' : '::')}/${dstLength}`)
  );
}
