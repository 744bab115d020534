/**
 * The shared workload of dump-routes-65k and program-routes-65k (the netlink issue's two
 * figures), measured once through tunkeeper's Rtnl and once through iproute2 in the same run.
 *
 * The namespace looks like a busy node: 1,000 TUN links (up, no carrier), each with one IPv4 and
 * one IPv6 address, and a veth pair tkr0/tkr1 (up, carrier on) that the measured routes go
 * through. The measured routes are 65,280 distinct /32s, 198.18.0.0 .. 198.18.254.255 (exactly
 * 255 * 256), `dev tkr0`, protocol 116 (tunkeeper's), in table 100 (so the table holds only
 * them). The link addresses come from 198.19.0.0/16 and 2001:db8:1::/48, so no address prefix
 * (and no prefix route it makes in main and local) overlaps a measured route.
 *
 * Each sample is a fresh process per side, pinned to the measured CPU. The process answers a "go"
 * line per iteration: iteration 0 is cold (a new tunkeeper process: JIT not warmed up; for ip,
 * the first ip of the sample), then a few untimed warm-ups, then the timed warm iterations; a
 * sample's figure is the median of its warm iterations (cold figures are logged). Every ip
 * iteration is a new ip process, as its users run it; the same structure keeps the sides alike.
 * The ip side runs under a small bash loop that times each `ip` with $EPOCHREALTIME, so it pays
 * the exec and startup of ip (what its users pay: about 2.5 ms, logged as the 1-route table) and
 * not that of the timer.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BenchContext } from './benchmark.js';
import { CONTENDED_SHARE, foreignShare, isContended, snapshot, type LoadSnapshot } from './cpu-load.js';
import { distBenchDir } from './paths.js';
import type { Proc } from './processes.js';
import { peerProgram, type PeerCommand, type PeerName } from './peer-build.js';
import type { Figures, PeerFigures, SweepPoint } from './report.js';
import { median } from './stats.js';

export const ROUTES_WORKLOAD = {
  table: 100,
  protocol: 116,
  count: 65_280,
  /** The device every measured route goes through (one end of a veth pair). */
  dev: 'tkr0',
  peer: 'tkr1',
  links: 1_000,
} as const;

const { table, protocol, count, dev, peer, links } = ROUTES_WORKLOAD;

/** The i-th measured destination: 198.18.(i / 256).(i % 256)/32, for i < 65,280. */
export function routePrefix(i: number): string {
  return `198.18.${i >> 8}.${i & 255}/32`;
}

export function routePrefixes(): string[] {
  return Array.from({ length: count }, (_, i) => routePrefix(i));
}

/**
 * The i-th route of the relist chart's tables, for i < 131,072: 198.18.0.0 + i in 198.18.0.0/15,
 * the same as routePrefix below 65,280. Past that it runs into 198.19.0.0/20, where the links'
 * addresses are, but only table 100 is dumped and it holds nothing else.
 */
export function sweepPrefix(i: number): string {
  if (!(Number.isInteger(i) && i >= 0 && i < 131_072)) throw new RangeError(`no sweep route ${i}`);
  return `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`;
}

/** Route counts of the relist chart (dump time against route count); 65,280 comes from the main samples. */
export const RELIST_SWEEP = [1_000, 8_000, 100_000] as const;

/** The one route of table 101, outside the measured ones and every address prefix. */
const ONE_ROUTE = '198.18.255.0/32';

/** Link i's addresses: a /30 in 198.19.0.0/16 and a /64 in 2001:db8:1::/48. */
function linkAddresses(i: number): [string, string] {
  const v4 = `198.19.${i >> 6}.${((i & 63) << 2) | 1}/30`;
  const v6 = `2001:db8:1:${i.toString(16)}::1/64`;
  return [v4, v6];
}

export type Operation = 'dump' | 'program';

