/**
 * What `apply` and `plan` share: the flags that say what to read, in which namespace, under which
 * policy, and reading the declarations all-or-nothing.
 */
import type { Command } from 'commander';
import { DEFAULT_POLICY, type DesiredDevice, type Policy } from '../model/desired.js';
import { formatProblem } from '../schema/problem.js';
import { loadDeclarations } from '../sources/files-load.js';
import type { CommandContext } from './context.js';
import { parseRouteProtocol } from './options.js';

export interface PolicyFlags {
  filename: string[];
  netns?: string;
  routeProtocol?: number;
  allowPrefix?: string[];
  allowDefaultRoute?: boolean;
}

function collect(value: string, previous: string[] | undefined): string[] {
  if (value === '') throw new Error('--allow-prefix must not be empty');
  return [...(previous ?? []), value];
}

/** The options apply and plan share: what to read, where, and the agent's policy. */
export function withPolicyOptions(cmd: Command): Command {
  return cmd
    .requiredOption('-f, --filename <path...>', 'a file, or a directory of *.yaml/*.yml (repeatable)')
    .option('--netns <name>', 'network namespace: NAME (/run/netns/NAME) or a path')
    .option('--route-protocol <n>', `rtm_protocol that marks tunkeeper's routes (default ${DEFAULT_POLICY.routeProtocol})`, parseRouteProtocol)
    .option('--allow-prefix <prefix>', `an allowed ifname prefix, repeatable (default ${DEFAULT_POLICY.allowedPrefixes.join(', ')})`, collect)
    .option('--allow-default-route', 'allow owning default routes');
}

export function policyOf(opts: PolicyFlags): Policy {
  return {
    allowedPrefixes: opts.allowPrefix ?? [...DEFAULT_POLICY.allowedPrefixes],
    allowDefaultRoute: opts.allowDefaultRoute === true,
    routeProtocol: opts.routeProtocol ?? DEFAULT_POLICY.routeProtocol,
  };
}

/**
 * Reads the declarations; undefined (after printing every problem as file:line:col: message) when
 * they are not all valid: a one-shot command never acts on part of the files.
 */
export async function readDesired(opts: PolicyFlags, ctx: CommandContext): Promise<{ desired: DesiredDevice[]; prune: boolean } | undefined> {
  const snapshot = await loadDeclarations(opts.filename);
  const lines = snapshot.problems.map(formatProblem);
  if (snapshot.files.length === 0 && lines.length === 0) lines.push(`${opts.filename.join(', ')}: no *.yaml or *.yml files found`);
  if (lines.length > 0) {
    for (const line of lines) ctx.stderr.write(`${line}\n`);
    ctx.stderr.write(`invalid: ${lines.length} problem${lines.length === 1 ? '' : 's'}; nothing changed\n`);
    return undefined;
  }
  return { desired: snapshot.devices, prune: snapshot.complete };
}
