/**
 * GitOps health for real: several `tunkeeper run --kube` agents, each in its own network namespace
 * with its own Node, against a real API server; the TunDevice's status judged by the clients
 * GitOps tools use: `kubectl wait --for=condition=Ready`, kstatus (Flux's library) and the Argo CD
 * health check shipped with the chart, run by gopher-lua as Argo CD runs it.
 *
 * One story, in order (each step waits for the status event it is about, never for a time):
 * converge on three nodes; a spec change (InProgress until every node reports it); a device one
 * node refuses (Failed / Degraded, and `kubectl wait` times out); a new Node without an agent (not
 * Ready until its agent's first report); the leader SIGKILLed (another takes over, and a spec change
 * made after the kill ends Ready at the new generation); and a quiet cluster: no status writes.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CliProcess } from '../helpers/cli.js';
import { argoHealthOf, kstatusOf } from '../helpers/gitops-clients.js';
import { httpGet } from '../helpers/http.js';
import { describeKube, CLUSTER_START_MS, startKubeCluster, type KubeCluster } from '../helpers/kube-cluster.js';
import { kubectlHeader, kubectlTable } from '../helpers/kubectl-table.js';
import { createNetns, type Netns } from '../helpers/netns.js';
import { kubeObjects } from '../helpers/kube-objects.js';
import { pollUntil } from '../helpers/poll.js';
import { sample } from '../reliability/helpers/agent.js';

const HEALTH_LUA = fileURLToPath(new URL('../../../charts/tunkeeper/health/argocd-tundevice.lua', import.meta.url));
const NAMESPACE = 'tk-gitops';
const LABEL = 'tunkeeper.io/gitops-test';
/** Short Lease timings, so a failover is seconds, not the default 15 s. */
const LEASE = ['--leader-elect-lease-duration', '3s', '--leader-elect-renew-deadline', '2s', '--leader-elect-retry-period', '500ms'];
/** A guard against hangs, never a speed claim; each test's own guard is above it, so a wait fails with its message. */
const PATIENCE_MS = 90_000;
const TEST_GUARD_MS = 3 * PATIENCE_MS;

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
  observedGeneration?: number;
}
interface TunDevice {
  metadata: { name: string; generation: number; resourceVersion: string };
  status?: { observedGeneration?: number; ready?: string; conditions?: Condition[]; nodes?: Record<string, number>; failingNodes?: Array<{ node: string; reason: string; message: string }>; moreFailingNodes?: number };
}
interface Lease {
  spec: { holderIdentity?: string; leaseTransitions?: number; renewTime?: string; acquireTime?: string; leaseDurationSeconds?: number };
}

const until = <T>(what: string, probe: () => Promise<T | undefined | false>): Promise<T> => pollUntil(what, probe, PATIENCE_MS);

const cond = (d: TunDevice, type: string) => d.status?.conditions?.find((c) => c.type === type);

const deviceYaml = (name: string, ifname: string, mtu: number, address: string) => `apiVersion: tunkeeper.io/v1alpha1
kind: TunDevice
metadata:
  name: ${name}
spec:
  ifname: ${ifname}
  mtu: ${mtu}
  addresses: [${address}]
  nodeSelector:
    matchLabels: {${LABEL}: "yes"}
`;

