/**
 * Running the real executable, bin/tunkeeper, as a user would: a child process with its own
 * stdout, stderr, exit code and signals.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** bin/tunkeeper of this checkout (dist/test/helpers/ → ../../../bin). */
export const TUNKEEPER_BIN = fileURLToPath(new URL('../../../bin/tunkeeper', import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** How long until() and eventually() wait before failing with the output (below jest's 120 s). */
const GUARD_MS = 100_000;

/** A running `tunkeeper ...`; its output accumulates as it comes. */
export class CliProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<CliResult>;
  #waiters: Array<() => void> = [];

  constructor(args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}) {
    this.child = spawn(process.execPath, [TUNKEEPER_BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
    this.child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      this.stdout += s;
      this.#wake();
    });
    this.child.stderr!.setEncoding('utf8').on('data', (s: string) => {
      this.stderr += s;
      this.#wake();
    });
    this.child.stdin!.end(opts.input ?? '');
    this.exited = new Promise((resolve, reject) => {
      this.child.on('error', reject);
      this.child.on('close', (code, signal) => {
        this.#wake();
        resolve({ code, signal, stdout: this.stdout, stderr: this.stderr });
      });
    });
  }

  /**
   * Resolves once pred holds for the output so far; rejects if the process ends first, or after
   * `guardMs` (a hang then fails with the output, inside jest's timeout; no speed claim).
   */
  async until(pred: (p: CliProcess) => boolean, guardMs = GUARD_MS): Promise<void> {
    let ended = false;
    void this.exited.then(() => (ended = true));
    let timedOut = false;
    const guard = setTimeout(() => {
      timedOut = true;
      this.#wake();
    }, guardMs);
    try {
      while (!pred(this)) {
        if (ended || this.child.exitCode !== null || this.child.signalCode !== null) {
          throw new Error(`tunkeeper exited (code ${this.child.exitCode}, signal ${this.child.signalCode}) before the expected output.\nstdout:\n${this.stdout}\nstderr:\n${this.stderr}`);
        }
        if (timedOut) throw new Error(`gave up after ${guardMs / 1000} s waiting for the expected output.\nstdout:\n${this.stdout.slice(-4000)}\nstderr:\n${this.stderr.slice(-4000)}`);
        await new Promise<void>((r) => this.#waiters.push(r));
      }
    } finally {
      clearTimeout(guard);
    }
  }

  /** The complete lines of stdout so far. */
  lines(): string[] {
    const all = this.stdout.split('\n');
    all.pop();
    return all;
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    this.child.kill(signal);
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }
}

/** Runs `tunkeeper ...args` to completion. */
export function runCli(args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new CliProcess(args, opts).exited;
}

/**
 * Polls until check() gives a value (not undefined); fails if the process has ended meanwhile, or
 * after `guardMs` with what it waited for and the output.
 */
export async function eventually<T>(p: CliProcess, what: string, check: () => Promise<T | undefined>, everyMs = 50, guardMs = GUARD_MS): Promise<T> {
  const deadline = Date.now() + guardMs;
  for (;;) {
    if (p.child.exitCode !== null || p.child.signalCode !== null) throw new Error(`tunkeeper exited while waiting for ${what}\n${p.stdout.slice(-4000)}\n${p.stderr.slice(-4000)}`);
    if (Date.now() > deadline) throw new Error(`gave up after ${guardMs / 1000} s waiting for ${what}\n${p.stdout.slice(-4000)}\n${p.stderr.slice(-4000)}`);
    const v = await check().catch(() => undefined);
    if (v !== undefined) return v;
    await new Promise<void>((r) => setTimeout(r, everyMs));
  }
}
