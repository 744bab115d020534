import type { Command } from 'commander';

/** What a command needs from its surroundings; tests pass their own streams. */
export interface CommandContext {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** A command sets this to report its result (e.g. plan: 0 in sync, 2 changes pending). */
  exitCode: number;
}

/**
 * What each module under ./commands exports: adds its command to the program. Only
 * commands/index.ts composes them, so a command never depends on another one.
 */
export type RegisterCommand = (program: Command, ctx: CommandContext) => void;
