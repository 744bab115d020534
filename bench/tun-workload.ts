/**
 * The shared workload of tun-read-pps and tun-write-pps: 64-byte UDP payloads into and out of a
 * TUN device in the benchmark's namespace, measured once through tunkeeper's addon and once
 * through the C reference (bench/ref/tun_loop.c), with the same device settings, the same traffic
 * and the same CPUs, samples alternating sides.
 *
 * Addresses: the TUN has 198.18.0.1/24 and a route to 198.18.1.0/24.
 *   read:  udp_gen floods 198.18.0.1 -> 198.18.1.1:9 (routed into the TUN); the subject reads.
 *   write: the subject writes 198.18.1.1 -> 198.18.0.1:9, delivered locally to a UDP socket that
 *          never reads (udp_gen sink), so every packet costs the same full receive path.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BenchContext } from './benchmark.js';
import { CONTENDED_SHARE, contention as contentionOf, isContended, snapshot } from './cpu-load.js';
import { distBenchDir } from './paths.js';
import type { Proc } from './processes.js';
import { peerProgram, type PeerCommand } from './peer-build.js';
import type { Figures, PeerFigures, SweepPoint } from './report.js';
import { median } from './stats.js';

export const TUN_WORKLOAD = {
  dev: 'tkb0',
  address: '198.18.0.1',
  prefixLength: 24,
  remoteNet: '198.18.1.0/24',
  remote: '198.18.1.1',
  port: 9,
  payload: 64,
  /** Both the qdisc's and the TUN ring's length (the ring is sized from it when a queue attaches). */
  txQueueLength: 1000,
} as const;

const PACKET_LENGTH = 20 + 8 + TUN_WORKLOAD.payload;

export type Direction = 'read' | 'write';
/**
 * tunkeeper, the C reference, and the peers: tun-rs on its plain path and on its offload path;
 * and tunkeeper's own offload path (vnetHdr, segment() / writeCoalesced()), which tun-rs's
 * offload path is compared against (not the headline, which DESIGN defines as the plain path).
 */
type Side = 'tunkeeper' | 'reference' | 'tun-rs' | 'tun-rs offload' | 'tunkeeper offload';
const PEER_SIDES = ['tun-rs', 'tun-rs offload'] as const;
type PeerSide = (typeof PEER_SIDES)[number];
/** The sides besides the headline pair, sampled after it in each round; a failure loses only that side. */
const EXTRA_SIDES = ['tunkeeper offload', ...PEER_SIDES] as const;
type ExtraSide = (typeof EXTRA_SIDES)[number];

/** Batch sizes of the throughput-against-batch-size chart (tunkeeper's readBatch / writePacked count). */
export const BATCH_SWEEP = [1, 4, 16, 64, 256] as const;
/**
 * The default run's sweep: fewer points, half windows (64 is the main samples' batch size, so its
 * point is their median). Time budget of the default run: read about 30 s, write about 25 s
 * (4 samples of the pair: TUN_DEFAULT_SAMPLES, 3 of each extra side, 1.3-1.5 s a sample).
 */
const QUICK_SWEEP: Record<Direction, readonly number[]> = { read: [1, 16, 256], write: [1, 256] };
/** Samples per side of the pair in the default run: two rounds in each order. */
export const TUN_DEFAULT_SAMPLES = 4;
/**
 * Warm-up of a write sample in the default run: the loop is compiled within milliseconds and the
 * sink's receive queue fills within the first thousand packets, so 0.1 s is plenty (reads keep the
 * run's 0.3 s: the flood and the reader settle together).
 */
const QUICK_WRITE_WARMUP = 0.1;
/** tunkeeper offload's readBatch (wire packets per batch when the reader segments). */
const OFFLOAD_READ_BATCH = 1024;
/** Samples per extra side (tun-rs, tunkeeper offload) in the default run: enough for a median. */
const QUICK_EXTRA_SAMPLES = 3;