interface Side {
  /** Short name in the log (and a peer's name in the report). */
  label: string;
  /** Counts towards the figure (tunkeeper, the reference, a peer); the others are only logged. */
  role: 'project' | 'reference' | 'info' | 'peer';
  command(ctx: BenchContext, files: WorkFiles, count: number): [string, string[]];
  /** A peer so slow (pyroute2) that one iteration per sample and, without --long, one sample is all the run affords. */
  slow?: boolean;
  /**
   * Needs untimed warm-ups within its process (V8: a 65k-item loop is optimised after a few runs).
   * The others (ip, a new process per iteration; Go, compiled ahead) are warm after the cold
   * iteration, so without --long they go straight from it to the timed ones.
   */
  jit?: boolean;
}

/** The peers of both route benchmarks; their drivers take the tunkeeper subject's arguments. */
const PEERS: { name: PeerName; label: string; slow: boolean }[] = [
  { name: 'pyroute2', label: 'pyroute2', slow: true },
  { name: 'go-netlink', label: 'vishvananda/netlink', slow: false },
];

/**
 * Peers measured on an operation only with --long, and what the default run reports instead:
 * pyroute2 programs 65,280 routes in about a minute (Python builds every message), more than the
 * whole default route budget.
 */
const LONG_ONLY: Record<Operation, ReadonlyMap<string, string>> = {
  dump: new Map(),
  program: new Map([['pyroute2', 'runs with --long (about a minute)']]),
};

interface WorkFiles {
  dir: string;
  /** `ip -batch` file adding every measured route. */
  addBatch: string;
}

/**
 * Runs `$@` with stdout to /dev/null once per "go" line on stdin and prints the wall time of each
 * run in microseconds. $EPOCHREALTIME's separator follows the locale, hence the digit filter.
 */
const TIMER_SCRIPT = `
while read -r line; do
  [ "$line" = go ] || exit 2
  s=$EPOCHREALTIME
  "$@" > /dev/null || exit 3
  e=$EPOCHREALTIME
  s=\${s//[!0-9]/}; e=\${e//[!0-9]/}
  echo "{\\"us\\":$((10#$e - 10#$s))}"
done
`;

function ipSide(label: string, role: Side['role'], args: (files: WorkFiles) => string[]): Side {
  return { label, role, command: (_ctx, files) => ['bash', ['-c', TIMER_SCRIPT, 'bash', 'ip', ...args(files)]] };
}

function subjectArgs(op: Operation, n: number): string[] {
  return op === 'dump' ? ['dump', String(table), String(n)] : ['program', String(table), String(n), dev, String(protocol)];
}

function subjectSide(op: Operation): Side {
  return { label: 'tunkeeper', role: 'project', jit: true, command: (_ctx, _files, n) => [process.execPath, [join(distBenchDir, 'subjects', 'routes-subject.js'), ...subjectArgs(op, n)]] };
}

function peerSide(op: Operation, label: string, program: PeerCommand, slow: boolean): Side {
  return { label, role: 'peer', slow, command: (_ctx, _files, n) => [program.cmd, [...program.prefix, ...subjectArgs(op, n)]] };
}

const SIDES: Record<Operation, Side[]> = {
  dump: [
    subjectSide('dump'),
    ipSide('ip route show', 'reference', () => ['-4', 'route', 'show', 'table', String(table)]),
    ipSide('ip -j route show', 'info', () => ['-j', '-4', 'route', 'show', 'table', String(table)]),
    // ip's fixed cost (exec, dynamic linking, socket, cache of links) with next to nothing to dump.
    ipSide('ip route show (1-route table)', 'info', () => ['-4', 'route', 'show', 'table', String(table + 1)]),
  ],
  program: [subjectSide('program'), ipSide('ip -batch', 'reference', (f) => ['-batch', f.addBatch])],
};

export const REFERENCE_NAME: Record<Operation, string> = {
  dump: 'iproute2 `ip -4 route show table 100 >/dev/null`',
  program: 'iproute2 `ip -batch FILE` (65,280 `route add` lines)',
};

