/**
 * Safe rollout for real: three `tunkeeper run --kube` agents, each in its own network namespace with
 * its own Node, against a real API server. Every TunNodeState and TunDevice version is recorded
 * from a watch opened before the first agent, so the claims about "at no time" are checked on the
 * whole history, not on samples.
 *
 * One story, in order (each step waits for the status it is about, never for a time):
 * 1. a first generation and a good change roll through with maxUnavailable 1: never two nodes
 *    moving at once, one grant at a time, in name order;
 * 2. a foreign more-specific route on r1 only shadows the declared route: r1's route probe fails,
 *    r1 rolls back, the rollout halts (Stalled RolloutHalted, kstatus Failed), and r2 and r3 never
 *    apply the generation (their kernels, read with `ip`);
 * 3. a fix (a new generation) rolls through;
 * 4. r1's agent is SIGKILLed and a change is made: r1's slot is reclaimed, r2 and r3 finish; r1's
 *    agent back, it gets its slot and the device is Ready everywhere;
 * 5. a ping probe through a TUN device answered by a responder reading and writing that TUN with
 *    the project's own library passes; with the responder stopped the next change rolls back.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeApi, type WatchHandle } from '../../controller/kube/api-client.js';
import { CliProcess } from '../helpers/cli.js';
import { EchoResponder } from '../helpers/echo-responder.js';
import { kstatusOf } from '../helpers/gitops-clients.js';
import { httpGet } from '../helpers/http.js';
import { describeKube, CLUSTER_START_MS, startKubeCluster, type KubeCluster } from '../helpers/kube-cluster.js';
import { createNetns, type Netns } from '../helpers/netns.js';
import { kubeObjects } from '../helpers/kube-objects.js';
import { pollUntil } from '../helpers/poll.js';
import { sample } from '../reliability/helpers/agent.js';

const NAMESPACE = 'tk-rollout';
const LABEL = 'tunkeeper.io/rollout-test';
const PING_LABEL = 'tunkeeper.io/rollout-ping';
const NODES = ['r1', 'r2', 'r3'] as const;
const LEASE = ['--leader-elect-lease-duration', '3s', '--leader-elect-renew-deadline', '2s', '--leader-elect-retry-period', '500ms'];
/**
 * A slot unanswered for the probe timeout (5 s here) plus this is reclaimed. Long enough that a
 * live node on a busy machine answers in time: seeing the grant, a pass, a failing probe that
 * retries for its whole 5 s, a paced status write, the leader seeing it. At 10 s a stall of about
 * 8 s (the other jest worker in a storm test) would reclaim a live r1's slot and grant r2 the bad
 * generation; the killed-agent test pays the longer grace once (its reclaim comes ~35 s in).
 */
const SLOT_GRACE = ['--rollout-slot-grace', '30s'];
const PATIENCE_MS = 120_000;
const TEST_GUARD_MS = 3 * PATIENCE_MS;
const MOVING = new Set(['Applying', 'Probing']);

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}
interface NodeDevice {
  name: string;
  observedGeneration?: number;
  conditions?: Condition[];
  rollout?: { generation?: number; phase: string; inForceGeneration?: number; message?: string };
  probes?: Array<{ probe: string; result: string; message: string }>;
}
interface NodeState {
  metadata: { name: string; resourceVersion: string };
  status?: { devices?: NodeDevice[] };
}
interface Rollout {
  generation: number;
  granted: Array<{ node: string; since: string }>;
  done: number;
  waiting: number;
  reclaimed?: Array<{ node: string; at: string }>;
  haltedBy?: string[];
}
interface TunDevice {
  metadata: { name: string; generation: number; resourceVersion: string };
  status?: { observedGeneration?: number; ready?: string; conditions?: Condition[]; rollout?: Rollout };
}

const until = <T>(what: string, probe: () => Promise<T | undefined | false>): Promise<T> => pollUntil(what, probe, PATIENCE_MS);

const edgeYaml = (o: { mtu: number; probe: string }) => `apiVersion: tunkeeper.io/v1alpha1
kind: TunDevice
metadata:
  name: edge
spec:
  ifname: tk-edge0
  mtu: ${o.mtu}
  addresses: [192.0.2.1/24]
  routes:
    - to: 198.51.100.0/24
  probes:
    - route: {to: ${o.probe}}
  rollout:
    maxUnavailable: 1
    probeTimeoutSeconds: 5
  nodeSelector:
    matchLabels: {${LABEL}: "yes"}
`;

