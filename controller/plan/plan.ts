/**
 * plan: the pure diff at the heart of the reconciler. Given the desired devices, the observed
 * kernel state and the agent's policy, it returns the ordered actions that make the part of the
 * kernel tunkeeper owns equal the desired state, and the refusals and conflicts that keep it from
 * doing more. No I/O, no clock, no randomness: the same inputs give the same plan, in the same
 * order.
 *
 * Phases, each in its own file, each reading only what earlier ones decided (context.ts holds
 * what they share):
 *   1. claims          claims.ts          which declared device may claim which link and which
 *                                         addresses: created, managed, recreated, held, or refused
 *                                         or in conflict; which owned links vanish, are pruned, or
 *                                         are left alone
 *   2. kernel effects  kernel-effects.ts  what the kernel will remove by itself along with the
 *                                         actions (listed there), so later phases re-assert it;
 *                                         also describes each action's `sideEffects`
 *   3. addresses       addresses.ts       delete unwanted addresses, add declared ones
 *   4. devices         devices.ts         create, recreate, set link attributes and TUN options,
 *                                         delete owned devices no declaration wants
 *   5. routes          routes.ts          which declared route may claim its key; delete stale
 *                                         owned routes, replace declared ones
 * Then the side effects are described (every route decision is made by then) and the actions are
 * put in action order.
 *
 * Order of the actions (ACTION_ORDER in actions.ts; each step only depends on earlier ones):
 *   - delete stale owned routes       no prerequisites; done first so that nothing later (an
 *   - delete unwanted addresses       address removal, a link going down) removes them first and
 *                                     turns the delete into an error, and so that an unwanted
 *                                     IPv6 address is gone before a link goes down whatever
 *                                     net.ipv6.conf.*.keep_addr_on_down says. IPv4 secondaries go
 *                                     before their primary (with promote_secondaries=0 deleting
 *                                     the primary deletes them).
 *   - create devices                  TUN, persistent, marker, owner/group, flags
 *   - recreate devices                a field fixed at creation differs (delete + create)
 *   - set link attributes             mtu, txqlen, MAC, up/down; owner/group/persist via TUN attach
 *   - add addresses                   after the link settings: an MTU below 1280 removes IPv6,
 *                                     going down removes IPv6 addresses
 *   - delete owned devices no declaration wants; their addresses and routes go with them, so no
 *     separate deletes are emitted for those. Before the routes: a foreign route through such a
 *     device would otherwise hold a key a declared route needs until the next reconcile (and
 *     replacing it while the device still exists would take a foreign route over).
 *   - replace routes                  need the device up and the preferred source present;
 *                                     device routes before gateway routes (a gateway may be
 *                                     reachable only through one)
 *
 * Route identity is the kernel's (route-key.ts). A declared route whose key is held by a route plan
 * does not manage (another protocol, the kernel's connected route for an address, an owned route
 * it leaves alone) is a conflict, never a replace. When several owned routes share a key they are
 * all deleted (most specific first) and the declared one added: RTM_DELROUTE removes the first
 * route that has the attributes given, so one of them cannot be singled out.
 *
 * The kernel changes owned objects as side effects of some of these steps (kernel-effects.ts
 * lists them); plan predicts that and re-asserts (idempotent add/replace) what may have been
 * removed, so one apply converges. Routes plan does not manage (foreign ones, and owned ones it
 * leaves alone) that the kernel removes along with such a step are listed in the action's
 * `sideEffects`: plan never targets them, but says what goes with a change.
 *
 * Held devices (`hold`: the loop holds a device that keeps being changed behind tunkeeper's back)
 * get no action at all in this plan, and their status says 'held' (or 'in-sync' when they need
 * nothing, found by planning without the hold): their link, addresses and
 * routes are left as they are, like those of a device in conflict — other declarations cannot
 * take over their route keys, and an owned link still marked with a held device's name is kept —
 * but they stay declared, so nothing of theirs is pruned.
 *
 * Fail static: with `prune: false` (a source has not completed its first sync, the API server is
 * unreachable, a file failed to parse: the desired state may be partial) nothing owned that lies
 * outside the desired devices is deleted or taken over: no owned device without a declaration is
 * deleted, no owned route through a link other than a desired device's is deleted or replaced.
 * Within a declared device its spec is authoritative either way.
 */
