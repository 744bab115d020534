/**
 * `tunkeeper plan -f PATH... [--netns NAME] [--json]`: what `apply` would do, changing nothing.
 * Devices with probes are probed once each, as the kernel is now (before any change: a probe of
 * a device with changes pending tells what the current state does). Probes change nothing and do
 * not change the exit code.
 * Exit 0 in sync, 2 changes pending, 1 error (invalid files, incomplete observation).
 */
import type { Command } from 'commander';
import { planToJson, renderPlanText } from '../../plan/render.js';
import { createReconciler } from '../../reconcile/reconcile.js';
import { ObservationError } from '../../observe/observe.js';
import type { CommandContext, RegisterCommand } from '../context.js';
import { policyOf, readDesired, withPolicyOptions, type PolicyFlags } from '../declarations.js';
import { renderProbeLines, runDeviceProbes } from '../probe-report.js';

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
        const probes = await runDeviceProbes(input.desired, { policy: policyOf(opts), once: true, ...(opts.netns !== undefined ? { netns: opts.netns } : {}) });
        if (opts.json === true) {
          const json = { ...planToJson(plan), probes: probes.flatMap((d) => d.results.map((r) => ({ device: d.device, ifname: d.ifname, probe: r.probe, passed: r.passed, message: r.message }))) };
          ctx.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
        } else {
          ctx.stdout.write(renderPlanText(plan));
          if (probes.length > 0) ctx.stdout.write(`probes, as the kernel answers now:\n${renderProbeLines(probes).trimEnd().replace(/^/gm, '  ')}\n`);
        }
        ctx.exitCode = plan.actions.length === 0 ? 0 : 2;
      } catch (e) {
        if (!(e instanceof ObservationError)) throw e;
        ctx.stderr.write(`tunkeeper plan: ${e.message}\n`);
      } finally {
        reconciler.close();
      }
    });
};
