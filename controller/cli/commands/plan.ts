/**
 * `tunkeeper plan -f PATH... [--netns NAME] [--json]`: what `apply` would do, changing nothing.
 * Exit 0 in sync, 2 changes pending, 1 error (invalid files, incomplete observation).
 */
import type { Command } from 'commander';
import { renderPlanJson, renderPlanText } from '../../plan/render.js';
import { createReconciler } from '../../reconcile/reconcile.js';
import { ObservationError } from '../../observe/observe.js';
import type { CommandContext, RegisterCommand } from '../context.js';
import { policyOf, readDesired, withPolicyOptions, type PolicyFlags } from '../declarations.js';

export const registerPlan: RegisterCommand = (program: Command, ctx: CommandContext) => {
  withPolicyOptions(program.command('plan').description('show what apply would change, changing nothing (exit 0 in sync, 2 changes pending, 1 error)'))
    .option('--json', 'the plan as one JSON object')
    .action(async (opts: PolicyFlags & { json?: boolean }) => {
      ctx.exitCode = 1;
      const input = await readDesired(opts, ctx);
      if (input === undefined) return;
      const reconciler = createReconciler({ policy: policyOf(opts), ...(opts.netns !== undefined ? { netns: opts.netns } : {}) });
      try {
        const { plan } = await reconciler.plan(input);
        ctx.stdout.write(opts.json === true ? renderPlanJson(plan) : renderPlanText(plan));
        ctx.exitCode = plan.actions.length === 0 ? 0 : 2;
      } catch (e) {
        if (!(e instanceof ObservationError)) throw e;
        ctx.stderr.write(`tunkeeper plan: ${e.message}\n`);
      } finally {
        reconciler.close();
      }
    });
};
