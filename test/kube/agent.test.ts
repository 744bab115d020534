/**
 * The agent with the cluster source (`run --kube`, started in-process with startAgent) against a
 * real kube-apiserver, reconciling inside a fresh network namespace: TunDevices created, changed
 * and deleted; Node relabelled; TunNodeState and Events; the API server stopped and black-holed
 * (nothing removed, drift repaired, the agent resumes); a restart with the API server down.
 *
 * One cluster for the file. Each test has its own Node and label, and selects only its own
 * TunDevices through nodeSelector, so the agents of different tests never act on each other's.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { startAgent, type Agent } from '../../controller/agent/agent.js';
import { STATE_FILE_NAME } from '../../controller/kube/state-store.js';
import { createLogger } from '../../controller/telemetry/logger.js';
import { createAgentReconciler } from '../../controller/agent/reconciler.js';
import { DEFAULT_SETTINGS } from '../../controller/agent/settings.js';
import { convergedWith, PassRecorder } from '../helpers/agent-passes.js';
import { CliProcess } from '../helpers/cli.js';
import { describeKube, CLUSTER_START_MS, startKubeCluster, type KubeCluster } from '../helpers/kube-cluster.js';
import { withNetns, type Netns } from '../helpers/netns.js';
import { pollUntil } from '../helpers/poll.js';

/** Generous: a guard against hangs, never a speed claim. */
const PATIENCE_MS = 90_000;
/**
 * The outage tests stop and start the API server (startApiServer may take most of a minute on a
 * busy machine) and then wait out the reflector's reconnect backoff (up to 30 s): jest's default
 * 120 s is less than the sum of what they wait for.
 */
const OUTAGE_TEST_MS = 300_000;

const eventually = <T>(what: string, probe: () => Promise<T | undefined | false>, guardMs = PATIENCE_MS): Promise<T> => pollUntil(what, probe, guardMs);

interface LinkJson {
  ifname: string;
  mtu: number;
  ifindex: number;
}
const link = async (ns: Netns, ifname: string): Promise<LinkJson | undefined> => (await ns.ipJson<LinkJson[]>('link', 'show')).find((l) => l.ifname === ifname);

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}
interface DeviceStatus {
  name: string;
  ifname: string;
  ifindex?: number;
  observedGeneration?: number;
  conditions: Condition[];
}
interface NodeState {
  metadata: { ownerReferences?: Array<{ kind: string; name: string; uid: string }>; managedFields?: Array<{ manager: string; subresource?: string }> };
  status?: { devices?: DeviceStatus[]; readyCount?: number };
}
interface EventJson {
  reason: string;
  type: string;
  note: string;
  reportingController: string;
  reportingInstance: string;
  regarding: { kind: string; name: string };
  series?: { count: number };
}

