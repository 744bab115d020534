/**
 * Last-resort cleanup. Normal paths clean up in `finally` blocks; this covers what they cannot: a
 * SIGINT/SIGTERM/SIGHUP in the middle of a benchmark, or the process exiting with work still
 * registered. Actions run newest first, so child processes are killed (and reaped: a killed child
 * must not linger as a zombie) before the namespace they live in is deleted. On a signal, an
 * action's promise is awaited (bounded); from the 'exit' event only the synchronous part runs.
 */

type Action = () => void | Promise<unknown>;

const actions: Action[] = [];
let installed = false;
let aborting = false;

/** Registers an action; the returned function unregisters it once the normal path has cleaned up. */
export function onAbort(action: Action): () => void {
  actions.push(action);
  return () => {
    const i = actions.lastIndexOf(action);
    if (i >= 0) actions.splice(i, 1);
  };
}

function takeNewest(): Action | undefined {
  return actions.pop();
}

/** Runs every action, awaiting each for at most waitMs. */
export async function runAbortActions(waitMs = 2000): Promise<void> {
  for (let action = takeNewest(); action; action = takeNewest()) {
    try {
      const pending = action();
      if (pending) await Promise.race([pending, new Promise((r) => setTimeout(r, waitMs).unref())]);
    } catch {
      // Best effort: one failed action must not keep the others from running.
    }
  }
}

function runAbortActionsSync(): void {
  for (let action = takeNewest(); action; action = takeNewest()) {
    try {
      const pending = action();
      if (pending) pending.catch(() => undefined);
    } catch {
      // Best effort, as above.
    }
  }
}

export function installAbortHandlers(log: (msg: string) => void): void {
  if (installed) return;
  installed = true;
  const codes: Record<string, number> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };
  for (const [signal, code] of Object.entries(codes)) {
    process.on(signal, () => {
      if (aborting) return; // a second Ctrl-C while cleaning up: cleanup is already under way
      aborting = true;
      log(`bench: ${signal}: stopping, removing namespaces`);
      void runAbortActions().finally(() => process.exit(code));
    });
  }
  process.on('exit', runAbortActionsSync);
}
