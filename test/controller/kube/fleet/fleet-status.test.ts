/**
 * FleetStatus, the aggregator the holder of the status Lease runs, against an in-memory API server:
 * a KubeApi whose request() serves lists and status PATCHes from maps (with the resourceVersion
 * precondition and 409 of the real one) and whose watch() hands the test the reflectors' event
 * handlers, so every Node and TunNodeState change is pushed as a watch event. The TunNodeStates are
 * built with the agents' own builders (buildDeviceStatus / buildNodeStatus): what a node writes is
 * what the leader reads.
 *
 * Every wait is for an event the fake sees (a request, a recompute — devices() being called — or a
 * write result), never for a stretch of time. That something does NOT happen is shown by making the
 * fleet recompute again and again until the moment it would have happened has passed, then letting
 * a timer armed after that moment fire: Node fires timers in order of expiry, so a write that was
 * due earlier has reached the fake by then (the PATCH is issued synchronously in the write timer's
 * callback). Such a check cannot pass vacuously, and a slow machine only makes it wait longer.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeApi, KubeApiError, PARTIAL_METADATA, type RequestSpec, type WatchEvent, type WatchHandle } from '../../../../controller/kube/api-client.js';
import { buildDeviceStatus, buildNodeStatus } from '../../../../controller/kube/conditions.js';
import { FleetStatus, type FleetStatusOptions, type FleetWriteResult } from '../../../../controller/kube/fleet/fleet-status.js';
import { NODES_PATH, TUN_DEVICES_PATH, TUN_NODE_STATES_PATH, type KubeObject, type TunDeviceObject } from '../../../../controller/kube/types.js';
import { backoffDelay, type BackoffOptions } from '../../../../controller/loop/backoff.js';
import type { DeviceReport } from '../../../../controller/reconcile/types.js';
import type { TunDeviceFleetStatus } from '../../../../controller/schema/tundevice-status.js';
import type { TunNodeStateStatus } from '../../../../controller/schema/tunnodestate.js';
import { createLogger } from '../../../../controller/telemetry/logger.js';

const DEBOUNCE = 10;
/** leaderOf's minIntervalMs unless a test sets its own. */
const MIN_INTERVAL = 200;
/**
 * The fleet's clock and the fake's: monotonic, like the timers. Date.now() is the wall clock, which
 * a VM's host slews and steps by milliseconds, so gaps measured with it can look shorter than the
 * timer delays that made them.
 */
const clock = (): number => performance.timeOrigin + performance.now() + clockAheadMs;
/** How far a test has moved the clock on (the fleet's timers are not affected, only its readings). */
let clockAheadMs = 0;
/** Slack for comparing stamps with timer delays (libuv's clock counts whole milliseconds). */
const TIMER_SLACK_MS = 2;
/** How far past a write's due time the fleet is made to recompute before "no write" is concluded. */
const DUE_MARGIN_MS = 25;
/** Only so that a broken fleet fails with a message instead of jest's timeout; no test relies on it. */
const GIVE_UP_MS = 20_000;
const REPORTED_AT = '2026-12-07T10:00:00Z';
const TUN_DEVICE_API = 'tunkeeper.io/v1alpha1';

type Labels = Record<string, string>;
interface StateObject extends KubeObject {
  status?: unknown;
}
interface DeviceObject extends TunDeviceObject {
  status?: TunDeviceFleetStatus;
}
/** The body FleetStatus applies. */
interface ApplyBody {
  apiVersion: string;
  kind: string;
  metadata: { name: string; resourceVersion: string };
  status: TunDeviceFleetStatus;
}
interface Req {
  /**
   * For a PATCH, the time FleetStatus stamped the write with: its clock's last reading, which #write
   * takes right before sending and from which it paces the next write. Exact, where a reading taken
   * here could come late by however long a loaded machine preempts the process in between. For the
   * other requests, clock() when they were made.
   */
  at: number;
  method: RequestSpec['method'];
  path: string;
  query: RequestSpec['query'];
  accept: string | undefined;
  contentType: string | undefined;
  body: unknown;
  signal: AbortSignal | undefined;
  timeoutMs: number | undefined;
  /** 'pending' until answered; then 'ok', the HTTP status it failed with, or 'aborted'. */
  result: 'pending' | 'ok' | 'aborted' | number;
}
interface Watch {
  path: string;
  query: Record<string, string | number | boolean | undefined>;
  accept: string | undefined;
  aborted: boolean;
  onEvent: (e: WatchEvent<unknown>) => void;
}
interface LogLine {
  level: string;
  msg: string;
  [field: string]: unknown;
}
/**
 * How the next status PATCHes go: an HTTP 500; no answer until the request is aborted; or, a
 * promise, served as usual once it resolves (a write held under way).
 */
type PatchFault = 500 | 'hang' | Promise<void>;

/**
 * A copy as it would cross the wire. Not structuredClone: in jest's VM context that builds objects
 * of the outer realm (another Object constructor), which deep-equality checks tell apart.
 */
const clone = <T>(v: T): T => (v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T));

/** What the API server does to a custom resource: its fields come back in sorted order. */
function sortKeys<T>(v: T): T {
  if (Array.isArray(v)) return v.map(sortKeys) as T;
  if (v === null || typeof v !== 'object') return v;
  const o = v as Record<string, unknown>;
  return Object.fromEntries(
    Object.keys(o)
      .sort()
      .map((k) => [k, sortKeys(o[k])]),
  ) as T;
}

/**
 * The API server, in memory, as FleetStatus sees it, plus the owner's side: `delivered` is what the
 * cluster source's own TunDevice watch has brought (what `devices()` returns), and `deliver()` is
 * that watch's event followed by the owner's changed().
 */
class FakeCluster extends KubeApi {
  readonly requests: Req[] = [];
  readonly watches: Watch[] = [];
  readonly nodes = new Map<string, KubeObject>();
  readonly states = new Map<string, StateObject>();
  /** The TunDevices as the API server stores them. */
  readonly stored = new Map<string, DeviceObject>();
  /** The TunDevices as the owner's watch has delivered them. */
  readonly delivered = new Map<string, DeviceObject>();
  readonly results: FleetWriteResult[] = [];
  readonly fleetSizes: number[] = [];
  readonly logs: LogLine[] = [];
  /** A real (pino) logger whose lines are kept here. */
  readonly logger = createLogger(
    'debug',
    new Writable({
      write: (chunk: Buffer | string, _encoding, done) => {
        for (const line of String(chunk).split('\n')) if (line.trim() !== '') this.logs.push(JSON.parse(line) as LogLine);
        this.#notify();
        done();
      },
    }),
  );
  /** The next status PATCHes fail like this, in order. */
  readonly patchFaults: PatchFault[] = [];
  /** The owner's TunDevice watch lags: a written version is delivered only when the test calls deliver(). */
  lagDelivery = false;
  /** How often FleetStatus has recomputed (each recompute starts by calling devices()). */
  recomputes = 0;
  onDevicesChanged: () => void = () => undefined;
  #rv = 100;
  #lastReading = 0;
  readonly #waiters = new Set<{ check: () => boolean; resolve: () => void }>();

