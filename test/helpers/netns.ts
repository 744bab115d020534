/**
 * Network namespaces for tests. Every test that touches the kernel makes its own namespace here
 * and deletes it afterwards, also on failure; the global teardown removes any a crashed worker
 * left behind (they all carry this run's prefix). The host's own namespace is never changed.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** An `ip` command's bound: far above any real one (a dump of 100k routes takes about a second). */
const IP_TIMEOUT_MS = 60_000;

/** Prefix of every namespace this test run creates: `tkt-<runid>-`. */
export function runPrefix(): string {
  const id = process.env.TUNKEEPER_TEST_RUN ?? String(process.ppid);
  return `tkt-${id}-`;
}

export class Netns {
  readonly path: string;
  constructor(readonly name: string) {
    this.path = `/run/netns/${name}`;
  }

  /** Runs a command inside the namespace; resolves with stdout, rejects with stderr in the message. */
  async exec(cmd: string, args: string[], opts: { input?: string } = {}): Promise<string> {
    try {
      const p = execFileAsync('ip', ['netns', 'exec', this.name, cmd, ...args], { maxBuffer: 256 << 20 });
      if (opts.input !== undefined) p.child.stdin?.end(opts.input);
      const { stdout } = await p;
      return stdout;
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new Error(`${cmd} ${args.join(' ')} (in ${this.name}) failed: ${err.stderr?.trim() || err.message}`);
    }
  }

  /** `ip -n NAME ...`; one that hangs is killed after IP_TIMEOUT_MS and fails naming itself. */
  async ip(...args: string[]): Promise<string> {
    try {
      const { stdout } = await execFileAsync('ip', ['-n', this.name, ...args], { maxBuffer: 256 << 20, timeout: IP_TIMEOUT_MS, killSignal: 'SIGKILL' });
      return stdout;
    } catch (e) {
      const err = e as { stderr?: string; message: string; killed?: boolean };
      const why = err.killed ? `no answer within ${IP_TIMEOUT_MS / 1000} s` : err.stderr?.trim() || err.message;
      throw new Error(`ip ${args.join(' ')} (in ${this.name}) failed: ${why}`);
    }
  }

  /** `ip -j -n NAME ...` parsed: the oracle the tests compare against. */
  async ipJson<T = unknown>(...args: string[]): Promise<T> {
    const out = await this.ip('-j', ...args);
    return JSON.parse(out.trim() === '' ? '[]' : out) as T;
  }

  /**
   * Waits until each named link has its IPv6 link-local address and no address of it is still
   * tentative. The kernel makes the link-local once a link has carrier (its link watch runs after
   * `ip link set up` returned) and then runs DAD, both in its own time: a test that snapshots or
   * compares the namespace must wait for that, or it compares the kernel's clock. The limit is a
   * hang guard only.
   */
  async settledLinkLocals(...ifnames: string[]): Promise<void> {
    const guard = Date.now() + 60_000;
    for (;;) {
      const addrs = await this.ipJson<Array<{ ifname: string; addr_info: Array<{ scope: string; tentative?: boolean }> }>>('-6', 'addr', 'show');
      const settled = ifnames.every((dev) => {
        const info = addrs.find((a) => a.ifname === dev)?.addr_info ?? [];
        return info.some((a) => a.scope === 'link') && info.every((a) => a.tentative !== true);
      });
      if (settled) return;
      if (Date.now() > guard) throw new Error(`${ifnames.join(', ')} in ${this.name}: no settled IPv6 link-local address after 60 s`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async delete(): Promise<void> {
    await execFileAsync('ip', ['netns', 'delete', this.name]).catch(() => undefined);
  }
}

/** Creates a fresh namespace with loopback up. */
export async function createNetns(tag = 'ns'): Promise<Netns> {
  const name = `${runPrefix()}${tag}-${randomBytes(3).toString('hex')}`;
  await execFileAsync('ip', ['netns', 'add', name]);
  const ns = new Netns(name);
  await ns.ip('link', 'set', 'lo', 'up');
  return ns;
}

/** Runs fn with a fresh namespace, deleting it however fn ends. */
export async function withNetns<T>(fn: (ns: Netns) => Promise<T>, tag = 'ns'): Promise<T> {
  const ns = await createNetns(tag);
  try {
    return await fn(ns);
  } finally {
    await ns.delete();
  }
}

/** Namespaces left by this run (used by the global teardown). */
export function leftoverNamespaces(prefix = runPrefix()): string[] {
  const out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(prefix));
}
