/**
 * `tunkeeper` command line (contract: DESIGN.md, "The command line"). Each command lives in its
 * own module under ./commands and registers itself on the program; main() returns the exit code
 * so tests can drive the CLI in-process as well as through bin/tunkeeper.
 */
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import type { CommandContext } from './context.js';
import { commands } from './commands/index.js';

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export async function main(argv: string[], ctx: Partial<CommandContext> = {}): Promise<number> {
  const context: CommandContext = {
    stdout: ctx.stdout ?? process.stdout,
    stderr: ctx.stderr ?? process.stderr,
    exitCode: 0,
  };
  const program = new Command('tunkeeper')
    .description("keeps a node's TUN/TAP devices, addresses and routes exactly as declared")
    .version(version())
    .exitOverride()
    .configureOutput({
      writeOut: (s) => context.stdout.write(s),
      writeErr: (s) => context.stderr.write(s),
    });
  for (const register of commands) register(program, context);
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end through here with exit code 0.
      return e.exitCode;
    }
    context.stderr.write(`tunkeeper: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
  return context.exitCode;
}
