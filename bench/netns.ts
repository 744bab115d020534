/**
 * Network namespaces for benchmarks: `tkb-<pid>-<tag>`, made fresh, deleted afterwards (also on
 * failure and on SIGINT, through the abort cleanup). The host's own namespace is never touched:
 * every command runs with `ip -n NAME` or `ip netns exec NAME`.
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { onAbort } from './cleanup.js';

const execFileAsync = promisify(execFile);
const PREFIX = 'tkb-';

export class BenchNetns {
  readonly path: string;
  private unregister: () => void = () => undefined;
  private deleted = false;

  constructor(readonly name: string) {
    this.path = `/run/netns/${name}`;
  }

  /** @internal */
  armAbort(): void {
    this.unregister = onAbort(() => {
      execFileSync('ip', ['netns', 'delete', this.name], { stdio: 'ignore' });
    });
  }

  /** `ip -n NAME ...`; rejects with ip's stderr. */
  async ip(...args: string[]): Promise<string> {
    return run('ip', ['-n', this.name, ...args], `ip ${args.join(' ')} (in ${this.name})`);
  }

  /** Runs a command to completion inside the namespace. */
  async exec(cmd: string, args: readonly string[]): Promise<string> {
    return run('ip', this.execArgs(cmd, args), `${cmd} ${args.join(' ')} (in ${this.name})`);
  }

  /** Arguments for `ip` that run `cmd args` inside the namespace (for long-running children). */
  execArgs(cmd: string, args: readonly string[]): string[] {
    return ['netns', 'exec', this.name, cmd, ...args];
  }

  async sysctl(settings: Record<string, string | number>): Promise<void> {
    await this.exec('sysctl', ['-q', '-w', ...Object.entries(settings).map(([k, v]) => `${k}=${v}`)]);
  }

  async delete(): Promise<void> {
    if (this.deleted) return;
    this.deleted = true;
    await execFileAsync('ip', ['netns', 'delete', this.name]).catch(() => undefined);
    this.unregister();
  }
}

async function run(cmd: string, args: string[], what: string): Promise<string> {
  try {
    const { stdout } = await execFileAsync(cmd, args, { maxBuffer: 256 << 20 });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${what} failed: ${err.stderr?.trim() || err.message}`);
  }
}

let counter = 0;

/** A fresh namespace with loopback up. */
export async function createBenchNetns(tag: string): Promise<BenchNetns> {
  const ns = new BenchNetns(`${PREFIX}${process.pid}-${++counter}-${tag}`.slice(0, 60));
  await run('ip', ['netns', 'add', ns.name], `ip netns add ${ns.name}`);
  ns.armAbort();
  try {
    await ns.ip('link', 'set', 'lo', 'up');
  } catch (e) {
    await ns.delete();
    throw e;
  }
  return ns;
}

/** Runs fn with a fresh namespace, deleting it however fn ends. */
export async function withBenchNetns<T>(tag: string, fn: (ns: BenchNetns) => Promise<T>): Promise<T> {
  const ns = await createBenchNetns(tag);
  try {
    return await fn(ns);
  } finally {
    await ns.delete();
  }
}

/**
 * Removes namespaces that an earlier bench run left behind when it was killed outright (SIGKILL
 * leaves no chance to clean up): `tkb-<pid>-...` whose pid no longer runs. Returns their names.
 */
export function removeStaleBenchNamespaces(): string[] {
  const out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  const stale: string[] = [];
  for (const line of out.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = /^tkb-(\d+)-/.exec(name);
    if (!m || alive(Number(m[1]))) continue;
    try {
      execFileSync('ip', ['netns', 'delete', name], { stdio: 'ignore' });
      stale.push(name);
    } catch {
      // Someone else removed it meanwhile.
    }
  }
  return stale;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
