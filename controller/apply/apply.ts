/**
 * apply: executes a plan's actions in the plan's order (controller/plan/plan.ts says why that
 * order), honouring the rules in controller/plan/actions.ts.
 *
 * - Devices are created and attached to through the TUN opener (tun-native): rtnetlink cannot
 *   create TUN/TAP devices. Each is opened, marked, made persistent and closed again: the
 *   devices outlive the process.
 * - Everything else goes through the rtnetlink client's batch API: all actions of one type in one
 *   pipelined batch (many requests per send), one result per request. Types run one after the
 *   other, so an action never starts before the steps it depends on have been answered.
 * - Each action gets its own outcome. A failure never stops another device's actions; it skips
 *   only the actions that depend on it: a device that could not be created gets nothing else; a
 *   link whose settings failed gets no addresses or routes (addresses need the MTU, routes the
 *   link up); a route is skipped when its preferred source or the address covering its gateway
 *   failed, or when its key is held by a foreign route through a device that failed to go away
 *   (replacing it would take that route over).
 * - "Already gone" is success for a delete: the goal is absence.
 */
import type { Rtnl, RtnlRequest, BatchResult, LinkMessage } from '../../netlink/index.js';
import { getLink } from '../../netlink/index.js';
import { ownerMarker, type IpFamily } from '../model/desired.js';
import type { ObservedState } from '../model/observed.js';
import type { Action, ActionType, CreateDeviceAction, Plan, RecreateDeviceAction, ReplaceRouteAction, SetTunOptionsAction, DeleteDeviceAction } from '../plan/actions.js';
import { prefixContains } from '../model/ip.js';
import { observedRouteKey, routeKey } from '../plan/route-key.js';
import type { ActionFailure } from './failure.js';
import { ApplyError, failureOf } from './failure.js';
import { addAddressRequest, deleteAddressRequest, deleteLinkRequest, deleteRouteRequest, replaceRouteRequest, setLinkRequest } from './requests.js';
import { nativeTunOpener, type TunHandle, type TunOpener } from './tun-opener.js';

export type ActionStatus = 'applied' | 'failed' | 'skipped';

export interface ActionOutcome {
  action: Action;
  status: ActionStatus;
  /** Set for 'failed' and 'skipped' (code 'Skipped': a step it depends on failed). */
  failure?: ActionFailure;
}

export interface ApplyOptions {
  rtnl: Rtnl;
  /** Default: tun-native's Tun.open. */
  tun?: TunOpener;
  /** Namespace the devices are created in (the one rtnl's socket lives in). */
  netns?: string;
  /** The snapshot the plan was made from: ifindexes by name, routes through links. */
  observed?: ObservedState;
  /** Devices created or attached to at once (default 8). */
  concurrency?: number;
}

export interface ApplyResult {
  /** One per action, in the plan's order. */
  outcomes: ActionOutcome[];
  applied: number;
  /** Failed and skipped actions, in the plan's order. */
  failures: ActionFailure[];
  /** ifindex of every link apply knows by name after the pass (created devices included). */
  ifindexes: ReadonlyMap<string, number>;
}

const ENODEV = 'ENODEV';
/** Errnos that mean the object of a delete is not there (any more). */
const GONE: Partial<Record<ActionType, readonly string[]>> = {
  'delete-route': ['ESRCH', 'ENOENT', ENODEV],
  'delete-address': ['EADDRNOTAVAIL', ENODEV],
  'delete-device': [ENODEV],
};

type Stage = 'batch' | 'tun' | 'delete-device';

function stageOf(type: ActionType): Stage {
  switch (type) {
    case 'create-device':
    case 'recreate-device':
    case 'set-tun-options':
      return 'tun';
    case 'delete-device':
      return 'delete-device';
    default:
      return 'batch';
  }
}

export async function applyPlan(plan: Plan, options: ApplyOptions): Promise<ApplyResult> {
  return new Applier(plan.actions, options).run();
}

class Applier {
  private readonly rtnl: Rtnl;
  private readonly tun: TunOpener;
  private readonly outcomes: (ActionOutcome | undefined)[];
  private readonly ifindexes = new Map<string, number>();
  /** ifname → why nothing more is done to the device. */
  private readonly deviceBlocked = new Map<string, string>();
  /** ifname → why no address or route is added to it. */
  private readonly networkBlocked = new Map<string, string>();
  /** `ifname|family|address` of addresses that could not be added, with their prefix. */
  private readonly failedAddresses = new Map<string, { family: IpFamily; address: string; prefixLength: number; why: string }[]>();
  /** Route keys held by foreign routes through links that failed to go away. */
  private readonly blockedKeys = new Map<string, string>();

