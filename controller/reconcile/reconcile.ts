/**
 * One reconcile: observe → plan → apply → report (the ReconcileOnce contract of
 * types.ts). Each pass trusts nothing from the previous one: it re-lists the kernel.
 *
 * Fail static: when the observation cannot be completed (a dump still interrupted after the
 * client's retries, or failing), the pass applies NOTHING and reports 'interrupted'.
 */
import { Rtnl } from '../../netlink/index.js';
import type { Policy } from '../model/desired.js';
import type { ObservedState } from '../model/observed.js';
import { observe, ObservationError } from '../observe/observe.js';
import { ForeignRouteCache } from '../observe/cache.js';
import { plan as makePlan } from '../plan/plan.js';
import type { Action, Finding, Plan } from '../plan/actions.js';
import { applyPlan, type ActionOutcome, type TunOpener } from '../apply/index.js';
import type { ActionFailure, DeviceReport, ReconcileInput, ReconcileOnce, ReconcileResult } from './types.js';

/** Compile-time check: a reconciler's reconcile is the loop's ReconcileOnce. */
const _contract: (r: Reconciler) => ReconcileOnce = (r) => r.reconcile;
void _contract;

export interface ReconcilerOptions {
  /** Network namespace name (/run/netns/NAME) or path. */
  netns?: string;
  policy: Policy;
  /** An open client to use (not closed by close()); default: one opened on first use. */
  rtnl?: Rtnl;
  /** Default: tun-native's Tun.open. */
  tun?: TunOpener;
  /**
   * Keep the relevant foreign routes between passes while provably unchanged
   * (observe/cache.ts), so a pass need not dump a 100k-route main table. For long-running
   * agents; default false (a one-shot apply or plan lists everything once).
   */
  keepForeignRoutes?: boolean;
}

/** A ReconcileResult with what only one-shot callers (the CLI) need besides. */
export interface ReconcileReport extends ReconcileResult {
  /** Why the observation could not be completed ('interrupted' passes). */
  error?: { code: string; message: string };
  /** Every action's outcome, in the plan's order. */
  outcomes: ActionOutcome[];
}

export interface Reconciler {
  /** A ReconcileOnce (its report is a ReconcileResult with more detail). */
  reconcile: (input: ReconcileInput) => Promise<ReconcileReport>;
  /** Observes and plans without applying (what `tunkeeper plan` shows). */
  plan(input: ReconcileInput): Promise<{ plan: Plan; observed: ObservedState }>;
  close(): void;
}

export function createReconciler(options: ReconcilerOptions): Reconciler {
  // The rtnetlink socket and the TUN opener must work in the same namespace. A socket handed in
  // says nothing about where it was opened, so devices would be created where this process runs
  // (the host's namespace, in a test) while links are read elsewhere: refuse the combination.
  if (options.rtnl !== undefined && options.tun === undefined && options.netns === undefined) {
    throw new Error('createReconciler: with an injected rtnl socket, give netns (where TUN devices are created) or a tun opener as well');
  }
  let own: Promise<Rtnl> | undefined;
  const client = (): Promise<Rtnl> => {
    if (options.rtnl !== undefined) return Promise.resolve(options.rtnl);
    // A failed open is forgotten, not kept: the cause (a namespace not there yet, EMFILE) may pass,
    // and a cached rejection would fail every later pass until a restart.
    own ??= Rtnl.open(options.netns !== undefined ? { netns: options.netns } : {}).catch((e: unknown) => {
      own = undefined;
      throw e;
    });
    return own;
  };

  let cache: Promise<ForeignRouteCache | undefined> | undefined;
  const foreignCache = (): Promise<ForeignRouteCache | undefined> => {
    if (options.keepForeignRoutes !== true) return Promise.resolve(undefined);
    // Without its watch socket nothing can be proven unchanged: every pass then dumps everything.
    // A failed open is tried again next pass (this one just dumps everything).
    cache ??= ForeignRouteCache.open({ protocol: options.policy.routeProtocol, ...(options.netns !== undefined ? { netns: options.netns } : {}) }).catch(() => {
      cache = undefined;
      return undefined;
    });
    return cache;
  };

  const observeAndPlan = async (input: ReconcileInput, reuse = true): Promise<{ rtnl: Rtnl; plan: Plan; observed: ObservedState }> => {
    const rtnl = await client();
    const kept = reuse ? await foreignCache() : undefined;
    const observed = await observe(rtnl, {
      policy: options.policy,
      desired: input.desired,
      ...(kept !== undefined ? { cache: kept, verify: input.verify === true } : {}),
    });
    return { rtnl, observed, plan: makePlan(input.desired, observed, options.policy, { prune: input.prune, hold: input.hold ?? [] }) };
  };

  const reconcile = async (input: ReconcileInput): Promise<ReconcileReport> => {
    let step: { rtnl: Rtnl; plan: Plan; observed: ObservedState };
    try {
      step = await observeAndPlan(input);
    } catch (e) {
      if (!(e instanceof ObservationError)) throw e;
      return { outcome: 'interrupted', plan: null, applied: 0, failures: [], devices: [], repairs: {}, outcomes: [], error: { code: e.code, message: e.message } };
    }
    const result = await applyPlan(step.plan, {
      rtnl: step.rtnl,
      observed: step.observed,
      ...(options.tun !== undefined ? { tun: options.tun } : {}),
      ...(options.netns !== undefined ? { netns: options.netns } : {}),
    });
    return {
      outcome: result.failures.length === 0 ? 'converged' : 'failed',
      plan: step.plan,
      applied: result.applied,
      failures: result.failures,
      devices: deviceReports(step.plan, result.failures, result.ifindexes),
      repairs: repairsOf(result.outcomes),
      outcomes: result.outcomes,
    };
  };

  return {
    reconcile,
    plan: async (input) => {
      const { plan, observed } = await observeAndPlan(input, false);
      return { plan, observed };
    },
    close: () => {
      const p = own;
      own = undefined;
      void p?.then((r) => r.close(), () => undefined);
      const c = cache;
      cache = undefined;
      void c?.then((k) => k?.close());
    },
  };
}