export const REFERENCE_NAME: Record<Direction, string> = {
  read: 'C read() loop (bench/ref/tun_loop.c)',
  write: 'C write() loop (bench/ref/tun_loop.c)',
};

interface SubjectResult {
  packets: number;
  seconds: number;
  cpuSeconds: number;
  firstLen?: number;
}

interface Sample {
  pps: number;
  /** Share of the pinned CPUs that other processes took during the run (null when unpinned). */
  contention: number | null;
  /** CPU-seconds the subject used per second of measurement (all its threads). */
  cpu: number;
  /** Read only: what the generator offered, packets per second. */
  offeredPps?: number;
}

const { dev, address, prefixLength, remoteNet, remote, port, payload } = TUN_WORKLOAD;

/** IPv6 off: router solicitations and MLD reports would otherwise share the TUN with our traffic. */
async function prepareNamespace(ctx: BenchContext): Promise<void> {
  await ctx.ns.sysctl({ 'net.ipv6.conf.all.disable_ipv6': 1, 'net.ipv6.conf.default.disable_ipv6': 1 });
}

/** A fresh persistent TUN per sample: empty ring, zeroed counters, nothing left from the other side. */
async function createDevice(ctx: BenchContext): Promise<void> {
  const { ns } = ctx;
  await ns.ip('tuntap', 'add', 'dev', dev, 'mode', 'tun');
  await ns.ip('link', 'set', dev, 'txqueuelen', String(TUN_WORKLOAD.txQueueLength), 'up');
  await ns.ip('addr', 'add', `${address}/${prefixLength}`, 'dev', dev);
  await ns.ip('route', 'add', remoteNet, 'dev', dev);
}

async function deleteDevice(ctx: BenchContext): Promise<void> {
  await ctx.ns.ip('link', 'del', dev).catch(() => undefined);
}

/** The peers' drivers, once built (a side whose build failed is not run). */
type PeerCommands = Partial<Record<PeerSide, PeerCommand>>;

function subjectCommand(ctx: BenchContext, side: Side, direction: Direction, warmup: number, seconds: number, peers: PeerCommands, batch?: number): [string, string[]] {
  const [src, dst] = direction === 'read' ? [address, remote] : [remote, address];
  const args = [direction, dev, String(warmup), String(seconds), src, dst, String(payload)];
  if (side === 'reference') return [ctx.refs.path('tun_loop'), args];
  if (side === 'tunkeeper') return [process.execPath, [join(distBenchDir, 'subjects', 'tun-subject.js'), ...args, ...(batch === undefined ? [] : [String(batch)])]];
  // Segmenting reads count wire packets per batch: readBatch 1024, as ReadOptions.segment advises
  // (in one run: 7.27 M pps at 64, 7.95 M at 1024, tun-rs offload 7.83 M); writes: 64 per call, as tun-rs.
  if (side === 'tunkeeper offload') return [process.execPath, [join(distBenchDir, 'subjects', 'tun-subject.js'), ...args, String(batch ?? (direction === 'read' ? OFFLOAD_READ_BATCH : 64)), 'offload']];
  const peer = peers[side];
  if (peer === undefined) throw new Error(`${side}: not built`);
  return [peer.cmd, [...peer.prefix, ...args, side === 'tun-rs offload' ? 'offload' : 'plain']];
}

/** Traffic for one run: the flood (read) or the sink or checking receiver (write). */
function startTraffic(ctx: BenchContext, direction: Direction, receiver: 'sink' | 'count'): Proc {
  const gen = ctx.refs.path('udp_gen');
  if (direction === 'read') return ctx.spawn('udp_gen flood', ctx.cpus.traffic, gen, ['flood', address, remote, String(payload)]);
  const args = receiver === 'sink' ? ['sink', address, String(port)] : ['count', address, String(port), String(payload)];
  return ctx.spawn(`udp_gen ${receiver}`, ctx.cpus.traffic, gen, args);
}

interface Run {
  subject: SubjectResult;
  traffic: Record<string, number>;
  contention: number | null;
}

