/**
 * ForeignRouteCache: the foreign routes observe keeps (observe.ts, foreignRouteFilter), carried
 * from one pass to the next while the kernel cannot have changed them.
 *
 * Why: a node may carry 100k foreign routes in main. Dumping that table costs every pass ~50 ms
 * of kernel and socket time before a byte is decoded, and ~150 ms decoded (bench
 * drift-repair-p99-ms: p99 395 ms); yet only a handful of those routes can matter to plan, and
 * they almost never change while tunkeeper repairs its own state.
 *
 * What stays level-triggered: links, addresses and every route of tunkeeper's protocol are
 * re-listed by every pass; only the relevant FOREIGN routes of the observed tables may come from
 * here, and only when this can prove that nothing changed them since they were dumped:
 *
 *   - A watch socket of our own, in the same namespace, joins the groups whose notifications
 *     accompany every change that can alter a foreign route: IPv4/IPv6 routes (adds, deletes,
 *     replaces), links (a link going down or away drops its IPv4 routes WITHOUT a route
 *     notification), IPv4/IPv6 addresses (removing an address drops routes using it as source,
 *     also silently), and nexthop objects (routes using a deleted nexthop go with it). Any such
 *     notification bumps a generation counter. The only route notifications that do not are
 *     those of tunkeeper's own protocol that replace nothing (an add or delete of an owned route
 *     cannot change a foreign one; a replace might have overwritten one, so it counts) in a
 *     place every pass re-lists anyway: IPv6, or an IPv4 table the pass observes.
 *   - What is kept besides: tunkeeper's own IPv4 routes in tables the pass does not observe
 *     (leftovers that only pruning touches). Walking the main table costs the kernel ~8-20 ms
 *     per 100k routes even when nothing matches, and a dump of every table walks it twice (main
 *     and local share one trie), so a reusing pass dumps its own IPv4 routes table by table and
 *     takes those leftovers from here; any own IPv4 notification in another table invalidates.
 *   - An ENOBUFS on that socket, or any receive error, bumps it too: lost notifications may have
 *     said anything.
 *   - Notifications are queued on the socket when the kernel makes the change, in order. So
 *     sync() sends an NLMSG_NOOP asking for an ack and waits for it: the ack is queued behind
 *     every notification of every change made before it, and handled after them. The
 *     generation read at the ack is therefore exact for "everything before this moment".
 *   - A pass syncs BEFORE any dump and stores what it dumped under that generation; a later
 *     pass may reuse it only if its own sync reads the same generation (nothing relevant since
 *     the first sync, which precedes the dump), the tables are ones dumped then, and its scope
 *     (our links, our sources, declared prefixes) is within the scope that was dumped — the
 *     filter is an OR of memberships, so a narrower scope keeps a subset of the same routes.
 *   - If the ack does not come (lost to an overflow, a socket error, 1 s), nothing is reused.
 *   - Passes that must trust nothing (ReconcileInput.verify: the first, periodic ones, those
 *     after lost events, changed declarations, retries, and one per resync interval whatever
 *     woke the others) dump everything; that is the backstop for a change the kernel makes
 *     without any of the notifications above.
 *
 * Events stay wake-ups: their contents are never applied as a delta, they only decide whether
 * what was listed may be listed again.
 */
import { codec, constants, forEachMessage, openNetlinkTransport, RoutePeek, type NetlinkTransport } from '../../netlink/index.js';
import type { ObservedRoute } from '../model/observed.js';

const {
  AF_INET,
  AF_INET6,
  NLM_F_ACK,
  NLM_F_REPLACE,
  NLM_F_REQUEST,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
  NLMSG_NOOP,
  RTM_DELADDR,
  RTM_DELLINK,
  RTM_DELROUTE,
  RTM_NEWADDR,
  RTM_NEWLINK,
  RTM_NEWROUTE,
  RTNLGRP_IPV4_IFADDR,
  RTNLGRP_IPV4_ROUTE,
  RTNLGRP_IPV6_IFADDR,
  RTNLGRP_IPV6_ROUTE,
  RTNLGRP_LINK,
  RTNLGRP_NEXTHOP,
} = constants;

/** RTM_NEWNEXTHOP, RTM_DELNEXTHOP (linux/rtnetlink.h). */
const RTM_NEWNEXTHOP = 104;
const RTM_DELNEXTHOP = 105;

