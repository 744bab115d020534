/**
 * `tunkeeper validate -f PATH...`: check declarations without touching anything. One line per
 * problem, `file:line:col: message`, on stdout (for editors and CI annotations); a summary on
 * stderr. Exit 0 when everything is valid, 1 otherwise.
 */
import type { Command } from 'commander';
import { formatProblem } from '../../schema/problem.js';
import { loadDeclarations } from '../../sources/files-load.js';
import type { CommandContext } from '../context.js';
import type { RegisterCommand } from './index.js';

export const registerValidate: RegisterCommand = (program: Command, ctx: CommandContext) => {
  program
    .command('validate')
    .description('check declarations; print file:line:col: message per problem (exit 0 valid, 1 invalid)')
    .requiredOption('-f, --filename <path...>', 'a file, or a directory of *.yaml/*.yml (repeatable)')
    .action(async (opts: { filename: string[] }) => {
      const snapshot = await loadDeclarations(opts.filename);
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