/** Tries per sample while neighbours take a measured CPU (the least contended one is kept). */
const MAX_TRIES = 4;

interface RunOptions {
  receiver?: 'sink' | 'count';
  peers: PeerCommands;
  batch?: number;
}

async function runOnce(ctx: BenchContext, side: Side, direction: Direction, warmup: number, seconds: number, opts: RunOptions): Promise<Run> {
  const receiver = opts.receiver ?? 'sink';
  await createDevice(ctx);
  let subject: Proc | null = null;
  let traffic: Proc | null = null;
  try {
    // The write side's receiver must be bound before the first packet arrives; the read side's
    // flood starts once the subject holds the device (before that the TUN has no carrier).
    if (direction === 'write') {
      traffic = startTraffic(ctx, direction, receiver);
      await traffic.expectLine('running', 10_000);
    }
    const [cmd, args] = subjectCommand(ctx, side, direction, warmup, seconds, opts.peers, opts.batch);
    subject = ctx.spawn(`${side} ${direction}`, ctx.cpus.subject, cmd, args);
    await subject.expectLine('ready', 30_000);
    if (direction === 'read') {
      traffic = startTraffic(ctx, direction, receiver);
      await traffic.expectLine('running', 10_000);
    }
    if (traffic === null) throw new Error('no traffic process');
    const ours = [subject.pid, traffic.pid];
    const before = snapshot(ours);
    subject.send('go');
    const result = await subject.nextJson<SubjectResult>((warmup + seconds) * 1000 + 30_000);
    const after = snapshot(ours);
    await subject.expectSuccess(10_000);
    const trafficResult = await traffic.stopForJson<Record<string, number>>();
    if (!(result.packets >= 0 && result.seconds > 0)) throw new Error(`${side} ${direction}: bad result ${JSON.stringify(result)}`);
    // The CPUs whose work is measured: the subject's, and for reads the generator's (a write's
    // receiver only holds a socket; the writer's CPU does the whole receive path).
    const working = [{ cpu: ctx.cpus.subject, pid: subject.pid }];
    if (direction === 'read') working.push({ cpu: ctx.cpus.traffic, pid: traffic.pid });
    const contention = contentionOf(before, after, working);
    return { subject: result, traffic: trafficResult, contention };
  } finally {
    await subject?.stop();
    await traffic?.stop();
    await deleteDevice(ctx);
  }
}

async function sample(ctx: BenchContext, side: Side, direction: Direction, peers: PeerCommands, batch?: number, seconds = ctx.seconds): Promise<Sample> {
  let best: Sample | null = null;
  for (let attempt = 1; attempt <= MAX_TRIES; attempt++) {
    const warmup = direction === 'write' && !ctx.long ? Math.min(ctx.warmupSeconds, QUICK_WRITE_WARMUP) : ctx.warmupSeconds;
    const { subject, traffic, contention } = await runOnce(ctx, side, direction, warmup, seconds, { peers, ...(batch === undefined ? {} : { batch }) });
    if (direction === 'read' && subject.firstLen !== PACKET_LENGTH) {
      throw new Error(`${side} read: the first packet was ${subject.firstLen} bytes, expected a ${PACKET_LENGTH}-byte IPv4/UDP packet`);
    }
    const cpu = subject.cpuSeconds / subject.seconds;
    // Both directions keep the subject busy (a flood to read, writes without pause), so it uses its
    // whole CPU; one that got less waited for it and measured its neighbours, also where /proc/stat
    // could not tell them apart (softirq work, steal): that share counts as contention too. Samples
    // of 0.8-0.9 CPU had shown up as the low outliers of tun-write-pps (pair ratios 0.75-0.81).
    const starved = contention === null ? null : Math.max(contention, 1 - cpu);
    const s: Sample = { pps: subject.packets / subject.seconds, contention: starved, cpu };
    if (direction === 'read' && traffic.sent !== undefined && traffic.seconds) s.offeredPps = traffic.sent / traffic.seconds;
    if (best === null || (s.contention ?? 0) < (best.contention ?? 0)) best = s;
    if (!isContended(s.contention)) break;
    if (attempt < MAX_TRIES) {
      ctx.log(`    ${side}: other processes took ${pct(s.contention!)} of the measured CPUs (it used ${s.cpu.toFixed(2)} CPU); sampling again`);
      // Neighbours' load comes in bursts (a build, a test run): give it a moment to pass.
      await sleep(500 * attempt);
    }
  }
  return best!;
}