/** How long sync() waits for its ack before giving up on reuse. */
const SYNC_TIMEOUT_MS = 1000;

/** A foreign route as kept, with what the filter needs that ObservedRoute does not carry. */
export interface ForeignRoute {
  route: ObservedRoute;
  multipath: boolean;
}

/** What a pass considers relevant (observe.ts foreignRouteFilter): tables and the filter's sets. */
export interface ForeignScope {
  tables: readonly number[];
  links: ReadonlySet<number>;
  sources: ReadonlySet<string>;
  prefixes: ReadonlySet<string>;
}

interface Entry {
  generation: number;
  scope: ForeignScope;
  routes: ForeignRoute[];
  /** tunkeeper's own IPv4 routes in tables outside scope.tables (leftovers only prune touches). */
  ownedElsewhere: ObservedRoute[];
}

/** What a pass may reuse. */
export interface KeptRoutes {
  foreign: ForeignRoute[];
  ownedElsewhere: ObservedRoute[];
}

export interface ForeignRouteCacheStats {
  /** Passes that reused the kept routes. */
  hits: number;
  /** Passes that had to dump (invalidated, wider scope, verify, first). */
  misses: number;
  /** Notifications or overflows that invalidated what was kept. */
  invalidations: number;
}

function sameTables(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((t) => b.includes(t));
}

function within<T>(inner: Iterable<T>, outer: ReadonlySet<T>): boolean {
  for (const x of inner) if (!outer.has(x)) return false;
  return true;
}

/** Whether the NLMSG_ERROR message at off is an ack (error 0); false when it cannot be read. */
function acked(buf: Buffer, off: number, len: number, flags: number): boolean {
  try {
    return codec.decodeErrorMessage(buf, off + NLMSG_HDRLEN, off + len, flags).errno === 0;
  } catch (e) {
    if (codec.isNetlinkDecodeError(e)) return false;
    throw e;
  }
}

export class ForeignRouteCache {
  readonly #t: NetlinkTransport;
  readonly #protocol: number;
  #generation = 0;
  #seq = 0;
  #pending: { seq: number; resolve: (generation: number | undefined) => void; timer: NodeJS.Timeout } | undefined;
  #entry: Entry | undefined;
  /** The tables of the latest sync(): own route notifications there are re-listed anyway. */
  #syncTables: ReadonlySet<number> = new Set();
  #closed = false;
  /** Reads own route notifications (#ownChangeReListed); handlers run one at a time. */
  readonly #peek = new RoutePeek();
  readonly stats: ForeignRouteCacheStats = { hits: 0, misses: 0, invalidations: 0 };

  private constructor(t: NetlinkTransport, protocol: number) {
    this.#t = t;
    this.#protocol = protocol;
    t.start({
      data: (datagrams) => this.#onData(datagrams),
      overflow: () => this.#invalidate(true),
      error: () => this.#invalidate(true),
    });
    // A cache must not keep the process alive.
    t.unref?.();
  }

  /** Opens the watch socket (inside `netns` when given). `protocol`: tunkeeper's route protocol. */
  static async open(opts: { netns?: string; protocol: number; transport?: NetlinkTransport; rcvbuf?: number }): Promise<ForeignRouteCache> {
    const t =
      opts.transport ??
      (await openNetlinkTransport({
        ...(opts.netns !== undefined ? { netns: opts.netns } : {}),
        groups: [RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE, RTNLGRP_NEXTHOP],
        rcvbuf: opts.rcvbuf ?? 4 << 20,
      }));
    return new ForeignRouteCache(t, opts.protocol);
  }

