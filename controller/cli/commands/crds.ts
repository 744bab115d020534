/**
 * `tunkeeper crds`: the CustomResourceDefinitions, generated from the schema, as one
 * multi-document YAML stream (`tunkeeper crds | kubectl apply -f -`). With --output-dir, one file
 * per CRD, which is how crds/ in the repository is regenerated.
 */
import type { Command } from 'commander';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crdFiles, renderCrds } from '../../schema/crd.js';
import type { CommandContext, RegisterCommand } from '../context.js';

export const registerCrds: RegisterCommand = (program: Command, ctx: CommandContext) => {
  program
    .command('crds')
    .description('print the CRD YAML (TunDevice, TunNodeState)')
    .option('--output-dir <dir>', 'write one <name>.yaml per CRD into this directory instead of printing')
    .action(async (opts: { outputDir?: string }) => {
      if (opts.outputDir === undefined) {
        ctx.stdout.write(renderCrds());
      } else {
        await mkdir(opts.outputDir, { recursive: true });
        for (const f of crdFiles()) {
          const path = join(opts.outputDir, f.name);
          await writeFile(path, f.text);
          ctx.stderr.write(`wrote ${path}\n`);
        }
      }
      ctx.exitCode = 0;
    });
};
