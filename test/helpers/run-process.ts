/** Runs a program to its end and collects what it printed (kubectl, helm, podman in the tests). */
import { spawn } from 'node:child_process';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  /** Written to the program's stdin, which is then closed. */
  input?: string;
  /**
   * A bound for a program that may wait on something else (kubectl --wait, helm's CRD wait): past
   * it the program is killed and the promise rejects with the command and what it printed so far,
   * so a hang is a failure that names its step instead of a silent test timeout.
   */
  timeoutMs?: number;
}

/**
 * The bound of a tool the tests run (kubectl, helm, podman) unless a call gives its own: inside
 * jest's 120 s test timeout, so a tool that hangs (a `kubectl delete --wait` waits a week by
 * default, a stuck `podman stop`) fails with its command and output rather than a bare timeout. A
 * call that waits longer on purpose (`kubectl wait --timeout=120s`) passes a bound above its own.
 */
export const TOOL_TIMEOUT_MS = 100_000;

/** A signal ends the program with code 128, as a shell would say. */
export function runProcess(bin: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(bin, args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, opts.timeoutMs);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (!timedOut) {
        resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
        return;
      }
      const tail = (s: string) => (s.trim() === '' ? '(nothing)' : s.trimEnd().split('\n').slice(-40).join('\n'));
      reject(
        new Error(
          `${[bin, ...args].join(' ')} did not finish within ${opts.timeoutMs! / 1000} s (killed after ${((Date.now() - started) / 1000).toFixed(1)} s)\n` +
            `stdout so far:\n${tail(stdout)}\nstderr so far:\n${tail(stderr)}`,
        ),
      );
    });
    // A program may end without reading its stdin (`true`, or kubectl refusing its arguments): the
    // EPIPE that gives is no error of the run, whose exit code says what happened. Unhandled, it
    // would surface as an uncaught exception in whichever test was running.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}
