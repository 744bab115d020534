/**
 * A cluster admin's path, end to end against a real API server: `helm install` the chart (which
 * installs the CRDs), an agent runs with exactly what the chart gave it — its ServiceAccount's
 * token and RBAC, its settings ConfigMap — as the DaemonSet's pod would (no kubelet runs here, so
 * `bin/tunkeeper run --kube` is started by the test, reconciling inside a network namespace of the
 * test's own in place of the node), then `kubectl apply` an example, `kubectl get tundevices`, and
 * the node's TunNodeState says Ready while the kernel has the device.
 */
import { kubectlHeader, kubectlTable } from '../helpers/kubectl-table.js';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CliProcess } from '../helpers/cli.js';
import { describeKube, CLUSTER_START_MS, startKubeCluster, type KubeCluster } from '../helpers/kube-cluster.js';
import { withNetns, type Netns } from '../helpers/netns.js';
import { pollUntil } from '../helpers/poll.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const NAMESPACE = 'tunkeeper-system';
const NODE = 'node-admin';

/** helm install (bounded at 90 s), the agent's first sync, then `kubectl wait` (150 s): more than jest's default 120 s. */
const ADMIN_PATH_TEST_MS = 360_000;
const eventually = <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> => pollUntil(what, probe, timeoutMs, 250);

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}
interface NodeState {
  metadata: { ownerReferences?: Array<{ kind: string; name: string }> };
  status?: { devices?: Array<{ name: string; ifname: string; ifindex?: number; observedGeneration?: number; conditions?: Condition[] }>; readyCount?: number };
}