  /**
   * Resolves with the generation once every notification queued before this call has been
   * handled, or undefined when that cannot be told (no ack in time, an overflow, closed).
   * `tables`: the tables the pass observes (whose own routes it dumps itself).
   */
  sync(tables: readonly number[]): Promise<number | undefined> {
    if (this.#closed) return Promise.resolve(undefined);
    this.#settle(undefined);
    this.#syncTables = new Set(tables);
    const seq = (this.#seq = (this.#seq % 0x7fffffff) + 1);
    const w = new codec.NetlinkWriter(NLMSG_HDRLEN);
    w.endMessage(w.beginMessage({ type: NLMSG_NOOP, flags: NLM_F_REQUEST | NLM_F_ACK, seq }));
    const msg = w.view();
    return new Promise((resolve) => {
      // Awaited by a pass: keeps the process alive until the ack (or the timeout) comes.
      const timer = setTimeout(() => this.#settle(undefined), SYNC_TIMEOUT_MS);
      this.#pending = { seq, resolve, timer };
      try {
        this.#t.send(msg);
      } catch {
        this.#settle(undefined);
      }
    });
  }

  /**
   * What was kept, if still exact for `scope` at `generation` (from sync()), else undefined;
   * always undefined for a verifying pass. The tables must be the same: the owned routes kept
   * are those outside them.
   */
  get(generation: number, scope: ForeignScope, verify = false): KeptRoutes | undefined {
    const e = this.#entry;
    const ok =
      !verify &&
      e !== undefined &&
      e.generation === generation &&
      generation === this.#generation &&
      sameTables(scope.tables, e.scope.tables) &&
      within(scope.links, e.scope.links) &&
      within(scope.sources, e.scope.sources) &&
      within(scope.prefixes, e.scope.prefixes);
    if (!ok) {
      this.stats.misses++;
      return undefined;
    }
    this.stats.hits++;
    return { foreign: e.routes, ownedElsewhere: e.ownedElsewhere };
  }

  /** Keeps what a dump that started after the sync that read `generation` found for `scope`. */
  put(generation: number, scope: ForeignScope, kept: KeptRoutes): void {
    this.#entry = { generation, scope, routes: kept.foreign, ownedElsewhere: kept.ownedElsewhere };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#settle(undefined);
    this.#entry = undefined;
    this.#t.close();
  }

  #settle(generation: number | undefined): void {
    const p = this.#pending;
    if (p === undefined) return;
    this.#pending = undefined;
    clearTimeout(p.timer);
    p.resolve(generation);
  }

  #invalidate(lost: boolean): void {
    this.#generation++;
    this.stats.invalidations++;
    // An ack queued behind lost notifications may itself be lost: give up on this sync.
    if (lost) this.#settle(undefined);
  }

  #onData(datagrams: Buffer[]): void {
    for (const d of datagrams) {
      const whole = forEachMessage(d, (off, len, type, flags, seq) => this.#onMessage(d, off, len, type, flags, seq));
      if (!whole) this.#invalidate(true);
    }
  }

  /**
   * A notification of an own route that replaces nothing, in a place every pass re-lists itself:
   * IPv6 (all of tunkeeper's IPv6 routes are dumped every pass), or an IPv4 table both the kept
   * entry and the latest sync observe (their own routes are dumped per table every pass).
   */
  #ownChangeReListed(buf: Buffer, off: number, len: number, type: number, flags: number): boolean {
    const peek = this.#peek;
    if (!peek.header(buf, off + NLMSG_HDRLEN, off + len)) return false;
    if (peek.protocol !== this.#protocol) return false;
    if (type === RTM_NEWROUTE && (flags & NLM_F_REPLACE) !== 0) return false;
    if (peek.family === AF_INET6) return true;
    if (peek.family !== AF_INET) return false;
    // The table may be in RTA_TABLE; a message that cannot be read for certain re-lists nothing.
    if (peek.attributes().unusual) return false;
    const table = peek.table;
    return this.#syncTables.has(table) && this.#entry?.scope.tables.includes(table) === true;
  }

  #onMessage(buf: Buffer, off: number, len: number, type: number, flags: number, seq: number): void {
    switch (type) {
      case NLMSG_ERROR: {
        const p = this.#pending;
        if (p === undefined || seq !== p.seq) return;
        this.#settle(acked(buf, off, len, flags) ? this.#generation : undefined);
        return;
      }
      case RTM_NEWLINK:
      case RTM_DELLINK:
      case RTM_NEWADDR:
      case RTM_DELADDR:
      case RTM_NEWNEXTHOP:
      case RTM_DELNEXTHOP:
        this.#invalidate(false);
        return;
      case RTM_NEWROUTE:
      case RTM_DELROUTE: {
        if (this.#ownChangeReListed(buf, off, len, type, flags)) return;
        // Any table, not only those kept: a dump of a newly observed table may be under way, and
        // its change must not be missed. Foreign churn elsewhere costs a full dump, as before.
        this.#invalidate(false);
        return;
      }
      default:
    }
  }
}
