/** What a command needs from its surroundings; tests pass their own streams. */
export interface CommandContext {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** A command sets this to report its result (e.g. plan: 0 in sync, 2 changes pending). */
  exitCode: number;
}