  constructor(
    private readonly actions: readonly Action[],
    private readonly options: ApplyOptions,
  ) {
    this.rtnl = options.rtnl;
    this.tun = options.tun ?? nativeTunOpener;
    this.outcomes = new Array<ActionOutcome | undefined>(actions.length);
    for (const l of options.observed?.links ?? []) this.ifindexes.set(l.ifname, l.ifindex);
  }

  async run(): Promise<ApplyResult> {
    let i = 0;
    while (i < this.actions.length) {
      const type = this.actions[i]!.type;
      let j = i + 1;
      while (j < this.actions.length && this.actions[j]!.type === type) j++;
      const group = range(i, j);
      const stage = stageOf(type);
      if (stage === 'batch') await this.runBatch(group);
      else if (stage === 'tun') await this.runDevices(group);
      else await this.runDeviceDeletes(group);
      i = j;
    }
    const outcomes = this.outcomes.map((o, k) => o ?? { action: this.actions[k]!, status: 'failed' as const, failure: failureOf(this.actions[k]!, new ApplyError('EIO', 'not run')) });
    const failures: ActionFailure[] = [];
    let applied = 0;
    for (const o of outcomes) {
      if (o.status === 'applied') applied++;
      else if (o.failure !== undefined) failures.push(o.failure);
    }
    return { outcomes, applied, failures, ifindexes: this.ifindexes };
  }

  // ---- outcomes and dependencies ----

  private ok(index: number): void {
    this.outcomes[index] = { action: this.actions[index]!, status: 'applied' };
  }

  private fail(index: number, e: unknown): void {
    const action = this.actions[index]!;
    this.outcomes[index] = { action, status: 'failed', failure: failureOf(action, e) };
    this.recordDependents(action, this.outcomes[index].failure!);
  }

  private skip(index: number, why: string): void {
    const action = this.actions[index]!;
    this.outcomes[index] = { action, status: 'skipped', failure: { action, device: action.device ?? '', code: 'Skipped', message: `not attempted: ${why}` } };
  }

  private recordDependents(a: Action, f: ActionFailure): void {
    const why = `${describeAction(a)} failed (${f.code}: ${f.message})`;
    switch (a.type) {
      case 'create-device':
        this.deviceBlocked.set(a.ifname, why);
        break;
      case 'recreate-device':
        this.deviceBlocked.set(a.ifname, why);
        this.blockKeysThrough(a.ifindex, why);
        break;
      case 'set-link':
        this.networkBlocked.set(a.ifname, why);
        break;
      case 'add-address': {
        const list = this.failedAddresses.get(a.ifname) ?? [];
        list.push({ family: a.address.family, address: a.address.address, prefixLength: a.address.prefixLength, why });
        this.failedAddresses.set(a.ifname, list);
        break;
      }
      case 'delete-device':
        this.blockKeysThrough(a.ifindex, why);
        break;
      default:
        break;
    }
  }

  /** Keys of the routes through a link that may still exist: replacing them would take them over. */
  private blockKeysThrough(ifindex: number, why: string): void {
    for (const r of this.options.observed?.routes ?? []) if (r.oif === ifindex) this.blockedKeys.set(observedRouteKey(r), why);
  }

  /** The action at `index`, or undefined when an earlier failure blocks it (then it is recorded as skipped). */
  private runnable(index: number): Action | undefined {
    const a = this.actions[index]!;
    const blocked = this.blockedBecause(a);
    if (blocked === undefined) return a;
    this.skip(index, blocked);
    return undefined;
  }

  /** Why an action may not run, or undefined. */
  private blockedBecause(a: Action): string | undefined {
    if (a.type === 'delete-route' || a.type === 'delete-address' || a.type === 'delete-device') return undefined;
    const device = this.deviceBlocked.get(a.ifname);
    if (device !== undefined) return device;
    if (a.type !== 'add-address' && a.type !== 'replace-route') return undefined;
    const network = this.networkBlocked.get(a.ifname);
    if (network !== undefined) return network;
    if (a.type === 'replace-route') return this.routeBlockedBecause(a);
    return undefined;
  }

  private routeBlockedBecause(a: ReplaceRouteAction): string | undefined {
    const r = a.route;
    for (const f of this.failedAddresses.get(a.ifname) ?? []) {
      if (f.family !== r.family) continue;
      if (r.prefsrc === f.address) return f.why;
      if (r.gateway !== undefined && !r.onLink && prefixContains(r.family, f.address, f.prefixLength, r.gateway)) return f.why;
    }
    const key = routeKey({ family: r.family, table: r.table, dst: r.dst, dstLength: r.dstLength, tos: r.tos, metric: r.metric, from: r.from ?? '', fromLength: r.fromLength ?? 0 });
    return this.blockedKeys.get(key);
  }

