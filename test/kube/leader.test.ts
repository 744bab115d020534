/**
 * The status leader election against a real kube-apiserver, with short timings (lease 3 s, renew
 * deadline 2 s, retry 0.5 s) and exactly the RBAC the chart grants (get, create, update on leases in
 * the namespace, through a ServiceAccount token): of three electors exactly one leads and the Lease
 * names it; stop() of the leader hands over at once and leaseTransitions grows; a leader killed
 * with SIGKILL (a child process, so it cannot release) is taken over, and no sooner than the lease
 * allows; a stopped elector leaves nothing behind that keeps its process alive.
 *
 * Waits are for events (the electors' callbacks, a child's output, a process's exit), or polls of
 * the API server for what it shows; each under a generous hang guard. Takeover times are printed,
 * never asserted: the machine may be busy, and under load a renew can miss its deadline, so a
 * re-election may happen at any point. What is asserted holds whatever the timing: never two
 * leaders at once in this process, and a crashed leader's lease taken only after it expired.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeApi, type WatchHandle } from '../../controller/kube/api-client.js';
import { LeaderElector, parseMicroTime, type LeaseObject } from '../../controller/kube/fleet/leader.js';
import { createLogger } from '../../controller/telemetry/logger.js';
import { describeKube, CLUSTER_START_MS, startKubeCluster, type KubeCluster } from '../helpers/kube-cluster.js';
import { pollUntil } from '../helpers/poll.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const NAMESPACE = 'tk-leader-test';
const SA = 'tk-leader-test';
const TIMINGS = { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 500 };
/** Generous: a guard against hangs, never a speed claim. */
const PATIENCE_MS = 60_000;
/** Date.now() of two processes on one host, and MicroTime's rounding. */
const CLOCK_TOLERANCE_MS = 250;

interface LogLine {
  time?: string;
  level?: string;
  msg?: string;
}

/** Electors in this process on one Lease, with what they told us. */
/** Predicates checked at every notify() (a leadership change, a child's event line), each with a hang guard. */
class Waiters {
  readonly #checks = new Set<() => void>();

  waitFor(pred: () => boolean, gaveUp: () => string): Promise<void> {
    return new Promise((resolve, reject) => {
      if (pred()) return resolve();
      const check = (): void => {
        if (!pred()) return;
        clearTimeout(guard);
        this.#checks.delete(check);
        resolve();
      };
      const guard = setTimeout(() => {
        this.#checks.delete(check);
        reject(new Error(gaveUp()));
      }, PATIENCE_MS);
      this.#checks.add(check);
    });
  }

  notify(): void {
    for (const c of [...this.#checks]) c();
  }
}

class Group {
  readonly members: Array<{ node: string; e: LeaderElector; events: string[]; logs: LogLine[] }> = [];
  leading = 0;
  maxLeading = 0;
  readonly #waiters = new Waiters();

  constructor(
    readonly kubeConfig: KubeConfig,
    readonly leaseName: string,
  ) {}

  add(node: string): Group['members'][number] {
    const logs: LogLine[] = [];
    const events: string[] = [];
    const stream = { write: (s: string) => (logs.push(JSON.parse(s) as LogLine), true) } as unknown as NodeJS.WritableStream;
    const e = new LeaderElector({
      api: new KubeApi(this.kubeConfig),
      namespace: NAMESPACE,
      leaseName: this.leaseName,
      identity: `${node}_${randomBytes(3).toString('hex')}`,
      ...TIMINGS,
      logger: createLogger('debug', stream),
      onStartedLeading: () => {
        events.push('started');
        this.maxLeading = Math.max(this.maxLeading, ++this.leading);
        this.#notify();
      },
      onStoppedLeading: () => {
        events.push('stopped');
        this.leading--;
        this.#notify();
      },
    });
    const m = { node, e, events, logs };
    this.members.push(m);
    return m;
  }

  leader(): Group['members'][number] | undefined {
    return this.members.find((m) => m.e.isLeader);
  }

  /** Resolves when `pred` holds, checked at every leadership change; rejects after the hang guard. */
  waitFor(what: string, pred: () => boolean): Promise<void> {
    return this.#waiters.waitFor(pred, () => `gave up waiting for ${what} after ${PATIENCE_MS / 1000} s\n${this.#recentLogs()}`);
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.members.map((m) => m.e.stop()));
  }

  #notify(): void {
    this.#waiters.notify();
  }

