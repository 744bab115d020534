/**
 * The human and machine forms of a plan, as `tunkeeper plan` prints them. The text reads like
 * `kubectl diff`: one block per device, a `+` / `~` / `-` line per change with its reason, the
 * foreign objects that go along with a change, and the refusals and conflicts. The JSON form has
 * stable field names (documented on PlanJson) for scripts and CI.
 */
import type { Action, DeviceOutcome, Finding, Plan, RetainedDevice, SideEffect } from './actions.js';
import { describeAddress, describeChange, describeRouteSpec } from './describe.js';

export interface RenderOptions {
  /** ANSI colours (green +, yellow ~, red -, magenta !). Default false. */
  color?: boolean;
  /** List devices that need no change. Default true. */
  showInSync?: boolean;
}

const COLORS: Record<string, string> = { '+': '32', '~': '33', '-': '31', '-/+': '31', '!': '35', '=': '2' };

interface Block {
  ifname: string;
  symbol: string;
  title: string;
  lines: string[];
}

function actionSymbol(a: Action): string {
  switch (a.type) {
    case 'create-device':
    case 'add-address':
      return '+';
    case 'recreate-device':
      return '-/+';
    case 'delete-address':
    case 'delete-route':
    case 'delete-device':
      return '-';
    case 'replace-route':
      return a.changes.length > 0 ? '~' : '+';
    case 'set-link':
      return a.ifindex === undefined ? '+' : '~';
    case 'set-tun-options':
      return '~';
  }
}

function actionSubject(a: Action): string {
  switch (a.type) {
    case 'create-device':
    case 'recreate-device': {
      const s = a.spec;
      const flags = [
        s.mode,
        'persistent',
        s.multiQueue ? 'multi-queue' : undefined,
        s.vnetHdr ? 'vnet-hdr' : undefined,
        s.packetInfo ? 'packet-info' : undefined,
        s.owner !== undefined ? `owner ${s.owner}` : undefined,
        s.group !== undefined ? `group ${s.group}` : undefined,
        `alias ${s.alias}`,
      ].filter((x) => x !== undefined);
      return `device   ${flags.join(', ')}`;
    }
    case 'set-link':
    case 'set-tun-options':
      return `link     ${a.changes.map(describeChange).join(', ')}`;
    case 'delete-address':
    case 'add-address':
      return `address  ${describeAddress(a.address)}`;
    case 'delete-route':
    case 'replace-route':
      return `route    ${describeRouteSpec(a.route)}`;
    case 'delete-device':
      return `device   ifindex ${a.ifindex}, marker tunkeeper:${a.device}`;
  }
}

function sideEffectsOf(a: Action): SideEffect[] {
  return 'sideEffects' in a ? a.sideEffects : [];
}

function effectVerb(e: SideEffect): string {
  switch (e.effect) {
    case 'removes-route':
      return 'also removes';
    case 'may-remove-route':
      return 'may also remove';
    case 'clears-route-source':
      return 'clears the source of';
  }
}

function findingLine(f: Finding): string {
  const what = f.target !== undefined ? `${f.subject} ${f.target}` : f.subject;
  return `! ${f.kind === 'refused' ? 'refused' : 'conflict'} ${what}: ${f.reason} [${f.code}]`;
}

function deviceTitle(o: DeviceOutcome): string {
  return `TunDevice "${o.device}" (${o.origin})`;
}

const STATUS_SYMBOL: Record<DeviceOutcome['status'], string> = {
  create: '+',
  recreate: '-/+',
  update: '~',
  'in-sync': '=',
  refused: '!',
  conflict: '!',
  held: '=',
};