/**
 * Iterations per sample after the cold one: untimed warm-ups (V8 needs a few runs of a 65k-item
 * loop before it is optimised and the heap has settled), then the timed warm ones.
 */
const WARMUPS: Record<Operation, number> = { dump: 4, program: 1 };
const WARM: Record<Operation, number> = { dump: 5, program: 3 };
/** Tries per iteration while neighbours take the measured CPU (the least contended one is kept). */
const MAX_TRIES = 4;
/** Pause before a retry, times the attempt: long enough for a neighbour's burst to pass, short enough not to dominate the run. */
const RETRY_PAUSE_MS = 100;

async function ipBatch(ctx: BenchContext, dir: string, name: string, lines: string[]): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, lines.join('\n') + '\n');
  await ctx.ns.ip('-batch', file);
  return file;
}

/** The links, their addresses and the route device; the measured table empty. */
async function prepareNamespace(ctx: BenchContext, dir: string): Promise<WorkFiles> {
  const started = Date.now();
  const lines: string[] = [];
  for (let i = 0; i < links; i++) lines.push(`tuntap add dev tkl${i} mode tun`);
  await ipBatch(ctx, dir, 'links.batch', lines);
  lines.length = 0;
  for (let i = 0; i < links; i++) {
    const [v4, v6] = linkAddresses(i);
    lines.push(`link set tkl${i} up`, `address add ${v4} dev tkl${i}`, `address add ${v6} dev tkl${i} nodad`);
  }
  lines.push(`link add ${dev} type veth peer name ${peer}`, `link set ${dev} up`, `link set ${peer} up`);
  // One route in the next table, so that ip's fixed cost can be timed (an absent table is an error).
  lines.push(`route add ${ONE_ROUTE} dev ${dev} table ${table + 1} proto ${protocol}`);
  await ipBatch(ctx, dir, 'addresses.batch', lines);
  // tkr0 goes down and up to empty table 100 (emptyByLinkCycle): without IPv6 on the pair, no
  // link-local address, DAD or router solicitation follows that into a timed iteration.
  await ctx.ns.sysctl({ [`net.ipv6.conf.${dev}.disable_ipv6`]: 1, [`net.ipv6.conf.${peer}.disable_ipv6`]: 1 });
  const addBatch = join(dir, 'routes.batch');
  await writeFile(addBatch, routePrefixes().map((p) => `route add ${p} dev ${dev} table ${table} proto ${protocol}\n`).join(''));
  const addresses = (await ctx.ns.ip('-o', 'address', 'show')).trim().split('\n').length;
  ctx.log(`  namespace: ${links} TUN links + ${dev}/${peer}, ${addresses} addresses, in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return { dir, addBatch };
}

/**
 * Routes in table 100 as the kernel counts them: the table's prefixes in /proc/net/fib_triestat
 * (one per route here, every route a distinct /32), read inside the namespace in about 10 ms,
 * where listing 65,280 routes with ip and counting the lines takes 0.3 s; so every programming
 * iteration can afford the check. No "Id 100:" block: the table does not exist yet, it holds none.
 */
export function tableRoutesInTrieStat(stat: string, id: number): number {
  const m = new RegExp(`^Id ${id}:\\n(?:\\t.*\\n)*?\\tPrefixes:\\s+(\\d+)$`, 'm').exec(stat);
  return m === null ? 0 : Number(m[1]);
}

async function countRoutes(ctx: BenchContext): Promise<number> {
  return tableRoutesInTrieStat(await ctx.ns.exec('cat', ['/proc/net/fib_triestat']), table);
}

async function fillTable(ctx: BenchContext, files: WorkFiles): Promise<void> {
  await ctx.ns.ip('-batch', files.addBatch);
}

/**
 * Empties table 100 before a programming iteration: tkr0 down and up again, which drops every
 * IPv4 route through it in the kernel at once (10-40 ms for 65,280 routes, where
 * `ip route flush` dumps and deletes them one by one: 150-230 ms, and the run pays it per
 * iteration). Waits for the carrier, so that no link event lands in the timed iteration.
 */
async function emptyByLinkCycle(ctx: BenchContext): Promise<void> {
  await ctx.ns.ip('link', 'set', dev, 'down');
  await ctx.ns.ip('link', 'set', dev, 'up');
  for (let i = 0; ; i++) {
    const state = await ctx.ns.ip('-o', 'link', 'show', 'dev', dev);
    if (state.includes('LOWER_UP') && !state.includes('NO-CARRIER')) break;
    if (i >= 200) throw new Error(`${dev}: no carrier 2 s after link up: ${state.trim()}`);
    await sleep(10);
  }
  const n = await countRoutes(ctx);
  if (n !== 0) throw new Error(`table ${table} still holds routes after ${dev} went down and up`);
}

/** utime + stime + cutime + cstime: a process's own ticks and those of its reaped children (ip under bash). */
function ticksWithChildren(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  } catch {
    return 0;
  }
}

function loadSnapshot(pid: number): LoadSnapshot {
  return { cpus: snapshot([]).cpus, pids: new Map([[pid, ticksWithChildren(pid)]]) };
}

interface Iteration {
  ms: number;
  /** Share of the measured CPU others took (null when unpinned). */
  contention: number | null;
}

interface SubjectAnswer {
  us?: number;
  ms?: number;
  count?: number;
  failed?: number;
}

/** One timed iteration of a running side; the table is made ready for it first (not timed). */
async function iterate(ctx: BenchContext, op: Operation, side: Side, proc: Proc, count: number): Promise<Iteration> {
  if (op === 'program') await emptyByLinkCycle(ctx);
  const before = loadSnapshot(proc.pid);
  proc.send('go');
  // pyroute2 compiles 65,280 requests in Python: minutes on a loaded machine.
  const answer = await proc.nextJson<SubjectAnswer>(side.slow === true ? 900_000 : 120_000);
  const after = loadSnapshot(proc.pid);
  const ms = answer.ms ?? (answer.us === undefined ? NaN : answer.us / 1000);
  if (!(ms > 0)) throw new Error(`${side.label}: bad answer ${JSON.stringify(answer)}`);
  if (answer.failed !== undefined && answer.failed > 0) throw new Error(`${side.label}: ${answer.failed} of ${count} requests failed`);
  if (op === 'dump' && answer.count !== undefined && answer.count !== count) throw new Error(`${side.label}: dumped ${answer.count} routes, expected ${count}`);
  if (side.role === 'peer' && op === 'dump' && answer.count === undefined) throw new Error(`${side.label}: no route count in ${JSON.stringify(answer)}`);
  if (op === 'program' && side.role !== 'reference' && answer.failed === undefined) throw new Error(`${side.label}: no failure count in ${JSON.stringify(answer)}`);
  if (op === 'program') {
    // Every side must really have installed every route, every iteration.
    const held = await countRoutes(ctx);
    if (held !== count) throw new Error(`${side.label}: table ${table} holds ${held} routes after programming, expected ${count}`);
  }
  const contention = ctx.cpus.subject === null ? null : foreignShare(before, after, ctx.cpus.subject, [proc.pid]);
  return { ms, contention };
}

interface Sample {
  cold: number;
  /** Median of the warm iterations (the clean ones when there are any). */
  warm: number;
  contended: boolean;
  /** Warm iterations run again because others took the measured CPU. */
  retries: number;
}

/**
 * Iterations of one sample: a cold one, untimed warm-ups (a JIT side; every side with --long),
 * timed warm ones (a slow peer: one, cold and warm alike).
 */
function iterationPlan(ctx: BenchContext, op: Operation, side: Side, warm: number): { warmups: number; warm: number } {
  if (side.slow === true) return { warmups: 0, warm: 0 };
  return { warmups: side.jit === true || ctx.long ? WARMUPS[op] : 0, warm };
}


async function sample(ctx: BenchContext, op: Operation, side: Side, files: WorkFiles, n: number = count, warmIterations: number = WARM[op]): Promise<Sample> {
  const [cmd, args] = side.command(ctx, files, n);
  const proc = ctx.spawn(side.label, ctx.cpus.subject, cmd, args);
  const plan = iterationPlan(ctx, op, side, warmIterations);
  try {
    if (side.role === 'project' || side.role === 'peer') await proc.expectLine('ready', 120_000);
    const cold = await iterate(ctx, op, side, proc, n);
    if (plan.warm === 0) {
      proc.send('end');
      return { cold: cold.ms, warm: cold.ms, contended: isContended(cold.contention), retries: 0 };
    }
    for (let i = 0; i < plan.warmups; i++) await iterate(ctx, op, side, proc, n);
    const warm: Iteration[] = [];
    let retries = 0;
    for (let i = 0; i < plan.warm; i++) {
      let best: Iteration | null = null;
      // An info side's figure is only logged: one try, contended or not.
      const tries = side.role === 'info' ? 1 : MAX_TRIES;
      for (let attempt = 1; attempt <= tries; attempt++) {
        const it = await iterate(ctx, op, side, proc, n);
        if (best === null || (it.contention ?? 0) < (best.contention ?? 0)) best = it;
        // A sample runs again at most as many iterations as it times: on a machine that stays
        // busy, more tries cost the run's budget and end contended all the same (the log says so).
        if (!isContended(it.contention) || attempt === tries || retries >= plan.warm) break;
        retries++;
        await sleep(RETRY_PAUSE_MS * attempt);
      }
      warm.push(best!);
    }
    proc.send('end');
    const clean = warm.filter((w) => !isContended(w.contention));
    const used = clean.length > 0 ? clean : warm;
    return { cold: cold.ms, warm: median(used.map((w) => w.ms)), contended: clean.length === 0, retries };
  } finally {
    await proc.stop();
  }
}

/**
 * Samples a side takes. With --long every side takes `samples`. Without it, so that the default
 * run stays within a few minutes, the headline's two sides keep all of them, a peer takes half of
 * them (rounded up) but at least 3 (a median of its own) where there are as many, and a slow
 * peer (seconds to a minute per iteration) and the sides that are only logged take one.
 */
export function samplesFor(side: Pick<Side, 'role' | 'slow'>, samples: number, long: boolean): number {
  if (long || side.role === 'project' || side.role === 'reference') return samples;
  if (side.role === 'info' || side.slow === true) return 1;
  return Math.min(samples, Math.max(3, Math.ceil(samples / 2)));
}

function seconds(since: number): string {
  return ((Date.now() - since) / 1000).toFixed(1);
}

function ms(x: number): string {
  return x >= 100 ? x.toFixed(0) : x.toFixed(1);
}

function spread(xs: number[]): string {
  return `median ${ms(median(xs))} ms (min ${ms(Math.min(...xs))}, max ${ms(Math.max(...xs))})`;
}

/** The peers' sides, built now; a peer whose build failed is reported with the reason. */
async function peerSides(ctx: BenchContext, op: Operation): Promise<{ sides: Side[]; errors: Map<string, string> }> {
  const sides: Side[] = [];
  const errors = new Map<string, string>();
  for (const peer of PEERS) {
    if (!ctx.long && LONG_ONLY[op].has(peer.label)) continue;
    const build = await peerProgram(peer.name, ctx.log);
    if (build.ok) sides.push(peerSide(op, peer.label, build.command, peer.slow));
    else {
      errors.set(peer.label, build.error);
      ctx.log(`  peer ${peer.label} FAILED: ${build.error}`);
    }
  }
  return { sides, errors };
}

/** Fills table 100 with the first n sweep routes (not timed). */
async function fillSweep(ctx: BenchContext, dir: string, n: number): Promise<void> {
  await emptyByLinkCycle(ctx);
  const file = join(dir, `sweep-${n}.batch`);
  const lines: string[] = [];
  for (let i = 0; i < n; i++) lines.push(`route add ${sweepPrefix(i)} dev ${dev} table ${table} proto ${protocol}\n`);
  await writeFile(file, lines.join(''));
  await ctx.ns.ip('-batch', file);
}

/** Timed warm iterations per side at each sweep count (their median is the point): cheap, and one alone is noisy. */
const SWEEP_WARM = 3;

/**
 * Dump time against route count, for the relist chart: at each count of RELIST_SWEEP one sample
 * (SWEEP_WARM warm iterations) of each of `sides`; 65,280 is the main samples' median, for every
 * side `drawn` (pyroute2 without --long: that point alone).
 */
async function relistSweep(ctx: BenchContext, dir: string, files: WorkFiles, drawn: Side[], sides: Side[], main: Map<Side, Sample[]>): Promise<SweepPoint[]> {
  const points: SweepPoint[] = [];
  const series = (s: Side): string => (s.role === 'reference' ? 'iproute2 (ip route show)' : s.label);
  for (const s of drawn) if (main.get(s)!.length > 0) points.push({ series: series(s), x: count, y: median(main.get(s)!.map((x) => x.warm)) });
  try {
    for (const n of RELIST_SWEEP) {
      await fillSweep(ctx, dir, n);
      const parts: string[] = [];
      for (const side of sides) {
        try {
          const x = await sample(ctx, 'dump', side, files, n, SWEEP_WARM);
          points.push({ series: series(side), x: n, y: x.warm });
          parts.push(`${side.label} ${ms(x.warm)} ms`);
        } catch (e) {
          if (side.role !== 'peer') throw e;
          parts.push(`${side.label} failed (${e instanceof Error ? e.message : String(e)})`);
        }
      }
      ctx.log(`  relist sweep ${n.toLocaleString('en-US')} routes: ${parts.join(', ')}`);
    }
  } finally {
    await emptyByLinkCycle(ctx);
  }
  return points.sort((a, b) => a.x - b.x);
}

export async function measureRoutes(ctx: BenchContext, op: Operation): Promise<Figures> {
  const name = op === 'dump' ? 'dump-routes-65k' : 'program-routes-65k';
  const dir = await mkdtemp(join(tmpdir(), 'tkb-routes-'));
  try {
    const files = await prepareNamespace(ctx, dir);
    const peers = await peerSides(ctx, op);
    if (op === 'dump') {
      await fillTable(ctx, files);
      const n = await countRoutes(ctx);
      if (n !== count) throw new Error(`table ${table} holds ${n} routes, expected ${count}`);
    }
    for (const [label, note] of ctx.long ? [] : LONG_ONLY[op]) ctx.log(`  peer ${label}: not run, ${note}`);
    const sides = [...SIDES[op], ...peers.sides];
    const results = new Map<Side, Sample[]>(sides.map((s) => [s, []]));
    const samplesStarted = Date.now();
    for (let i = 0; i < ctx.samples; i++) {
      // Alternate who goes first so slow drift (other tenants, memory state) hits every side alike.
      const order = i % 2 === 0 ? sides : [...sides].reverse();
      const ran = new Set<Side>();
      const roundStarted = Date.now();
      for (const side of order) {
        if (side.role === 'peer' && peers.errors.has(side.label)) continue;
        if (results.get(side)!.length >= samplesFor(side, ctx.samples, ctx.long)) continue;
        try {
          results.get(side)!.push(await sample(ctx, op, side, files));
          ran.add(side);
        } catch (e) {
          if (side.role !== 'peer') throw e;
          const msg = e instanceof Error ? e.message : String(e);
          peers.errors.set(side.label, msg);
          ctx.log(`  peer ${side.label} FAILED: ${msg}`);
        }
      }
      ctx.log(
        `  ${name} ${i + 1}/${ctx.samples} (${seconds(roundStarted)} s): ` +
          sides
            .filter((s) => ran.has(s))
            .map((s) => {
              const x = results.get(s)!.at(-1)!;
              const notes = [`cold ${ms(x.cold)}`, ...(x.retries > 0 ? [`${x.retries} retried`] : []), ...(x.contended ? ['contended'] : [])];
              return `${s.label} ${ms(x.warm)} ms (${notes.join(', ')})`;
            })
            .join(', '),
      );
    }
    ctx.log(`  ${name}: samples in ${seconds(samplesStarted)} s`);
    const all = [...results.values()].flat();
    const contended = all.filter((s) => s.contended).length;
    const retried = all.reduce((n, s) => n + s.retries, 0);
    if (retried > 0) ctx.log(`  ${name}: ${retried} warm iteration(s) were run again because other processes took > ${Math.round(CONTENDED_SHARE * 100)}% of the measured CPU`);
    if (contended > 0) {
      ctx.log(
        `  ${name}: WARNING ${contended} sample(s) had every warm iteration share the measured CPU with other processes ` +
          `(> ${Math.round(CONTENDED_SHARE * 100)}% of it; up to ${MAX_TRIES} tries each, as many retries per sample as timed iterations): those figures measure a busy machine`,
      );
    }
    for (const s of sides) {
      const xs = results.get(s)!;
      if (xs.length > 0) ctx.log(`  ${name} ${s.label.padEnd(28)} warm ${spread(xs.map((x) => x.warm))}; cold ${spread(xs.map((x) => x.cold))}`);
    }
    const project = sides.find((s) => s.role === 'project')!;
    const reference = sides.find((s) => s.role === 'reference')!;
    const pairs = results.get(project)!.map((p, i) => results.get(reference)!.at(i)!.warm / p.warm);
    ctx.log(`  ${name} ${reference.label}/tunkeeper per sample pair: median ${median(pairs).toFixed(3)} (${pairs.map((r) => r.toFixed(2)).join(' ')})`);
    const warmOf = (s: Side): number[] => results.get(s)!.map((x) => x.warm);
    const peerFigures: PeerFigures[] = PEERS.map(({ label }) => {
      const side = peers.sides.find((s) => s.label === label);
      const xs = side === undefined ? [] : warmOf(side);
      const error = peers.errors.get(label);
      const note = ctx.long ? undefined : LONG_ONLY[op].get(label);
      if (note !== undefined) return { name: label, value: null, note };
      if (xs.length === 0) return { name: label, value: null, error: error ?? 'no samples' };
      return { name: label, value: median(xs), samples: xs, ...(error === undefined ? {} : { error }) };
    });
    const figures: Figures = {
      project: median(warmOf(project)),
      reference: median(warmOf(reference)),
      referenceName: REFERENCE_NAME[op],
      projectSamples: warmOf(project),
      referenceSamples: warmOf(reference),
      peers: peerFigures,
    };
    if (op === 'dump') {
      const sweepStarted = Date.now();
      // pyroute2 dumps 100,000 routes in about 15 s: in the default run it dumps once (the main
      // sample) and its line on the chart is that one point; --long sweeps it too.
      const drawn = [project, reference, ...peers.sides.filter((s) => !peers.errors.has(s.label))];
      const swept = drawn.filter((s) => ctx.long || s.slow !== true);
      figures.sweep = { chart: 'routes', points: await relistSweep(ctx, dir, files, drawn, swept, results) };
      ctx.log(`  ${name}: relist sweep in ${seconds(sweepStarted)} s${ctx.long ? '' : ' (pyroute2 only with --long)'}`);
    }
    return figures;
  } finally {
    // Emptied now, in the kernel at once, rather than by the namespace's teardown, which a
    // kworker does in the background while the next benchmark measures.
    await emptyByLinkCycle(ctx).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}