  #recentLogs(): string {
    return this.members.map((m) => `${m.e.identity}:\n${m.logs.slice(-15).map((l) => `  ${l.time} ${l.level} ${l.msg}`).join('\n')}`).join('\n');
  }
}

/** An elector alone in a child process: the one we can SIGKILL, and whose natural exit we can see. */
const CHILD = `
import { createWriteStream } from 'node:fs';
const env = JSON.parse(process.env.TK_LEADER_CHILD);
const { KubeConfig } = await import('@kubernetes/client-node');
const { KubeApi } = await import(env.apiClient);
const { LeaderElector } = await import(env.leader);
const { createLogger } = await import(env.logger);
const kc = new KubeConfig();
kc.loadFromOptions(env.kubeConfig);
const say = (event) => process.stdout.write(JSON.stringify({ event, at: Date.now() }) + '\\n');
const e = new LeaderElector({
  api: new KubeApi(kc),
  namespace: env.namespace,
  leaseName: env.leaseName,
  identity: env.identity,
  ...env.timings,
  logger: createLogger('debug', createWriteStream(env.logFile)),
  onStartedLeading: () => say('started'),
  onStoppedLeading: () => say('stopped'),
});
process.stdin.setEncoding('utf8');
process.stdin.on('data', async (d) => {
  if (!d.includes('stop')) return;
  await e.stop();
  say('stop-returned');
  // Nothing else holds this process: it must now exit by itself.
  process.stdin.destroy();
});
e.start();
say('running');
`;

class Child {
  readonly proc: ChildProcess;
  readonly events: string[] = [];
  readonly #waiters = new Waiters();
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr = '';

  constructor(
    readonly identity: string,
    env: Record<string, unknown>,
  ) {
    this.proc = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
      cwd: ROOT,
      env: { ...process.env, TK_LEADER_CHILD: JSON.stringify({ ...env, identity }) },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let buf = '';
    this.proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        this.events.push((JSON.parse(buf.slice(0, i)) as { event: string }).event);
        buf = buf.slice(i + 1);
        this.#waiters.notify();
      }
    });
    this.proc.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) => this.proc.once('exit', (code, signal) => resolve({ code, signal })));
  }

  get leading(): boolean {
    return this.events.lastIndexOf('started') > this.events.lastIndexOf('stopped');
  }

  waitFor(what: string, pred: () => boolean): Promise<void> {
    return this.#waiters.waitFor(pred, () => `gave up waiting for ${what} from the child ${this.identity} (events: ${this.events.join(', ')}; stderr: ${this.stderr.slice(-2000)})`);
  }
}

/** Resolves with `p`, or rejects after the hang guard. */
async function guarded<T>(what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_r, reject) => (timer = setTimeout(() => reject(new Error(`gave up waiting for ${what} after ${PATIENCE_MS / 1000} s`)), PATIENCE_MS)))]);
  } finally {
    clearTimeout(timer);
  }
}