  // ---- rtnetlink batches ----

  private async runBatch(group: number[]): Promise<void> {
    await this.resolveNames(group);
    const requests: RtnlRequest[] = [];
    const indexes: number[] = [];
    for (const index of group) {
      const a = this.runnable(index);
      if (a === undefined) continue;
      try {
        requests.push(this.requestFor(a));
        indexes.push(index);
      } catch (e) {
        this.fail(index, e);
      }
    }
    const results = await this.rtnl.batch(requests);
    results.forEach((r, k) => this.settle(indexes[k]!, r));
  }

  private settle(index: number, r: BatchResult): void {
    if (r.ok || GONE[this.actions[index]!.type]?.includes(r.error.code) === true) this.ok(index);
    else this.fail(index, r.error);
  }

  private requestFor(a: Action): RtnlRequest {
    switch (a.type) {
      case 'delete-route':
        return deleteRouteRequest(a.route);
      case 'delete-address':
        return deleteAddressRequest(a);
      case 'set-link':
        return setLinkRequest(this.ifindexOf(a.ifname, a.ifindex), a.set);
      case 'add-address':
        return addAddressRequest(a, this.ifindexOf(a.ifname, a.ifindex));
      case 'replace-route': {
        const name = a.route.ifname ?? a.ifname;
        return replaceRouteRequest(a, this.ifindexes.get(name) ?? a.route.oif);
      }
      default:
        throw new ApplyError('EINVAL', `${a.type} is not an rtnetlink request`);
    }
  }

  /** The device's index now: one created by this pass has no index in the plan. */
  private ifindexOf(ifname: string, planned: number | undefined): number {
    const ifindex = this.ifindexes.get(ifname) ?? planned;
    if (ifindex === undefined) throw new ApplyError(ENODEV, `no link named ${ifname}`);
    return ifindex;
  }

  /** Looks up the links the group names that apply knows no index of (no snapshot given). */
  private async resolveNames(group: number[]): Promise<void> {
    const names = new Set<string>();
    for (const index of group) {
      const a = this.actions[index]!;
      if (a.type === 'set-link' || a.type === 'add-address' || a.type === 'replace-route') {
        const name = a.type === 'replace-route' ? (a.route.ifname ?? a.ifname) : a.ifname;
        if (!this.ifindexes.has(name) && !(a.type === 'replace-route' && a.route.oif !== undefined)) names.add(name);
      }
    }
    if (names.size === 0) return;
    const list = [...names];
    const results = await this.rtnl.batch(list.map((ifname) => getLink({ ifname })));
    results.forEach((r, k) => {
      const link = r.ok ? (r.replies?.[0] as LinkMessage | undefined) : undefined;
      if (link !== undefined) this.ifindexes.set(list[k]!, link.ifindex);
    });
  }

  // ---- TUN devices ----