function pct(share: number): string {
  return `${Math.round(share * 100)}%`;
}

async function udpCounters(ctx: BenchContext): Promise<Record<string, number>> {
  const snmp = await ctx.ns.exec('cat', ['/proc/net/snmp']);
  const [names, values] = snmp.split('\n').filter((l) => l.startsWith('Udp:'));
  if (!names || !values) throw new Error('no Udp counters in /proc/net/snmp');
  const n = names.split(/\s+/).slice(1);
  const v = values.split(/\s+/).slice(1).map(Number);
  return Object.fromEntries(n.map((k, i) => [k, v[i] ?? 0]));
}

/**
 * Before measuring writes: each side writes briefly to a receiver that reads and checks every
 * datagram. The kernel verifies the UDP checksum only when a datagram is read, so this is what
 * proves both sides' packets are well formed and really delivered, not dropped early.
 */
async function verifyWrites(ctx: BenchContext, side: Side, peers: PeerCommands): Promise<void> {
  const before = await udpCounters(ctx);
  const { subject, traffic } = await runOnce(ctx, side, 'write', 0.05, 0.2, { receiver: 'count', peers });
  const after = await udpCounters(ctx);
  const csumErrors = (after.InCsumErrors ?? 0) - (before.InCsumErrors ?? 0);
  if (subject.packets === 0 || !(traffic.received! > 0) || traffic.bad !== 0 || csumErrors !== 0) {
    throw new Error(
      `${side} write: packets not delivered intact (written ${subject.packets}, received ${traffic.received}, ` +
        `malformed ${traffic.bad}, checksum errors ${csumErrors})`,
    );
  }
}

function fmt(x: number): string {
  return Math.round(x).toLocaleString('en-US');
}

function describe(samples: Sample[]): string {
  const pps = samples.map((s) => s.pps);
  return `median ${fmt(median(pps))} pps (min ${fmt(Math.min(...pps))}, max ${fmt(Math.max(...pps))}), CPU ${median(samples.map((s) => s.cpu)).toFixed(2)}`;
}

/** Builds the tun-rs driver; a failure leaves both tun-rs sides out, with the reason. */
async function buildPeers(ctx: BenchContext): Promise<{ commands: PeerCommands; errors: Map<ExtraSide, string> }> {
  const build = await peerProgram('tun-rs', ctx.log);
  const errors = new Map<ExtraSide, string>();
  const commands: PeerCommands = {};
  for (const side of PEER_SIDES) {
    if (build.ok) commands[side] = build.command;
    else errors.set(side, build.error);
  }
  if (!build.ok) ctx.log(`  peer tun-rs FAILED: ${build.error}`);
  return { commands, errors };
}

/** A peer side that fails to run loses its column, not the benchmark. */
async function peerSample(ctx: BenchContext, side: ExtraSide, direction: Direction, peers: PeerCommands, errors: Map<ExtraSide, string>): Promise<Sample | null> {
  if (errors.has(side)) return null;
  try {
    if (direction === 'write' && !verified.has(side)) {
      await verifyWrites(ctx, side, peers);
      verified.add(side);
    }
    return await sample(ctx, side, direction, peers);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    errors.set(side, msg);
    ctx.log(`  peer ${side} FAILED: ${msg}`);
    return null;
  }
}
const verified = new Set<Side>();

/**
 * tunkeeper at several batch sizes for the chart of throughput against batch size: with --long
 * every size of BATCH_SWEEP, three samples each; by default QUICK_SWEEP (read: 1, 16, 256; write: 1, 256), one half-window sample
 * each, and 64 from the main samples (`main64`). The headline figures stay those of the main samples.
 */
