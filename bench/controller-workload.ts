/**
 * The shared workload of the agent's benchmarks (drift-repair-p99-ms, enobufs-storm-converge-ms,
 * rss-100k-routes-mb; rollout-probe-ms with none of its devices and a declaration of its own):
 * `bin/tunkeeper run` keeping one TUN device with a few routes in a namespace that also holds
 * 100,000 foreign routes.
 *
 * The foreign routes are host routes 198.18.0.0 .. 198.19.134.159 in the MAIN table, protocol
 * static, through a veth end of their own (fx0): the main table is the one the agent always
 * observes (it carries the foreign routes a change of ours takes along, DESIGN.md "observe"), so
 * this is the node where a full relist costs most — a router with a full BGP table, say. (The
 * agent keeps the few relevant foreign routes between passes while provably unchanged, so only
 * verifying or invalidated passes dump it in full; every pass still walks it for owned routes.) Owned
 * state: TUN devices tk-b0 .. tk-b<N-1> (MTU 1400), each with a host route of its own, protocol
 * 116; tk-b0 also has an address and EXTRA_ROUTES.
 *
 * Why several devices: the agent treats a device repaired again within two minutes as a fight
 * with another daemon and holds that device back (1 s, doubling). A benchmark of repair latency
 * therefore drifts each device once, as drift in production looks, and never measures the
 * deliberate hold.
 *
 * The agent runs as users run it: a process of its own (pinned to the measured CPU when there are
 * two), in the bench's own network namespace (it stays in the host namespace and opens its
 * netlink sockets in the bench namespace with --netns, so its /metrics on 127.0.0.1 is reachable
 * from here). The bench watches and changes the namespace through its own Rtnl and Monitor.
 */
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Monitor, NetlinkDumpInterruptedError, Rtnl, type MonitorEvent } from '../netlink/index.js';
import type { BenchContext } from './benchmark.js';
import { packageRoot } from './paths.js';
import { Proc } from './processes.js';

export const CONTROLLER_WORKLOAD = {
  mtu: 1400,
  protocol: 116,
  foreignCount: 100_000,
  foreignDev: 'fx0',
  foreignPeer: 'fx1',
  mainTable: 254,
} as const;

const { mtu, protocol, foreignCount, foreignDev, foreignPeer, mainTable } = CONTROLLER_WORKLOAD;

/** Device 0 carries these besides its own host route. */
export const EXTRA_ROUTES: readonly string[] = ['203.0.113.0/24', '198.51.100.0/25', '198.51.100.128/25'];

/** Owned device k (k < 2048): `tk-b<k>`. */
export function ownedIfname(k: number): string {
  return `tk-b${k}`;
}

/** Owned device k's own host route, just above the foreign ones: 198.19.(200 + k / 256).(k % 256)/32. */
export function ownedRoute(k: number): string {
  return `198.19.${200 + (k >> 8)}.${k & 255}/32`;
}

