/**
 * The leader elector against an in-memory Lease endpoint (resourceVersions, 409 on a stale update,
 * 404/409 on get/create, faults per agent) on a ManualClock, so every timing is exact: one of two
 * candidates leads and the other follows it; renewing keeps the lease; a leader that is cut off
 * stands down at renewDeadline and is taken over by rule (a) after leaseDuration, never before; rule
 * (b) lets a slow-polling candidate take a stale lease at its first look; a released lease goes at
 * the next poll; the candidates' poll period follows the fleet-size annotation; conflicts; stop().
 * A seeded simulation with faults and skewed clocks checks that two agents never lead at once.
 * (The real API server is exercised by test/kube/leader.test.ts.)
 */
import { describe, expect, it } from '@jest/globals';
import { KubeApiError, type KubeApi, type RequestSpec } from '../../../../controller/kube/api-client.js';
import { FLEET_SIZE_ANNOTATION, LEADER_DEFAULTS, LeaderElector, microTime, parseMicroTime, type LeaseObject, type LeaderElectorOptions } from '../../../../controller/kube/fleet/leader.js';
import { ManualClock } from '../../../../controller/loop/manual-clock.js';
import { createLogger } from '../../../../controller/telemetry/logger.js';

const NS = 'tunkeeper-system';
const NAME = LEADER_DEFAULTS.leaseName;
const LEASES = `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases`;
const WALL0 = Date.parse('2026-12-07T08:00:00Z');

type Mode = 'ok' | 'fail' | 'hang' | 'lose-reply';

interface Call {
  who: string;
  method: string;
  at: number;
  /** 'ok', or the status it failed with ('hang', 'lost' when the reply was dropped). */
  result: string;
}

/** The Lease endpoints of one namespace, in memory, with the API server's concurrency rules. */
class FakeLeases {
  lease: LeaseObject | undefined;
  #rv = 100;
  readonly calls: Call[] = [];
  readonly modes = new Map<string, Mode>();

  constructor(readonly clock: ManualClock) {}