  constructor() {
    super(new KubeConfig());
  }

  /** FleetStatus's clocks (`now` and `clock`: one monotonic reading serves both here). */
  readonly now = (): number => (this.#lastReading = clock());

  /** FleetStatus's `devices` option. */
  readonly devices = (): readonly TunDeviceObject[] => {
    this.recomputes++;
    this.#notify();
    return [...this.delivered.values()].map(clone);
  };

  wrote(result: FleetWriteResult): void {
    this.results.push(result);
    this.#notify();
  }

  sized(n: number): void {
    this.fleetSizes.push(n);
    this.#notify();
  }

  patches(): Req[] {
    return this.requests.filter((r) => r.method === 'PATCH');
  }

  written(): Req[] {
    return this.patches().filter((r) => r.result === 'ok');
  }

  count(result: FleetWriteResult): number {
    return this.results.filter((r) => r === result).length;
  }

  warnings(about: string): LogLine[] {
    return this.logs.filter((l) => l.level === 'warn' && l.msg.includes(about));
  }

  /** Resolves as soon as `check` holds, checked at every event of the fake. */
  until(check: () => boolean, what: string): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = {
        check,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`gave up waiting for ${what}; requests so far: ${this.requests.map((r) => `${r.method} ${r.path} ${r.result}`).join(', ')}; write results: ${this.results.join(', ')}`));
      }, GIVE_UP_MS);
      this.#waiters.add(waiter);
    });
  }

  /** Waits for the next recompute after now. */
  async nextRecompute(): Promise<void> {
    const seen = this.recomputes;
    await this.until(() => this.recomputes > seen, 'a recompute');
  }

  /** Does `act` (a report, a delivery) and waits for the recompute it makes. */
  async recomputeAfter(act: () => void): Promise<void> {
    const recomputed = this.nextRecompute();
    act();
    await recomputed;
  }

  putNode(name: string, labels: Labels): void {
    const type = this.nodes.has(name) ? 'MODIFIED' : 'ADDED';
    const o: KubeObject = { apiVersion: 'meta.k8s.io/v1', kind: 'PartialObjectMetadata', metadata: { name, labels, resourceVersion: this.#next() } };
    this.nodes.set(name, o);
    this.#broadcast(NODES_PATH, type, o);
  }

  /** The node's agent writes its TunNodeState; returns its new resourceVersion. */
  putState(node: string, status: unknown): string {
    const type = this.states.has(node) ? 'MODIFIED' : 'ADDED';
    const rv = this.#next();
    const o: StateObject = { apiVersion: TUN_DEVICE_API, kind: 'TunNodeState', metadata: { name: node, resourceVersion: rv }, status: sortKeys(clone(status)) };
    this.states.set(node, o);
    this.#broadcast(TUN_NODE_STATES_PATH, type, o);
    return rv;
  }

  deleteState(node: string): void {
    const o = this.states.get(node)!;
    this.states.delete(node);
    this.#broadcast(TUN_NODE_STATES_PATH, 'DELETED', { ...o, metadata: { ...o.metadata, resourceVersion: this.#next() } });
  }

  /** A TunDevice that exists from the start (stored, and already delivered to the owner). */
  addDevice(name: string, generation: number, pool: string): void {
    const d: DeviceObject = {
      apiVersion: TUN_DEVICE_API,
      kind: 'TunDevice',
      metadata: { name, uid: `uid-${name}`, generation, resourceVersion: this.#next() },
      spec: { ifname: `tk-${name}`, nodeSelector: { matchLabels: { pool } } },
    };
    this.stored.set(name, d);
    this.delivered.set(name, clone(d));
  }

  /** Someone else writes the TunDevice (a label, say): a newer version the owner's watch has not delivered. */
  touchDevice(name: string): string {
    const d = this.stored.get(name)!;
    const rv = this.#next();
    this.stored.set(name, { ...d, metadata: { ...d.metadata, resourceVersion: rv } });
    return rv;
  }

  /** The owner's watch delivers the stored TunDevice, and the owner calls changed(). */
  deliver(name: string): void {
    this.delivered.set(name, clone(this.stored.get(name)!));
    this.onDevicesChanged();
  }

  rvOf(name: string): string {
    return this.stored.get(name)!.metadata!.resourceVersion!;
  }

  override async request<T>(spec: RequestSpec): Promise<T> {
    const req: Req = {
      at: spec.method === 'PATCH' ? this.#lastReading : clock(),
      method: spec.method,
      path: spec.path,
      query: { ...spec.query },
      accept: spec.accept,
      contentType: spec.contentType,
      body: clone(spec.body),
      signal: spec.signal,
      timeoutMs: spec.timeoutMs,
      result: 'pending',
    };
    this.requests.push(req);
    this.#notify();
    try {
      const value = await this.#serve(spec);
      req.result = 'ok';
      return value as T;
    } catch (e) {
      const err = e as KubeApiError;
      req.result = err.reason === 'Aborted' ? 'aborted' : err.statusCode;
      throw err;
    } finally {
      this.#notify();
    }
  }

  override watch<T>(
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    handlers: { onOpen?: () => void; onEvent: (e: WatchEvent<T>) => void },
    _idleTimeoutMs: number,
    accept?: string,
  ): WatchHandle {
    // A streaming list (WatchList) is answered as by kube-apiserver with the feature gate off: the
    // reflector then lists, which is the path these tests follow.
    if (query.sendInitialEvents) {
      const rejected = new KubeApiError(`watch ${path}: 422: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled`, 422, 'Invalid');
      return { done: Promise.resolve(rejected), abort: () => undefined };
    }
    let end!: (e: KubeApiError | undefined) => void;
    const done = new Promise<KubeApiError | undefined>((resolve) => (end = resolve));
    const w: Watch = { path, query: { ...query }, accept, aborted: false, onEvent: handlers.onEvent as unknown as (e: WatchEvent<unknown>) => void };
    this.watches.push(w);
    queueMicrotask(() => {
      if (!w.aborted) handlers.onOpen?.();
      this.#notify();
    });
    return {
      done,
      abort: () => {
        if (w.aborted) return;
        w.aborted = true;
        end(undefined);
        this.#notify();
      },
    };
  }

  async #serve(spec: RequestSpec): Promise<unknown> {
    const fault = spec.method === 'PATCH' ? this.patchFaults.shift() : undefined;
    if (fault === 'hang') await new Promise<void>((resolve) => spec.signal!.addEventListener('abort', () => resolve(), { once: true }));
    else if (fault instanceof Promise) await fault;
    else await new Promise((resolve) => setImmediate(resolve)); // the round trip
    if (spec.signal?.aborted) throw new KubeApiError(`${spec.method} ${spec.path}: aborted`, 0, 'Aborted');
    if (fault === 500) throw new KubeApiError(`${spec.method} ${spec.path}: 500: etcdserver: request timed out`, 500, 'InternalError');
    const list = (items: KubeObject[], kind: string) => ({ kind, metadata: { resourceVersion: String(this.#rv) }, items: items.map(clone) });
    if (spec.method === 'GET' && spec.path === NODES_PATH) return list([...this.nodes.values()], 'PartialObjectMetadataList');
    if (spec.method === 'GET' && spec.path === TUN_NODE_STATES_PATH) return list([...this.states.values()], 'TunNodeStateList');
    const m = spec.method === 'PATCH' ? /^\/apis\/tunkeeper\.io\/v1alpha1\/tundevices\/([^/]+)\/status$/.exec(spec.path) : null;
    if (!m) throw new KubeApiError(`${spec.method} ${spec.path}: 404: this fake serves no such thing`, 404, 'NotFound');
    const name = decodeURIComponent(m[1]!);
    const d = this.stored.get(name);
    if (!d) throw new KubeApiError(`PATCH ${spec.path}: 404: tundevices.tunkeeper.io "${name}" not found`, 404, 'NotFound');
    const body = spec.body as ApplyBody;
    // metadata.resourceVersion in an apply is a precondition, as on the real API server.
    if (body.metadata.resourceVersion && body.metadata.resourceVersion !== d.metadata!.resourceVersion) {
      throw new KubeApiError(`PATCH ${spec.path}: 409: Operation cannot be fulfilled on tundevices.tunkeeper.io "${name}": the object has been modified; please apply your changes to the latest version and try again`, 409, 'Conflict');
    }
    const next: DeviceObject = { ...d, metadata: { ...d.metadata, resourceVersion: this.#next() }, status: sortKeys(clone(body.status)) };
    this.stored.set(name, next);
    // The owner's TunDevice watch brings the new version (with the API server's key order).
    if (!this.lagDelivery) this.deliver(name);
    return clone(next);
  }

  #broadcast(path: string, type: WatchEvent['type'], object: KubeObject): void {
    for (const w of this.watches) if (w.path === path && !w.aborted) w.onEvent({ type, object: clone(object) });
    this.#notify();
  }

  #next(): string {
    return String(++this.#rv);
  }

  #notify(): void {
    for (const w of [...this.#waiters]) {
      if (!w.check()) continue;
      this.#waiters.delete(w);
      w.resolve();
    }
  }
}

const readyReport = (device: string): DeviceReport => ({ device, ifname: `tk-${device}`, ifindex: 7, status: 'ready', findings: [], failures: [] });

/** A TunNodeState status as an agent writes it: each device Ready at the given generation. */
function reportReady(devices: Record<string, number>, at = REPORTED_AT): TunNodeStateStatus {
  return buildNodeStatus(
    Object.entries(devices).map(([name, generation]) => buildDeviceStatus({ name, generation, report: readyReport(name) }, undefined, at)),
    at,
  );
}

const bodyOf = (r: Req): ApplyBody => r.body as ApplyBody;
const statusOf = (r: Req): TunDeviceFleetStatus => bodyOf(r).status;
const deviceOf = (r: Req): string => bodyOf(r).metadata.name;
const cond = (s: TunDeviceFleetStatus, type: string) => s.conditions!.find((c) => c.type === type)!;
const flags = (s: TunDeviceFleetStatus) => `Ready=${cond(s, 'Ready').status} Reconciling=${cond(s, 'Reconciling').status} Stalled=${cond(s, 'Stalled').status}`;
const gaps = (rs: Req[]): number[] => rs.slice(1).map((r, i) => r.at - rs[i]!.at);

const live: FleetStatus[] = [];
afterEach(async () => {
  await Promise.all(live.splice(0).map((f) => f.close()));
  clockAheadMs = 0;
});

function leaderOf(fake: FakeCluster, over: Partial<FleetStatusOptions> = {}): FleetStatus {
  const fleet = new FleetStatus({
    api: fake,
    logger: fake.logger,
    devices: fake.devices,
    debounceMs: DEBOUNCE,
    minIntervalMs: MIN_INTERVAL,
    backoff: { initialMs: 50, maxMs: 2_000, factor: 2, jitter: 0 },
    random: () => 0.5,
    now: fake.now,
    clock: fake.now,
    onWrite: (r) => fake.wrote(r),
    onFleetSize: (n) => fake.sized(n),
    ...over,
  });
  fake.onDevicesChanged = () => fleet.changed();
  live.push(fleet);
  return fleet;
}

/**
 * Makes the fleet recompute again and again (at least `atLeast` times) until clock() has passed
 * `until`, then lets a timer armed after `until` fire: timers fire in order of expiry, so any write
 * that was due before `until` has reached the fake by the time this returns.
 */
async function recomputePast(fleet: FleetStatus, fake: FakeCluster, until: number, atLeast = 3): Promise<number> {
  let n = 0;
  while (n < atLeast || clock() < until) {
    await fake.recomputeAfter(() => fleet.changed());
    n++;
  }
  await new Promise((resolve) => setTimeout(resolve, 1));
  return n;
}

/** Fails with a message (not jest's timeout) if `p` never settles. */
async function settles<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const giveUp = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish`)), GIVE_UP_MS);
  });
  try {
    return await Promise.race([p, giveUp]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Nodes a, b (pool=edge) and c (pool=core); TunDevices edge (generation 3, pool=edge) and core
 * (generation 1, pool=core); every node reports its device Ready at the current generation.
 */
function twoDevices(fake: FakeCluster): void {
  fake.putNode('a', { pool: 'edge' });
  fake.putNode('b', { pool: 'edge' });
  fake.putNode('c', { pool: 'core' });
  fake.addDevice('edge', 3, 'edge');
  fake.addDevice('core', 1, 'core');
  fake.putState('a', reportReady({ edge: 3 }));
  fake.putState('b', reportReady({ edge: 3 }));
  fake.putState('c', reportReady({ core: 1 }));
}

/** Nodes a and b (pool=edge); TunDevice edge (generation 3); both report it Ready. */
function oneDevice(fake: FakeCluster): void {
  fake.putNode('a', { pool: 'edge' });
  fake.putNode('b', { pool: 'edge' });
  fake.addDevice('edge', 3, 'edge');
  fake.putState('a', reportReady({ edge: 3 }));
  fake.putState('b', reportReady({ edge: 3 }));
}

describe('FleetStatus', () => {
  it('opens no watch and writes nothing until it leads; then lists, watches, and writes one status per TunDevice', async () => {
    const fake = new FakeCluster();
    twoDevices(fake);
    const fleet = leaderOf(fake);
    for (let i = 0; i < 25; i++) fleet.changed();
    fake.putState('a', reportReady({ edge: 3 }, '2026-12-07T10:00:30Z'));
    // A timer armed now expires after any debounce timer those calls could have armed, and Node
    // fires timers in order of expiry: a recompute (devices() called) or a request would be seen.
    await new Promise((resolve) => setTimeout(resolve, DEBOUNCE + DUE_MARGIN_MS));
    expect(fleet.leading).toBe(false);
    expect(fake.requests).toEqual([]);
    expect(fake.watches).toEqual([]);
    expect(fake.recomputes).toBe(0);

    const rvs = { edge: fake.rvOf('edge'), core: fake.rvOf('core') };
    fleet.startLeading();
    expect(fleet.leading).toBe(true);
    await fake.until(() => fake.count('written') >= 2, 'a status write per TunDevice');

    // Two lists (Nodes as metadata only), two watches from the lists' versions, then the writes.
    const [nodesList, statesList] = fake.requests;
    expect(fake.requests.slice(0, 2).map((r) => `${r.method} ${r.path}`)).toEqual([`GET ${NODES_PATH}`, `GET ${TUN_NODE_STATES_PATH}`]);
    expect(fake.requests.slice(2).map((r) => `${r.method} ${r.path}`).sort()).toEqual([`PATCH ${TUN_DEVICES_PATH}/core/status`, `PATCH ${TUN_DEVICES_PATH}/edge/status`]);
    expect(nodesList!.path).toBe('/api/v1/nodes');
    expect(nodesList!.accept).toBe('application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1');
    expect(nodesList!.accept).toBe(PARTIAL_METADATA.list);
    expect(statesList!.path).toBe('/apis/tunkeeper.io/v1alpha1/tunnodestates');
    expect(statesList!.accept).toBeUndefined();
    expect(fake.watches.map((w) => [w.path, w.accept, w.query.resourceVersion, w.query.allowWatchBookmarks])).toEqual([
      [NODES_PATH, PARTIAL_METADATA.watch, expect.any(String), true],
      [TUN_NODE_STATES_PATH, undefined, expect.any(String), true],
    ]);
    expect(fake.watches.every((w) => !w.aborted)).toBe(true);

    const byDevice = new Map(fake.patches().map((p) => [deviceOf(p), p]));
    for (const [name, p] of byDevice) {
      expect(p.path).toBe(`/apis/tunkeeper.io/v1alpha1/tundevices/${name}/status`);
      expect(p.query).toEqual({ fieldManager: 'tunkeeper-fleet-status', force: true });
      expect(p.contentType).toBe('application/apply-patch+yaml');
      expect(p.timeoutMs).toBeGreaterThan(0);
      expect(p.signal).toBeDefined();
      expect(bodyOf(p)).toMatchObject({ apiVersion: 'tunkeeper.io/v1alpha1', kind: 'TunDevice' });
      // Only the name and the precondition: an apply that names more metadata would own it.
      expect(bodyOf(p).metadata).toEqual({ name, resourceVersion: rvs[name as keyof typeof rvs] });
    }
    const edge = statusOf(byDevice.get('edge')!);
    expect(edge).toMatchObject({ observedGeneration: 3, ready: '2/2', nodes: { selected: 2, ready: 2, degraded: 0, refused: 0, conflicted: 0, notReporting: 0 }, failingNodes: [], moreFailingNodes: 0 });
    expect(flags(edge)).toBe('Ready=True Reconciling=False Stalled=False');
    expect(cond(edge, 'Ready')).toMatchObject({ reason: 'Ready', observedGeneration: 3 });
    const core = statusOf(byDevice.get('core')!);
    expect(core).toMatchObject({ observedGeneration: 1, ready: '1/1', nodes: { selected: 1, ready: 1 } });
    expect(flags(core)).toBe('Ready=True Reconciling=False Stalled=False');

    // One write per TunDevice, and no more: recompute past the time a second one would be due.
    await recomputePast(fleet, fake, Math.max(...fake.patches().map((p) => p.at)) + MIN_INTERVAL + DUE_MARGIN_MS);
    expect(fake.patches()).toHaveLength(2);
    expect(fake.results).toEqual(['written', 'written']);
  });

  it('writes nothing while the summary equals the stored status (keys in the API server\'s order); a real change makes exactly one write', async () => {
    const MIN = 150;
    const fake = new FakeCluster();
    twoDevices(fake);
    const fleet = leaderOf(fake, { minIntervalMs: MIN });
    fleet.startLeading();
    await fake.until(() => fake.count('written') >= 2, 'the first writes');
    // The API server gives the status back with its keys sorted: not the order that was written.
    const sent = statusOf(fake.patches().find((p) => deviceOf(p) === 'edge')!);
    const back = fake.delivered.get('edge')!.status!;
    expect(back).toEqual(sent);
    expect(Object.keys(back)).not.toEqual(Object.keys(sent));
    expect(Object.keys(back.conditions![0]!)).not.toEqual(Object.keys(sent.conditions![0]!));
    // Ten minutes on: a condition that changes status now gets a new lastTransitionTime.
    const jump = 10 * 60_000;
    clockAheadMs += jump;

    // Many recomputes (and reports that only say the same again) past the time a write would be due.
    fake.putState('a', reportReady({ edge: 3 }, '2026-12-07T10:01:00Z'));
    fake.putNode('c', { pool: 'core', 'topology.kubernetes.io/zone': 'z1' });
    // The writes' stamps were read before the jump, and a write timer armed then fires on the timers'
    // (unmoved) time: the bound is in the moved clock, or it would be passed before the first recompute.
    const n = await recomputePast(fleet, fake, Math.max(...fake.patches().map((p) => p.at)) + jump + MIN + DUE_MARGIN_MS, 10);
    expect(n).toBeGreaterThanOrEqual(10);
    expect(fake.patches()).toHaveLength(2);

    // A new node appears in pool edge: edge (only) is written once, 2/3 with the newcomer named.
    const rvEdge = fake.rvOf('edge');
    fake.putNode('d', { pool: 'edge' });
    await fake.until(() => fake.count('written') >= 3, 'the write after node d appeared');
    const third = fake.patches()[2]!;
    expect(deviceOf(third)).toBe('edge');
    expect(bodyOf(third).metadata.resourceVersion).toBe(rvEdge);
    expect(statusOf(third)).toMatchObject({ ready: '2/3', nodes: { selected: 3, ready: 2, notReporting: 1 }, failingNodes: [{ node: 'd', reason: 'NotReporting' }] });
    expect(flags(statusOf(third))).toBe('Ready=False Reconciling=True Stalled=False');
    await recomputePast(fleet, fake, third.at + MIN + DUE_MARGIN_MS);
    expect(fake.patches()).toHaveLength(3);

    // Its agent reports: edge is written once more, 3/3. Stalled never changed status: its
    // lastTransitionTime is still the first write's, read back from the stored (sorted) status.
    fake.putState('d', reportReady({ edge: 3 }));
    await fake.until(() => fake.count('written') >= 4, 'the write after node d reported');
    const fourth = fake.patches()[3]!;
    expect(deviceOf(fourth)).toBe('edge');
    expect(statusOf(fourth)).toMatchObject({ ready: '3/3', nodes: { selected: 3, ready: 3, notReporting: 0 }, failingNodes: [] });
    expect(flags(statusOf(fourth))).toBe('Ready=True Reconciling=False Stalled=False');
    expect(cond(statusOf(fourth), 'Stalled').lastTransitionTime).toBe(cond(sent, 'Stalled').lastTransitionTime);
    expect(cond(statusOf(fourth), 'Ready').lastTransitionTime).not.toBe(cond(sent, 'Ready').lastTransitionTime);
    await recomputePast(fleet, fake, fourth.at + MIN + DUE_MARGIN_MS);
    expect(fake.patches()).toHaveLength(4);
    expect(fake.results).toEqual(['written', 'written', 'written', 'written']);
    expect(gaps(fake.patches().filter((p) => deviceOf(p) === 'edge')).every((g) => g >= MIN - TIMER_SLACK_MS)).toBe(true);
  });

  it('sends no summary computed from the version its own write replaced (a recompute while that write is under way): no doomed 409', async () => {
    const MIN = 50;
    const fake = new FakeCluster();
    oneDevice(fake);
    let release!: () => void;
    fake.patchFaults.push(new Promise<void>((resolve) => (release = resolve)));
    const fleet = leaderOf(fake, { minIntervalMs: MIN });
    const rvOld = fake.rvOf('edge');
    fleet.startLeading();
    await fake.until(() => fake.patches().length >= 1, 'the first write to be sent');
    // While it is under way a report comes: the recompute sees the version the write is replacing.
    await fake.recomputeAfter(() => fake.putState('a', reportReady({ edge: 3 }, '2026-12-07T10:00:30Z')));
    // The write takes longer than minIntervalMs (a slow API server): when it ends, the next write is due at once.
    clockAheadMs += MIN;
    release();
    await fake.until(() => fake.count('written') >= 1, 'the first write');
    const first = fake.patches()[0]!;
    expect(bodyOf(first).metadata.resourceVersion).toBe(rvOld);
    await recomputePast(fleet, fake, first.at + clockAheadMs + MIN + DUE_MARGIN_MS);
    expect(fake.patches().map((p) => `${deviceOf(p)} ${bodyOf(p).metadata.resourceVersion} ${p.result}`)).toEqual([`edge ${rvOld} ok`]);
    expect(fake.results).toEqual(['written']);
  });

  it("sends no summary computed from the version its own write replaced (the owner's watch lags), and writes once the new version arrives", async () => {
    const MIN = 50;
    const fake = new FakeCluster();
    oneDevice(fake);
    fake.lagDelivery = true;
    const fleet = leaderOf(fake, { minIntervalMs: MIN });
    const rvOld = fake.rvOf('edge');
    fleet.startLeading();
    await fake.until(() => fake.count('written') >= 1, 'the first write');
    const first = fake.patches()[0]!;
    const rvNew = fake.rvOf('edge');
    expect(rvNew).not.toBe(rvOld);
    // Recomputes from the replaced version (its status missing) past the time a second write is due.
    await recomputePast(fleet, fake, first.at + MIN + DUE_MARGIN_MS);
    expect(fake.patches()).toHaveLength(1);
    // The new version arrives: it equals the summary, so still nothing to write.
    await fake.recomputeAfter(() => fake.deliver('edge'));
    await recomputePast(fleet, fake, clock() + MIN + DUE_MARGIN_MS);
    expect(fake.patches()).toHaveLength(1);
    // A real change is written, against the new version.
    fake.lagDelivery = false;
    fake.putNode('c', { pool: 'edge' });
    await fake.until(() => fake.count('written') >= 2, 'the write after node c appeared');
    const second = fake.patches()[1]!;
    expect(bodyOf(second).metadata.resourceVersion).toBe(rvNew);
    expect(statusOf(second)).toMatchObject({ ready: '2/3', nodes: { selected: 3, notReporting: 1 } });
    expect(fake.results).toEqual(['written', 'written']);
  });

  it('coalesces reports arriving within minIntervalMs: writes at least minIntervalMs apart, the last one the latest summary', async () => {
    const MIN = 300;
    const fake = new FakeCluster();
    const nodes = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6'];
    for (const n of nodes) fake.putNode(n, { pool: 'edge' });
    fake.addDevice('edge', 3, 'edge');
    for (const n of nodes) fake.putState(n, reportReady({ edge: 2 })); // a rollout of generation 3 about to start
    const fleet = leaderOf(fake, { minIntervalMs: MIN });
    fleet.startLeading();
    await fake.until(() => fake.count('written') >= 1, 'the first write');
    const first = fake.patches()[0]!;
    expect(statusOf(first)).toMatchObject({ ready: '0/6', nodes: { notReporting: 6 } });

    // The rollout: one node after another reports generation 3, each report its own recompute.
    for (const n of nodes) {
      await fake.recomputeAfter(() => fake.putState(n, reportReady({ edge: 3 })));
    }
    const lastReportAt = clock();
    await fake.until(() => fake.written().some((p) => statusOf(p).ready === '6/6'), 'a write of 6/6');
    const final = fake.written().find((p) => statusOf(p).ready === '6/6')!;
    await recomputePast(fleet, fake, final.at + MIN + DUE_MARGIN_MS);

    const writes = fake.patches();
    expect(writes.at(-1)).toBe(final);
    expect(statusOf(final)).toMatchObject({ observedGeneration: 3, nodes: { selected: 6, ready: 6, notReporting: 0 }, failingNodes: [] });
    expect(flags(statusOf(final))).toBe('Ready=True Reconciling=False Stalled=False');
    for (const g of gaps(writes)) expect(g).toBeGreaterThanOrEqual(MIN - TIMER_SLACK_MS);
    expect(fake.results.every((r) => r === 'written')).toBe(true);
    // Six summaries, fewer writes; with every report inside the first interval, exactly two.
    expect(writes.length).toBeLessThan(1 + nodes.length);
    if (lastReportAt - first.at < MIN - TIMER_SLACK_MS) expect(writes.map((p) => statusOf(p).ready)).toEqual(['0/6', '6/6']);
  });

  it('on 409 Conflict counts a conflict, does not hammer the stale version, and writes with the newer resourceVersion once it arrives', async () => {
    const MIN = 20;
    const backoff: BackoffOptions = { initialMs: 60, maxMs: 5_000, factor: 2, jitter: 0 };
    const random = () => 0.5;
    const fake = new FakeCluster();
    oneDevice(fake);
    const fleet = leaderOf(fake, { minIntervalMs: MIN, backoff, random });
    fleet.startLeading();
    await fake.until(() => fake.count('written') >= 1, 'the first write');
    const rvSeen = fake.rvOf('edge');

    // Someone else writes the TunDevice; the owner's watch has not brought it yet. Then node c
    // appears, so there is a summary to write: against the version this agent has, which is stale.
    const rvNewer = fake.touchDevice('edge');
    fake.putNode('c', { pool: 'edge' });
    // The owner keeps calling changed() meanwhile: recomputes, not retries.
    let recomputes = 0;
    while (fake.count('conflict') < 3) {
      await fake.recomputeAfter(() => fleet.changed());
      recomputes++;
    }
    expect(recomputes).toBeGreaterThan(3);

    // The newer version arrives.
    fake.deliver('edge');
    await fake.until(() => fake.count('written') >= 2, 'the write with the newer resourceVersion');

    const attempts = fake.patches().slice(1);
    const conflicts = attempts.slice(0, -1);
    const success = attempts.at(-1)!;
    // Three, unless the process stalled for most of a backoff between the third conflict and the
    // delivery (then one more attempt could still carry the stale version).
    expect(conflicts.length).toBeGreaterThanOrEqual(3);
    expect(conflicts.length).toBeLessThanOrEqual(4);
    expect(conflicts.every((p) => p.result === 409 && bodyOf(p).metadata.resourceVersion === rvSeen)).toBe(true);
    expect(fake.results).toEqual(['written', ...conflicts.map(() => 'conflict'), 'written']);
    // Each retry waits out its backoff (after k conflicts, backoffDelay(k)): no tight loop.
    gaps(attempts).forEach((g, i) => expect(g).toBeGreaterThanOrEqual(Math.max(MIN, backoffDelay(i + 1, backoff, random)) - TIMER_SLACK_MS));
    expect(success.result).toBe('ok');
    expect(bodyOf(success).metadata.resourceVersion).toBe(rvNewer);
    expect(statusOf(success)).toMatchObject({ ready: '2/3', nodes: { selected: 3, ready: 2, notReporting: 1 }, failingNodes: [{ node: 'c', reason: 'NotReporting' }] });
    expect(fake.stored.get('edge')!.status).toEqual(statusOf(success));
  });

  it('on a 500 counts an error, retries with backoff, and writes the status once the API server recovers', async () => {
    const MIN = 20;
    const backoff: BackoffOptions = { initialMs: 40, maxMs: 5_000, factor: 2, jitter: 0 };
    const random = () => 0.5;
    const fake = new FakeCluster();
    oneDevice(fake);
    fake.patchFaults.push(500, 500, 500);
    const fleet = leaderOf(fake, { minIntervalMs: MIN, backoff, random });
    const rv = fake.rvOf('edge');
    fleet.startLeading();
    // Nothing else happens meanwhile (no change, no changed()): the retries are the fleet's own.
    await fake.until(() => fake.count('written') >= 1, 'the write after the API server recovered');
    expect(fake.results).toEqual(['error', 'error', 'error', 'written']);
    const attempts = fake.patches();
    expect(attempts.map((p) => p.result)).toEqual([500, 500, 500, 'ok']);
    gaps(attempts).forEach((g, i) => expect(g).toBeGreaterThanOrEqual(Math.max(MIN, backoffDelay(i + 1, backoff, random)) - TIMER_SLACK_MS));
    // The same summary every time, with the device's version (a failed write changes nothing).
    for (const p of attempts) expect(bodyOf(p)).toEqual(bodyOf(attempts[0]!));
    expect(bodyOf(attempts[3]!).metadata.resourceVersion).toBe(rv);
    expect(statusOf(attempts[3]!)).toMatchObject({ ready: '2/2' });
    expect(fake.warnings('cannot write TunDevice edge status').map((l) => l.attempt)).toEqual([1, 2, 3]);
  });

  it('a device backing off does not hold up the write of another', async () => {
    const fake = new FakeCluster();
    twoDevices(fake);
    // edge's retry would be half a minute away: core's write must not wait for it.
    const fleet = leaderOf(fake, { minIntervalMs: 20, backoff: { initialMs: 30_000, maxMs: 60_000, factor: 2, jitter: 0 }, random: () => 0.5 });
    fleet.startLeading();
    await fake.until(() => fake.count('written') >= 2, 'the first writes');
    fake.patchFaults.push(500);
    fake.putNode('e', { pool: 'edge' });
    await fake.until(() => fake.count('error') >= 1, "edge's write failing");
    fake.putNode('d', { pool: 'core' });
    await fake.until(() => fake.count('written') >= 3, "core's write");
    const last = fake.patches().at(-1)!;
    expect(deviceOf(last)).toBe('core');
    expect(statusOf(last)).toMatchObject({ ready: '1/2' });
    expect(fake.patches().map((p) => `${deviceOf(p)} ${p.result}`).slice(2)).toEqual(['edge 500', 'core ok']);
  });

  it('stopLeading() aborts the watches and a write under way, drops the pending write, writes nothing after; leading again works', async () => {
    const MIN = 200;
    const fake = new FakeCluster();
    fake.putNode('a', { pool: 'edge' });
    fake.putNode('b', { pool: 'edge' });
    fake.addDevice('edge', 3, 'edge');
    fake.putState('a', reportReady({ edge: 3 }));
    fake.putState('b', reportReady({ edge: 2 }));
    fake.patchFaults.push('hang');
    const fleet = leaderOf(fake, { minIntervalMs: MIN });

    // A write under way when the lease goes: aborted, and not counted as a failure.
    fleet.startLeading();
    await fake.until(() => fake.patches().length >= 1, 'the first write to be sent');
    await settles(fleet.stopLeading(), 'stopLeading()');
    expect(fleet.leading).toBe(false);
    expect(fake.watches).toHaveLength(2);
    expect(fake.watches.every((w) => w.aborted)).toBe(true);
    expect(fake.patches()[0]!.signal!.aborted).toBe(true);
    expect(fake.patches()[0]!.result).toBe('aborted');
    expect(fake.results).toEqual([]);
    expect(fake.logs.filter((l) => l.level === 'warn')).toEqual([]);

    // Leading again: lists and watches anew, and writes.
    fleet.startLeading();
    await fake.until(() => fake.count('written') >= 1, 'the write of the second term');
    const second = fake.written()[0]!;
    expect(statusOf(second)).toMatchObject({ ready: '1/2' });
    const rvAfterSecond = fake.rvOf('edge');
    expect(fake.requests.filter((r) => r.method === 'GET')).toHaveLength(4);
    expect(fake.watches.filter((w) => !w.aborted)).toHaveLength(2);

    // Node b reports generation 3: a summary (2/2) is pending, due `MIN` after the last write.
    await fake.recomputeAfter(() => fake.putState('b', reportReady({ edge: 3 })));
    const oldWatches = fake.watches.filter((w) => !w.aborted);
    await settles(fleet.stopLeading(), 'stopLeading()');
    expect(oldWatches.every((w) => w.aborted)).toBe(true);
    const requestsAtStop = fake.requests.length;
    const recomputesAtStop = fake.recomputes;
    // Late news from the dying streams and from the owner: nothing may come of it.
    for (const w of oldWatches) w.onEvent({ type: 'MODIFIED', object: { ...fake.states.get('a')!, metadata: { name: 'a', resourceVersion: '999' } } });
    for (let i = 0; i < 10; i++) fleet.changed();
    // Past the pending write's due time (a timer armed now expires after it: timers fire in order).
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, second.at + MIN + DUE_MARGIN_MS - clock())));
    expect(fake.requests.length).toBe(requestsAtStop);
    expect(fake.recomputes).toBe(recomputesAtStop);

    // And a third term: lists, then the latest summary with the current version.
    fleet.startLeading();
    await fake.until(() => fake.count('written') >= 2, 'the write of the third term');
    const after = fake.requests.slice(requestsAtStop);
    expect(after.map((r) => `${r.method} ${r.path}`)).toEqual([`GET ${NODES_PATH}`, `GET ${TUN_NODE_STATES_PATH}`, `PATCH ${TUN_DEVICES_PATH}/edge/status`]);
    const third = after[2]!;
    expect(bodyOf(third).metadata.resourceVersion).toBe(rvAfterSecond);
    expect(statusOf(third)).toMatchObject({ ready: '2/2' });
    expect(fake.results).toEqual(['written', 'written']);
  });

  it('counts a node whose TunNodeState is not what an agent writes as not reporting (Unreadable), and warns once per version', async () => {
    const fake = new FakeCluster();
    oneDevice(fake);
    const garbage = reportReady({ edge: 3 }) as unknown as { devices: Array<{ conditions: Array<{ status: string }> }> };
    garbage.devices[0]!.conditions[0]!.status = 'Maybe';
    const rvBad = fake.putState('b', garbage);
    const fleet = leaderOf(fake, { minIntervalMs: 50 });
    fleet.startLeading();
    await fake.until(() => fake.count('written') >= 1, 'the first write');
    const first = statusOf(fake.patches()[0]!);
    expect(first).toMatchObject({ ready: '1/2', nodes: { selected: 2, ready: 1, notReporting: 1 } });
    expect(first.failingNodes).toEqual([{ node: 'b', reason: 'Unreadable', message: expect.stringContaining('its TunNodeState is not readable: ') }]);
    expect(first.failingNodes![0]!.message).toMatch(/conditions/);

    // Recomputes, and a heartbeat of node a: the same bad version is not logged again.
    fake.putState('a', reportReady({ edge: 3 }, '2026-12-07T10:02:00Z'));
    await recomputePast(fleet, fake, fake.patches()[0]!.at + 50 + DUE_MARGIN_MS, 5);
    const warned = fake.warnings('TunNodeState b is not what an agent writes');
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ node: 'b', resourceVersion: rvBad, problem: expect.stringMatching(/conditions/) });
    expect(fake.patches()).toHaveLength(1);

    // A new version, still bad: logged once more.
    await fake.recomputeAfter(() => fake.putState('b', garbage));
    await recomputePast(fleet, fake, 0, 3);
    expect(fake.warnings('TunNodeState b is not what an agent writes')).toHaveLength(2);

    // Fixed: node b counts again.
    fake.putState('b', reportReady({ edge: 3 }));
    await fake.until(() => fake.count('written') >= 2, 'the write after node b was fixed');
    expect(statusOf(fake.patches()[1]!)).toMatchObject({ ready: '2/2', nodes: { notReporting: 0 }, failingNodes: [] });
    expect(fake.warnings('TunNodeState b is not what an agent writes')).toHaveLength(2);
  });

  it('reports the fleet size (the number of TunNodeStates) when it changes, not on every recompute', async () => {
    const fake = new FakeCluster();
    fake.putNode('a', { pool: 'edge' });
    fake.putNode('b', { pool: 'edge' });
    fake.putNode('c', { pool: 'edge' });
    fake.addDevice('edge', 3, 'edge');
    fake.putState('a', reportReady({ edge: 3 }));
    fake.putState('b', reportReady({ edge: 3 }));
    const fleet = leaderOf(fake);
    fleet.startLeading();
    await fake.until(() => fake.fleetSizes.length >= 1, 'the fleet size');
    expect(fake.fleetSizes).toEqual([2]);

    // Reports that change (heartbeats) and plain recomputes: the size holds.
    for (const at of ['2026-12-07T10:00:10Z', '2026-12-07T10:00:20Z', '2026-12-07T10:00:30Z']) {
      await fake.recomputeAfter(() => fake.putState('a', reportReady({ edge: 3 }, at)));
    }
    const n = await recomputePast(fleet, fake, 0, 5);
    expect(n).toBe(5);
    expect(fake.fleetSizes).toEqual([2]);

    fake.putState('c', reportReady({ edge: 3 }));
    await fake.until(() => fake.fleetSizes.length >= 2, 'the fleet size after c reported');
    fake.deleteState('a');
    await fake.until(() => fake.fleetSizes.length >= 3, 'the fleet size after a was deleted');
    await recomputePast(fleet, fake, 0, 3);
    expect(fake.fleetSizes).toEqual([2, 3, 2]);

    // A new term tells its size again (the Lease it now holds must carry it).
    await settles(fleet.stopLeading(), 'stopLeading()');
    fleet.startLeading();
    await fake.until(() => fake.fleetSizes.length >= 4, 'the fleet size of the new term');
    expect(fake.fleetSizes).toEqual([2, 3, 2, 2]);
  });

  it('paces progress-only writes by the fleet size: the reports of a big fleet make one write; Ready n/n is written minIntervalMs after it', async () => {
    const MIN = 50;
    const PER_NODE = 50;
    const fake = new FakeCluster();
    const nodes = Array.from({ length: 20 }, (_, i) => `n${String(i).padStart(2, '0')}`);
    const PACE = nodes.length * PER_NODE;
    for (const n of nodes) fake.putNode(n, { pool: 'edge' });
    fake.addDevice('edge', 3, 'edge');
    for (const n of nodes) fake.putState(n, reportReady({ edge: 2 })); // a rollout of generation 3 about to start
    const fleet = leaderOf(fake, { minIntervalMs: MIN, paceMsPerNode: PER_NODE, maxPaceMs: 60_000 });
    fleet.startLeading();
    await fake.until(() => fake.count('written') >= 1, 'the first write');
    const first = fake.patches()[0]!;
    expect(statusOf(first)).toMatchObject({ observedGeneration: 3, ready: '0/20' });

    // All but one node report generation 3, each its own recompute: progress only (the conditions hold).
    for (const n of nodes.slice(0, -1)) {
      await fake.recomputeAfter(() => fake.putState(n, reportReady({ edge: 3 })));
    }
    const lastReportAt = clock();
    await fake.until(() => fake.written().some((p) => statusOf(p).ready === '19/20'), 'the paced write of 19/20');
    const paced = fake.written().find((p) => statusOf(p).ready === '19/20')!;
    expect(flags(statusOf(paced))).toBe('Ready=False Reconciling=True Stalled=False');
    for (const g of gaps(fake.patches())) expect(g).toBeGreaterThanOrEqual(PACE - TIMER_SLACK_MS);
    // Nineteen summaries, one write, unless the reports themselves took longer than the pace.
    if (lastReportAt - first.at < PACE - TIMER_SLACK_MS) expect(fake.patches().map((p) => statusOf(p).ready)).toEqual(['0/20', '19/20']);

    // The last node: Ready flips, which waits only minIntervalMs (the pace would hold it until paced.at + PACE).
    fake.putState(nodes.at(-1)!, reportReady({ edge: 3 }));
    await fake.until(() => fake.written().some((p) => statusOf(p).ready === '20/20'), 'the write of 20/20');
    const final = fake.written().at(-1)!;
    expect(flags(statusOf(final))).toBe('Ready=True Reconciling=False Stalled=False');
    expect(final.at - paced.at).toBeGreaterThanOrEqual(MIN - TIMER_SLACK_MS);
    await recomputePast(fleet, fake, final.at + PACE + DUE_MARGIN_MS);
    expect(fake.patches().at(-1)).toBe(final);
    expect(fake.results.every((r) => r === 'written')).toBe(true);
  });

  it('holds progress for the pace, but writes a Ready flip and a new generation after minIntervalMs', async () => {
    const MIN = 50;
    const fake = new FakeCluster();
    fake.putNode('a', { pool: 'edge' });
    fake.putNode('b', { pool: 'edge' });
    fake.putNode('c', { pool: 'edge' });
    fake.addDevice('edge', 3, 'edge');
    fake.putState('a', reportReady({ edge: 3 }));
    fake.putState('b', reportReady({ edge: 3 }));
    fake.putState('c', reportReady({ edge: 2 }));
    // An hour's pace: a write seen within the test was not paced.
    const fleet = leaderOf(fake, { minIntervalMs: MIN, paceMsPerNode: 3_600_000, maxPaceMs: 3_600_000 });
    fleet.startLeading();
    await fake.until(() => fake.count('written') >= 1, 'the first write');
    const first = fake.patches()[0]!;
    expect(statusOf(first)).toMatchObject({ ready: '2/3' });

    // Node d joins the pool without an agent yet: 2/4, the same conditions: held.
    fake.putNode('d', { pool: 'edge' });
    await recomputePast(fleet, fake, first.at + MIN + DUE_MARGIN_MS);
    expect(fake.patches()).toHaveLength(1);

    // c and d report: Ready flips True, written after minIntervalMs with the latest counts.
    fake.putState('c', reportReady({ edge: 3 }));
    fake.putState('d', reportReady({ edge: 3 }));
    await fake.until(() => fake.written().some((p) => statusOf(p).ready === '4/4'), 'the write of 4/4');
    expect(fake.patches()).toHaveLength(2);
    const ready = fake.patches()[1]!;
    expect(flags(statusOf(ready))).toBe('Ready=True Reconciling=False Stalled=False');
    expect(ready.at - first.at).toBeGreaterThanOrEqual(MIN - TIMER_SLACK_MS);

    // A new generation: observedGeneration changes (and Ready flips back), written promptly.
    fake.touchDevice('edge');
    fake.stored.get('edge')!.metadata!.generation = 4;
    fake.deliver('edge');
    await fake.until(() => fake.count('written') >= 3, 'the write of generation 4');
    expect(statusOf(fake.patches()[2]!)).toMatchObject({ observedGeneration: 4, ready: '0/4' });
    expect(fake.results).toEqual(['written', 'written', 'written']);
  });

  it('writes a change of the rollout grants after minIntervalMs, whatever the pace', async () => {
    const MIN = 50;
    const fake = new FakeCluster();
    for (const n of ['r1', 'r2', 'r3']) fake.putNode(n, { pool: 'edge' });
    fake.addDevice('edge', 2, 'edge');
    for (const m of [fake.stored, fake.delivered]) (m.get('edge')!.spec as { rollout?: unknown }).rollout = { maxUnavailable: 1 };
    for (const n of ['r1', 'r2', 'r3']) fake.putState(n, reportReady({ edge: 1 }));
    const fleet = leaderOf(fake, { minIntervalMs: MIN, paceMsPerNode: 3_600_000, maxPaceMs: 3_600_000 });
    fleet.startLeading();
    await fake.until(() => fake.count('written') >= 1, 'the first write');
    const first = fake.patches()[0]!;
    expect(statusOf(first).rollout).toMatchObject({ generation: 2, maxUnavailable: 1, granted: [{ node: 'r1' }], done: 0 });

    // r1 answers: its slot goes to r2; the conditions hold, but the grant must not wait.
    fake.putState('r1', reportReady({ edge: 2 }));
    await fake.until(() => fake.count('written') >= 2, 'the write of the next grant');
    const next = fake.patches()[1]!;
    expect(statusOf(next)).toMatchObject({ ready: '1/3', rollout: { granted: [{ node: 'r2' }], done: 1 } });
    expect(flags(statusOf(next))).toBe(flags(statusOf(first)));
    expect(next.at - first.at).toBeGreaterThanOrEqual(MIN - TIMER_SLACK_MS);
  });
});
