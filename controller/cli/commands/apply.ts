/**
 * `tunkeeper apply -f PATH... [--netns NAME] [--route-protocol N] [--allow-prefix P]...
 * [--allow-default-route]`: converge once and report. The files are the whole desired state:
 * owned devices they no longer declare are removed. Invalid files apply nothing.
 * Then the probes of every device that has some (spec.probes) run, retried until they pass or the
 * device's probe timeout. A one-shot apply has no memory of a last good version, so it rolls
 * nothing back (`tunkeeper run` does): it reports, and says so in its exit code.
 * Exit 0 converged and every probe passed; 1 not converged (or an error); 3 converged but a probe failed.
 */
import type { Command } from 'commander';
import { renderPlanText } from '../../plan/render.js';
import { describeAction } from '../../apply/index.js';
import { createReconciler } from '../../reconcile/reconcile.js';
import type { CommandContext, RegisterCommand } from '../context.js';
import { policyOf, readDesired, withPolicyOptions, type PolicyFlags } from '../declarations.js';
import { allPassed, renderProbeLines, runDeviceProbes } from '../probe-report.js';

/** Converged, but a probe of a device did not pass within its timeout. */
export const EXIT_PROBE_FAILED = 3;

export const registerApply: RegisterCommand = (program: Command, ctx: CommandContext) => {
  withPolicyOptions(program.command('apply').description('converge the namespace to the declarations once, run their probes and report (exit 0 converged and probes passed, 1 error, 3 a probe failed)')).action(
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
        if (!ok) return;
        const probes = await runDeviceProbes(input.desired, { policy: policyOf(opts), once: false, ...(opts.netns !== undefined ? { netns: opts.netns } : {}) });
        ctx.stdout.write(renderProbeLines(probes));
        if (probes.length > 0 && !allPassed(probes)) {
          ctx.stdout.write('tunkeeper apply: a probe failed; the declared state stays applied (apply keeps no last good version to roll back to; `tunkeeper run` does)\n');
          ctx.exitCode = EXIT_PROBE_FAILED;
          return;
        }
        ctx.exitCode = 0;
      } finally {
        reconciler.close();
      }
    },
  );
};
