/**
 * Child processes of the bench (subjects, traffic generators): started with pipes, read line by
 * line, stopped by pid. Every child is registered for the abort cleanup until it has exited.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { onAbort } from './cleanup.js';

export interface ProcExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ProcOptions {
  /** Start the child in a new session (setsid). */
  newSession?: boolean;
}

export class Proc {
  readonly pid: number;
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: string[] = [];
  private waiter: (() => void) | null = null;
  private stderr = '';
  private exit: ProcExit | null = null;
  private readonly exited: Promise<ProcExit>;

  private constructor(
    readonly label: string,
    cmd: string,
    args: readonly string[],
    opts: ProcOptions,
  ) {
    // detached: a session (and so a scheduler autogroup) of its own; it no longer gets the
    // terminal's Ctrl-C, which is why every child is registered for the abort cleanup below.
    this.child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: opts.newSession ?? false });
    if (this.child.pid === undefined) throw new Error(`${label}: could not start ${cmd}`);
    this.pid = this.child.pid;
    const unregister = onAbort(() => {
      if (this.exit !== null) return;
      process.kill(this.pid, 'SIGKILL');
      return this.exited;
    });
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      this.lines.push(line);
      this.wake();
    });
    this.child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-8192);
    });
    // The subject may exit before reading everything we send it; that is not our error.
    this.child.stdin.on('error', () => undefined);
    this.exited = new Promise((resolve, reject) => {
      this.child.once('error', reject);
      this.child.once('close', (code, signal) => {
        this.exit = { code, signal };
        unregister();
        this.wake();
        resolve(this.exit);
      });
    });
    this.exited.catch(() => undefined);
  }

  static start(label: string, cmd: string, args: readonly string[], opts: ProcOptions = {}): Proc {
    return new Proc(label, cmd, args, opts);
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  private failure(what: string): Error {
    const how = this.exit ? (this.exit.signal ? `killed by ${this.exit.signal}` : `exit code ${this.exit.code}`) : 'still running';
    const err = this.stderr.trim();
    return new Error(`${this.label} (pid ${this.pid}): ${what} (${how})${err ? `: ${err}` : ''}`);
  }

  /** The next line of stdout; rejects if the process ends first or nothing comes within timeoutMs. */
  async nextLine(timeoutMs: number, what = 'a line'): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.lines.shift();
      if (line !== undefined) return line;
      if (this.exit !== null) throw this.failure(`ended before printing ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw this.failure(`printed no ${what} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Waits for a line equal to `expected`; anything else first is a protocol error. */
  async expectLine(expected: string, timeoutMs: number): Promise<void> {
    const line = await this.nextLine(timeoutMs, `"${expected}"`);
    if (line !== expected) throw this.failure(`printed "${line}" where "${expected}" was expected`);
  }

  /** The next stdout line parsed as a JSON object. */
  async nextJson<T>(timeoutMs: number): Promise<T> {
    const line = await this.nextLine(timeoutMs, 'its result');
    try {
      return JSON.parse(line) as T;
    } catch {
      throw this.failure(`printed "${line}" where a JSON result was expected`);
    }
  }

  send(line: string): void {
    this.child.stdin.write(line + '\n');
  }

  /** Waits for the process to end by itself. */
  async wait(timeoutMs: number): Promise<ProcExit> {
    const timer = new Promise<null>((resolve) => setTimeout(() => resolve(null), timeoutMs).unref());
    const exit = await Promise.race([this.exited, timer]);
    if (exit === null) {
      await this.stop();
      throw this.failure(`did not end within ${timeoutMs} ms`);
    }
    return exit;
  }

  /** Sends `signal` (SIGKILL after graceMs if that is not enough) and waits for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 3000): Promise<ProcExit> {
    if (this.exit !== null) return this.exit;
    this.child.kill(signal);
    const timer = setTimeout(() => {
      if (this.exit === null) this.child.kill('SIGKILL');
    }, graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Ends with exit code 0, or throws with the process's stderr. */
  async expectSuccess(timeoutMs: number): Promise<void> {
    const exit = await this.wait(timeoutMs);
    if (exit.code !== 0) throw this.failure('failed');
  }

  /** Stops the process, then returns the last stdout line parsed as JSON (its final report). */
  async stopForJson<T>(): Promise<T> {
    await this.stop();
    const last = this.lines.at(-1);
    if (last === undefined) throw this.failure('printed no result');
    try {
      return JSON.parse(last) as T;
    } catch {
      throw this.failure(`printed "${last}" where a JSON result was expected`);
    }
  }
}