export function renderPlanText(plan: Plan, options: RenderOptions = {}): string {
  const paint = (symbol: string, text: string): string =>
    options.color === true && COLORS[symbol] !== undefined ? `\x1b[${COLORS[symbol]}m${text}\x1b[0m` : text;
  const blocks = new Map<string, Block>();
  const blockFor = (ifname: string, symbol: string, title: string): Block => {
    let b = blocks.get(ifname);
    if (b === undefined) {
      b = { ifname, symbol, title, lines: [] };
      blocks.set(ifname, b);
    }
    return b;
  };

  for (const o of plan.devices) {
    if (o.status === 'in-sync' && options.showInSync === false) continue;
    const note = o.status === 'in-sync' ? ': in sync' : o.status === 'held' ? ": held, left as it is (it keeps being changed behind tunkeeper's back)" : '';
    blockFor(o.ifname, STATUS_SYMBOL[o.status], `${deviceTitle(o)}${note}`);
  }
  for (const a of plan.actions) {
    const ifname = a.ifname ?? '';
    const title =
      a.type === 'delete-device'
        ? `device of TunDevice "${a.device}" (no longer declared here)`
        : ifname === ''
          ? 'routes through no tunkeeper device'
          : a.device !== undefined
            ? `tunkeeper:${a.device}`
            : "tunkeeper's routes through a link it does not own";
    const b = blockFor(ifname, a.type === 'delete-device' ? '-' : '~', title);
    const symbol = actionSymbol(a);
    b.lines.push(`${paint(symbol, `${symbol.padEnd(3)} ${actionSubject(a)}`)}    # ${a.reason}`);
    for (const e of sideEffectsOf(a)) b.lines.push(`      ${paint('!', `! ${effectVerb(e)} ${e.route}`)}  (${e.why})`);
  }
  for (const f of [...plan.refusals, ...plan.conflicts]) {
    const o = plan.devices.find((d) => d.device === f.device && d.ifname === f.ifname);
    const b = blockFor(f.ifname, '!', o !== undefined ? deviceTitle(o) : `TunDevice "${f.device}"`);
    b.lines.push(paint('!', findingLine(f)));
  }
  for (const r of plan.retained) {
    const b = blockFor(r.ifname, '=', `device of TunDevice "${r.device}" (kept)`);
    b.lines.push(`=   device   ifindex ${r.ifindex}, marker tunkeeper:${r.device}    # ${r.reason}`);
  }

  const out: string[] = [summaryLine(plan)];
  const ordered = [...blocks.values()].sort((a, b) => (a.ifname < b.ifname ? -1 : a.ifname > b.ifname ? 1 : 0));
  for (const b of ordered) {
    out.push('');
    out.push(paint(b.symbol, `${b.symbol} ${b.ifname === '' ? '(no device)' : b.ifname}  ${b.title}`));
    for (const line of b.lines) out.push(`    ${line}`);
  }
  return `${out.join('\n')}\n`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export function summaryLine(plan: Plan): string {
  const parts = [
    plan.actions.length === 0 ? 'in sync, no changes' : plural(plan.actions.length, 'change'),
    plural(plan.devices.length, 'declared device'),
  ];
  if (plan.refusals.length > 0) parts.push(`${plan.refusals.length} refused`);
  if (plan.conflicts.length > 0) parts.push(plural(plan.conflicts.length, 'conflict'));
  if (!plan.prune) parts.push('pruning suspended');
  return `tunkeeper plan: ${parts.join(', ')}`;
}

/**
 * The JSON form. Field names are stable:
 * - inSync: no actions; prune: whether owned objects outside the declarations could be deleted;
 * - summary: counts of actions (by type), refusals, conflicts, devices (by status);
 * - devices[]: {device, ifname, origin, ifindex?, status};
 * - actions[]: each with `type` and `reason` plus its typed fields (controller/plan/actions.ts);
 * - refusals[] / conflicts[]: {kind, code, device, ifname, origin, subject, target?, reason};
 * - retained[]: {device, ifname, ifindex, reason}.
 */
export interface PlanJson {
  inSync: boolean;
  prune: boolean;
  summary: {
    actions: number;
    actionsByType: Record<string, number>;
    refusals: number;
    conflicts: number;
    devicesByStatus: Record<string, number>;
  };
  devices: DeviceOutcome[];
  actions: Action[];
  refusals: Finding[];
  conflicts: Finding[];
  retained: RetainedDevice[];
}

export function planToJson(plan: Plan): PlanJson {
  const count = (keys: string[]): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const k of keys) out[k] = (out[k] ?? 0) + 1;
    return out;
  };
  return {
    inSync: plan.actions.length === 0,
    prune: plan.prune,
    summary: {
      actions: plan.actions.length,
      actionsByType: count(plan.actions.map((a) => a.type)),
      refusals: plan.refusals.length,
      conflicts: plan.conflicts.length,
      devicesByStatus: count(plan.devices.map((d) => d.status)),
    },
    devices: plan.devices,
    actions: plan.actions,
    refusals: plan.refusals,
    conflicts: plan.conflicts,
    retained: plan.retained,
  };
}

export function renderPlanJson(plan: Plan): string {
  return `${JSON.stringify(planToJson(plan), null, 2)}\n`;
}
