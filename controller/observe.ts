/**
 * observe: one snapshot of what tunkeeper may own, from complete, strict-checked rtnetlink dumps.
 *
 * Scope (what plan needs, and no more of the routing table than that):
 *   - every link, with its tun attributes (ownership is read from the links themselves);
 *   - every address (plan checks a preferred source is held by some link, and which routes an
 *     address removal takes along);
 *   - every route of tunkeeper's protocol, in any table;
 *   - every route of the main table and of each table a desired route uses, whatever its
 *     protocol: a declared route whose key a foreign route holds is a conflict, never a replace,
 *     and the main table carries the foreign routes a change of ours takes along. Per-table dumps
 *     are cheap: a strict-checked kernel walks only the table asked for.
 *
 * Fail static: a dump that stayed interrupted (NLM_F_DUMP_INTR) through the client's retries, or
 * failed in any other way, yields no snapshot at all — ObservationError — never a partial one.
 */
import type { Rtnl, RouteMessage } from '../netlink/index.js';
import { NetlinkDumpInterruptedError } from '../netlink/index.js';
import type { DesiredDevice, Policy } from './desired.js';
import { RT_TABLE_MAIN, type ObservedAddress, type ObservedLink, type ObservedRoute, type ObservedState } from './observed.js';
import { toObservedAddress, toObservedLink, toObservedRoute } from './observe-convert.js';

export interface ObserveOptions {
  policy: Pick<Policy, 'routeProtocol'>;
  /** The desired devices: their route tables are dumped in full (conflict detection). */
  desired?: readonly DesiredDevice[];
}

/** Why no snapshot could be taken; `interrupted` when a dump kept being interrupted. */
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
  try {
    // Queued together: the client runs dumps one after another on its socket.
    const tables = observedTables(options.desired);
    const [linkMsgs, addrMsgs, owned, ...perTable] = await Promise.all([
      rtnl.links(),
      rtnl.addresses(),
      rtnl.routes({ protocol }),
      ...tables.map((table) => rtnl.routes({ table })),
    ]);
    const links: ObservedLink[] = [];
    for (const m of linkMsgs) {
      const l = toObservedLink(m);
      if (l !== undefined) links.push(l);
    }
    const addresses: ObservedAddress[] = [];
    for (const m of addrMsgs) {
      const a = toObservedAddress(m);
      if (a !== undefined) addresses.push(a);
    }
    const routes: ObservedRoute[] = [];
    const add = (m: RouteMessage): void => {
      const r = toObservedRoute(m);
      if (r !== undefined) routes.push(r);
    };
    for (const m of owned) add(m);
    // Owned routes of these tables are in the protocol dump already.
    for (const list of perTable) for (const m of list) if (m.protocol !== protocol) add(m);
    return { links, addresses, routes };
  } catch (e) {
    throw new ObservationError(e);
  }
}
