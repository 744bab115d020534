/**
 * One agent pod on the harness's node: `podman create` with the kubelet's arguments
 * (kubelet.ts), `podman init` (runc creates the container: namespaces, cgroups, the process
 * waiting to exec), the device policy of the runtime being played (device-policy.ts), then
 * `podman start`. Its log lines are followed as they come, so a test waits for the line it is
 * about; stop() sends SIGTERM and, after the grace period, SIGKILL, as a kubelet does.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { runProcess, TOOL_TIMEOUT_MS, type RunResult } from '../helpers/run-process.js';
import type { BuiltImage } from './tier.js';
import type { PodPlan } from './kubelet.js';
import { applyDevicePolicy, type DevicePolicy, type DevicePolicyOutcome } from './device-policy.js';

export type { RunResult };

/**
 * Pods of this worker not yet removed, with the settings file to remove them with. A worker that
 * exits without its tests' clean-up (a crash, a hang guard) removes them synchronously on the
 * way out: an agent left running would go on holding the node namespace it was given.
 */
const live = new Map<string, string>();
process.once('exit', () => {
  for (const [name, conf] of live) spawnSync('podman', ['rm', '--force', '--time', '0', name], { env: { ...process.env, CONTAINERS_CONF: conf }, stdio: 'ignore' });
});

export function podman(built: BuiltImage, args: string[]): Promise<RunResult> {
  return runProcess('podman', args, { env: { ...process.env, CONTAINERS_CONF: built.containersConf }, timeoutMs: TOOL_TIMEOUT_MS });
}

async function podmanOk(built: BuiltImage, args: string[]): Promise<string> {
  const r = await podman(built, args);
  if (r.code !== 0) throw new Error(`podman ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

export type LogLine = Record<string, unknown> & { msg?: string };

interface Waiter {
  pred: (l: LogLine) => boolean;
  resolve: (l: LogLine) => void;
}

export class Pod {
  readonly #lines: LogLine[] = [];
  readonly #raw: string[] = [];
  readonly #waiters = new Set<Waiter>();
  #follower: ChildProcess | undefined;
  #ended: Promise<void> = Promise.resolve();
  /** The agent's pid on this machine (the container's pid 1), once started. */
  pid = 0;
  devicePolicy: DevicePolicyOutcome | undefined;

  private constructor(
    readonly built: BuiltImage,
    readonly plan: PodPlan,
    readonly name: string,
  ) {}

  /** Creates, initialises, applies the device policy, starts, and follows the logs. */
  static async start(built: BuiltImage, plan: PodPlan, policy: DevicePolicy): Promise<Pod> {
    const nameArg = plan.createArgs.find((a) => a.startsWith('--name='));
    if (!nameArg) throw new Error('the plan names no container');
    const pod = new Pod(built, plan, nameArg.slice('--name='.length));
    live.set(pod.name, built.containersConf);
    await podmanOk(built, ['create', ...plan.createArgs]);
    try {
      await podmanOk(built, ['init', pod.name]);
      pod.pid = Number((await podmanOk(built, ['inspect', '--format', '{{.State.Pid}}', pod.name])).trim());
      const configPath = (await podmanOk(built, ['inspect', '--format', '{{.OCIConfigPath}}', pod.name])).trim();
      pod.devicePolicy = applyDevicePolicy(policy, pod.pid, JSON.parse(readFileSync(configPath, 'utf8')) as object);
      await podmanOk(built, ['start', pod.name]);
      pod.#follow();
    } catch (e) {
      await pod.remove();
      throw e;
    }
    return pod;
  }

  #follow(): void {
    const child = spawn('podman', ['logs', '--follow', this.name], { env: { ...process.env, CONTAINERS_CONF: this.built.containersConf }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.#follower = child;
    let partial = '';
    const take = (d: Buffer) => {
      partial += d.toString();
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const raw of lines) this.#take(raw);
    };
    child.stdout!.on('data', take);
    child.stderr!.on('data', take);
    this.#ended = new Promise((resolve) => child.once('close', () => resolve()));
  }

  #take(raw: string): void {
    this.#raw.push(raw);
    let line: LogLine;
    try {
      line = JSON.parse(raw) as LogLine;
    } catch {
      line = { msg: raw, unstructured: true };
    }
    this.#lines.push(line);
    for (const w of [...this.#waiters]) {
      if (w.pred(line)) {
        this.#waiters.delete(w);
        w.resolve(line);
      }
    }
  }

  /** Every log line so far, parsed (a line that is not JSON becomes {msg, unstructured}). */
  get lines(): readonly LogLine[] {
    return this.#lines;
  }

  /** The log as printed, for failure messages. */
  get log(): string {
    return this.#raw.join('\n');
  }

  get count(): number {
    return this.#lines.length;
  }

  /**
   * The first log line after the first `after` that satisfies pred: already printed, or the next
   * such one. The guard only turns a hang into a message with the log; it is no speed claim.
   */
  waitForLog(what: string, pred: (l: LogLine) => boolean, opts: { after?: number; guardMs?: number } = {}): Promise<LogLine> {
    const seen = this.#lines.slice(opts.after ?? 0).find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { pred, resolve: (l) => (clearTimeout(guard), resolve(l)) };
      const guard = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`gave up waiting for ${what} in ${this.name}'s log:\n${this.log.split('\n').slice(-30).join('\n')}`));
      }, opts.guardMs ?? 120_000);
      this.#waiters.add(waiter);
      // The log ending (the container exited) settles the wait with what is known.
      void this.#ended.then(() => {
        if (!this.#waiters.has(waiter)) return;
        this.#waiters.delete(waiter);
        clearTimeout(guard);
        reject(new Error(`${this.name} exited before ${what}:\n${this.log.split('\n').slice(-30).join('\n')}`));
      });
    });
  }

  /** podman exec in the running container, as the container's own user, capabilities and seccomp. */
  exec(args: string[]): Promise<RunResult> {
    return podman(this.built, ['exec', this.name, ...args]);
  }

  /** SIGTERM, SIGKILL after the pod's grace period; resolves with the exit code once the log has ended. */
  async stop(): Promise<number> {
    await podmanOk(this.built, ['stop', '--time', String(this.plan.gracePeriodSeconds), this.name]);
    await this.#ended;
    return Number((await podmanOk(this.built, ['inspect', '--format', '{{.State.ExitCode}}', this.name])).trim());
  }

  /** Waits for the container to exit on its own; resolves with its exit code. */
  async exited(): Promise<number> {
    const code = Number((await podmanOk(this.built, ['wait', this.name])).trim());
    await this.#ended;
    return code;
  }

  /** Removes the container (stopping it first if needed). Safe to call twice. */
  async remove(): Promise<void> {
    await podman(this.built, ['rm', '--force', '--time', '0', this.name]);
    live.delete(this.name);
    if (this.#follower && this.#follower.exitCode === null && this.#follower.pid !== undefined) this.#follower.kill('SIGKILL');
    await this.#ended;
  }
}