describeKube('tunkeeper run --kube against a real API server', () => {
  let cluster: KubeCluster;
  let work: string;

  beforeAll(async () => {
    cluster = await startKubeCluster();
    work = await mkdtemp(join(tmpdir(), 'tk-kube-agent-'));
  }, CLUSTER_START_MS);
  afterAll(async () => {
    await cluster?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const kubectl = async (...args: string[]): Promise<string> => {
    const r = await cluster.kubectl(args);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const apply = async (objects: object[]): Promise<void> => {
    const r = await cluster.kubectl(['apply', '-f', '-'], { input: objects.map((o) => JSON.stringify(o)).join('\n---\n') });
    if (r.code !== 0) throw new Error(`kubectl apply: ${r.stderr}`);
  };
  const tunDevice = (name: string, suite: string, spec: Record<string, unknown>) => ({
    apiVersion: 'tunkeeper.io/v1alpha1',
    kind: 'TunDevice',
    metadata: { name },
    spec: { nodeSelector: { matchLabels: { 'test.tunkeeper.io/suite': suite } }, ...spec },
  });
  const nodeState = async (node: string): Promise<NodeState | undefined> => {
    const r = await cluster.kubectl(['get', 'tunnodestate', node, '-o', 'json', '--show-managed-fields']);
    return r.code === 0 ? (JSON.parse(r.stdout) as NodeState) : undefined;
  };
  const deviceStatus = async (node: string, device: string): Promise<DeviceStatus | undefined> => (await nodeState(node))?.status?.devices?.find((d) => d.name === device);
  const condition = (d: DeviceStatus | undefined, type: string): Condition | undefined => d?.conditions.find((c) => c.type === type);
  const events = async (node: string): Promise<EventJson[]> => {
    const out = JSON.parse(await kubectl('get', 'events.events.k8s.io', '-n', 'default', '-o', 'json')) as { items: EventJson[] };
    return out.items.filter((e) => e.reportingInstance === node);
  };

  const startTestAgent = async (opts: { node: string; ns: Netns; paths?: string[]; stateDir?: string; tag: string; kubeConfig?: KubeConfig; passes?: PassRecorder }): Promise<Agent> => {
    const kubeConfig = opts.kubeConfig ?? new KubeConfig();
    if (!opts.kubeConfig) kubeConfig.loadFromFile(cluster.proxyKubeconfigPath);
    const logger = createLogger('debug', createWriteStream(join(work, `${opts.tag}.log`), { flags: 'a' }));
    return startAgent({
      paths: opts.paths ?? [],
      netns: opts.ns.path,
      settings: { ...DEFAULT_SETTINGS, metricsAddress: null, resyncIntervalMs: 30_000 },
      logger,
      createReconciler: opts.passes ? opts.passes.wrap(createAgentReconciler) : createAgentReconciler,
      kube: {
        kubeConfig,
        nodeName: opts.node,
        ...(opts.stateDir !== undefined ? { stateDir: opts.stateDir } : {}),
        // Short, so that a frozen (black-holed) watch is noticed within seconds here.
        watchTimeoutSeconds: 5,
        idleTimeoutMs: 8_000,
        listTimeoutMs: 5_000,
        statusMinIntervalMs: 100,
      },
    });
  };

  it('follows TunDevices created, changed and deleted, and Node labels that come and go', async () => {
    await withNetns(async (ns) => {
      await cluster.createNode('node-cud', { 'test.tunkeeper.io/suite': 'cud' });
      const agent = await startTestAgent({ node: 'node-cud', ns, tag: 'cud' });
      try {
        await apply([tunDevice('cud-a', 'cud', { ifname: 'tk-cud0', mtu: 1420, addresses: ['192.0.2.1/24'], routes: [{ to: '198.51.100.0/24', via: '192.0.2.254' }] })]);
        // Ready is reported after the pass that applied the declaration ended; the MTU alone is
        // set in that pass before its addresses and routes, so it says nothing about them.
        const ready = await eventually('cud-a Ready in the TunNodeState', async () => {
          const d = await deviceStatus('node-cud', 'cud-a');
          return condition(d, 'Ready')?.status === 'True' && d;
        });
        const created = (await link(ns, 'tk-cud0'))!;
        expect(created.mtu).toBe(1420);
        const addrs = await ns.ipJson<Array<{ addr_info: Array<{ local: string }> }>>('addr', 'show', 'dev', 'tk-cud0');
        expect(addrs[0]!.addr_info.map((a) => a.local)).toContain('192.0.2.1');
        const routes = await ns.ipJson<Array<{ dst: string; gateway?: string }>>('route', 'show', 'dev', 'tk-cud0');
        expect(routes).toContainEqual(expect.objectContaining({ dst: '198.51.100.0/24', gateway: '192.0.2.254' }));
        expect(ready).toMatchObject({ ifname: 'tk-cud0', ifindex: created.ifindex, observedGeneration: 1 });

        // A change of spec: generation 2, the kernel follows, status reports the new generation.
        await apply([tunDevice('cud-a', 'cud', { ifname: 'tk-cud0', mtu: 1300, addresses: ['192.0.2.1/24'] })]);
        await eventually('tk-cud0 mtu 1300', async () => (await link(ns, 'tk-cud0'))?.mtu === 1300);
        await eventually('route through tk-cud0 removed with the declaration', async () => (await ns.ipJson<unknown[]>('route', 'show', 'dev', 'tk-cud0', 'to', '198.51.100.0/24')).length === 0);
        const gen2 = await eventually('observedGeneration 2', async () => {
          const d = await deviceStatus('node-cud', 'cud-a');
          return d?.observedGeneration === 2 && d;
        });
        // Ready stayed True: its transition time is the first one.
        expect(condition(gen2, 'Ready')!.lastTransitionTime).toBe(condition(ready, 'Ready')!.lastTransitionTime);

        // A device for labelled nodes only: absent, then the label comes, then it goes again.
        await apply([
          {
            ...tunDevice('cud-edge', 'cud', { ifname: 'tk-cud-edge' }),
            spec: { ifname: 'tk-cud-edge', nodeSelector: { matchLabels: { 'test.tunkeeper.io/suite': 'cud', 'test.tunkeeper.io/edge': 'true' } } },
          },
        ]);
        await kubectl('label', 'node', 'node-cud', 'test.tunkeeper.io/edge=true');
        await eventually('tk-cud-edge created after the label', async () => (await link(ns, 'tk-cud-edge')) !== undefined);
        await kubectl('label', 'node', 'node-cud', 'test.tunkeeper.io/edge-');
        await eventually('tk-cud-edge removed after the label went', async () => (await link(ns, 'tk-cud-edge')) === undefined);
        await eventually('cud-edge gone from the TunNodeState', async () => (await nodeState('node-cud'))?.status?.devices?.every((d) => d.name !== 'cud-edge'));

        await kubectl('delete', 'tundevice', 'cud-a', 'cud-edge');
        await eventually('tk-cud0 deleted with its TunDevice', async () => (await link(ns, 'tk-cud0')) === undefined);
        expect(agent.loop.status().prune).toBe(true);
      } finally {
        await agent.stop();
      }
    }, 'kube-cud');
  });

  it('reports refusals and conflicts in the TunNodeState and as Events, owned by the Node, written by tunkeeper-agent', async () => {
    await withNetns(async (ns) => {
      await cluster.createNode('node-st', { 'test.tunkeeper.io/suite': 'st' });
      const files = join(work, 'st-files');
      await rm(files, { recursive: true, force: true });
      await mkdir(files);
      await writeFile(
        join(files, 'local.yaml'),
        'apiVersion: tunkeeper.io/v1alpha1\nkind: TunDevice\nmetadata:\n  name: st-local\nspec:\n  ifname: tk-st-shared\n',
      );
      await apply([
        tunDevice('st-ok', 'st', { ifname: 'tk-st0' }),
        tunDevice('st-host', 'st', { ifname: 'eth7' }),
        tunDevice('st-dup1', 'st', { ifname: 'tk-st-dup' }),
        tunDevice('st-dup2', 'st', { ifname: 'tk-st-dup' }),
        tunDevice('st-cross', 'st', { ifname: 'tk-st-shared', mtu: 1400 }),
      ]);
      const agent = await startTestAgent({ node: 'node-st', ns, paths: [files], tag: 'st' });
      try {
        const state = await eventually('every device reported', async () => {
          const s = await nodeState('node-st');
          return (s?.status?.devices?.length ?? 0) === 5 && condition(s!.status!.devices!.find((d) => d.name === 'st-ok'), 'Ready')?.status === 'True' && s;
        });
        const by = (name: string) => state.status!.devices!.find((d) => d.name === name);
        expect(condition(by('st-host'), 'Refused')).toMatchObject({ status: 'True', reason: 'NameNotAllowed' });
        expect(condition(by('st-host'), 'Ready')).toMatchObject({ status: 'False' });
        expect(condition(by('st-dup1'), 'Conflict')).toMatchObject({ status: 'True', reason: 'DeclaredTwice' });
        expect(condition(by('st-dup1'), 'Conflict')!.message).toContain('TunDevice/st-dup2');
        expect(condition(by('st-dup2'), 'Conflict')).toMatchObject({ status: 'True', reason: 'DeclaredTwice' });
        expect(condition(by('st-cross'), 'Conflict')).toMatchObject({ status: 'True', reason: 'DeclaredByAnotherSource' });
        expect(condition(by('st-cross'), 'Conflict')!.message).toContain('local.yaml');
        expect(state.status!.readyCount).toBe(1);

        // Neither side of a conflict is applied, nor the refused one; the good one is.
        expect(await link(ns, 'tk-st0')).toBeDefined();
        for (const ifname of ['eth7', 'tk-st-dup']) expect(await link(ns, ifname)).toBeUndefined();
        // The file's device was made by the first pass, before the cluster was listed; once the
        // TunDevice contests it, neither takes over: it stays as it is, the file's (mtu 1500).
        const shared = await ns.ipJson<Array<{ ifalias?: string; mtu: number }>>('link', 'show', 'dev', 'tk-st-shared');
        expect(shared[0]).toMatchObject({ ifalias: 'tunkeeper:st-local', mtu: 1500 });
        // Two sources contest a name: nothing is pruned while that lasts.
        expect(agent.loop.status().prune).toBe(false);

        const node = JSON.parse(await kubectl('get', 'node', 'node-st', '-o', 'json')) as { metadata: { uid: string } };
        expect(state.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'Node', name: 'node-st', uid: node.metadata.uid })]);
        const managers = (state.metadata.managedFields ?? []).map((f) => `${f.manager}/${f.subresource ?? ''}`);
        expect(managers).toEqual(expect.arrayContaining(['tunkeeper-agent/', 'tunkeeper-agent/status']));

        const seen = await eventually('Refused and Conflict Events', async () => {
          const list = await events('node-st');
          const has = (reason: string, device: string) => list.some((e) => e.reason === reason && e.regarding.name === device);
          return has('Refused', 'st-host') && has('Conflict', 'st-dup1') && has('Conflict', 'st-cross') && list;
        });
        // A declared change applied as declared is in the status, not an Event from every node.
        expect(seen.filter((e) => e.reason === 'Applied')).toEqual([]);
        const refused = seen.find((e) => e.reason === 'Refused')!;
        expect(refused).toMatchObject({ type: 'Warning', reportingController: 'tunkeeper.io/agent', reportingInstance: 'node-st', regarding: { kind: 'TunDevice', name: 'st-host' } });
        expect(refused.note).toContain('eth7');

        // Both conflicts end (the file gives way, one duplicate goes): pruning resumes, so the
        // TunDevice may replace the device no declaration wants any more, and takes the name.
        await rm(join(files, 'local.yaml'));
        await kubectl('delete', 'tundevice', 'st-dup2');
        await eventually('st-cross Ready', async () => condition(await deviceStatus('node-st', 'st-cross'), 'Ready')?.status === 'True');
        await eventually('st-dup1 Ready', async () => condition(await deviceStatus('node-st', 'st-dup1'), 'Ready')?.status === 'True');
        expect(agent.loop.status().prune).toBe(true);
        const taken = await ns.ipJson<Array<{ ifalias?: string; mtu: number }>>('link', 'show', 'dev', 'tk-st-shared');
        expect(taken[0]).toMatchObject({ ifalias: 'tunkeeper:st-cross', mtu: 1400 });
      } finally {
        await agent.stop();
        await cluster.kubectl(['delete', 'tundevice', 'st-ok', 'st-host', 'st-dup1', 'st-dup2', 'st-cross', '--ignore-not-found']);
      }
    }, 'kube-st');
  });

  it('works with exactly the permissions of the API contract (a ServiceAccount token, RBAC on)', async () => {
    const rbac = [
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'tk-agent-test', namespace: 'default' } },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: { name: 'tk-agent-test' },
        rules: [
          { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] },
          { apiGroups: ['tunkeeper.io'], resources: ['tundevices'], verbs: ['list', 'watch'] },
          { apiGroups: ['tunkeeper.io'], resources: ['tunnodestates'], verbs: ['get', 'create', 'patch'] },
          { apiGroups: ['tunkeeper.io'], resources: ['tunnodestates/status'], verbs: ['patch'] },
        ],
      },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: 'tk-agent-test' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'tk-agent-test' },
        subjects: [{ kind: 'ServiceAccount', name: 'tk-agent-test', namespace: 'default' }],
      },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'Role',
        metadata: { name: 'tk-agent-test-events', namespace: 'default' },
        rules: [{ apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create', 'patch'] }],
      },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name: 'tk-agent-test-events', namespace: 'default' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'tk-agent-test-events' },
        subjects: [{ kind: 'ServiceAccount', name: 'tk-agent-test', namespace: 'default' }],
      },
    ];
    await apply(rbac);
    const token = (await kubectl('create', 'token', 'tk-agent-test', '-n', 'default', '--duration=1h')).trim();
    const admin = new KubeConfig();
    admin.loadFromFile(cluster.proxyKubeconfigPath);
    const restricted = new KubeConfig();
    restricted.loadFromOptions({
      clusters: [{ name: 'test', server: admin.getCurrentCluster()!.server, caFile: join(cluster.dir, 'ca.crt') }],
      users: [{ name: 'agent', token }],
      contexts: [{ name: 'agent', cluster: 'test', user: 'agent' }],
      currentContext: 'agent',
    });

    await withNetns(async (ns) => {
      await cluster.createNode('node-rbac', { 'test.tunkeeper.io/suite': 'rbac' });
      await apply([tunDevice('rbac-a', 'rbac', { ifname: 'tk-rbac0' }), tunDevice('rbac-host', 'rbac', { ifname: 'eth9' })]);
      const agent = await startTestAgent({ node: 'node-rbac', ns, tag: 'rbac', kubeConfig: restricted });
      try {
        await eventually('tk-rbac0 created', async () => (await link(ns, 'tk-rbac0')) !== undefined);
        await eventually('rbac-a Ready in the TunNodeState', async () => condition(await deviceStatus('node-rbac', 'rbac-a'), 'Ready')?.status === 'True');
        await eventually('a Refused Event', async () => {
          const list = await events('node-rbac');
          return list.some((e) => e.reason === 'Refused');
        });
        const writes = await agent.metrics.registry.getSingleMetricAsString('tunkeeper_kube_status_writes_total');
        expect(writes).toMatch(/result="error"\} 0/);
        const sent = await agent.metrics.registry.getSingleMetricAsString('tunkeeper_kube_events_total');
        expect(sent).not.toContain('result="error"');
      } finally {
        await agent.stop();
        await cluster.kubectl(['delete', 'tundevice', 'rbac-a', 'rbac-host', '--ignore-not-found']);
      }
    }, 'kube-rbac');
  });

  it('`tunkeeper run --kube` (the command) takes NODE_NAME and --kubeconfig, serves /readyz and /metrics, exits 0 on SIGTERM', async () => {
    await withNetns(async (ns) => {
      await cluster.createNode('node-cli', { 'test.tunkeeper.io/suite': 'cli' });
      await apply([tunDevice('cli-a', 'cli', { ifname: 'tk-cli0' })]);
      const env: NodeJS.ProcessEnv = { ...process.env, NODE_NAME: 'node-cli' };
      delete env.KUBERNETES_SERVICE_HOST;
      const p = new CliProcess(
        ['run', '--kube', '--kubeconfig', cluster.proxyKubeconfigPath, '--netns', ns.name, '--state-dir', join(work, 'cli-state'), '--metrics-address', '127.0.0.1:0'],
        { env },
      );
      try {
        await p.until((x) => /"url":"http:\/\/[^"]+"/.test(x.stdout));
        const url = /"url":"(http:\/\/[^"]+)"/.exec(p.stdout)![1]!;
        await eventually('tk-cli0 created', async () => (await link(ns, 'tk-cli0')) !== undefined);
        await eventually('/readyz ok', async () => (await fetch(`${url}/readyz`)).status === 200);
        const metrics = await (await fetch(`${url}/metrics`)).text();
        expect(metrics).toContain('tunkeeper_kube_connected 1');
        expect(metrics).toContain('tunkeeper_source_complete{source="kube"} 1');
        await eventually('cli-a Ready', async () => condition(await deviceStatus('node-cli', 'cli-a'), 'Ready')?.status === 'True');
        expect(p.stdout).toContain('"node":"node-cli"');
      } finally {
        p.kill('SIGTERM');
        const r = await p.exited;
        await cluster.kubectl(['delete', 'tundevice', 'cli-a', '--ignore-not-found']);
        expect(r.code).toBe(0);
      }
      expect(await link(ns, 'tk-cli0')).toBeDefined();
    }, 'kube-cli');
  });

  it('keeps everything and repairs drift while the API server is stopped or black-holed, and resumes after', async () => {
    await withNetns(async (ns) => {
      await cluster.createNode('node-out', { 'test.tunkeeper.io/suite': 'out' });
      await apply([tunDevice('out-a', 'out', { ifname: 'tk-out0', mtu: 1400, addresses: ['198.51.100.1/24'] })]);
      const agent = await startTestAgent({ node: 'node-out', ns, tag: 'out' });
      const connected = () => agent.kube!.current()?.connected === true;
      try {
        await eventually('tk-out0 created', async () => (await link(ns, 'tk-out0'))?.mtu === 1400);
        await eventually('pruning allowed once synced', async () => agent.loop.status().prune);

        // 1. The API server is killed.
        await cluster.stopApiServer();
        try {
          await eventually('the agent notices the API server is gone', async () => !connected());
          expect(agent.loop.status().prune).toBe(false);
          await ns.ip('link', 'set', 'dev', 'tk-out0', 'mtu', '1500');
          await eventually('mtu drift repaired during the outage', async () => (await link(ns, 'tk-out0'))?.mtu === 1400);
          expect(await link(ns, 'tk-out0')).toBeDefined();
        } finally {
          await cluster.startApiServer();
        }
        await eventually('watching again after the restart', async () => connected());
        await apply([tunDevice('out-b', 'out', { ifname: 'tk-out1' })]);
        await eventually('tk-out1 (created after the restart) appears', async () => (await link(ns, 'tk-out1')) !== undefined);

        // 2. The API server is black-holed: connections accepted, nothing answered, open ones frozen.
        cluster.setProxyMode('blackhole');
        try {
          // Changes the agent cannot see yet: a new device, a deleted one.
          await apply([tunDevice('out-c', 'out', { ifname: 'tk-out2' })]);
          await kubectl('delete', 'tundevice', 'out-b');
          await eventually('the agent notices the frozen watch', async () => !connected());
          expect(agent.loop.status().prune).toBe(false);
          await ns.ip('link', 'set', 'dev', 'tk-out0', 'mtu', '1280');
          await eventually('mtu drift repaired while black-holed', async () => (await link(ns, 'tk-out0'))?.mtu === 1400);
          expect(await link(ns, 'tk-out1')).toBeDefined();
        } finally {
          cluster.setProxyMode('pass');
        }
        await eventually('tk-out2 (created during the outage) appears', async () => (await link(ns, 'tk-out2')) !== undefined);
        await eventually('tk-out1 (deleted during the outage) is removed', async () => (await link(ns, 'tk-out1')) === undefined);
        expect(await link(ns, 'tk-out0')).toBeDefined();
        const restarts = await agent.metrics.registry.getSingleMetricAsString('tunkeeper_kube_watch_restarts_total');
        expect(restarts).toMatch(/tunkeeper_kube_watch_restarts_total\{[^}]*reason="(error|timeout)"[^}]*\} [1-9]/);
      } finally {
        cluster.setProxyMode('pass');
        await agent.stop();
        await cluster.kubectl(['delete', 'tundevice', 'out-a', 'out-b', 'out-c', '--ignore-not-found']);
      }
    }, 'kube-out');
  }, OUTAGE_TEST_MS);

  it('brings devices back from the state dir after a restart with the API server down', async () => {
    await withNetns(async (ns) => {
      await cluster.createNode('node-rb', { 'test.tunkeeper.io/suite': 'rb' });
      await apply([tunDevice('rb-a', 'rb', { ifname: 'tk-rb0', mtu: 1380, addresses: ['203.0.113.1/24'] })]);
      const stateDir = join(work, 'rb-state');
      const first = await startTestAgent({ node: 'node-rb', ns, stateDir, tag: 'rb-1' });
      try {
        await eventually('tk-rb0 created', async () => (await link(ns, 'tk-rb0')) !== undefined);
        await eventually('the state saved on disk', async () => (await readFile(join(stateDir, STATE_FILE_NAME), 'utf8').catch(() => '')).includes('tk-rb0'));
      } finally {
        await first.stop();
      }

      // "Reboot": the device is gone with the old kernel, and the API server is unreachable.
      await ns.ip('link', 'del', 'dev', 'tk-rb0');
      await cluster.stopApiServer();
      // One finally stops the second agent whatever fails, also while the API server is down: an
      // agent left running (its Monitor socket, loop timers, watches) keeps the jest worker alive
      // ("A worker process has failed to exit gracefully" after this test failed once in CI).
      let second: Agent | undefined;
      try {
        try {
          const passes = new PassRecorder();
          second = await startTestAgent({ node: 'node-rb', ns, stateDir, tag: 'rb-2', passes });
          // The pass that brings it back must have ended: the link exists from the middle of that
          // pass, still with the MTU it was created with (a busy CI machine read 1500 that way).
          await passes.until('tk-rb0 back from the saved state and ready', convergedWith('tk-rb0'), { guardMs: PATIENCE_MS });
          const back = await link(ns, 'tk-rb0');
          expect(back?.mtu).toBe(1380);
          expect(second.loop.status().prune).toBe(false);
          const readyz = second.readyz();
          expect(readyz.ok).toBe(false);
          expect(readyz.detail).toContain('first sync');
        } finally {
          await cluster.startApiServer();
        }
        const agent = second;
        await eventually('ready once the API server answers', async () => agent.readyz().ok);
        expect(await link(ns, 'tk-rb0')).toBeDefined();
      } finally {
        await second?.stop();
        await cluster.kubectl(['delete', 'tundevice', 'rb-a', '--ignore-not-found']);
      }
    }, 'kube-rb');
  }, OUTAGE_TEST_MS);
});

describe('the agent needs a source', () => {
  it('refuses to start with neither paths nor the cluster', async () => {
    await expect(
      startAgent({
        paths: [],
        settings: { ...DEFAULT_SETTINGS, metricsAddress: null },
        logger: createLogger('silent'),
        createReconciler: () => {
          throw new Error('not reached');
        },
      }),
    ).rejects.toThrow('nothing to watch');
  });
});
