/**
 * The measured phases of fleet-converge, each against the API server's own counters:
 * - a spec change: until every node's TunNodeState says Ready at the new generation, and until
 *   the TunDevice says so (the Lease holder's summary), then a settle window for trailing writes;
 * - a quiet minute: nothing changes, nothing may be written;
 * - a restart storm: the API server SIGKILLed and started again under every watcher.
 */
import type { KubeApi } from '../../controller/kube/api-client.js';
import type { KubeCluster } from '../../test/helpers/kube-server.js';
import { byVerb, diffCounters, procStat, scrape, sumOf, WRITE_VERBS, type ApiCounters } from './apiserver-metrics.js';
import type { FleetObserver } from './fleet-observer.js';
import { setFleetMtu } from './kube-setup.js';
import type { SimFleet } from './sim-fleet.js';

/** Trailing writes (a status write waiting out its 1 s pacing, an Event) land within this after Ready. */
export const SETTLE_MS = 3_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface ChangeResult {
  generation: number;
  /** Per simulated node: change → its TunNodeState Ready at the generation (ms). */
  nodeMs: number[];
  /** The three real agents', likewise. */
  realMs: number[];
  /** change → TunDevice Ready with every node (ms). */
  readyMs: number;
  requests: ApiCounters;
  apiserverCpuSeconds: number;
}

export async function measureChange(o: { api: KubeApi; cluster: KubeCluster; observer: FleetObserver; mtu: number; nodes: number; realNodes: readonly string[]; timeoutMs: number }): Promise<ChangeResult> {
  const pid = o.cluster.apiServerPid()!;
  const before = await scrape(o.cluster.server, o.cluster.dir);
  const cpu0 = procStat(pid).cpuSeconds;
  const t0 = Date.now();
  const g = await setFleetMtu(o.api, o.mtu);
  await o.observer.until(`generation ${g} Ready on all ${o.nodes} nodes`, () => o.observer.readyCount(g) >= o.nodes, o.timeoutMs, () => `${o.observer.readyCount(g)} were`);
  await o.observer.until(`TunDevice Ready at generation ${g}`, () => o.observer.deviceReadyAt.has(g), o.timeoutMs);
  await sleep(SETTLE_MS);
  const after = await scrape(o.cluster.server, o.cluster.dir);
  const cpu1 = procStat(pid).cpuSeconds;
  const real = new Set(o.realNodes);
  const nodeMs: number[] = [];
  const realMs: number[] = [];
  for (const [node, at] of o.observer.nodeReadyAt.get(g)!) (real.has(node) ? realMs : nodeMs).push(at - t0);
  return { generation: g, nodeMs, realMs, readyMs: o.observer.deviceReadyAt.get(g)!.at - t0, requests: diffCounters(after, before), apiserverCpuSeconds: cpu1 - cpu0 };
}

/**
 * Writes of what the fleet writes (TunNodeStates, TunDevice status, Events, the status Lease);
 * Lease renewals (ours: the holder's heartbeat; and the API server's own identity Lease) apart.
 * The API server's own bookkeeping (endpoints of the kubernetes Service) is not the fleet's.
 */
export function writesOf(requests: ReadonlyMap<string, number>): { writes: number; leaseRenewals: number; byResource: Record<string, number> } {
  const byResource: Record<string, number> = {};
  let writes = 0;
  let leaseRenewals = 0;
  for (const [k, v] of requests) {
    const [verb, res] = k.split(' ') as [string, string];
    if (!WRITE_VERBS.has(verb) || !FLEET_RESOURCES.has(res.split('/')[0]!)) continue;
    if (verb === 'PUT' && res === 'leases') {
      leaseRenewals += v;
      continue;
    }
    byResource[`${verb} ${res}`] = (byResource[`${verb} ${res}`] ?? 0) + v;
    writes += v;
  }
  return { writes, leaseRenewals, byResource };
}

const FLEET_RESOURCES = new Set(['tunnodestates', 'tundevices', 'events', 'leases', 'nodes']);

