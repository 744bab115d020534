/**
 * `tunkeeper validate -f PATH...`: check declarations without touching anything. One line per
 * problem, `file:line:col: message`, on stdout (for editors and CI annotations); a summary on
 * stderr. Exit 0 when everything is valid, 1 otherwise. The agent's policy (allowed name prefixes,
 * default-route permission: the defaults, or the same --config and flags as `run`) is checked too:
 * a declaration every reconcile would refuse is not valid for that agent.
 */
import type { Command } from 'commander';
import { formatProblem } from '../../schema/problem.js';
import { loadDeclarations } from '../../sources/files-load.js';
import { loadSettings } from '../../agent/settings.js';
import type { CommandContext, RegisterCommand } from '../context.js';

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

export const registerValidate: RegisterCommand = (program: Command, ctx: CommandContext) => {
  program
    .command('validate')
    .description('check declarations; print file:line:col: message per problem (exit 0 valid, 1 invalid)')
    .requiredOption('-f, --filename <path...>', 'a file, or a directory of *.yaml/*.yml (repeatable)')
    .option('--config <file>', "the agent's settings (YAML), for its policy; flags override it")
    .option('--allowed-prefix <prefix>', 'interface name prefix the agent allows (repeatable; default tk-, tun-, tap-)', collect)
    .option('--allow-default-route', 'the agent may own default routes')
    .action(async (opts: { filename: string[]; config?: string; allowedPrefix?: string[]; allowDefaultRoute?: boolean }) => {
      const settings = await loadSettings({
        ...(opts.config !== undefined ? { configFile: opts.config } : {}),
        flags: {
          ...(opts.allowedPrefix !== undefined ? { allowedPrefixes: opts.allowedPrefix } : {}),
          ...(opts.allowDefaultRoute ? { allowDefaultRoute: true } : {}),
        },
      });
      const snapshot = await loadDeclarations(opts.filename, { policy: settings.policy });
      const lines = snapshot.problems.map(formatProblem);
      // A directory without declarations is almost always a wrong path, not an empty fleet.
      if (snapshot.files.length === 0 && snapshot.problems.length === 0) {
        lines.push(`${opts.filename.join(', ')}: no *.yaml or *.yml files found`);
      }
      for (const line of lines) ctx.stdout.write(`${line}\n`);
      const n = snapshot.devices.length;
      const files = `${snapshot.files.length} file${snapshot.files.length === 1 ? '' : 's'}`;
      if (lines.length === 0) {
        ctx.stderr.write(`valid: ${n} TunDevice${n === 1 ? '' : 's'} in ${files}\n`);
        ctx.exitCode = 0;
      } else {
        ctx.stderr.write(`invalid: ${lines.length} problem${lines.length === 1 ? '' : 's'} in ${files}\n`);
        ctx.exitCode = 1;
      }
    });
};