  /** What an agent's KubeApi would be: its requests are logged under `who` and suffer its mode. */
  api(who: string): Pick<KubeApi, 'request'> {
    return { request: <T>(spec: RequestSpec) => this.#request(who, spec) as Promise<T> };
  }

  /** A write by someone outside the elector (an operator, a rogue agent): the version moves on. */
  write(mutate: (l: LeaseObject) => void): void {
    const l = structuredClone(this.lease!);
    mutate(l);
    l.metadata!.resourceVersion = String(++this.#rv);
    this.lease = l;
  }

  count(who: string, method: string, from = 0, to = Infinity, result?: string): number {
    return this.calls.filter((c) => c.who === who && c.method === method && c.at >= from && c.at < to && (result === undefined || c.result === result)).length;
  }

  /** When `who` last wrote successfully. */
  lastWrite(who: string): number {
    return this.calls.filter((c) => c.who === who && c.method !== 'GET' && c.result === 'ok').at(-1)!.at;
  }

  #request(who: string, spec: RequestSpec): Promise<unknown> {
    const call: Call = { who, method: spec.method, at: this.clock.now(), result: 'ok' };
    this.calls.push(call);
    expect(spec.timeoutMs).toBeGreaterThan(0);
    expect(spec.timeoutMs).toBeLessThanOrEqual(LEADER_DEFAULTS.renewDeadlineMs);
    expect(spec.signal).toBeDefined();
    if (spec.signal!.aborted) return Promise.reject(new KubeApiError('aborted', 0, 'Aborted'));
    const mode = this.modes.get(who) ?? 'ok';
    if (mode === 'fail') {
      call.result = '503';
      return Promise.reject(new KubeApiError(`${spec.method}: 503`, 503, 'ServiceUnavailable'));
    }
    let answer: { value: unknown } | { error: KubeApiError } | undefined;
    if (mode !== 'hang') {
      try {
        answer = { value: this.#serve(spec) };
      } catch (e) {
        answer = { error: e as KubeApiError };
        call.result = String((e as KubeApiError).statusCode);
      }
    }
    if (mode === 'ok') return 'value' in answer! ? Promise.resolve(answer.value) : Promise.reject(answer!.error);
    call.result = mode === 'hang' ? 'hang' : 'lost';
    // No answer: the request ends at its deadline (KubeApi's timer) or when aborted.
    return new Promise((_resolve, reject) => {
      const timer = this.clock.setTimer(spec.timeoutMs!, () => {
        spec.signal!.removeEventListener('abort', onAbort);
        reject(new KubeApiError('no answer', 0, 'Timeout'));
      });
      const onAbort = (): void => {
        timer.cancel();
        reject(new KubeApiError('aborted', 0, 'Aborted'));
      };
      spec.signal!.addEventListener('abort', onAbort, { once: true });
    });
  }

  #serve(spec: RequestSpec): unknown {
    const body = structuredClone(spec.body) as LeaseObject | undefined;
    switch (spec.method) {
      case 'GET':
        expect(spec.path).toBe(`${LEASES}/${NAME}`);
        if (!this.lease) throw new KubeApiError('not found', 404, 'NotFound');
        return structuredClone(this.lease);
      case 'POST':
        expect(spec.path).toBe(LEASES);
        if (this.lease) throw new KubeApiError('already exists', 409, 'AlreadyExists');
        expect(body!.metadata!.name).toBe(NAME);
        this.lease = { ...body!, metadata: { ...body!.metadata, resourceVersion: String(++this.#rv) } };
        return structuredClone(this.lease);
      case 'PUT':
        expect(spec.path).toBe(`${LEASES}/${NAME}`);
        if (!this.lease) throw new KubeApiError('not found', 404, 'NotFound');
        if (body!.metadata?.resourceVersion !== this.lease.metadata!.resourceVersion) throw new KubeApiError('the object has been modified', 409, 'Conflict');
        this.lease = { ...body!, metadata: { ...body!.metadata, resourceVersion: String(++this.#rv) } };
        return structuredClone(this.lease);
      default:
        throw new Error(`the elector may only get, create and update leases (got ${spec.method})`);
    }
  }
}

interface Agent {
  name: string;
  e: LeaderElector;
  events: Array<{ event: 'started' | 'stopped'; at: number }>;
  logs: Array<{ level: string; msg: string; reason?: string; holder?: string }>;
}

function world() {
  const clock = new ManualClock(0);
  const fake = new FakeLeases(clock);
  const agents: Agent[] = [];

  const agent = (name: string, opts: { skewMs?: number; random?: () => number } & Partial<LeaderElectorOptions> = {}): Agent => {
    const logs: Agent['logs'] = [];
    const events: Agent['events'] = [];
    const stream = { write: (s: string) => (logs.push(JSON.parse(s)), true) } as unknown as NodeJS.WritableStream;
    const { skewMs = 0, random = () => 0, ...rest } = opts;
    const e = new LeaderElector({
      api: fake.api(name),
      namespace: NS,
      identity: `${name}_x`,
      logger: createLogger('debug', stream),
      clock,
      now: () => WALL0 + clock.now() + skewMs,
      random,
      onStartedLeading: () => events.push({ event: 'started', at: clock.now() }),
      onStoppedLeading: () => events.push({ event: 'stopped', at: clock.now() }),
      ...rest,
    });
    const a = { name, e, events, logs };
    agents.push(a);
    return a;
  };

  /** Lets every promise chain run out (the fake answers at once). */
  const flush = async (): Promise<void> => {
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
  };

  /** Runs the clock timer by timer until `until` holds (checked after each) or `ms` have passed. */
  const run = async (ms: number, until?: () => boolean, each?: () => void): Promise<number> => {
    const end = clock.now() + ms;
    await flush();
    each?.();
    for (;;) {
      if (until?.()) return clock.now();
      const next = clock.pending()[0];
      if (next === undefined || next > end) break;
      clock.advance(next - clock.now());
      await flush();
      each?.();
    }
    if (until) throw new Error(`not reached within ${ms} ms (at ${clock.now()})`);
    clock.advance(end - clock.now());
    await flush();
    return clock.now();
  };

  const stopAll = async (): Promise<void> => {
    const stopping = Promise.all(agents.map((a) => a.e.stop()));
    let done = false;
    void stopping.then(() => (done = true));
    await run(10_000, () => done);
    await stopping;
    // No timer is left behind by anyone.
    expect(clock.pending()).toEqual([]);
  };

  const leaders = (): Agent[] => agents.filter((a) => a.e.isLeader);
  const spec = () => fake.lease!.spec!;
  return { clock, fake, agent, run, flush, stopAll, leaders, spec };
}

const started = (a: Agent) => a.events.filter((e) => e.event === 'started');
const stopped = (a: Agent) => a.events.filter((e) => e.event === 'stopped');

describe('LeaderElector', () => {
  it('of two candidates one leads, the other follows it, and the Lease says so', async () => {
    const w = world();
    const a = w.agent('node-a');
    const b = w.agent('node-b');
    a.e.start();
    b.e.start();
    await w.run(0);
    expect(w.leaders()).toHaveLength(1);
    const [leader] = w.leaders();
    const other = leader === a ? b : a;
    expect(w.spec()).toEqual({
      holderIdentity: leader!.e.identity,
      leaseDurationSeconds: 15,
      acquireTime: '2026-12-07T08:00:00.000000Z',
      renewTime: '2026-12-07T08:00:00.000000Z',
      leaseTransitions: 0,
    });
    // The loser's create met 409 AlreadyExists; it looked again at once and knows who leads.
    expect(w.fake.count(other.name, 'POST', 0, 1, '409')).toBe(1);
    expect(other.e.holder).toBe(leader!.e.identity);
    expect(leader!.e.holder).toBe(leader!.e.identity);
    expect(started(leader!)).toHaveLength(1);
    expect(other.events).toEqual([]);
    expect(leader!.logs.find((l) => l.msg.startsWith('started leading'))?.level).toBe('info');
    expect(other.logs.find((l) => l.msg === `the status leader is ${leader!.e.identity}`)?.level).toBe('info');
    await w.stopAll();
  });

  it('renews every retryPeriod and keeps leading; the candidate never takes over', async () => {
    const w = world();
    const a = w.agent('node-a');
    const b = w.agent('node-b');
    a.e.start();
    await w.run(0);
    b.e.start();
    await w.run(60_000, undefined, () => expect(b.e.isLeader).toBe(false));
    expect(a.e.isLeader).toBe(true);
    expect(a.events.map((e) => e.event)).toEqual(['started']);
    expect(b.events).toEqual([]);
    // Renewed at 2 s, 4 s, ... 60 s, each an update of the version read or written last.
    expect(w.fake.count('node-a', 'PUT', 0, Infinity, 'ok')).toBe(30);
    expect(w.fake.count('node-a', 'GET')).toBe(1);
    expect(w.spec().renewTime).toBe(microTime(WALL0 + 60_000));
    expect(w.spec().acquireTime).toBe(microTime(WALL0));
    expect(w.spec().leaseTransitions).toBe(0);
    // A candidate of a fleet of one polls every retryPeriod × [1, 1.5): here (random 0) every 2 s.
    expect(w.fake.count('node-b', 'GET')).toBe(31);
    await w.stopAll();
  });

  it('a leader cut off stands down at renewDeadline; rule (a) takes over leaseDuration after the last renew, never before', async () => {
    const w = world();
    const a = w.agent('node-a');
    // b's wall clock is an hour behind: renewTime is in its future, so only rule (a) can fire.
    const b = w.agent('node-b', { skewMs: -3_600_000 });
    a.e.start();
    await w.run(0);
    b.e.start();
    await w.run(20_000);
    w.fake.modes.set('node-a', 'hang');
    const lastRenew = w.fake.lastWrite('node-a');
    expect(lastRenew).toBe(20_000);
    const takeover = await w.run(120_000, () => b.e.isLeader, () => expect(w.leaders().length).toBeLessThanOrEqual(1));
    // a stood down by its own clock, renewDeadline after its last renew was sent ...
    expect(stopped(a)).toEqual([{ event: 'stopped', at: lastRenew + 10_000 }]);
    expect(a.logs.some((l) => l.msg.startsWith('stopped leading: could not renew'))).toBe(true);
    // ... and b took over only after seeing the same record for leaseDuration (polling every 2 s).
    expect(takeover).toBeGreaterThanOrEqual(lastRenew + 15_000);
    // (b sees the last record within one poll of 2 s, and looks again at most one poll after expiry.)
    expect(takeover).toBeLessThanOrEqual(lastRenew + 2_000 + 15_000 + 2_000);
    expect(started(b)[0]!.at).toBeGreaterThan(stopped(a)[0]!.at);
    expect(b.logs.find((l) => l.msg.startsWith('started leading'))?.reason).toMatch(/expired \(unchanged\)/);
    expect(w.spec()).toMatchObject({ holderIdentity: 'node-b_x', leaseTransitions: 1, acquireTime: microTime(WALL0 + takeover - 3_600_000) });
    await w.stopAll();
  });

  it('rule (b): a slow-polling candidate takes a lease whose renewTime is older than 2 × leaseDuration at its first look', async () => {
    const w = world();
    const a = w.agent('node-a');
    const b = w.agent('node-b');
    a.e.start();
    a.e.setFleetSize(1000);
    await w.run(3_000);
    expect(w.fake.lease!.metadata!.annotations).toEqual({ [FLEET_SIZE_ANNOTATION]: '1000' });
    // b polls every 2 s × 1000/16 = 125 s: at 3 s, then 128 s.
    b.e.start();
    await w.run(92_000);
    w.fake.modes.set('node-a', 'hang');
    const lastRenew = w.fake.lastWrite('node-a');
    expect(lastRenew).toBe(94_000);
    const takeover = await w.run(300_000, () => b.e.isLeader, () => expect(w.leaders().length).toBeLessThanOrEqual(1));
    // At 128 s the record is 34 s old: more than 30 s, though b has seen it only now (rule (a)
    // would have waited for b's next look, at 253 s).
    expect(takeover).toBe(128_000);
    expect(w.fake.count('node-b', 'GET')).toBe(2);
    expect(b.logs.find((l) => l.msg.startsWith('started leading'))?.reason).toMatch(/expired \(stale\)/);
    expect(stopped(a)[0]!.at).toBe(104_000);
    expect(w.spec().leaseTransitions).toBe(1);
    await w.stopAll();
  });

  it('rule (b) tolerates a clock up to a lease duration ahead while the leader renews', async () => {
    const w = world();
    const a = w.agent('node-a');
    const b = w.agent('node-b', { skewMs: 15_000, random: () => 0.7 });
    a.e.start();
    a.e.setFleetSize(200);
    await w.run(0);
    b.e.start();
    await w.run(600_000, undefined, () => expect(b.e.isLeader).toBe(false));
    expect(w.fake.count('node-b', 'GET')).toBeGreaterThan(10);
    expect(a.events.map((e) => e.event)).toEqual(['started']);
    await w.stopAll();
  });

  it('a released lease is taken at the next poll, not after it would have expired', async () => {
    const w = world();
    const a = w.agent('node-a');
    const b = w.agent('node-b');
    a.e.start();
    a.e.setFleetSize(1000);
    await w.run(3_000);
    b.e.start(); // polls at 3 s, then 128 s
    await w.run(47_000);
    const stopping = a.e.stop();
    await w.flush();
    await stopping;
    expect(a.events.map((e) => e.event)).toEqual(['started', 'stopped']);
    expect(w.spec()).toMatchObject({ holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(WALL0 + 50_000), leaseTransitions: 0 });
    expect(a.logs.some((l) => l.msg === 'released the status lease')).toBe(true);
    const takeover = await w.run(300_000, () => b.e.isLeader);
    expect(takeover).toBe(128_000);
    expect(w.spec()).toMatchObject({ holderIdentity: 'node-b_x', leaseDurationSeconds: 15, leaseTransitions: 1 });
    // The new leader keeps the fleet size it found until it learns its own.
    expect(w.fake.lease!.metadata!.annotations).toEqual({ [FLEET_SIZE_ANNOTATION]: '1000' });
    expect(b.logs.find((l) => l.msg.startsWith('started leading'))?.reason).toBe('the lease was free');
    await w.stopAll();
  });

  it('candidates poll every retryPeriod × max(1, fleetSize/16) × [1, 1.5), capped; the annotation rides on the renew', async () => {
    const w = world();
    const a = w.agent('node-a');
    const c0 = w.agent('node-c0', { random: () => 0 });
    const c5 = w.agent('node-c5', { random: () => 0.5 });
    a.e.start();
    await w.run(0);
    c0.e.start();
    c5.e.start();
    await w.run(30_000);
    // No annotation yet: every 2 s, and every 2.5 s with half the jitter.
    expect(w.fake.count('node-c0', 'GET', 10_000, 30_000)).toBe(10);
    expect(w.fake.count('node-c5', 'GET', 10_000, 30_000)).toBe(8);
    a.e.setFleetSize(160);
    await w.run(100_000);
    expect(w.fake.lease!.metadata!.annotations).toEqual({ [FLEET_SIZE_ANNOTATION]: '160' });
    const from = w.clock.now();
    await w.run(200_000);
    // 2 s × 160/16 = 20 s, and 25 s with half the jitter.
    expect(w.fake.count('node-c0', 'GET', from, from + 200_000)).toBe(10);
    expect(w.fake.count('node-c5', 'GET', from, from + 200_000)).toBe(8);
    // The annotation costs no write: one PUT per retryPeriod, as before.
    expect(w.fake.count('node-a', 'PUT', from, from + 200_000)).toBe(100);
    expect(w.fake.count('node-a', 'GET')).toBe(1);
    // A huge fleet (or a wrong annotation) is capped: 5 minutes.
    a.e.setFleetSize(1_000_000);
    await w.run(400_000);
    const capped = w.clock.now();
    await w.run(1_200_000);
    expect(w.fake.count('node-c0', 'GET', capped, capped + 1_200_000)).toBe(4);
    await w.stopAll();
  });

  it('a leader that cannot renew for renewDeadline stands down (retrying meanwhile), and leads again when the lease still names it', async () => {
    const w = world();
    const a = w.agent('node-a');
    const b = w.agent('node-b', { skewMs: -3_600_000 });
    a.e.start();
    await w.run(0);
    b.e.start();
    await w.run(10_000);
    w.fake.modes.set('node-a', 'fail');
    const down = await w.run(60_000, () => !a.e.isLeader);
    expect(down).toBe(20_000);
    expect(stopped(a)).toHaveLength(1);
    // Retried with a jittered backoff capped at retryPeriod: 12, 12.5, 13.5, 15.5, 17.5, 19.5 s.
    expect(w.fake.count('node-a', 'PUT', 10_001, 20_000, '503')).toBe(6);
    // Back at 21 s, before b's rule (a) could fire (25 s): a's next look finds the lease still
    // names it, and takes it back (no transition; the acquisition time stays).
    await w.run(1_000);
    w.fake.modes.set('node-a', 'ok');
    await w.run(1_000, () => a.e.isLeader);
    expect(a.events.map((e) => e.event)).toEqual(['started', 'stopped', 'started']);
    expect(w.spec()).toMatchObject({ holderIdentity: 'node-a_x', leaseTransitions: 0, acquireTime: microTime(WALL0) });
    expect(b.events).toEqual([]);
    await w.stopAll();
  });

  it('a renew that meets another holder stands down at once; a touched lease that still names it is renewed', async () => {
    const w = world();
    const a = w.agent('node-a');
    a.e.start();
    await w.run(10_500);
    // An operator annotates the lease: the version moves, the holder does not.
    w.fake.write((l) => (l.metadata!.annotations = { note: 'hello' }));
    await w.run(2_000);
    expect(w.fake.count('node-a', 'PUT', 12_000, 12_001, '409')).toBe(1);
    expect(w.fake.count('node-a', 'PUT', 12_000, 12_001, 'ok')).toBe(1);
    expect(a.e.isLeader).toBe(true);
    expect(w.fake.lease!.metadata!.annotations).toEqual({ note: 'hello' });
    // Someone else writes itself in as the holder (split brain from outside): a must yield.
    w.fake.write((l) => (l.spec = { ...l.spec, holderIdentity: 'intruder', renewTime: microTime(WALL0 + 12_500) }));
    const down = await w.run(10_000, () => !a.e.isLeader);
    expect(down).toBe(14_000);
    expect(a.e.holder).toBe('intruder');
    expect(a.logs.find((l) => l.msg.startsWith('stopped leading'))).toMatchObject({ level: 'info', reason: 'the lease is held by intruder' });
    expect(a.logs.find((l) => l.msg === 'the status leader is intruder')).toMatchObject({ level: 'info', holder: 'intruder' });
    expect(w.fake.lease!.spec!.holderIdentity).toBe('intruder');
    await w.stopAll();
  });

  it('stop() stands down, then releases; never throws when the API server is away; a candidate writes nothing', async () => {
    const w = world();
    const order: string[] = [];
    const a = w.agent('node-a', { onStoppedLeading: () => order.push(`stopped, holder ${w.spec().holderIdentity || '(none)'}`) });
    const b = w.agent('node-b');
    a.e.start();
    await w.run(0);
    b.e.start();
    await w.run(5_000);
    // Someone touched the lease since a's last renew: the release meets 409, reads, and writes again.
    w.fake.write((l) => (l.metadata!.annotations = { note: 'x' }));
    const stopping = a.e.stop();
    await w.flush();
    await stopping;
    expect(order).toEqual(['stopped, holder node-a_x']);
    expect(a.e.isLeader).toBe(false);
    expect(w.spec()).toMatchObject({ holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(WALL0 + 5_000) });
    expect(w.fake.count('node-a', 'PUT', 5_000, 5_001, '409')).toBe(1);
    const bWrites = w.fake.calls.filter((c) => c.who === 'node-b' && c.method !== 'GET').length;
    const bStop = b.e.stop();
    await w.flush();
    await bStop;
    expect(w.fake.calls.filter((c) => c.who === 'node-b' && c.method !== 'GET').length).toBe(bWrites);
    expect(w.clock.pending()).toEqual([]);

    // A leader whose API server is away: stop() resolves within its short deadline, without throwing.
    const w2 = world();
    const c = w2.agent('node-c');
    c.e.start();
    await w2.run(3_000);
    w2.fake.modes.set('node-c', 'hang');
    let done = false;
    const stopC = c.e.stop().then(() => (done = true));
    const at = await w2.run(30_000, () => done);
    await stopC;
    expect(at - 3_000).toBe(LEADER_DEFAULTS.releaseTimeoutMs);
    expect(c.events.map((e) => e.event)).toEqual(['started', 'stopped']);
    expect(c.logs.some((l) => l.level === 'warn' && l.msg.startsWith('could not release'))).toBe(true);
    expect(w2.clock.pending()).toEqual([]);
  });

  it('stop() and start() are idempotent; parses and writes MicroTime', async () => {
    expect(microTime(WALL0 + 1234)).toBe('2026-12-07T08:00:01.234000Z');
    expect(parseMicroTime('2026-12-07T08:00:01.234567Z')).toBeCloseTo(WALL0 + 1234.567, 3);
    expect(parseMicroTime('2026-12-07T09:00:01+01:00')).toBe(WALL0 + 1000);
    expect(parseMicroTime('yesterday')).toBeUndefined();
    const w = world();
    const a = w.agent('node-a');
    a.e.start();
    a.e.start();
    await w.run(0);
    expect(w.fake.calls.filter((c) => c.method === 'POST')).toHaveLength(1);
    const s1 = a.e.stop();
    const s2 = a.e.stop();
    expect(s1).toBe(s2);
    await w.flush();
    await s1;
    a.e.start();
    await w.run(10_000);
    expect(a.events.map((e) => e.event)).toEqual(['started', 'stopped']);
    expect(() => new LeaderElector({ ...baseOpts(), renewDeadlineMs: 15_000 })).toThrow(/shorter than leaseDurationMs/);
    expect(() => new LeaderElector({ ...baseOpts(), retryPeriodMs: 10_000 })).toThrow(/shorter than renewDeadlineMs/);
  });

  it('never has two leaders: a seeded simulation with faults, lost replies, skewed clocks, stops and restarts', async () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const rnd = mulberry32(seed);
      const w = world();
      const names = ['n0', 'n1', 'n2', 'n3', 'n4'];
      const agents = new Map<string, Agent>();
      let generation = 0;
      const spawn = (name: string): void => {
        const a = w.agent(`${name}`, { skewMs: Math.round((rnd() - 0.5) * 10_000), random: rnd, identity: `${name}_${generation++}` });
        agents.set(name, a);
        a.e.start();
      };
      for (const n of names) spawn(n);
      let leadership = 0;
      const check = (): void => {
        const now = [...agents.values()].filter((a) => a.e.isLeader);
        expect(now.length).toBeLessThanOrEqual(1);
        // Whoever believes it leads is the holder the API server has.
        for (const a of now) expect(w.fake.lease?.spec?.holderIdentity).toBe(a.e.identity);
        if (now.length === 1) leadership++;
      };
      for (let round = 0; round < 120; round++) {
        for (const n of names) {
          const r = rnd();
          if (r < 0.05) w.fake.modes.set(n, (['fail', 'hang', 'lose-reply'] as const)[Math.floor(rnd() * 3)]!);
          else if (r < 0.2) w.fake.modes.set(n, 'ok');
          else if (r < 0.22) {
            // SIGTERM and a new pod: a clean stop, then a new identity on the same node.
            const old = agents.get(n)!;
            w.fake.modes.set(n, 'ok');
            const s = old.e.stop();
            let done = false;
            void s.then(() => (done = true));
            await w.run(5_000, () => done, check);
            spawn(n);
          }
        }
        await w.run(5_000, undefined, check);
      }
      for (const n of names) w.fake.modes.set(n, 'ok');
      await w.run(60_000, () => [...agents.values()].some((a) => a.e.isLeader), check);
      expect(leadership).toBeGreaterThan(0);
      // The faults did move the lease around (3 to 7 hand-overs per seed).
      expect(w.fake.lease!.spec!.leaseTransitions).toBeGreaterThanOrEqual(2);
      await w.stopAll();
    }
  });
});

function baseOpts(): LeaderElectorOptions {
  return {
    api: { request: () => Promise.reject(new Error('unused')) },
    namespace: NS,
    identity: 'x',
    logger: createLogger('silent'),
    onStartedLeading: () => undefined,
    onStoppedLeading: () => undefined,
  };
}

/** A small seeded PRNG: the simulation is the same on every run. */
function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