const echoYaml = (o: { mtu: number; timeout: number }) => `apiVersion: tunkeeper.io/v1alpha1
kind: TunDevice
metadata:
  name: echo
spec:
  ifname: tk-echo0
  mtu: ${o.mtu}
  addresses: [203.0.113.1/24]
  probes:
    - ping: {to: 203.0.113.2}
  rollout:
    probeTimeoutSeconds: ${o.timeout}
  nodeSelector:
    matchLabels: {${PING_LABEL}: "yes"}
`;

/** Every version of every TunNodeState and of TunDevice edge, as the watches delivered them. */
class History {
  readonly states: NodeState[] = [];
  readonly devices: TunDevice[] = [];
  readonly #watches: WatchHandle[] = [];
  /** A watch that ended: the history after it would be incomplete, so every check fails with this. */
  ended: string | undefined;

  /**
   * Opens both watches, before any agent runs. Right after the CRDs are made the API server may
   * answer 429 "storage is (re)initializing": such an answer before the watch opened is retried;
   * a watch that ends after it opened leaves the history incomplete, and every check then fails.
   */
  async start(api: KubeApi): Promise<void> {
    const watch = async <T>(path: string, query: Record<string, string | number>, list: T[]): Promise<void> => {
      for (let attempt = 1; ; attempt++) {
        let opened: () => void = () => undefined;
        const open = new Promise<{ ended: undefined; open: true }>((resolve) => (opened = () => resolve({ ended: undefined, open: true })));
        const w = api.watch<T>(path, { ...query, timeoutSeconds: 1800 }, { onOpen: () => opened(), onEvent: (ev) => void (ev.type !== 'BOOKMARK' && ev.type !== 'DELETED' && list.push(ev.object)) }, 1_800_000);
        const first = await Promise.race([w.done.then((e) => ({ ended: e })), open]);
        if ('open' in first) {
          this.#watches.push(w);
          void w.done.then((e) => (this.ended ??= `the ${path} history watch ended: ${e?.message ?? 'closed by the server'}`));
          return;
        }
        if (attempt >= 50) throw new Error(`cannot watch ${path}: ${first.ended?.message ?? 'closed'}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    await watch<NodeState>('/apis/tunkeeper.io/v1alpha1/tunnodestates', {}, this.states);
    await watch<TunDevice>('/apis/tunkeeper.io/v1alpha1/tundevices', { fieldSelector: 'metadata.name=edge' }, this.devices);
  }

  #check(): void {
    if (this.ended !== undefined) throw new Error(this.ended);
  }

  stop(): void {
    this.ended ??= 'stopped';
    for (const w of this.#watches) w.abort();
  }

  /** Replays the TunNodeState history: the most nodes moving to generation g at once, and each node's phases in order. */
  movingAt(device: string, g: number): { most: number; phases: Map<string, string[]> } {
    this.#check();
    const now = new Map<string, string>();
    const phases = new Map<string, string[]>();
    let most = 0;
    for (const s of this.states) {
      const e = s.status?.devices?.find((d) => d.name === device);
      const phase = e?.rollout?.generation === g ? e.rollout.phase : 'other';
      now.set(s.metadata.name, phase);
      const seen = phases.get(s.metadata.name) ?? [];
      if (seen[seen.length - 1] !== phase) seen.push(phase);
      phases.set(s.metadata.name, seen);
      most = Math.max(most, [...now.values()].filter((p) => MOVING.has(p)).length);
    }
    return { most, phases };
  }

  /** The grant lists generation g went through, in order (consecutive repeats folded). */
  grantsOf(g: number): string[][] {
    this.#check();
    const out: string[][] = [];
    for (const d of this.devices) {
      const r = d.status?.rollout;
      if (r?.generation !== g) continue;
      const nodes = r.granted.map((x) => x.node);
      if (JSON.stringify(out[out.length - 1]) !== JSON.stringify(nodes)) out.push(nodes);
    }
    return out;
  }
}

describeKube('safe rollout: probes, rollback and maxUnavailable across three agents', () => {
  let cluster: KubeCluster;
  let work: string;
  const history = new History();
  const agents = new Map<string, { ns: Netns; p: CliProcess }>();
  let responder: EchoResponder | undefined;

  const { kubectl, apply, statusOf } = kubeObjects<TunDevice>(() => cluster, PATIENCE_MS);
  const nodeEntry = async (node: string, name: string) => {
    const s = JSON.parse(await kubectl('get', 'tunnodestate', node, '-o', 'json')) as NodeState;
    return s.status?.devices?.find((d) => d.name === name);
  };
  const readyEverywhere = (name: string, n: number = NODES.length) => statusOf(name, `Ready ${n}/${n}`, (d) => d.status?.ready === `${n}/${n}` && d.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true);
  const mtuOn = async (node: string, ifname: string): Promise<number> => {
    const [link] = await agents.get(node)!.ns.ipJson<Array<{ mtu: number }>>('link', 'show', 'dev', ifname);
    return link!.mtu;
  };
  const startAgent = (node: string) => {
    const ns = agents.get(node)!.ns;
    const p = new CliProcess([
      'run', '--kube', '--kubeconfig', cluster.kubeconfigPath, '--node-name', node, '--namespace', NAMESPACE, '--netns', ns.name,
      '--state-dir', join(work, node), '--metrics-address', '127.0.0.1:0', '--log-level', 'info', ...LEASE, ...SLOT_GRACE,
    ]);
    agents.set(node, { ns, p });
  };
  const metrics = async (node: string) => {
    const url = agents.get(node)!.p.lines().map((l) => { try { return (JSON.parse(l) as { url?: string }).url; } catch { return undefined; } }).find((u) => typeof u === 'string');
    if (!url) throw new Error(`agent ${node} has not printed its metrics URL`);
    return httpGet(`${url}/metrics`);
  };

  beforeAll(async () => {
    cluster = await startKubeCluster();
    work = await mkdtemp(join(tmpdir(), 'tk-rollout-'));
    await kubectl('create', 'namespace', NAMESPACE);
    await history.start(new KubeApi(cluster.kubeConfig()));
    for (const node of NODES) {
      await cluster.createNode(node, { [LABEL]: 'yes', ...(node === 'r3' ? { [PING_LABEL]: 'yes' } : {}) });
      const ns = await createNetns('rollout');
      // Ping probes use unprivileged ICMP sockets: the namespace lets every group use them, as
      // systemd does on hosts (the kernel's default in a new namespace is nobody).
      await ns.exec('sysctl', ['-q', '-w', 'net.ipv4.ping_group_range=0 2147483647']);
      agents.set(node, { ns, p: undefined as unknown as CliProcess });
      startAgent(node);
    }
  }, CLUSTER_START_MS);

  afterAll(async () => {
    history.stop();
    await responder?.stop().catch(() => undefined);
    for (const a of agents.values()) {
      a.p?.kill('SIGTERM');
      await a.p?.exited.catch(() => undefined);
      await a.ns.delete();
    }
    await cluster?.close();
    if (work) await rm(work, { recursive: true, force: true });
  }, PATIENCE_MS);

  it(
    'rolls a first generation and a good change through one node at a time',
    async () => {
      const first = await apply(edgeYaml({ mtu: 1400, probe: '198.51.100.7' }));
      await readyEverywhere('edge');
      const second = await apply(edgeYaml({ mtu: 1380, probe: '198.51.100.7' }));
      expect(second.metadata.generation).toBe(first.metadata.generation + 1);
      const done = await readyEverywhere('edge');
      expect(done.status!.rollout).toMatchObject({ generation: second.metadata.generation, granted: [], done: 3, waiting: 0 });
      for (const node of NODES) expect(await mtuOn(node, 'tk-edge0')).toBe(1380);

      for (const g of [first.metadata.generation, second.metadata.generation]) {
        const { most, phases } = history.movingAt('edge', g);
        console.log(`generation ${g}: at most ${most} node(s) moving at once; phases ${JSON.stringify(Object.fromEntries(phases))}; grants ${JSON.stringify(history.grantsOf(g))}`);
        expect(most).toBeLessThanOrEqual(1);
        // One grant at a time, first granted in name order: the leader never let two nodes move.
        const grants = history.grantsOf(g).filter((x) => x.length > 0);
        expect(grants.every((x) => x.length === 1)).toBe(true);
        expect([...new Set(grants.map((x) => x[0]))]).toEqual([...NODES]);
        for (const node of NODES) expect(phases.get(node)).toContain('Settled');
      }
      const entry = await nodeEntry('r2', 'edge');
      expect(entry?.probes).toEqual([expect.objectContaining({ probe: 'route 198.51.100.7', result: 'Passed', message: expect.stringContaining('dev tk-edge0') })]);
    },
    TEST_GUARD_MS,
  );

  it(
    'rolls r1 back when a foreign more-specific route shadows the declared one there, and halts the rollout before r2 and r3',
    async () => {
      const r1 = agents.get('r1')!.ns;
      await r1.ip('link', 'add', 'tk-shadow0', 'type', 'veth', 'peer', 'name', 'tk-shadow1');
      await r1.ip('link', 'set', 'tk-shadow0', 'up');
      await r1.ip('link', 'set', 'tk-shadow1', 'up');
      await r1.ip('route', 'add', '198.51.100.0/25', 'dev', 'tk-shadow0', 'proto', 'static');

      const bad = await apply(edgeYaml({ mtu: 1360, probe: '198.51.100.7' }));
      const g = bad.metadata.generation;
      const halted = await statusOf('edge', 'Stalled RolloutHalted', (d) => d.status?.conditions?.some((c) => c.type === 'Stalled' && c.status === 'True' && c.reason === 'RolloutHalted') === true);
      const stalled = halted.status!.conditions!.find((c) => c.type === 'Stalled')!;
      expect(stalled.message).toContain(`generation ${g} is halted`);
      expect(stalled.message).toContain('r1');
      expect(halted.status!.rollout).toMatchObject({ generation: g, haltedBy: ['r1'], granted: [] });
      expect((await kstatusOf(halted)).status).toBe('Failed');

      const entry = await until('r1 to report RolledBack', async () => {
        const e = await nodeEntry('r1', 'edge');
        return e?.rollout?.phase === 'RolledBack' && e;
      });
      const degraded = entry.conditions!.find((c) => c.type === 'Degraded')!;
      expect(degraded).toMatchObject({ status: 'True', reason: 'RolledBack' });
      expect(degraded.message).toContain(`generation ${g} failed probe route 198.51.100.7`);
      expect(degraded.message).toMatch(/dev tk-shadow0 via a foreign route 198\.51\.100\.0\/25 proto static/);
      expect(entry.rollout).toMatchObject({ generation: g, inForceGeneration: g - 1 });
      // Level-triggered: the good generation is back in r1's kernel.
      await until('r1 to have the good MTU back', async () => (await mtuOn('r1', 'tk-edge0')) === 1380);
      expect(sample(await metrics('r1'), 'tunkeeper_rollbacks_total', 'outcome="rolledBack"')).toBe(1);
      const events = await until('the RolledBack Event', async () => {
        const list = JSON.parse(await kubectl('get', 'events.events.k8s.io', '-n', 'default', '-o', 'json')) as { items: Array<{ reason: string; note: string; regarding?: { name?: string } }> };
        return list.items.find((e) => e.reason === 'RolledBack' && e.regarding?.name === 'edge');
      });
      expect(events.note).toContain(`generation ${g} failed probe route 198.51.100.7`);

      // r2 and r3 never moved to it: their kernels, and their whole recorded history.
      for (const node of ['r2', 'r3']) expect(await mtuOn(node, 'tk-edge0')).toBe(1380);
      const { most, phases } = history.movingAt('edge', g);
      expect(most).toBeLessThanOrEqual(1);
      for (const node of ['r2', 'r3']) expect((phases.get(node) ?? []).filter((p) => p !== 'other' && p !== 'Waiting')).toEqual([]);
      expect(history.grantsOf(g).filter((x) => x.length > 0)).toEqual([['r1']]);
    },
    TEST_GUARD_MS,
  );

  it(
    'rolls a fix (a new generation) through after the halt',
    async () => {
      // 198.51.100.200 is outside r1's foreign /25: the declared /24 carries it on every node.
      const fix = await apply(edgeYaml({ mtu: 1340, probe: '198.51.100.200' }));
      const done = await readyEverywhere('edge');
      expect(done.status!.rollout).toMatchObject({ generation: fix.metadata.generation, done: 3 });
      expect(done.status!.rollout!.haltedBy).toBeUndefined();
      for (const node of NODES) expect(await mtuOn(node, 'tk-edge0')).toBe(1340);
      expect(history.movingAt('edge', fix.metadata.generation).most).toBeLessThanOrEqual(1);
    },
    TEST_GUARD_MS,
  );

  it(
    'reclaims the slot of a node whose agent was killed, finishes on the others, and gives it back when the agent returns',
    async () => {
      const killed = agents.get('r1')!.p;
      killed.kill('SIGKILL');
      await killed.exited.catch(() => undefined);
      const change = await apply(edgeYaml({ mtu: 1320, probe: '198.51.100.200' }));
      const g = change.metadata.generation;
      const reclaimed = await statusOf('edge', 'r1 reclaimed, r2 and r3 done', (d) => {
        const r = d.status?.rollout;
        return r?.generation === g && r.done === 2 && r.reclaimed?.some((x) => x.node === 'r1') === true;
      });
      console.log(`generation ${g}: ${JSON.stringify(reclaimed.status!.rollout)}; grants ${JSON.stringify(history.grantsOf(g))}`);
      expect(history.grantsOf(g)[0]).toEqual(['r1']);
      for (const node of ['r2', 'r3']) expect(await mtuOn(node, 'tk-edge0')).toBe(1320);
      expect(await mtuOn('r1', 'tk-edge0')).toBe(1340);

      startAgent('r1');
      await readyEverywhere('edge');
      expect(await mtuOn('r1', 'tk-edge0')).toBe(1320);
      expect(history.movingAt('edge', g).most).toBeLessThanOrEqual(1);
    },
    TEST_GUARD_MS,
  );

  it(
    'passes a ping probe answered through the TUN device, and rolls back the next change once the responder is gone',
    async () => {
      const r3 = agents.get('r3')!.ns;
      const first = await apply(echoYaml({ mtu: 1500, timeout: 60 }));
      // Not "the link exists": it exists from TUNSETIFF on, while the agent still holds the only
      // queue (a CI run attached in that window and got EBUSY). Probing starts only after the pass
      // that created the device has ended, by when the agent has made it persistent and let go.
      await until('r3 to be probing the echo device', async () => {
        const e = await nodeEntry('r3', 'echo');
        return e?.rollout?.generation === first.metadata.generation && e.rollout.phase === 'Probing';
      });
      responder = await EchoResponder.start(r3, 'tk-echo0');
      const passed = await until('r3 to report the ping probe passed', async () => {
        const e = await nodeEntry('r3', 'echo');
        return e?.rollout?.generation === first.metadata.generation && e.rollout.phase === 'Settled' && e;
      });
      expect(passed.probes).toEqual([expect.objectContaining({ probe: 'ping 203.0.113.2', result: 'Passed' })]);
      expect(responder.answered).toBeGreaterThan(0);
      await readyEverywhere('echo', 1);

      await responder.stop();
      responder = undefined;
      const next = await apply(echoYaml({ mtu: 1400, timeout: 3 }));
      const rolledBack = await until('r3 to roll the echo device back', async () => {
        const e = await nodeEntry('r3', 'echo');
        return e?.rollout?.generation === next.metadata.generation && e.rollout.phase === 'RolledBack' && e;
      });
      expect(rolledBack.probes).toEqual([expect.objectContaining({ probe: 'ping 203.0.113.2', result: 'Failed' })]);
      expect(rolledBack.conditions!.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'RolledBack' });
      await until('r3 to have the good MTU back', async () => (await mtuOn('r3', 'tk-echo0')) === 1500);
      await statusOf('echo', 'Stalled RolloutHalted', (d) => d.status?.conditions?.some((c) => c.type === 'Stalled' && c.reason === 'RolloutHalted') === true);
    },
    TEST_GUARD_MS,
  );
});
