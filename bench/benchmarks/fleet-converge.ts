/**
 * fleet-converge (issue #16): what a fleet of tunkeeper agents does to one real API server.
 *
 * A real kube-apiserver + etcd (the Kubernetes tier's, test/helpers/kube-server.ts), 3 real agents
 * (`tunkeeper run --kube`, each in a network namespace of its own with a real kernel; started
 * first, so a real agent holds the status Lease and writes TunDevice.status) and N simulated nodes
 * (bench/fleet/sim-worker.ts: the agent's own startAgent and cluster side, with an in-memory
 * reconciler for a kernel), several worker processes of up to NODES_PER_PROCESS nodes each. One
 * TunDevice selects every node.
 *
 * The fleet grows through the sweep (100, 300, 1,000 simulated nodes; 5,000 more with --long). At
 * each size: a few MTU changes, each timed from just before the PATCH until every node's
 * TunNodeState says Ready at the new generation (per node, from the bench's own watch) and until
 * the TunDevice says Ready n/n; the API server's request counters and CPU over each change. At
 * the largest size: memory per simulated node, a quiet minute (writes must be 0), and a restart
 * storm (the API server SIGKILLed and started again under every watcher).
 *
 * No reference: no other tool does this work against the same API server (Calico's Typha or
 * nmstate's handler are whole other systems), so reference and ratio are null; the row carries
 * its targets as met or not.
 */
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeApi } from '../../controller/kube/api-client.js';
import { DEFAULT_NAMESPACE } from '../../controller/kube/types.js';
import { startKubeCluster, type KubeCluster } from '../../test/helpers/kube-server.js';
import type { Benchmark, BenchContext } from '../benchmark.js';
import { onAbort } from '../cleanup.js';
import { byVerb, procStat, sumOf, type ApiCounters } from '../fleet/apiserver-metrics.js';
import { FleetObserver } from '../fleet/fleet-observer.js';
import { createFleetDevice, createNamespace, createNodes, FLEET_DEVICE, FLEET_IFNAME } from '../fleet/kube-setup.js';
import { measureChange, quietWindow, restartStorm, writesOf, type ChangeResult } from '../fleet/phases.js';
import { realAgentStats, realMtus, startRealAgents, stopRealAgents, type RealAgent } from '../fleet/real-agents.js';
import { SimFleet } from '../fleet/sim-fleet.js';
import type { FieldValue, Figures, SweepPoint } from '../report.js';
import { median, percentile } from '../stats.js';

const REAL_NODES = ['real-0', 'real-1', 'real-2'] as const;
/** Nodes per worker process: a Node.js process holds them easily (see bytesPerNode), and 4 workers use both cores. */
const NODES_PER_PROCESS = Number(process.env.TUNKEEPER_FLEET_NODES_PER_PROCESS ?? 250);
const QUIET_MS = Number(process.env.TUNKEEPER_FLEET_QUIET_MS ?? 60_000);
const TARGET_P99_MS = 10_000;
/** Extra kube-apiserver flags, e.g. `--profiling=true` to take a CPU profile of the server during a change. */
const APISERVER_ARGS = (process.env.TUNKEEPER_FLEET_APISERVER_ARGS ?? '').split(/\s+/).filter((a) => a !== '');

const simName = (i: number) => `sim-${String(i).padStart(5, '0')}`;
const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;
const perNode = (r: Record<string, number>, nodes: number, changes: number): Record<string, number> =>
  Object.fromEntries(Object.entries(r).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, round(v / nodes / changes, 3)]));

function sweepOf(ctx: BenchContext): number[] {
  const env = process.env.TUNKEEPER_FLEET_SWEEP;
  if (env) return env.split(',').map(Number);
  return ctx.long ? [100, 300, 1_000, 5_000] : [100, 300, 1_000];
}

interface SizeResult {
  nodes: number;
  changes: ChangeResult[];
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  readyMs: number[];
  requestsPerNodePerChange: Record<string, number>;
  writesPerNodePerChange: number;
  watchEventsPerChange: number;
  apiserverCpuSecondsPerChange: number;
}

