/**
 * The host's own network namespace as `ip -j` shows it: links, addresses, routes (every table)
 * and rules, both families. The runtime tier takes one before and one after and they must be
 * equal: the container runtime, the agent and the harness only ever touched namespaces the tests
 * made. Counters and address lifetimes change by themselves and are left out.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

async function ipJson(args: string[]): Promise<unknown[]> {
  const { stdout } = await run('ip', ['-j', ...args], { maxBuffer: 64 << 20 });
  return stdout.trim() === '' ? [] : (JSON.parse(stdout) as unknown[]);
}

/** Routes learned from router advertisements count down their expiry by themselves. */
function withoutExpiry(routes: unknown[]): unknown[] {
  return (routes as Array<Record<string, unknown>>).map(({ expires: _e, ...rest }) => rest);
}

function withoutLifetimes(addrs: unknown[]): unknown[] {
  return (addrs as Array<{ addr_info?: Array<Record<string, unknown>> }>).map((a) => ({
    ...a,
    addr_info: (a.addr_info ?? []).map(({ valid_life_time: _v, preferred_life_time: _p, ...rest }) => rest),
  }));
}

export interface HostSnapshot {
  links: unknown[];
  addresses: unknown[];
  routes4: unknown[];
  routes6: unknown[];
  rules4: unknown[];
  rules6: unknown[];
}

export async function hostSnapshot(): Promise<HostSnapshot> {
  return {
    links: await ipJson(['link', 'show']),
    addresses: withoutLifetimes(await ipJson(['addr', 'show'])),
    routes4: withoutExpiry(await ipJson(['-4', 'route', 'show', 'table', 'all'])),
    routes6: withoutExpiry(await ipJson(['-6', 'route', 'show', 'table', 'all'])),
    rules4: await ipJson(['-4', 'rule', 'show']),
    rules6: await ipJson(['-6', 'rule', 'show']),
  };
}