describeKube('GitOps health: TunDevice.status read by kubectl wait, kstatus and Argo CD', () => {
  let cluster: KubeCluster;
  let work: string;
  const agents = new Map<string, { ns: Netns; p: CliProcess; args: string[] }>();

  const { kubectl, apply, device, statusOf } = kubeObjects<TunDevice>(() => cluster, PATIENCE_MS);
  const lease = async () => JSON.parse(await kubectl('get', 'lease', 'tunkeeper-status-leader', '-n', NAMESPACE, '-o', 'json')) as Lease;
  /** What the three clients say of one and the same object. */
  const verdicts = async (d: TunDevice) => {
    const [k, a] = await Promise.all([kstatusOf(d), argoHealthOf(d, HEALTH_LUA)]);
    console.log(`${d.metadata.name} generation ${d.metadata.generation}, status ${d.status?.ready ?? '-'} (observed ${d.status?.observedGeneration ?? '-'}): kstatus ${k.status} (${k.message}); Argo CD ${a.status} (${a.message})`);
    return `${k.status}/${a.status}`;
  };

  const startAgent = async (node: string, extra: string[] = []) => {
    const ns = agents.get(node)?.ns ?? (await createNetns('gitops'));
    const args = [
      // Through the harness's outage proxy, so the outage step can cut them off from the API server.
      'run', '--kube', '--kubeconfig', cluster.proxyKubeconfigPath, '--node-name', node, '--namespace', NAMESPACE, '--netns', ns.name,
      '--state-dir', join(work, node), '--metrics-address', '127.0.0.1:0', '--log-level', 'info', ...LEASE, ...extra,
    ];
    const p = new CliProcess(args);
    agents.set(node, { ns, p, args });
    return p;
  };
  /** The API server's own count of open watches, by resource (apiserver_longrunning_requests). */
  const watches = async () => {
    const m = await kubectl('get', '--raw', '/metrics');
    const count = (resource: string) => sample(m.split('\n').filter((l) => l.includes('verb="WATCH"') && l.includes(`resource="${resource}"`)).map((l) => l.replace(/\{.*\}/, '')).join('\n'), 'apiserver_longrunning_requests');
    return { tundevices: count('tundevices'), nodes: count('nodes'), tunnodestates: count('tunnodestates') };
  };
  /** The watches open before any agent (the API server's own informers watch Nodes too). */
  let baseline: Awaited<ReturnType<typeof watches>>;
  const metrics = async (node: string) => {
    const p = agents.get(node)!.p;
    const url = p.lines().map((l) => { try { return (JSON.parse(l) as { url?: string }).url; } catch { return undefined; } }).find((u) => typeof u === 'string');
    if (!url) throw new Error(`agent ${node} has not printed its metrics URL`);
    return httpGet(`${url}/metrics`);
  };

  beforeAll(async () => {
    cluster = await startKubeCluster();
    work = await mkdtemp(join(tmpdir(), 'tk-gitops-'));
    await kubectl('create', 'namespace', NAMESPACE);
    for (const node of ['g1', 'g2', 'g3']) await cluster.createNode(node, { [LABEL]: 'yes' });
    baseline = await watches();
    // g3's agent allows only tk- names: a tun- device is refused there and only there.
    await startAgent('g1');
    await startAgent('g2');
    await startAgent('g3', ['--allowed-prefix', 'tk-']);
  }, CLUSTER_START_MS);

  afterAll(async () => {
    for (const a of agents.values()) {
      a.p.kill('SIGTERM');
      await a.p.exited.catch(() => undefined);
      await a.ns.delete();
    }
    await cluster?.close();
    if (work) await rm(work, { recursive: true, force: true });
  }, PATIENCE_MS);

  it('Ready on every node: kubectl wait succeeds, kstatus Current, Argo CD Healthy, `kubectl get tundevices` shows 3/3', async () => {
    await apply(deviceYaml('gw', 'tk-gw0', 1400, '192.0.2.1/24'));
    const wait = await cluster.kubectl(['wait', '--for=condition=Ready', 'tundevice/gw', `--timeout=${PATIENCE_MS / 1000}s`], { timeoutMs: PATIENCE_MS + 30_000 });
    expect({ code: wait.code, out: wait.stdout.trim() }).toEqual({ code: 0, out: 'tundevice.tunkeeper.io/gw condition met' });
    const d = await statusOf('gw', 'Ready 3/3', (x) => cond(x, 'Ready')?.status === 'True');
    expect(d.status).toMatchObject({ observedGeneration: 1, ready: '3/3', nodes: { selected: 3, ready: 3, degraded: 0, refused: 0, conflicted: 0, notReporting: 0 }, failingNodes: [], moreFailingNodes: 0 });
    expect(await verdicts(d)).toBe('Current/Healthy');
    // The kernel agrees on every node.
    for (const a of agents.values()) expect(await a.ns.ip('link', 'show', 'tk-gw0')).toContain('mtu 1400');
    const listing = await kubectl('get', 'tundevices');
    console.log(`kubectl get tundevices:\n${listing}`);
    expect(kubectlHeader(listing)).toEqual(['NAME', 'READY', 'STATUS', 'IFNAME', 'MODE', 'MTU', 'AGE']);
    expect(kubectlTable(listing)).toContainEqual(expect.objectContaining({ NAME: 'gw', READY: '3/3', STATUS: 'Ready', IFNAME: 'tk-gw0' }));
    // One holder, named after its node.
    expect((await lease()).spec.holderIdentity).toMatch(/^g[123]_/);
  }, TEST_GUARD_MS);

  it('a spec change is InProgress / Progressing until every node reports the new generation, then Current / Healthy', async () => {
    // The object as the API server returned it from the update: generation 2, status still about 1.
    const changed = await apply(deviceYaml('gw', 'tk-gw0', 1380, '192.0.2.1/24'));
    expect(changed.metadata.generation).toBe(2);
    expect(await verdicts(changed)).toBe('InProgress/Progressing');
    const d = await statusOf('gw', 'Ready at generation 2', (x) => cond(x, 'Ready')?.status === 'True');
    expect(d.status).toMatchObject({ observedGeneration: 2, ready: '3/3' });
    expect(await verdicts(d)).toBe('Current/Healthy');
    for (const a of agents.values()) expect(await a.ns.ip('link', 'show', 'tk-gw0')).toContain('mtu 1380');
  }, TEST_GUARD_MS);

  it('a device one node refuses: Stalled, kstatus Failed, Argo CD Degraded, and kubectl wait times out', async () => {
    await apply(deviceYaml('edge', 'tun-edge0', 1400, '198.51.100.1/24'));
    const d = await statusOf('edge', 'refused on g3', (x) => x.status?.nodes?.refused === 1 && x.status.nodes.ready === 2);
    expect(cond(d, 'Stalled')).toMatchObject({ status: 'True', reason: 'Refused' });
    expect(cond(d, 'Reconciling')).toMatchObject({ status: 'False' });
    expect(cond(d, 'Ready')).toMatchObject({ status: 'False', reason: 'Refused' });
    expect(d.status!.failingNodes).toEqual([{ node: 'g3', reason: expect.any(String), message: expect.stringContaining('tun-edge0') }]);
    expect(await verdicts(d)).toBe('Failed/Degraded');
    // The refusal is settled (g3's policy will not change), so a short wait shows the timeout.
    const wait = await cluster.kubectl(['wait', '--for=condition=Ready', 'tundevice/edge', '--timeout=3s']);
    expect({ code: wait.code, err: wait.stderr }).toEqual({ code: 1, err: expect.stringContaining('timed out') });
    const listing = await kubectl('get', 'tundevices');
    console.log(`kubectl get tundevices:\n${listing}`);
    expect(kubectlTable(listing)).toContainEqual(expect.objectContaining({ NAME: 'edge', READY: '2/3', STATUS: 'Refused' }));
    await kubectl('delete', 'tundevice', 'edge');
  }, TEST_GUARD_MS);

  it('a hand-written TunNodeState does not count (and is logged); a deleted Node drops out of the counts', async () => {
    await cluster.createNode('g5', { [LABEL]: 'yes' });
    await statusOf('gw', 'g5 not reporting', (x) => x.status?.failingNodes?.some((f) => f.node === 'g5' && f.reason === 'NotReporting') === true);
    // Someone writes a report for g5 by hand, claiming gw Ready at its current generation; the CRD
    // lets it through, but no agent writes a device Ready and Refused at once, or counts that disagree.
    const generation = (await device('gw')).metadata.generation;
    const at = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const created = await cluster.kubectl(['create', '-f', '-'], { input: JSON.stringify({ apiVersion: 'tunkeeper.io/v1alpha1', kind: 'TunNodeState', metadata: { name: 'g5' } }) });
    expect({ code: created.code, err: created.stderr }).toEqual({ code: 0, err: '' });
    const fake = {
      deviceCount: 1,
      readyCount: 1,
      devices: [{ name: 'gw', ifname: 'tk-gw0', observedGeneration: generation, conditions: ['Ready', 'Degraded', 'Conflict', 'Refused'].map((type) => ({ type, status: type === 'Ready' || type === 'Refused' ? 'True' : 'False', observedGeneration: generation, lastTransitionTime: at, reason: 'Faked', message: 'by hand' })) }],
    };
    await kubectl('patch', 'tunnodestate', 'g5', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: fake }));
    const d = await statusOf('gw', 'g5 unreadable', (x) => x.status?.failingNodes?.some((f) => f.node === 'g5' && f.reason === 'Unreadable') === true);
    expect(d.status).toMatchObject({ ready: '3/4', nodes: { selected: 4, ready: 3, notReporting: 1 } });
    expect(d.status!.failingNodes!.find((f) => f.node === 'g5')!.message).toBe('its TunNodeState is not readable: device gw: Ready and Refused both True');
    // Said by the agent that summed it up: the holder then, which may not be the holder now (a
    // 3 s Lease can move on a busy machine), so any agent's log will do, once it has said it.
    await until('an agent to log why g5 is unreadable', async () => [...agents.values()].some((a) => /TunNodeState g5 is not what an agent writes/.test(a.p.stdout)));
    // The Node goes: so does its place in the counts (its TunNodeState stays, counting for nothing).
    await kubectl('delete', 'node', 'g5');
    const back = await statusOf('gw', 'Ready 3/3 without g5', (x) => cond(x, 'Ready')?.status === 'True');
    expect(back.status).toMatchObject({ ready: '3/3', nodes: { selected: 3 }, failingNodes: [] });
  }, TEST_GUARD_MS);

  it('a new matching Node without an agent makes the device not Ready (not reporting), its agent\'s first report Ready again', async () => {
    await cluster.createNode('g4', { [LABEL]: 'yes' });
    const waiting = await statusOf('gw', 'g4 counted as not reporting', (x) => x.status?.nodes?.notReporting === 1);
    expect(waiting.status).toMatchObject({ ready: '3/4', nodes: { selected: 4, ready: 3, notReporting: 1 }, failingNodes: [{ node: 'g4', reason: 'NotReporting' }] });
    expect(cond(waiting, 'Ready')).toMatchObject({ status: 'False', reason: 'Progressing' });
    expect(await verdicts(waiting)).toBe('InProgress/Progressing');
    await startAgent('g4');
    const d = await statusOf('gw', 'Ready 4/4', (x) => cond(x, 'Ready')?.status === 'True' && x.status?.ready === '4/4');
    expect(await verdicts(d)).toBe('Current/Healthy');
  }, TEST_GUARD_MS);

  it('leader failover: SIGKILL the holder; another takes over, and a change made after the kill ends Ready at the new generation', async () => {
    const before = await lease();
    const holderNode = before.spec.holderIdentity!.split('_')[0]!;
    const victim = agents.get(holderNode)!;
    const killedAt = Date.now();
    victim.p.kill('SIGKILL');
    await victim.p.exited;
    // Made while nobody leads: the next holder must pick it up.
    const changed = await apply(deviceYaml('gw', 'tk-gw0', 1360, '192.0.2.1/24'));
    expect(changed.metadata.generation).toBe(3);
    const after = await until('another holder', async () => {
      const l = await lease();
      return l.spec.holderIdentity && !l.spec.holderIdentity.startsWith(`${holderNode}_`) ? l : undefined;
    });
    console.log(`failover: ${holderNode} killed; ${after.spec.holderIdentity} holds the Lease ${Date.now() - killedAt} ms later (lease duration ${after.spec.leaseDurationSeconds} s); transitions ${before.spec.leaseTransitions} → ${after.spec.leaseTransitions}`);
    expect(after.spec.leaseTransitions).toBeGreaterThan(before.spec.leaseTransitions ?? 0);
    // Never taken early: not before the dead holder's last renewal plus the lease duration (1 s for clock rounding).
    const lastRenew = Date.parse(before.spec.renewTime!);
    expect(Date.parse(after.spec.acquireTime!)).toBeGreaterThanOrEqual(lastRenew + (before.spec.leaseDurationSeconds! - 1) * 1000);
    // The killed node's agent is missing from the new generation: not Ready, however long we look.
    const partial = await statusOf('gw', `generation 3 reported by all but ${holderNode}`, (x) => x.status?.nodes?.ready === 3 && x.status.nodes.notReporting === 1);
    expect(partial.status!.failingNodes).toEqual([expect.objectContaining({ node: holderNode, reason: 'NotReporting' })]);
    expect(await verdicts(partial)).toBe('InProgress/Progressing');
    // Its agent back (same node, namespace and state dir): Ready at generation 3.
    await startAgent(holderNode, victim.args.includes('--allowed-prefix') ? ['--allowed-prefix', 'tk-'] : []);
    const d = await statusOf('gw', 'Ready at generation 3', (x) => cond(x, 'Ready')?.status === 'True');
    expect(d.status).toMatchObject({ observedGeneration: 3, ready: '4/4' });
    expect(await verdicts(d)).toBe('Current/Healthy');
  }, TEST_GUARD_MS);

  it('only the holder watches the fleet: one TunNodeState watch and one more Node watch in all, whatever the number of agents', async () => {
    // Before the outage step: a watch dropped while black-holed lingers in the harness's proxy
    // until the server's watch timeout.
    const n = agents.size;
    // Each agent: its own Node and every TunDevice; the holder: every Node (metadata) and every TunNodeState.
    const expected = { tundevices: baseline.tundevices + n, nodes: baseline.nodes + n + 1, tunnodestates: baseline.tunnodestates + 1 };
    let last: unknown;
    const seen = await until(`watches ${JSON.stringify(expected)}`, async () => {
      const w = (last = await watches());
      return JSON.stringify(w) === JSON.stringify(expected) ? w : undefined;
    }).catch((e: Error) => {
      throw new Error(`${e.message}; last seen ${JSON.stringify(last)}`);
    });
    console.log(`open watches, by the API server's count: ${JSON.stringify(seen)} with ${n} agents (before any agent: ${JSON.stringify(baseline)})`);
    expect(seen).toEqual(expected);
  }, TEST_GUARD_MS);

  it('the API server unreachable: the last summary stays, nothing is removed, and the status catches up afterwards', async () => {
    const leaderOf = async () => {
      const flags = await Promise.all([...agents.keys()].map(async (n) => sample(await metrics(n), 'tunkeeper_kube_status_leader')));
      return flags.reduce((a, b) => a + b, 0);
    };
    expect(await until('one agent leading', async () => ((await leaderOf()) === 1 ? true : undefined))).toBe(true);
    cluster.setProxyMode('blackhole');
    try {
      // The holder cannot renew: it stands down (the event), and no agent writes anything.
      await until('the holder standing down', async () => ((await leaderOf()) === 0 ? true : undefined));
      // The admin still reaches the API server; the agents do not.
      const changed = await apply(deviceYaml('gw', 'tk-gw0', 1340, '192.0.2.1/24'));
      expect(changed.metadata.generation).toBe(4);
      // The last summary is still on the object (about generation 3), and every device still stands.
      expect(changed.status).toMatchObject({ observedGeneration: 3, ready: '4/4' });
      expect(await verdicts(changed)).toBe('InProgress/Progressing');
      for (const a of agents.values()) expect(await a.ns.ip('link', 'show', 'tk-gw0')).toContain('mtu 1360');
    } finally {
      cluster.setProxyMode('pass');
    }
    const d = await statusOf('gw', 'Ready at generation 4 after the outage', (x) => cond(x, 'Ready')?.status === 'True');
    expect(d.status).toMatchObject({ observedGeneration: 4, ready: '4/4' });
    expect(await verdicts(d)).toBe('Current/Healthy');
    for (const a of agents.values()) expect(await a.ns.ip('link', 'show', 'tk-gw0')).toContain('mtu 1340');
  }, TEST_GUARD_MS);

  it('a quiet cluster sees no status writes: not of TunDevices, not of TunNodeStates', async () => {
    const rvs = async () => JSON.parse(await kubectl('get', 'tundevices,tunnodestates', '-o', 'json')) as { items: Array<{ kind: string; metadata: { name: string; resourceVersion: string } }> };
    /** Writes per agent, by kind (its TunNodeState; TunDevice status while it leads). */
    const writes = async () => {
      const out: Record<string, number> = {};
      for (const node of agents.keys()) {
        const m = await metrics(node);
        out[`${node} TunNodeState`] = sample(m, 'tunkeeper_kube_status_writes_total', 'result="written"');
        out[`${node} TunDevice status`] = sample(m, 'tunkeeper_kube_fleet_status_writes_total', 'result="written"');
      }
      return out;
    };
    const before = await rvs();
    const writes0 = await writes();
    const renewals0 = Date.parse((await lease()).spec.renewTime!);
    // The window is counted in events, not time: ten renewals of the Lease (the holder is alive and
    // working), during which every agent keeps watching and reconciling.
    await until('ten Lease renewals', async () => Date.parse((await lease()).spec.renewTime!) >= renewals0 + 10 * 500);
    expect(await writes()).toEqual(writes0);
    expect((await rvs()).items.map((o) => `${o.kind}/${o.metadata.name}@${o.metadata.resourceVersion}`)).toEqual(before.items.map((o) => `${o.kind}/${o.metadata.name}@${o.metadata.resourceVersion}`));
  }, TEST_GUARD_MS);

  it('SIGTERM: the holder releases the Lease on its way out and another agent takes it', async () => {
    const before = await lease();
    const holderNode = before.spec.holderIdentity!.split('_')[0]!;
    const holder = agents.get(holderNode)!;
    holder.p.kill('SIGTERM');
    const exit = await holder.p.exited;
    expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 0, signal: null });
    expect(holder.p.stdout).toMatch(/released the status lease/);
    const after = await until('another holder', async () => {
      const l = await lease();
      return l.spec.holderIdentity && !l.spec.holderIdentity.startsWith(`${holderNode}_`) ? l : undefined;
    });
    expect(after.spec.leaseTransitions).toBe((before.spec.leaseTransitions ?? 0) + 1);
    console.log(`hand-over on SIGTERM: ${before.spec.holderIdentity} released, ${after.spec.holderIdentity} acquired at ${after.spec.acquireTime} (the old lease was renewed at ${before.spec.renewTime}, lease ${before.spec.leaseDurationSeconds} s)`);
  }, TEST_GUARD_MS);
});