describeKube('status leader election against a real API server', () => {
  let cluster: KubeCluster;
  /** The ServiceAccount's kubeconfig: get, create and update on leases in NAMESPACE, nothing else. */
  let restricted: { clusters: object[]; users: object[]; contexts: object[]; currentContext: string };
  const restrictedConfig = (): KubeConfig => {
    const kc = new KubeConfig();
    kc.loadFromOptions(restricted);
    return kc;
  };

  const kubectl = async (...args: string[]): Promise<string> => {
    const r = await cluster.kubectl(args);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const lease = async (name: string): Promise<LeaseObject> => JSON.parse(await kubectl('get', 'lease', name, '-n', NAMESPACE, '-o', 'json')) as LeaseObject;

  const eventually = <T>(what: string, probe: () => Promise<T | undefined | false>): Promise<T> => pollUntil(what, probe, PATIENCE_MS);

  beforeAll(async () => {
    cluster = await startKubeCluster({ crds: false });
    await kubectl('create', 'namespace', NAMESPACE);
    const rbac = [
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: SA, namespace: NAMESPACE } },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'Role',
        metadata: { name: SA, namespace: NAMESPACE },
        rules: [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] }],
      },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name: SA, namespace: NAMESPACE },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: SA },
        subjects: [{ kind: 'ServiceAccount', name: SA, namespace: NAMESPACE }],
      },
    ];
    const applied = await cluster.kubectl(['apply', '-f', '-'], { input: rbac.map((o) => JSON.stringify(o)).join('\n---\n') });
    if (applied.code !== 0) throw new Error(`kubectl apply: ${applied.stderr}`);
    const token = (await kubectl('create', 'token', SA, '-n', NAMESPACE, '--duration=1h')).trim();
    restricted = {
      clusters: [{ name: 'test', server: cluster.server, caFile: join(cluster.dir, 'ca.crt') }],
      users: [{ name: 'agent', token }],
      contexts: [{ name: 'agent', cluster: 'test', user: 'agent' }],
      currentContext: 'agent',
    };
  }, CLUSTER_START_MS);
  afterAll(async () => {
    await cluster?.close();
  });

  const child = (node: string, leaseName: string): Child =>
    new Child(`${node}_${randomBytes(3).toString('hex')}`, {
      apiClient: pathToFileURL(join(ROOT, 'dist', 'controller', 'kube', 'api-client.js')).href,
      leader: pathToFileURL(join(ROOT, 'dist', 'controller', 'kube', 'fleet', 'leader.js')).href,
      logger: pathToFileURL(join(ROOT, 'dist', 'controller', 'telemetry', 'logger.js')).href,
      kubeConfig: restricted,
      namespace: NAMESPACE,
      leaseName,
      timings: TIMINGS,
      logFile: join(cluster.dir, `${node}.log`),
    });

  it('of three electors exactly one leads, and the Lease names it', async () => {
    const g = new Group(restrictedConfig(), 'trio');
    for (const n of ['node-a', 'node-b', 'node-c']) g.add(n);
    const t0 = Date.now();
    for (const m of g.members) m.e.start();
    try {
      await g.waitFor('a leader', () => g.leading > 0);
      console.log(`first leader elected ${Date.now() - t0} ms after start`);
      // Under load a renew may miss its deadline and leadership move on: compare with whoever
      // leads when the Lease is read, and let every candidate catch up with it.
      const { l: agreed, leaders } = await eventually('the Lease and all three electors to agree on one leader', async () => {
        const l = await lease('trio');
        const leader = g.leader();
        const holder = l.spec?.holderIdentity;
        const agree = leader !== undefined && holder === leader.e.identity && g.members.every((m) => m.e.holder === holder);
        return agree && { l, leaders: g.members.filter((m) => m.e.isLeader).length };
      });
      expect(leaders).toBe(1);
      expect(agreed.spec).toMatchObject({ leaseDurationSeconds: 3 });
      expect(agreed.spec!.holderIdentity).toMatch(/^node-[abc]_[0-9a-f]{6}$/);
      expect(agreed.spec!.renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
      expect(g.maxLeading).toBe(1);
    } finally {
      await g.stopAll();
    }
    expect(g.maxLeading).toBe(1);
    expect(g.leading).toBe(0);
  });

  it('stop() of the leader hands the lease over at once, and leaseTransitions grows', async () => {
    const g = new Group(restrictedConfig(), 'handover');
    for (const n of ['node-a', 'node-b', 'node-c']) g.add(n);
    for (const m of g.members) m.e.start();
    try {
      await g.waitFor('a leader', () => g.leading > 0);
      const before = await eventually('the Lease to name the leader', async () => {
        const l = await lease('handover');
        return g.leader() !== undefined && l.spec?.holderIdentity === g.leader()!.e.identity && l;
      });
      const old = g.leader()!;
      const t0 = Date.now();
      await old.e.stop();
      const stopMs = Date.now() - t0;
      expect(old.e.isLeader).toBe(false);
      expect(old.events.at(-1)).toBe('stopped');
      await g.waitFor('another elector to lead', () => g.members.some((m) => m !== old && m.e.isLeader));
      console.log(`hand-over: stop() took ${stopMs} ms; another leads ${Date.now() - t0} ms after stop() began (a candidate polls every 0.5-0.75 s)`);
      const after = await eventually('the Lease to name the new leader', async () => {
        const l = await lease('handover');
        const leader = g.leader();
        return leader !== undefined && leader !== old && l.spec?.holderIdentity === leader.e.identity && l;
      });
      expect(after.spec!.leaseTransitions).toBeGreaterThan(before.spec!.leaseTransitions ?? 0);
      expect(after.spec!.leaseDurationSeconds).toBe(3);
      expect(g.maxLeading).toBe(1);
    } finally {
      await g.stopAll();
    }
  });

  it('a leader killed with SIGKILL is taken over, never before its lease ran out', async () => {
    const name = 'crash';
    // Every version of the Lease, from before the first write: the record of who held it when.
    const versions: LeaseObject[] = [];
    let watchEnded = false;
    const admin = new KubeApi(cluster.kubeConfig());
    const watch: WatchHandle = admin.watch<LeaseObject>(
      `/apis/coordination.k8s.io/v1/namespaces/${NAMESPACE}/leases`,
      { fieldSelector: `metadata.name=${name}`, timeoutSeconds: 600 },
      { onEvent: (ev) => void (ev.type !== 'BOOKMARK' && versions.push(ev.object)) },
      600_000,
    );
    void watch.done.then(() => (watchEnded = true));
    const k = child('node-k', name);
    const g = new Group(restrictedConfig(), name);
    try {
      await k.waitFor('the child to lead', () => k.leading);
      for (const n of ['node-x', 'node-y']) g.add(n).e.start();
      // Kill it while it leads and the Lease names it (under load it may have lost the lease: wait).
      await eventually('the Lease to name the child while it leads', async () => k.leading && (await lease(name)).spec?.holderIdentity === k.identity);
      const killedAt = Date.now();
      k.proc.kill('SIGKILL');
      await guarded('the child to die', k.exited);
      await g.waitFor('a survivor to lead', () => g.leading > 0);
      const tookOver = Date.now();
      const after = await eventually('the Lease to name the new leader', async () => {
        const l = await lease(name);
        return g.leader() !== undefined && l.spec?.holderIdentity === g.leader()!.e.identity && l;
      });
      await eventually('the watch to have seen that version', async () => versions.some((v) => v.metadata?.resourceVersion === after.metadata?.resourceVersion));
      expect(watchEnded).toBe(false);

      // The safety property, from the Lease's own history: the first record of another holder
      // after the child's last one was acquired no sooner than that last renewTime + leaseDuration.
      const lastOfChild = versions.findLastIndex((v) => v.spec?.holderIdentity === k.identity);
      expect(lastOfChild).toBeGreaterThanOrEqual(0);
      const found = versions.slice(lastOfChild + 1).find((v) => (v.spec?.holderIdentity ?? '') !== '');
      if (!found) throw new Error(`no holder after the child in the Lease's history: ${JSON.stringify(versions.map((v) => v.spec))}`);
      const successor = found;
      expect(g.members.map((m) => m.e.identity)).toContain(successor.spec!.holderIdentity);
      const lastRenew = parseMicroTime(versions[lastOfChild]!.spec!.renewTime)!;
      const acquired = parseMicroTime(successor.spec!.acquireTime)!;
      expect(acquired).toBeGreaterThanOrEqual(lastRenew + TIMINGS.leaseDurationMs - CLOCK_TOLERANCE_MS);
      expect(successor.spec!.leaseTransitions).toBeGreaterThan(versions[lastOfChild]!.spec!.leaseTransitions ?? 0);
      console.log(
        `takeover after SIGKILL: acquired ${Math.round(acquired - lastRenew)} ms after the dead leader's last renew (lease ${TIMINGS.leaseDurationMs} ms); ` +
          `a survivor led ${tookOver - killedAt} ms after the kill`,
      );
      expect(g.maxLeading).toBe(1);
    } finally {
      if (k.proc.exitCode === null && k.proc.signalCode === null) k.proc.kill('SIGKILL');
      watch.abort();
      await g.stopAll();
    }
  });

  it('a stopped elector releases the lease and leaves nothing that keeps its process alive', async () => {
    const k = child('node-exit', 'exit');
    try {
      await k.waitFor('the child to lead', () => k.leading);
      await eventually('the Lease to name the child', async () => (await lease('exit')).spec?.holderIdentity === k.identity);
      k.proc.stdin!.write('stop\n');
      await k.waitFor('stop() to return', () => k.events.includes('stop-returned'));
      expect(k.events.slice(-2)).toEqual(['stopped', 'stop-returned']);
      // No process.exit() in the child: it ends only when no timer, socket or stream holds it.
      expect(await guarded('the child to exit by itself', k.exited)).toEqual({ code: 0, signal: null });
      const l = await lease('exit');
      expect(l.spec).toMatchObject({ holderIdentity: '', leaseDurationSeconds: 1 });
    } finally {
      if (k.proc.exitCode === null && k.proc.signalCode === null) k.proc.kill('SIGKILL');
    }
  });
});
