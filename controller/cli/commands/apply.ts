/**
 * `tunkeeper apply -f PATH... [--netns NAME] [--route-protocol N] [--allow-prefix P]...
 * [--allow-default-route]`: converge once and report. The files are the whole desired state:
 * owned devices they no longer declare are removed. Invalid files apply nothing.
 * Exit 0 converged (every action succeeded, nothing refused or in conflict), 1 otherwise.
 */
import type { Command } from 'commander';
import { DEFAULT_POLICY, type DesiredDevice, type Policy } from '../../model/desired.js';
import { formatProblem } from '../../schema/problem.js';
import { loadDeclarations } from '../../sources/files-load.js';
import { renderPlanText } from '../../plan/render.js';
import { describeAction } from '../../apply/index.js';
import { createReconciler } from '../../reconcile/reconcile.js';
import type { CommandContext } from '../context.js';
import { parseRouteProtocol } from '../options.js';
import type { RegisterCommand } from './index.js';

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

export const registerApply: RegisterCommand = (program: Command, ctx: CommandContext) => {
  withPolicyOptions(program.command('apply').description('converge the namespace to the declarations once and report (exit 0 converged, 1 error)')).action(
    async (opts: PolicyFlags) => {
      ctx.exitCode = 1;
      const input = await readDesired(opts, ctx);
      if (input === undefined) return;
      const reconciler = createReconciler({ policy: policyOf(opts), ...(opts.netns !== undefined ? { netns: opts.netns } : {}) });
      try {
        const r = await reconciler.reconcile(input);
        if (r.plan === null) {
          ctx.stderr.write(`tunkeeper apply: ${r.error?.message ?? 'observation incomplete'}; nothing changed\n`);
          return;
        }
        if (r.plan.actions.length > 0 || r.plan.refusals.length > 0 || r.plan.conflicts.length > 0) ctx.stdout.write(renderPlanText(r.plan, { showInSync: false }));
        for (const o of r.outcomes) {
          if (o.failure === undefined) continue;
          const where = o.action.ifname !== undefined ? `${o.action.ifname}: ` : '';
          ctx.stderr.write(`${where}${describeAction(o.action)} ${o.status}: ${o.failure.code}: ${o.failure.message}\n`);
        }
        const findings = r.plan.refusals.length + r.plan.conflicts.length;
        const ok = r.outcome === 'converged' && findings === 0;
        const parts = [`${r.applied} of ${r.plan.actions.length} change${r.plan.actions.length === 1 ? '' : 's'} applied`];
        if (r.failures.length > 0) parts.push(`${r.failures.length} failed or skipped`);
        if (findings > 0) parts.push(`${findings} refused or in conflict`);
        ctx.stdout.write(`tunkeeper apply: ${ok ? 'converged' : 'not converged'}, ${parts.join(', ')}\n`);
        ctx.exitCode = ok ? 0 : 1;
      } finally {
        reconciler.close();
      }
    },
  );
};
