/**
 * `tunkeeper state [--netns NAME] [--json] [--route-protocol N]`: the links, addresses and
 * routes of a namespace, marking what tunkeeper owns. Read-only.
 */
import type { Command } from 'commander';
import type { CommandContext } from '../context.js';
import { parseRouteProtocol } from '../options.js';
import { Rtnl } from '../../../netlink/index.js';
import { DEFAULT_ROUTE_PROTOCOL, stateView, type StateView } from '../state-view.js';

interface StateOptions {
  netns?: string;
  json?: boolean;
  routeProtocol: number;
}

/** Reads the namespace's state through one client (three consistent dumps). */
export async function readState(opts: { netns?: string; routeProtocol?: number }): Promise<StateView> {
  return Rtnl.with(opts.netns !== undefined ? { netns: opts.netns } : {}, async (rtnl) => {
    const links = await rtnl.links();
    const addresses = await rtnl.addresses();
    const routes = await rtnl.routes();
    return stateView({ links, addresses, routes }, opts);
  });
}

/** Columns padded to their widest cell. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

const mark = (owned: boolean) => (owned ? 'yes' : '-');

export function formatState(v: StateView): string {
  const out: string[] = [];
  out.push(`Links${v.netns !== null ? ` in ${v.netns}` : ''}\n`);
  out.push(
    table(
      ['IFINDEX', 'NAME', 'KIND', 'MTU', 'ADMIN', 'OPER', 'OWNED', 'ALIAS'],
      v.links.map((l) => [String(l.ifindex), l.ifname, l.tun?.mode ?? l.kind ?? '-', String(l.mtu ?? '-'), l.up ? 'up' : 'down', l.operstate, mark(l.owned), l.alias ?? '']),
    ),
  );
  out.push('\nAddresses\n');
  out.push(
    table(
      ['IFINDEX', 'DEV', 'ADDRESS', 'SCOPE', 'OWNED'],
      v.addresses.map((a) => [String(a.ifindex), a.ifname ?? '?', `${a.address}/${a.prefixLength}${a.peer !== undefined ? ` peer ${a.peer}` : ''}`, a.scope, mark(a.owned)]),
    ),
  );
  out.push(`\nRoutes (owned: protocol ${v.routeProtocol})\n`);
  out.push(
    table(
      ['DST', 'TABLE', 'PROTO', 'TYPE', 'VIA', 'DEV', 'METRIC', 'OWNED'],
      v.routes.map((r) => [
        r.dst,
        String(r.table),
        String(r.protocol),
        r.type,
        r.gateway ?? (r.nexthops !== undefined ? r.nexthops.map((n) => n.gateway ?? n.dev ?? n.ifindex).join(',') : '-'),
        r.dev ?? (r.ifindex !== undefined ? String(r.ifindex) : '-'),
        r.metric !== undefined ? String(r.metric) : '-',
        mark(r.owned),
      ]),
    ),
  );
  return out.join('');
}

export function registerState(program: Command, ctx: CommandContext): void {
  program
    .command('state')
    .description('show the links, addresses and routes of a namespace, marking what tunkeeper owns')
    .option('--netns <name>', 'network namespace: NAME (/run/netns/NAME) or a path')
    .option('--json', 'one JSON object with arrays links, addresses, routes')
    .option('--route-protocol <n>', 'route protocol number that marks tunkeeper routes', parseRouteProtocol, DEFAULT_ROUTE_PROTOCOL)
    .action(async (opts: StateOptions) => {
      const view = await readState({ ...(opts.netns !== undefined ? { netns: opts.netns } : {}), routeProtocol: opts.routeProtocol });
      ctx.stdout.write(opts.json === true ? `${JSON.stringify(view)}\n` : formatState(view));
      ctx.exitCode = 0;
    });
}