function summarizeSize(nodes: number, changes: ChangeResult[]): SizeResult {
  const all = changes.flatMap((c) => c.nodeMs);
  const total = nodes + REAL_NODES.length;
  const requests = new Map<string, number>();
  let watchEvents = 0;
  for (const c of changes) {
    for (const [k, v] of c.requests.requests) requests.set(k, (requests.get(k) ?? 0) + v);
    watchEvents += sumOf(c.requests.watchEvents);
  }
  return {
    nodes,
    changes,
    p50Ms: median(all),
    p99Ms: percentile(all, 99),
    maxMs: Math.max(...all),
    readyMs: changes.map((c) => c.readyMs),
    requestsPerNodePerChange: perNode(byVerb(requests), total, changes.length),
    // TunNodeState writes (object and status): the target is about them; Events and the summary are in requestsPerNodePerChange.
    writesPerNodePerChange: round(sumOf(new Map([...requests].filter(([k]) => /^(APPLY|PATCH|PUT|POST) tunnodestates/.test(k)))) / total / changes.length, 3),
    watchEventsPerChange: Math.round(watchEvents / changes.length),
    apiserverCpuSecondsPerChange: round(changes.reduce((s, c) => s + c.apiserverCpuSeconds, 0) / changes.length, 2),
  };
}

function requestsByResource(changes: ChangeResult[], nodes: number): Record<string, number> {
  const m = new Map<string, number>();
  for (const c of changes) for (const [k, v] of c.requests.requests) m.set(k, (m.get(k) ?? 0) + v);
  return Object.fromEntries([...m].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, round(v / nodes / changes.length, 3)]));
}