async function batchSweep(ctx: BenchContext, direction: Direction, peers: PeerCommands, main64: number): Promise<SweepPoint[]> {
  const points: SweepPoint[] = [];
  for (const batch of ctx.long ? BATCH_SWEEP : [...QUICK_SWEEP[direction], 64].sort((a, b) => a - b)) {
    if (!ctx.long && batch === 64) {
      points.push({ series: 'tunkeeper', x: 64, y: main64 });
      continue;
    }
    const xs: number[] = [];
    const seconds = ctx.long ? ctx.seconds : ctx.seconds / 2;
    for (let i = 0; i < (ctx.long ? 3 : 1); i++) xs.push((await sample(ctx, 'tunkeeper', direction, peers, batch, seconds)).pps);
    points.push({ series: 'tunkeeper', x: batch, y: median(xs) });
    ctx.log(`  tun-${direction}-pps sweep: tunkeeper batch ${batch}: ${fmt(median(xs))} pps`);
  }
  return points;
}

export async function measureTun(ctx: BenchContext, direction: Direction): Promise<Figures> {
  await prepareNamespace(ctx);
  verified.clear();
  const name = `tun-${direction}-pps`;
  const { commands: peers, errors } = await buildPeers(ctx);
  if (direction === 'write') {
    for (const side of ['reference', 'tunkeeper'] as const) await verifyWrites(ctx, side, peers);
  }
  const results: Record<Side, Sample[]> = { reference: [], tunkeeper: [], 'tun-rs': [], 'tun-rs offload': [], 'tunkeeper offload': [] };
  // The extra sides get fewer samples in the default run (its time budget), all of them with --long.
  const extraSamples = ctx.long ? ctx.samples : Math.min(ctx.samples, QUICK_EXTRA_SAMPLES);
  for (let i = 0; i < ctx.samples; i++) {
    // Alternate who goes first so slow drift (thermal, other tenants) hits both sides alike.
    const order: Side[] = i % 2 === 0 ? ['reference', 'tunkeeper'] : ['tunkeeper', 'reference'];
    for (const side of order) results[side].push(await sample(ctx, side, direction, peers));
    for (const side of i >= extraSamples ? [] : i % 2 === 0 ? EXTRA_SIDES : [...EXTRA_SIDES].reverse()) {
      const s = await peerSample(ctx, side, direction, peers, errors);
      if (s !== null) results[side].push(s);
    }
    const r = results.reference.at(-1)!;
    const t = results.tunkeeper.at(-1)!;
    const offered = direction === 'read' ? `, offered ${fmt(Math.min(r.offeredPps ?? 0, t.offeredPps ?? 0))}+ pps` : '';
    const busy = (x: Sample): string => (isContended(x.contention) ? `, others took ${pct(x.contention!)}` : '');
    const peerText = EXTRA_SIDES.filter((p) => results[p].length > i)
      .map((p) => `, ${p} ${fmt(results[p].at(-1)!.pps)} pps (CPU ${results[p].at(-1)!.cpu.toFixed(2)}${busy(results[p].at(-1)!)})`)
      .join('');
    ctx.log(
      `  ${name} ${i + 1}/${ctx.samples}: C ${fmt(r.pps)} pps (CPU ${r.cpu.toFixed(2)}${busy(r)}), ` +
        `tunkeeper ${fmt(t.pps)} pps (CPU ${t.cpu.toFixed(2)}${busy(t)})${peerText}${offered}`,
    );
  }
  // Medians over the samples that had their CPUs to themselves, when each side has enough of them:
  // a sample that shared its CPU measured the neighbours, and not both sides alike.
  const clean = (xs: Sample[]): Sample[] => xs.filter((x) => !isContended(x.contention));
  const enough = Math.ceil(ctx.samples / 2);
  const useClean = clean(results.reference).length >= enough && clean(results.tunkeeper).length >= enough;
  const pick = (xs: Sample[]): Sample[] => (useClean && clean(xs).length > 0 ? clean(xs) : xs);
  const used = { reference: pick(results.reference), tunkeeper: pick(results.tunkeeper) };
  const contended = 2 * ctx.samples - clean(results.reference).length - clean(results.tunkeeper).length;
  if (contended > 0 && useClean) {
    ctx.log(`  ${name}: ${contended} of ${2 * ctx.samples} samples shared their CPUs with other processes; medians are over the other ${2 * ctx.samples - contended}`);
  } else if (contended > 0) {
    ctx.log(
      `  ${name}: WARNING ${contended} of ${2 * ctx.samples} samples shared their CPUs with other processes ` +
        `(> ${pct(CONTENDED_SHARE)} of a measured CPU) even after ${MAX_TRIES} tries: these figures measure a busy machine`,
    );
  }
  ctx.log(`  ${name} C:         ${describe(used.reference)}`);
  ctx.log(`  ${name} tunkeeper: ${describe(used.tunkeeper)}`);
  for (const p of EXTRA_SIDES) if (results[p].length > 0) ctx.log(`  ${name} ${p}: ${describe(pick(results[p]))}`);
  // Each pair ran back to back: their ratio is immune to drift between pairs (a neighbour on a
  // sibling CPU can move both sides' figures by a third), so it cross-checks the ratio of medians.
  const pairs = results.tunkeeper.map((t, i) => t.pps / results.reference[i]!.pps);
  ctx.log(`  ${name} tunkeeper/C per sample pair: median ${median(pairs).toFixed(3)} (${pairs.map((r) => r.toFixed(2)).join(' ')})`);
  if (direction === 'read') {
    // The reader, not the generator, must be the bottleneck, or both sides measure the generator.
    const offered = median(used.reference.map((s) => s.offeredPps ?? 0));
    const best = Math.max(median(used.reference.map((s) => s.pps)), median(used.tunkeeper.map((s) => s.pps)));
    if (offered < best * 1.2) {
      ctx.log(`  ${name}: WARNING the generator offered only ${fmt(offered)} pps; the readers may be waiting for traffic`);
    }
  }
  const sweep = await batchSweep(ctx, direction, peers, median(used.tunkeeper.map((s) => s.pps)));
  const levels = (['reference', ...EXTRA_SIDES] as const).filter((s) => results[s].length > 0);
  for (const s of levels) {
    const y = median(pick(results[s]).map((x) => x.pps));
    for (const batch of BATCH_SWEEP) sweep.push({ series: s === 'reference' ? 'C loop (one packet per syscall)' : s, x: batch, y });
  }
  // tun-rs's offload path is held against tunkeeper's offload path, like against like.
  const ownOffload = pick(results['tunkeeper offload']).map((x) => x.pps);
  const versus = (p: PeerSide): Pick<PeerFigures, 'versus'> =>
    p === 'tun-rs offload' && ownOffload.length > 0 ? { versus: { name: 'tunkeeper offload', value: median(ownOffload) } } : {};
  const peerFigures: PeerFigures[] = PEER_SIDES.map((p) => {
    const xs = pick(results[p]).map((x) => x.pps);
    const error = errors.get(p);
    if (xs.length === 0) return { name: p, value: null, error: error ?? 'no samples' };
    return { name: p, value: median(xs), samples: xs, ...versus(p), ...(error === undefined ? {} : { error }) };
  });
  if (errors.has('tunkeeper offload')) ctx.log(`  ${name}: tunkeeper offload did not run: ${errors.get('tunkeeper offload')}`);
  return {
    project: median(used.tunkeeper.map((s) => s.pps)),
    reference: median(used.reference.map((s) => s.pps)),
    referenceName: REFERENCE_NAME[direction],
    projectSamples: used.tunkeeper.map((s) => s.pps),
    referenceSamples: used.reference.map((s) => s.pps),
    peers: peerFigures,
    sweep: { chart: 'batch', points: sweep },
  };
}