/** The i-th foreign host route, i < 131,072 - 14,336: 198.18.0.0 + i. */
export function foreignPrefix(i: number): string {
  return `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
}

/**
 * The owned devices as TunDevice documents (multi-document YAML). With `nodeSelector` (labels),
 * each selects the nodes carrying them: the same declarations as cluster objects.
 */
export function declaration(devices: number, nodeSelector?: Readonly<Record<string, string>>): string {
  const selector = nodeSelector === undefined ? [] : ['  nodeSelector:', '    matchLabels:', ...Object.entries(nodeSelector).map(([k, v]) => `      ${k}: ${JSON.stringify(v)}`)];
  const docs: string[] = [];
  for (let k = 0; k < devices; k++) {
    const routes = [ownedRoute(k), ...(k === 0 ? EXTRA_ROUTES : [])];
    docs.push(
      [
        'apiVersion: tunkeeper.io/v1alpha1',
        'kind: TunDevice',
        'metadata:',
        `  name: ${ownedIfname(k)}`,
        'spec:',
        '  mode: tun',
        `  mtu: ${mtu}`,
        ...(k === 0 ? ['  addresses: [192.0.2.1/26]'] : []),
        '  routes:',
        ...routes.map((to) => `    - to: ${to}`),
        ...selector,
      ].join('\n'),
    );
  }
  return docs.join('\n---\n') + '\n';
}

export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export interface ControllerWorkload {
  dir: string;
  /** Owned devices tk-b0 .. tk-b<devices - 1>. */
  devices: number;
  /** The bench's own netlink client and event stream in the namespace. */
  rtnl: Rtnl;
  close(): Promise<void>;
}

/** Writes an `ip -batch` file and runs it in the namespace. */
export async function ipBatch(ctx: BenchContext, dir: string, name: string, lines: readonly string[]): Promise<void> {
  const file = join(dir, name);
  await writeFile(file, lines.join('\n') + '\n');
  await ctx.ns.ip('-batch', file);
}

/** The foreign device and its 100,000 routes; the declaration file. */
export async function prepareControllerWorkload(ctx: BenchContext, devices: number): Promise<ControllerWorkload> {
  const started = Date.now();
  const dir = await mkdtemp(join(tmpdir(), 'tkb-agent-'));
  await writeFile(join(dir, 'bench.yaml'), declaration(devices));
  await ctx.ns.ip('link', 'add', foreignDev, 'type', 'veth', 'peer', 'name', foreignPeer);
  await ctx.ns.ip('link', 'set', foreignDev, 'up');
  await ctx.ns.ip('link', 'set', foreignPeer, 'up');
  await ipBatch(ctx, dir, 'foreign.batch', Array.from({ length: foreignCount }, (_, i) => `route add ${foreignPrefix(i)} dev ${foreignDev} proto static`));
  const rtnl = await Rtnl.open({ netns: ctx.ns.path });
  const n = (await rtnl.routes({ table: mainTable, family: 4 })).filter((r) => r.protocol !== protocol).length;
  ctx.log(`  namespace: ${foreignDev}/${foreignPeer} with ${n} foreign routes in main, in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return {
    dir,
    devices,
    rtnl,
    close: async () => {
      rtnl.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface RunningAgent {
  proc: Proc;
  metricsUrl: string;
  /** Counter and gauge values by their full sample name, e.g. `tunkeeper_reconciles_total{result="converged"}`. */
  metrics(): Promise<Map<string, number>>;
  /** Resident set size of the agent process, in MiB (VmRSS). */
  rssMb(): Promise<number>;
  /** Its peak resident set size so far, in MiB (VmHWM). */
  peakRssMb(): Promise<number>;
  stop(): Promise<void>;
}

export interface StartAgentOptions {
  /** Give the agent the workload's declaration directory (`-f`); default true. Without it, pass a source in `extraArgs` (`--kube ...`). */
  files?: boolean;
}

/** Starts `bin/tunkeeper run` on the workload's declaration and waits until it has converged. */
export async function startAgent(ctx: BenchContext, w: ControllerWorkload, extraArgs: readonly string[] = [], opts: StartAgentOptions = {}): Promise<RunningAgent> {
  const bin = join(packageRoot, 'bin', 'tunkeeper');
  // For profiling the agent without touching the runner: e.g. TUNKEEPER_BENCH_AGENT_NODE_FLAGS='--cpu-prof --cpu-prof-dir=/tmp/p'.
  const nodeFlags = (process.env['TUNKEEPER_BENCH_AGENT_NODE_FLAGS'] ?? '').split(' ').filter((f) => f !== '');
  const args = [...nodeFlags, bin, 'run', ...((opts.files ?? true) ? ['-f', w.dir] : []), '--netns', ctx.ns.path, '--metrics-address', '127.0.0.1:0', ...extraArgs];
  const cpu = ctx.cpus.subject;
  // taskset execs node: the pid is the agent's own.
  const proc = cpu === null ? Proc.start('tunkeeper run', process.execPath, args) : Proc.start('tunkeeper run', 'taskset', ['-c', cpu, process.execPath, ...args]);
  try {
    let metricsUrl: string | undefined;
    while (metricsUrl === undefined) {
      const line = await proc.nextLine(30_000, 'the metrics URL');
      try {
        const url = (JSON.parse(line) as { url?: unknown }).url;
        if (typeof url === 'string') metricsUrl = url;
      } catch {
        // not a log line
      }
    }
    const started = nowMs();
    await waitConverged(w, 120_000);
    ctx.log(`  agent pid ${proc.pid} converged ${(nowMs() - started).toFixed(0)} ms after its metrics came up`);
    const url = metricsUrl;
    return {
      proc,
      metricsUrl: url,
      metrics: async () => parseMetrics(await (await fetch(`${url}/metrics`)).text()),
      rssMb: () => statusMb(proc.pid, 'VmRSS'),
      peakRssMb: () => statusMb(proc.pid, 'VmHWM'),
      stop: async () => {
        await heapSnapshotBeforeStop(ctx, proc.pid);
        const exit = await proc.stop('SIGTERM', 10_000);
        if (exit.code !== 0) ctx.log(`  agent ended with ${exit.signal ?? `exit code ${exit.code}`}`);
      },
    };
  } catch (e) {
    await proc.stop('SIGKILL');
    throw e;
  }
}

/**
 * For finding what the agent keeps: with TUNKEEPER_BENCH_AGENT_HEAPSNAPSHOT=DIR, the agent (started
 * with `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=DIR` in TUNKEEPER_BENCH_AGENT_NODE_FLAGS)
 * writes a heap snapshot into DIR before it is stopped, as it is at the end of the benchmark.
 */
async function heapSnapshotBeforeStop(ctx: BenchContext, pid: number): Promise<void> {
  const dir = process.env['TUNKEEPER_BENCH_AGENT_HEAPSNAPSHOT'];
  if (!dir) return;
  const mine = async (): Promise<string[]> => (await readdir(dir).catch(() => [] as string[])).filter((f) => f.includes(`.${pid}.`) && f.endsWith('.heapsnapshot'));
  const before = new Set(await mine());
  process.kill(pid, 'SIGUSR2');
  // Written in one go by the agent's main thread: done when the file's size holds for half a second.
  const deadline = Date.now() + 120_000;
  let last = -1;
  for (;;) {
    await sleep(500);
    const file = (await mine()).find((f) => !before.has(f));
    const size = file === undefined ? -1 : (await stat(join(dir, file))).size;
    if (file !== undefined && size > 0 && size === last) {
      ctx.log(`  agent heap snapshot: ${join(dir, file)}`);
      return;
    }
    last = size;
    if (Date.now() > deadline) throw new Error(`no heap snapshot from agent ${pid} in ${dir}`);
  }
}

/** A memory figure of /proc/PID/status (VmRSS, VmHWM...), in MiB. */
async function statusMb(pid: number, field: string): Promise<number> {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} for pid ${pid}`);
  return Number(m[1]) / 1024;
}

function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

/** The sum of every sample of a metric (all label values). */
export function metricSum(m: Map<string, number>, name: string): number {
  let sum = 0;
  for (const [k, v] of m) if (k === name || k.startsWith(`${name}{`)) sum += v;
  return sum;
}

/**
 * True when the owned devices have their MTU and their routes: all of them, or only device
 * `only` (cheap enough to poll every few ms).
 */
export async function isConverged(w: ControllerWorkload, only?: number): Promise<boolean> {
  const ks = only === undefined ? Array.from({ length: w.devices }, (_, k) => k) : [only];
  const [links, routes] = await Promise.all([
    only === undefined ? w.rtnl.links() : w.rtnl.link({ ifname: ownedIfname(only) }).then((l) => (l ? [l] : [])),
    w.rtnl.routes({ protocol, table: mainTable }),
  ]);
  const mtus = new Map(links.map((l) => [l.ifname, l.mtu]));
  const present = new Set(routes.map((r) => `${r.dst}/${r.dstLen}`));
  return ks.every((k) => mtus.get(ownedIfname(k)) === mtu && present.has(ownedRoute(k)) && (k !== 0 || EXTRA_ROUTES.every((p) => present.has(p))));
}

/** Polls (every `everyMs`) until converged; resolves with the time it was first seen, in ms (nowMs clock). */
export async function waitConverged(w: ControllerWorkload, timeoutMs: number, everyMs = 20, only?: number): Promise<number> {
  const deadline = nowMs() + timeoutMs;
  for (;;) {
    // A dump the kernel keeps interrupting (the agent still creating devices: what a thousand of
    // them look like) is an answer too: not converged yet.
    if (await isConverged(w, only).catch((e: unknown) => (isDumpInterrupted(e) ? false : Promise.reject(e)))) return nowMs();
    if (nowMs() > deadline) throw new Error(`the agent did not converge within ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}

/**
 * Waits until the agent has gone quiet: no reconcile pass finished for `quietMs`, and none
 * running. (Without the second, a pass longer than `quietMs` — a full relist after the startup's
 * own link notifications, say — looked like rest, and the next drift measured its remainder.)
 */
export async function waitIdle(agent: RunningAgent, quietMs: number, timeoutMs = 60_000): Promise<void> {
  const deadline = nowMs() + timeoutMs;
  const read = async (): Promise<{ passes: number; running: boolean }> => {
    const m = await agent.metrics();
    return { passes: metricSum(m, 'tunkeeper_reconciles_total'), running: m.get('tunkeeper_reconcile_running') === 1 };
  };
  let last = (await read()).passes;
  let since = nowMs();
  while (nowMs() - since < quietMs) {
    if (nowMs() > deadline) throw new Error(`the agent kept reconciling for ${timeoutMs} ms`);
    await sleep(Math.min(50, quietMs));
    const { passes, running } = await read();
    if (passes !== last || running) {
      last = passes;
      since = nowMs();
    }
  }
}

/** What an RSS benchmark reads from one agent: at first convergence, settled after the repairs, and the peak. */
export interface SettledRss {
  first: number;
  rss: number;
  peak: number;
}

/**
 * The RSS benchmarks' common part: `drifts` repairs (owned route k deleted, each on a device of
 * its own, so no fight hold), each waited for and followed by quiet, then a settle, so the figure
 * is what stays resident after relists rather than the peak of the last pass. `first` is read
 * when this is called (the caller has seen the agent converge).
 */
export async function rssAfterRepairs(w: ControllerWorkload, agent: RunningAgent, drifts: number): Promise<SettledRss> {
  const first = await agent.rssMb();
  for (let i = 0; i < drifts; i++) {
    await w.rtnl.deleteRoute({ dst: ownedRoute(i), table: mainTable, protocol });
    await waitConverged(w, 60_000, 5, i);
    await waitIdle(agent, 100);
  }
  await sleep(1000);
  const rss = await agent.rssMb();
  // The peak is the first pass's full relist of the 100k routes (receive batches, heap growth).
  return { first, rss, peak: await agent.peakRssMb() };
}

/** A Monitor in the namespace with a generous buffer, for timing what the agent does. */
export async function openWatch(ctx: BenchContext): Promise<Monitor> {
  return Monitor.open({ netns: ctx.ns.path, rcvbuf: 32 << 20 });
}

/** True for the notification that an owned route `dst` (as a CIDR) was added. */
export function isOwnedRouteAdded(e: MonitorEvent, cidr: string): boolean {
  return e.type === 'route' && e.op === 'new' && e.protocol === protocol && `${e.dst}/${e.dstLen}` === cidr;
}

export { mainTable as MAIN_TABLE, protocol as OWNED_PROTOCOL };

function isDumpInterrupted(e: unknown): boolean {
  return e instanceof NetlinkDumpInterruptedError;
}