import type { DesiredDevice, Policy } from '../model/desired.js';
import type { ObservedLink, ObservedState } from '../model/observed.js';
import type { ActionType, DeviceOutcome, Finding, Plan } from './actions.js';
import { ACTION_ORDER } from './actions.js';
import { planAddresses } from './addresses.js';
import { claim } from './claims.js';
import { compareStrings, newContext, type Managed, type PlanContext } from './context.js';
import { planDevices } from './devices.js';
import { predictKernelEffects } from './kernel-effects.js';
import { planRoutes } from './routes.js';

export interface PlanOptions {
  /**
   * Whether owned objects outside the desired devices may be deleted. Pass false while the
   * desired state may be partial (see the module comment). Default true.
   */
  prune?: boolean;
  /** TunDevice names left as they are in this plan: no action for them (see the module comment). */
  hold?: Iterable<string>;
}

export function plan(desired: DesiredDevice[], observed: ObservedState, policy: Policy, options: PlanOptions = {}): Plan {
  const prune = options.prune ?? true;
  const held = new Set(options.hold ?? []);
  const p = run(newContext(desired, observed, policy, prune, held));
  if (held.size === 0 || !p.devices.some((o) => o.status === 'held')) return p;
  // Only drift is held back: a held device that needs nothing is reported in sync, as it is.
  const free = run(newContext(desired, observed, policy, prune, new Set()));
  const drifted = new Set(free.actions.map((a) => a.device));
  p.devices = p.devices.map((o) => {
    if (o.status !== 'held' || drifted.has(o.device)) return o;
    const f = free.devices.find((x) => x.device === o.device && x.ifname === o.ifname);
    return f?.status === 'in-sync' ? f : o;
  });
  return p;
}

/** The phases, in order (see the module comment). */
function run(ctx: PlanContext): Plan {
  claim(ctx);
  predictKernelEffects(ctx);
  planAddresses(ctx);
  planDevices(ctx);
  planRoutes(ctx);
  for (const p of ctx.pendingSideEffects) p.target.push(...p.compute());
  return outcome(ctx);
}

const PHASE: Record<ActionType, number> = Object.fromEntries(ACTION_ORDER.map((t, i) => [t, i])) as Record<ActionType, number>;

/** The actions in action order, each declared device's status, and the findings sorted by device. */
function outcome(ctx: PlanContext): Plan {
  const sorted = [...ctx.emitted].sort(
    (a, b) => PHASE[a.action.type] - PHASE[b.action.type] || compareStrings(a.ifname, b.ifname) || compareStrings(a.sub, b.sub),
  );
  const actions = sorted.map((e) => e.action);
  const touched = new Set(actions.map((a) => `${a.device ?? ''}\n${a.ifname ?? ''}`));
  const managedOf = new Map(ctx.managed.map((m) => [m.d, m]));
  const devices: DeviceOutcome[] = ctx.devices.map((d) => {
    const base = { device: d.name, ifname: d.ifname, origin: d.origin };
    if (ctx.excluded.has(d)) {
      const f = [...ctx.refusals, ...ctx.conflicts].find((x) => x.device === d.name && x.ifname === d.ifname && x.subject === 'device');
      return { ...base, status: f?.kind === 'refused' ? 'refused' : 'conflict' };
    }
    const held = ctx.heldDevices.find((h) => h.d === d);
    if (held !== undefined) return { ...base, ...(held.link !== undefined ? { ifindex: held.link.ifindex } : {}), status: 'held' };
    const m = managedOf.get(d) as Managed;
    if (m.mode === 'create') return { ...base, status: 'create' };
    const ifindex = (m.link as ObservedLink).ifindex;
    if (m.mode === 'recreate') return { ...base, ifindex, status: 'recreate' };
    return { ...base, ifindex, status: touched.has(`${d.name}\n${d.ifname}`) ? 'update' : 'in-sync' };
  });
  const byDevice = (a: Finding, b: Finding): number =>
    compareStrings(a.ifname, b.ifname) || compareStrings(a.device, b.device) || compareStrings(a.subject, b.subject) || compareStrings(a.target ?? '', b.target ?? '');
  return {
    actions,
    refusals: [...ctx.refusals].sort(byDevice),
    conflicts: [...ctx.conflicts].sort(byDevice),
    devices,
    retained: [...ctx.retained].sort((a, b) => compareStrings(a.ifname, b.ifname)),
    prune: ctx.prune,
  };
}
