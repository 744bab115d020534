/**
 * Last-resort cleanup. Normal paths clean up in `finally` blocks; this covers what they cannot: a
 * SIGINT/SIGTERM/SIGHUP in the middle of a benchmark, or the process exiting with work still
 * registered. Actions are synchronous (they run from a signal handler or the 'exit' event) and run
 * newest first, so child processes die before the namespace they live in is deleted.
 */

type Action = () => void;

const actions: Action[] = [];
let installed = false;

/** Registers an action; the returned function unregisters it once the normal path has cleaned up. */
export function onAbort(action: Action): () => void {
  actions.push(action);
  return () => {
    const i = actions.lastIndexOf(action);
    if (i >= 0) actions.splice(i, 1);
  };
}

export function runAbortActions(): void {
  while (actions.length > 0) {
    const action = actions.pop()!;
    try {
      action();
    } catch {
      // Best effort: one failed action must not keep the others from running.
    }
  }
}

export function installAbortHandlers(log: (msg: string) => void): void {
  if (installed) return;
  installed = true;
  const codes: Record<string, number> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };
  for (const [signal, code] of Object.entries(codes)) {
    process.on(signal, () => {
      log(`bench: ${signal}: stopping, removing namespaces`);
      runAbortActions();
      process.exit(code);
    });
  }
  process.on('exit', runAbortActions);
}