/** Per declared device: what the pass did for it. */
export function deviceReports(plan: Plan, failures: readonly ActionFailure[], ifindexes: ReadonlyMap<string, number>): DeviceReport[] {
  // Grouped by device once: filtering every list for each of hundreds of devices made this
  // quadratic and a steady source of garbage in every pass.
  const findingsOf = byDevice([...plan.refusals, ...plan.conflicts]);
  const failuresOf = byDevice(failures);
  return plan.devices.map((o) => {
    const own = (findingsOf.get(o.device) ?? []).filter((f) => f.ifname === o.ifname);
    const failed = (failuresOf.get(o.device) ?? []).filter((f) => f.action.ifname === undefined || f.action.ifname === o.ifname);
    const report: DeviceReport = { device: o.device, ifname: o.ifname, status: statusOf(o.status, own, failed), findings: own, failures: failed };
    const ifindex = ifindexes.get(o.ifname) ?? o.ifindex;
    if (ifindex !== undefined && o.status !== 'refused' && o.status !== 'conflict') report.ifindex = ifindex;
    return report;
  });
}

function byDevice<T extends { device: string }>(list: readonly T[]): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const x of list) {
    const l = out.get(x.device);
    if (l === undefined) out.set(x.device, [x]);
    else l.push(x);
  }
  return out;
}

function statusOf(planned: Plan['devices'][number]['status'], findings: Finding[], failures: ActionFailure[]): DeviceReport['status'] {
  if (planned === 'refused' || planned === 'conflict' || planned === 'held') return planned;
  if (failures.length > 0) return 'degraded';
  // Part of the declaration (an address, a route) could not be taken on.
  if (findings.some((f) => f.kind === 'conflict')) return 'conflict';
  if (findings.some((f) => f.kind === 'refused')) return 'refused';
  return 'ready';
}

/** Successful changes by kind: what drifted (or was new) and is now as declared. */
export function repairsOf(outcomes: readonly ActionOutcome[]): Record<string, number> {
  const repairs: Record<string, number> = {};
  const count = (kind: string): void => {
    repairs[kind] = (repairs[kind] ?? 0) + 1;
  };
  for (const o of outcomes) if (o.status === 'applied') for (const kind of repairKinds(o.action)) count(kind);
  return repairs;
}

function repairKinds(a: Action): string[] {
  switch (a.type) {
    case 'create-device':
    case 'recreate-device':
    case 'delete-device':
      return ['device'];
    case 'set-link': {
      const names: Record<string, string> = { mtu: 'mtu', txQueueLength: 'txqlen', macAddress: 'mac', up: 'up' };
      return Object.keys(a.set).filter((k) => a.set[k as keyof typeof a.set] !== undefined).map((k) => names[k] ?? k);
    }
    case 'set-tun-options':
      return Object.keys(a.set).filter((k) => a.set[k as keyof typeof a.set] !== undefined);
    case 'add-address':
    case 'delete-address':
      return ['address'];
    case 'replace-route':
    case 'delete-route':
      return ['route'];
  }
}