async function run(ctx: BenchContext): Promise<Figures> {
  const sweep = sweepOf(ctx);
  const largest = sweep[sweep.length - 1]!;
  const changesAt = (n: number) => Number(process.env.TUNKEEPER_FLEET_CHANGES ?? (n === largest ? 5 : 3));
  const work = await mkdtemp(join(tmpdir(), 'tk-fleet-'));
  // The simulated nodes' state dirs: tmpfs when there is one, as each real node has a disk of its own.
  const stateRoot = await mkdtemp(join('/dev/shm', 'tk-fleet-state-')).catch(() => mkdtemp(join(work, 'state-')));
  let cluster: KubeCluster | undefined;
  let fleet: SimFleet | undefined;
  let observer: FleetObserver | undefined;
  let real: RealAgent[] = [];
  // Ctrl-C: the processes go by the harness's and the workers' own handlers; the folders here.
  const unregister = onAbort(() => {
    for (const dir of [stateRoot, work, cluster?.dir]) if (dir) rmSync(dir, { recursive: true, force: true });
  });
  const started = Date.now();
  const phase = (what: string) => ctx.log(`  [${Math.round((Date.now() - started) / 1000)} s] ${what}`);
  try {
    cluster = await startKubeCluster({ apiServerArgs: APISERVER_ARGS });
    const api = new KubeApi(cluster.kubeConfig());
    phase(`API server up (pid ${cluster.apiServerPid()}), CRDs loaded; ${cluster.dir}`);
    await createNamespace(api, DEFAULT_NAMESPACE);
    await createNodes(api, REAL_NODES);
    let mtu = 1400;
    const g1 = await createFleetDevice(api, mtu);
    observer = new FleetObserver(api, FLEET_DEVICE);
    observer.start();
    real = await startRealAgents(REAL_NODES, { kubeconfig: cluster.kubeconfigPath, namespace: DEFAULT_NAMESPACE, stateRoot: join(work, 'real') });
    const obs = observer;
    await obs.until('the real agents Ready', () => obs.readyCount(g1) >= REAL_NODES.length && obs.deviceReadyAt.has(g1), 120_000);
    phase(`3 real agents Ready (each in its own network namespace), TunDevice Ready 3/3`);

    const workers = Math.max(1, Math.ceil(largest / NODES_PER_PROCESS));
    fleet = await SimFleet.start(workers, { kubeconfig: cluster.kubeconfigPath, namespace: DEFAULT_NAMESPACE, stateRoot, startConcurrency: 10 }, work);
    phase(`${workers} worker processes for up to ${largest} simulated nodes`);

    const sizes: SizeResult[] = [];
    let have = 0;
    for (const n of sweep) {
      const names = Array.from({ length: n - have }, (_, i) => simName(have + i));
      const t = Date.now();
      await createNodes(api, names);
      const created = Date.now() - t;
      const current = Math.max(...obs.nodeReadyAt.keys());
      await fleet.add(names, 10 * 60_000);
      await obs.until(`${n} simulated nodes Ready at generation ${current}`, () => obs.readyCount(current) >= n + REAL_NODES.length, 10 * 60_000, () => `${obs.readyCount(current)} of ${n + REAL_NODES.length} nodes were`);
      await obs.until(`TunDevice Ready ${n + REAL_NODES.length}/${n + REAL_NODES.length}`, () => obs.latestReady?.generation === current && obs.latestReady.n === n + REAL_NODES.length, 5 * 60_000, () => `it said Ready ${obs.latestReady?.n ?? 0} at generation ${obs.latestReady?.generation ?? '-'}`);
      phase(`${n} simulated nodes: Nodes created in ${created} ms, all started and reporting after ${Date.now() - t} ms`);
      have = n;
      const changes: ChangeResult[] = [];
      for (let k = 0; k < changesAt(n); k++) {
        mtu = mtu === 1400 ? 1380 : 1400;
        const c = await measureChange({ api, cluster, observer: obs, mtu, nodes: n + REAL_NODES.length, realNodes: REAL_NODES, timeoutMs: 5 * 60_000 });
        changes.push(c);
        const w = writesOf(c.requests.requests);
        ctx.log(
          `    change to generation ${c.generation}: all ${n} simulated nodes in ${Math.max(...c.nodeMs)} ms (p50 ${median(c.nodeMs)}), real agents ${c.realMs.join('/')} ms, TunDevice Ready ${c.readyMs} ms; ` +
            `${sumOf(c.requests.requests)} requests (${fmt(byVerb(c.requests.requests))}), writes ${fmt(w.byResource)}, ${sumOf(c.requests.watchEvents)} watch events (${fmt(Object.fromEntries(c.requests.watchEvents))}), API server ${round(c.apiserverCpuSeconds, 2)} CPU s`,
        );
      }
      const s = summarizeSize(n, changes);
      sizes.push(s);
      ctx.log(`  ${n} nodes: p50 ${s.p50Ms} ms, p99 ${s.p99Ms} ms, max ${s.maxMs} ms, Ready ${s.readyMs.join('/')} ms; per node per change ${fmt(s.requestsPerNodePerChange)}; by resource ${fmt(requestsByResource(changes, n + REAL_NODES.length))}`);
    }
    const mtus = await realMtus(real, FLEET_IFNAME);
    phase(`real kernels: ${FLEET_IFNAME} MTU ${fmt(mtus)} (declared ${mtu})`);
    if (Object.values(mtus).some((m) => m !== mtu)) throw new Error(`a real agent's kernel does not have the declared MTU ${mtu}: ${JSON.stringify(mtus)}`);

    const mem = await fleet.rss();
    const bytesPerNode = Math.round(mem.reduce((s, w) => s + (w.rss - w.baseline), 0) / largest);
    phase(`workers: ${mem.map((w) => `${w.nodes} nodes ${Math.round(w.rss / 2 ** 20)} MiB (${Math.round(w.baseline / 2 ** 20)} before any node, heap ${Math.round(w.heapUsed / 2 ** 20)} MiB)`).join('; ')}: ${Math.round(bytesPerNode / 1024)} KiB per node`);
    phase(`real agents: ${realAgentStats(real).map((a) => `${a.node} ${a.rssMb} MiB, ${round(a.cpuSeconds, 1)} CPU s`).join('; ')}`);

    // What an idle fleet costs: the workers' CPU (every simulated node's timers, bookmarks, Lease
    // candidate) and the API server's, over the quiet window. It bounds how many simulated nodes
    // 2 cores can hold at all.
    const cpuOf = (pids: number[]) => pids.reduce((sum, pid) => sum + procStat(pid).cpuSeconds, 0);
    const quietCpuBefore = { workers: cpuOf(fleet.pids()), api: procStat(cluster.apiServerPid()!).cpuSeconds };
    const quiet = await quietWindow(cluster, QUIET_MS);
    const quietCpu = { workers: cpuOf(fleet.pids()) - quietCpuBefore.workers, api: procStat(cluster.apiServerPid()!).cpuSeconds - quietCpuBefore.api };
    const quietCpuMsPerNodePerMinute = round((quietCpu.workers * 1000) / largest / (QUIET_MS / 60_000), 2);
    phase(
      `quiet ${QUIET_MS / 1000} s: ${quiet.writes} writes (${fmt(quiet.byResource)}), ${quiet.leaseRenewals} lease renewals by the holder, ${sumOf(quiet.requests.requests)} requests (${fmt(byVerb(quiet.requests.requests))}); ` +
        `CPU: workers ${round(quietCpu.workers, 2)} s (${quietCpuMsPerNodePerMinute} ms per simulated node per minute), API server ${round(quietCpu.api, 2)} s`,
    );

    const apiBefore = procStat(cluster.apiServerPid()!);
    const storm = await restartStorm({ cluster, fleet, nodes: largest, timeoutMs: 5 * 60_000, log: ctx.log });
    phase(`restart storm: down ${storm.downMs} ms; the new server ready after ${storm.serverStartMs} ms, every node re-synced ${storm.resyncMs} ms after its start (median node ${storm.perNodeP50Ms} ms); peak ${storm.peakRequestsPerSecond} requests/s; ${round(storm.listsPerNode, 3)} LISTs per node (${fmt(storm.byResource)}); ${round(storm.resyncStreamsPerNode, 3)} streaming lists per node (${fmt(storm.streamsByResource)})`);
    const apiAfter = procStat(cluster.apiServerPid()!);

    const main = sizes[sizes.length - 1]!;
    const restartLists = round(storm.listsPerNode, 3);
    const targets = {
      writesPerNodePerChange: main.writesPerNodePerChange <= 1,
      quietWrites: quiet.writes === 0,
      relistsPerNodeAfterRestart: restartLists <= 1,
      p99Ms: main.p99Ms <= TARGET_P99_MS,
    };
    ctx.log(`  targets: ${Object.entries(targets).map(([k, v]) => `${k} ${v ? 'met' : 'NOT met'}`).join(', ')}`);

    const points: SweepPoint[] = sizes.flatMap((s) => [
      { series: 'time: node p50', x: s.nodes, y: s.p50Ms },
      { series: 'time: node p99', x: s.nodes, y: s.p99Ms },
      { series: 'time: TunDevice Ready (median)', x: s.nodes, y: median(s.readyMs) },
      ...Object.entries(s.requestsPerNodePerChange).map(([verb, y]) => ({ series: `requests: ${verb}`, x: s.nodes, y })),
    ]);
    const fields: Record<string, FieldValue> = {
      nodes: largest,
      realAgents: REAL_NODES.length,
      nodesPerProcess: Math.ceil(largest / fleet.workers),
      processes: fleet.workers,
      p50Ms: main.p50Ms,
      maxMs: main.maxMs,
      readyMs: { p50: median(main.readyMs), max: Math.max(...main.readyMs) },
      changes: main.changes.length,
      requestsPerNodePerChange: main.requestsPerNodePerChange,
      writesPerNodePerChange: main.writesPerNodePerChange,
      watchEventsPerChange: main.watchEventsPerChange,
      quietWrites: quiet.writes,
      quietSeconds: QUIET_MS / 1000,
      quietLeaseRenewals: quiet.leaseRenewals,
      quietCpuMsPerNodePerMinute,
      quietApiserverCpuSeconds: round(quietCpu.api, 2),
      restartResyncMs: storm.resyncMs,
      restartPeakRequestsPerSecond: storm.peakRequestsPerSecond,
      relistsPerNodeAfterRestart: restartLists,
      resyncStreamsPerNodeAfterRestart: round(storm.resyncStreamsPerNode, 3),
      apiserverCpuSeconds: main.apiserverCpuSecondsPerChange,
      apiserverRssMb: Math.round(apiBefore.rssBytes / 2 ** 20),
      apiserverPeakRssMb: Math.round(Math.max(apiBefore.hwmBytes, apiAfter.hwmBytes) / 2 ** 20),
      bytesPerNode,
      targets,
      sweep: sizes.map((s) => ({ nodes: s.nodes, p50Ms: s.p50Ms, p99Ms: s.p99Ms, maxMs: s.maxMs, readyMs: median(s.readyMs), requestsPerNodePerChange: s.requestsPerNodePerChange, writesPerNodePerChange: s.writesPerNodePerChange, watchEventsPerChange: s.watchEventsPerChange, apiserverCpuSeconds: s.apiserverCpuSecondsPerChange })),
    };
    return {
      project: main.p99Ms,
      reference: null,
      referenceName: null,
      projectSamples: main.changes.flatMap((c) => c.nodeMs),
      sweep: { chart: 'fleet', points },
      fields,
    };
  } finally {
    observer?.stop();
    await fleet?.stop().catch((e: unknown) => ctx.log(`  stopping the simulated fleet: ${(e as Error).message}`));
    await stopRealAgents(real);
    await cluster?.close();
    await rm(stateRoot, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
    unregister();
  }
}

function fmt(o: Record<string, number | null> | ApiCounters['requests']): string {
  const entries = o instanceof Map ? [...o] : Object.entries(o);
  return entries.map(([k, v]) => `${k} ${v}`).join(', ');
}

export const fleetConverge: Benchmark = {
  name: 'fleet-converge',
  unit: 'ms',
  better: 'lower',
  description: 'a TunDevice change until all N simulated nodes (+3 real agents) report it, p99 ms, against a real kube-apiserver (100/300/1,000 nodes; 5,000 with --long)',
  run,
};