export async function quietWindow(cluster: KubeCluster, ms: number): Promise<{ requests: ApiCounters; writes: number; leaseRenewals: number; byResource: Record<string, number> }> {
  const before = await scrape(cluster.server, cluster.dir);
  await sleep(ms);
  const after = await scrape(cluster.server, cluster.dir);
  const requests = diffCounters(after, before);
  return { requests, ...writesOf(requests.requests) };
}

/** How long after a restart the request rate is watched, at least. */
const RATE_WINDOW_MS = 15_000;

export interface RestartResult {
  /** The new API server process started → every simulated node connected and synced again (ms). */
  resyncMs: number;
  /** The new process started → its /readyz said ok (ms). */
  serverStartMs: number;
  /** The longest a single node took, and the median. */
  perNodeP50Ms: number;
  /** Requests per second, the busiest second after the restart. */
  peakRequestsPerSecond: number;
  /** LISTs (every resource) per simulated node, from the new server's counters. */
  listsPerNode: number;
  /**
   * Streaming lists (WATCH with sendInitialEvents; every resource) per simulated node, from the
   * new server's apiserver_watch_list_duration_seconds: the re-syncs that are no LIST. The API
   * server's own informers make a few at its start (about 20, one per resource they watch).
   */
  resyncStreamsPerNode: number;
  /** The same by resource. */
  streamsByResource: Record<string, number>;
  /** LIST + watch-with-initial-state per node: every way a node may re-read a whole collection. */
  requests: Record<string, number>;
  byResource: Record<string, number>;
  downMs: number;
}

export async function restartStorm(o: { cluster: KubeCluster; fleet: SimFleet; nodes: number; timeoutMs: number; log: (s: string) => void }): Promise<RestartResult> {
  const stoppedAt = Date.now();
  await o.cluster.stopApiServer();
  // Every node notices (its watches end); only then is the server started again.
  const lost = () => [...o.fleet.conn.values()].filter((c) => !c.connected).length;
  const guard = Date.now() + 60_000;
  while (lost() < o.nodes && Date.now() < guard) await sleep(100);
  o.log(`  restart: ${lost()} of ${o.nodes} nodes saw the API server go within ${Date.now() - stoppedAt} ms`);
  // From the new process's start: the fleet's reconnects begin while it initializes.
  const startAt = Date.now();
  await o.cluster.startApiServer();
  const readyAt = Date.now();
  // The busiest second: the new server's counters, read every second until every node is back
  // and for at least RATE_WINDOW_MS (relists that come later, after a jittered backoff, count too).
  let last = 0;
  let peak = 0;
  let lastAt = readyAt;
  const back = () => [...o.fleet.conn.values()].filter((c) => c.connected && c.at >= startAt).length;
  const deadline = readyAt + o.timeoutMs;
  while (back() < o.nodes || Date.now() - readyAt < RATE_WINDOW_MS) {
    if (Date.now() > deadline) throw new Error(`restart storm: ${back()} of ${o.nodes} nodes back within ${Math.round(o.timeoutMs / 1000)} s`);
    await sleep(1000);
    const c = await scrape(o.cluster.server, o.cluster.dir).catch(() => undefined);
    if (!c) continue;
    const total = sumOf(c.requests);
    const now = Date.now();
    peak = Math.max(peak, ((total - last) * 1000) / (now - lastAt));
    last = total;
    lastAt = now;
  }
  const times = [...o.fleet.conn.values()].map((c) => c.at - startAt).sort((a, b) => a - b);
  const c = await scrape(o.cluster.server, o.cluster.dir);
  const byResource: Record<string, number> = {};
  for (const [k, v] of c.requests) if (k.startsWith('LIST ') || k.startsWith('WATCH ')) byResource[k] = v;
  return {
    resyncMs: times[times.length - 1]!,
    perNodeP50Ms: times[Math.floor(times.length / 2)]!,
    serverStartMs: readyAt - startAt,
    peakRequestsPerSecond: Math.round(peak),
    listsPerNode: (byVerb(c.requests).LIST ?? 0) / o.nodes,
    resyncStreamsPerNode: sumOf(c.watchLists) / o.nodes,
    streamsByResource: Object.fromEntries(c.watchLists),
    requests: byVerb(c.requests),
    byResource,
    downMs: startAt - stoppedAt,
  };
}