  private async runDevices(group: number[]): Promise<void> {
    const limit = Math.max(1, this.options.concurrency ?? 8);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < group.length) {
        const index = group[next++]!;
        const a = this.runnable(index);
        if (a === undefined) continue;
        try {
          if (a.type === 'create-device') await this.create(a);
          else if (a.type === 'recreate-device') await this.recreate(a);
          else if (a.type === 'set-tun-options') await this.setTunOptions(a);
          this.ok(index);
        } catch (e) {
          this.fail(index, e);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(limit, group.length) }, worker));
  }

  private async create(a: CreateDeviceAction | RecreateDeviceAction): Promise<void> {
    const s = a.spec;
    // TUNSETIFF on an existing TUN/TAP name attaches to it: never adopt a stranger.
    const existing = await this.rtnl.link({ ifname: a.ifname });
    if (existing !== undefined) throw new ApplyError('EEXIST', `a link named ${a.ifname} already exists (ifindex ${existing.ifindex}); tunkeeper does not adopt links it did not create`);
    const tun = await this.tun.open({
      name: a.ifname,
      mode: s.mode,
      multiQueue: s.multiQueue,
      vnetHdr: s.vnetHdr,
      packetInfo: s.packetInfo,
      ...(s.owner !== undefined ? { owner: s.owner } : {}),
      ...(s.group !== undefined ? { group: s.group } : {}),
      ...(this.options.netns !== undefined ? { netns: this.options.netns } : {}),
    });
    try {
      // The name could have been taken between the check and TUNSETIFF: a persistent device, or
      // a multi-queue one another process holds, is attached to instead of created.
      const link = await this.rtnl.link({ ifindex: tun.ifindex });
      const info = link?.linkInfo?.tun;
      if (link === undefined || tun.name !== a.ifname || info?.persist === true || (link.ifalias ?? '') !== '' || (info?.numQueues ?? 1) > 1) {
        throw new ApplyError('EEXIST', `${a.ifname} was created by someone else meanwhile; left alone`);
      }
      // The marker goes on before TUNSETPERSIST: should this process die in between, the device
      // dies with its file descriptor instead of staying behind unmarked.
      await this.rtnl.setLink({ ifindex: tun.ifindex, alias: s.alias });
      tun.setPersist(true);
      this.ifindexes.set(a.ifname, tun.ifindex);
    } finally {
      await tun.close();
    }
  }

  private async recreate(a: RecreateDeviceAction): Promise<void> {
    const expected = ownerMarker(a.previousOwner ?? a.device);
    await this.deleteMarkedLink(a.ifindex, expected);
    this.ifindexes.delete(a.ifname);
    await this.create(a);
  }

  /** Deletes a link only while it still carries `marker`; a link already gone is fine. */
  private async deleteMarkedLink(ifindex: number, marker: string): Promise<void> {
    const link = await this.rtnl.link({ ifindex });
    if (link === undefined) return;
    checkMarker(link, marker);
    const [r] = await this.rtnl.batch([deleteLinkRequest(ifindex)]);
    if (!r!.ok && r!.error.code !== ENODEV) throw r!.error;
  }

  private async setTunOptions(a: SetTunOptionsAction): Promise<void> {
    const { owner, group, persist } = a.set;
    if (owner === null || group === null) {
      throw new ApplyError('ENOTSUP', `clearing the ${owner === null ? 'owner' : 'group'} of ${a.ifname} (TUNSETOWNER/TUNSETGROUP -1) is not supported by tun-native; recreate the device`);
    }
    // Attaching rewrites IFF_NO_PI / IFF_VNET_HDR: attach with exactly the device's own flags.
    const tun: TunHandle = await this.tun.open({
      name: a.ifname,
      mode: a.flags.mode,
      multiQueue: a.flags.multiQueue,
      vnetHdr: a.flags.vnetHdr,
      packetInfo: a.flags.packetInfo,
      ...(this.options.netns !== undefined ? { netns: this.options.netns } : {}),
    });
    try {
      if (tun.ifindex !== a.ifindex) throw new ApplyError('ESTALE', `${a.ifname} is no longer the link planned for (ifindex ${tun.ifindex}, not ${a.ifindex})`);
      if (owner !== undefined) tun.setOwner(owner);
      if (group !== undefined) tun.setGroup(group);
      if (persist === true) tun.setPersist(true);
    } finally {
      await tun.close();
    }
  }

  // ---- deleting devices ----

  private async runDeviceDeletes(group: number[]): Promise<void> {
    const acts = group.map((i) => this.actions[i] as DeleteDeviceAction);
    const links = await this.rtnl.batch(acts.map((a) => getLink({ ifindex: a.ifindex })));
    const requests: RtnlRequest[] = [];
    const indexes: number[] = [];
    links.forEach((r, k) => {
      const index = group[k]!;
      const a = acts[k]!;
      if (!r.ok) {
        if (r.error.code === ENODEV) this.ok(index);
        else this.fail(index, r.error);
        return;
      }
      try {
        checkMarker(r.replies?.[0] as LinkMessage | undefined, ownerMarker(a.device));
      } catch (e) {
        this.fail(index, e);
        return;
      }
      requests.push(deleteLinkRequest(a.ifindex));
      indexes.push(index);
    });
    const results = await this.rtnl.batch(requests);
    results.forEach((r, k) => this.settle(indexes[k]!, r));
  }
}

/** Only a TUN/TAP link that still carries the marker is tunkeeper's to delete. */
function checkMarker(link: LinkMessage | undefined, marker: string): void {
  if (link === undefined) throw new ApplyError(ENODEV, 'the link is gone');
  if (link.linkInfo?.kind !== 'tun' || link.ifalias !== marker) {
    throw new ApplyError('ESTALE', `${link.ifname ?? `ifindex ${link.ifindex}`} no longer carries the marker ${marker} (alias ${JSON.stringify(link.ifalias ?? '')}); left alone`);
  }
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, k) => from + k);
}

export function describeAction(a: Action): string {
  switch (a.type) {
    case 'create-device':
    case 'recreate-device':
    case 'delete-device':
    case 'set-link':
    case 'set-tun-options':
      return `${a.type} ${a.ifname}`;
    case 'add-address':
    case 'delete-address':
      return `${a.type} ${a.address.address}/${a.address.prefixLength} on ${a.ifname}`;
    case 'replace-route':
    case 'delete-route':
      return `${a.type} ${a.route.dstLength === 0 ? 'default' : `${a.route.dst}/${a.route.dstLength}`} table ${a.route.table}`;
  }
}