describeKube("a cluster admin's path: helm install, apply a TunDevice, read tundevices and the TunNodeState", () => {
  let cluster: KubeCluster;
  let work: string;
  beforeAll(async () => {
    // No CRDs loaded by the harness: the chart installs them, as on an admin's cluster.
    cluster = await startKubeCluster({ crds: false });
    work = mkdtempSync(join(tmpdir(), 'tk-admin-path-'));
  }, CLUSTER_START_MS);
  afterAll(async () => {
    await cluster?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const kubectl = async (...args: string[]): Promise<string> => {
    const r = await cluster.kubectl(args);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  it('the agent, with only what the chart gave it, makes the device and reports it Ready', async () => {
    const install = await cluster.helm(['install', 'tunkeeper', join(ROOT, 'charts', 'tunkeeper'), '--namespace', NAMESPACE, '--create-namespace', '--set', 'image.repository=registry.invalid/tunkeeper', '--wait=false']);
    expect({ code: install.code, stderr: install.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
    expect(install.stdout).toContain('STATUS: deployed');

    // What the DaemonSet's pod would get: its ServiceAccount and the settings file.
    const ds = JSON.parse(await kubectl('get', 'daemonset', 'tunkeeper', '-n', NAMESPACE, '-o', 'json')) as {
      spec: { template: { spec: { serviceAccountName: string; volumes: Array<{ name: string; configMap?: { name: string } }> } } };
    };
    const pod = ds.spec.template.spec;
    const configMaps = pod.volumes.flatMap((v) => (v.configMap ? [v.configMap.name] : []));
    const settings = await eventually('the settings ConfigMap', async () => {
      for (const name of configMaps) {
        const cm = JSON.parse(await kubectl('get', 'configmap', name, '-n', NAMESPACE, '-o', 'json')) as { data?: Record<string, string> };
        if (cm.data?.['agent.yaml'] !== undefined) return cm.data['agent.yaml'];
      }
      return undefined;
    });
    const settingsFile = join(work, 'agent.yaml');
    writeFileSync(settingsFile, settings);
    const token = (await kubectl('create', 'token', pod.serviceAccountName, '-n', NAMESPACE, '--duration=1h')).trim();
    const kubeconfig = join(work, 'agent.kubeconfig');
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c', cluster: { server: cluster.server, 'certificate-authority': join(cluster.dir, 'ca.crt') } }],
        users: [{ name: 'agent', user: { token } }],
        contexts: [{ name: 'agent', context: { cluster: 'c', user: 'agent' } }],
        'current-context': 'agent',
      }),
    );
    await cluster.createNode(NODE, { 'kubernetes.io/os': 'linux' });

    await withNetns(async (ns: Netns) => {
      // As the DaemonSet passes them (downward API): the node, and the release namespace for the status Lease.
      const env: NodeJS.ProcessEnv = { ...process.env, NODE_NAME: NODE, POD_NAMESPACE: NAMESPACE };
      delete env.KUBERNETES_SERVICE_HOST;
      delete env.KUBECONFIG;
      const agent = new CliProcess(
        ['run', '--kube', '--config', settingsFile, '--kubeconfig', kubeconfig, '--netns', ns.name, '--state-dir', join(work, 'state'), '--metrics-address', '127.0.0.1:0'],
        { env },
      );
      try {
        expect(await kubectl('apply', '-f', join(ROOT, 'examples', 'point-to-point.yaml'))).toMatch(/tundevice\.tunkeeper\.io\/tk-p2p created/);

        const listed = await kubectl('get', 'tundevices');
        expect(kubectlHeader(listed)).toEqual(['NAME', 'READY', 'STATUS', 'IFNAME', 'MODE', 'MTU', 'AGE']);
        expect(kubectlTable(listed)[0]).toMatchObject({ NAME: 'tk-p2p', IFNAME: 'tk-p2p0', MODE: 'tun', MTU: '1420' });

        const state = await eventually('tk-p2p Ready in the TunNodeState', async () => {
          const s = JSON.parse(await kubectl('get', 'tunnodestate', NODE, '-o', 'json')) as NodeState;
          const d = s.status?.devices?.find((x) => x.name === 'tk-p2p');
          return d?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? s : undefined;
        });
        // Ready: the agent has converged, so the kernel holds the whole declaration. (Checked as soon
        // as the link existed, the device could still have the MTU it was created with.)
        const links = (await ns.ipJson('link', 'show')) as Array<{ ifname: string; ifindex: number; mtu: number; ifalias?: string }>;
        const link = links.find((l) => l.ifname === 'tk-p2p0');
        expect(link).toMatchObject({ mtu: 1420, ifalias: 'tunkeeper:tk-p2p' });
        const device = state.status!.devices!.find((x) => x.name === 'tk-p2p')!;
        expect(device).toMatchObject({ ifname: 'tk-p2p0', ifindex: link!.ifindex, observedGeneration: 1 });
        expect(state.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'Node', name: NODE })]);
        const row = (await kubectl('get', 'tunnodestate', NODE)).trim().split('\n');
        expect(row[0]!.split(/\s+/).slice(0, 4)).toEqual(['NAME', 'DEVICES', 'READY', 'LAST']);
        expect(row[1]!.split(/\s+/).slice(0, 3)).toEqual([NODE, '1', '1']);

        // The agent holds the status Lease (the only one), with only the chart's RBAC: the summary
        // reaches the TunDevice, and `kubectl wait` sees it.
        const wait = await cluster.kubectl(['wait', '--for=condition=Ready', 'tundevice/tk-p2p', '--timeout=120s'], { timeoutMs: 150_000 });
        expect({ code: wait.code, stderr: wait.stderr }).toEqual({ code: 0, stderr: '' });
        const ready = await eventually('READY 1/1 in kubectl get tundevices', async () => {
          const row = kubectlTable(await kubectl('get', 'tundevices'))[0];
          return row?.READY === '1/1' ? row : undefined;
        });
        expect(ready).toMatchObject({ NAME: 'tk-p2p', READY: '1/1', STATUS: 'Ready' });
        const lease = JSON.parse(await kubectl('get', 'lease', 'tunkeeper-status-leader', '-n', NAMESPACE, '-o', 'json')) as { spec: { holderIdentity: string } };
        expect(lease.spec.holderIdentity).toMatch(new RegExp(`^${NODE}_`));
      } finally {
        agent.kill('SIGTERM');
        const r = await agent.exited;
        expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
      }
      // The device outlives the agent (persistent, by design).
      expect(await ns.ip('link', 'show', 'tk-p2p0')).toContain('tk-p2p0');
    }, 'kube-admin');
  }, ADMIN_PATH_TEST_MS);
});
