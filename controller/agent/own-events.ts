/**
 * Which kernel events concern tunkeeper's own state: the loop re-arms its trailing edge for those
 * (controller/loop/loop.ts, Trailing edge), so a drift of ours made during foreign churn is
 * repaired once the kernel goes quiet rather than at the end of the churn gap.
 *
 * Ownership itself is decided by controller/model/ownership.ts; this only applies it to a
 * notification, plus the devices the agent knows as its own from its latest pass: an event
 * naming one of their ifindexes or ifnames (a changed MTU, a deleted address) is about them even
 * though the message may not carry the marker. This is a hint, never a decision: a miss only
 * means the repair waits for the gap, as before. It runs for every event of a storm, so it is
 * O(1) per event and allocates nothing for routes and addresses.
 */
import type { MonitorEvent } from '../../netlink/index.js';
import type { Policy } from '../model/desired.js';
import { isOwnedRoute, markerOwner } from '../model/ownership.js';
import type { PassReport } from '../loop/index.js';

export class OwnEvents {
  readonly #policy: Pick<Policy, 'routeProtocol'>;
  #ifindexes = new Set<number>();
  #ifnames = new Set<string>();

  constructor(policy: Pick<Policy, 'routeProtocol'>) {
    this.#policy = policy;
  }

  /**
   * Learns the devices of a finished pass: those it reported (not refused or in conflict), with
   * their ifindexes; after a pass that threw, the ifnames it was given.
   */
  passFinished(report: Pick<PassReport, 'input' | 'result'>): void {
    const ifnames = new Set<string>();
    for (const d of report.input.desired) ifnames.add(d.ifname);
    if (report.result === undefined) {
      // No observation: keep the ifindexes known so far.
      this.#ifnames = ifnames;
      return;
    }
    // A refused or conflicting device's ifname may well be someone else's device.
    ifnames.clear();
    const ifindexes = new Set<number>();
    for (const d of report.result.devices) {
      if (d.status === 'refused' || d.status === 'conflict') continue;
      ifnames.add(d.ifname);
      if (d.ifindex !== undefined) ifindexes.add(d.ifindex);
    }
    this.#ifnames = ifnames;
    this.#ifindexes = ifindexes;
  }

  /** Whether a kernel event is about tunkeeper's own state (resync-needed never is: it names nothing). */
  concerns(e: MonitorEvent): boolean {
    switch (e.type) {
      case 'route':
        return isOwnedRoute(e, this.#policy);
      case 'address':
        return this.#ifindexes.has(e.ifindex);
      case 'link':
        return (
          this.#ifindexes.has(e.ifindex) ||
          (e.ifname !== undefined && this.#ifnames.has(e.ifname)) ||
          (e.ifalias !== undefined && markerOwner({ kind: e.linkInfo?.kind, alias: e.ifalias }) !== undefined)
        );
      default:
        return false;
    }
  }
}
