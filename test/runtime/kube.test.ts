/**
 * The image under runc in kube mode, on the in-cluster path for real: the chart's ServiceAccount,
 * RBAC and settings applied to a real API server; a token for that ServiceAccount from the
 * TokenRequest API (`kubectl create token`), mounted where Kubernetes mounts it, with
 * KUBERNETES_SERVICE_HOST and _PORT; the API server reached from the node's namespace over a veth
 * to a namespace of its own (api-relay.ts), never through the host's. A TunDevice applied with
 * kubectl appears in the node's namespace, the node's TunNodeState says Ready, the probes answer,
 * and SIGTERM stops the agent with exit 0. The host's own namespace is the same before and after.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { podSpec, ROOT, type Rendered } from '../chart/chart-render.js';
import { CLUSTER_START_MS, startKubeCluster, type KubeCluster } from '../helpers/kube-cluster.js';
import { pollUntil } from '../helpers/poll.js';
import { startApiRelay } from './api-relay.js';
import { hostSnapshot, type HostSnapshot } from './host-snapshot.js';
import { httpGetInNetns } from './in-netns.js';
import { podmanPlan, SERVICE_ACCOUNT_DIR } from './kubelet.js';
import { renderChart, withNode } from './node.js';
import { Pod } from './pod.js';
import { describeRuntime } from './tier.js';

const NAMESPACE = 'tunkeeper-system';

interface Condition {
  type: string;
  status: string;
}
interface NodeState {
  status?: { devices?: Array<{ name: string; ifname?: string; conditions: Condition[] }> };
}

describeRuntime('the image in kube mode, as the chart runs it, with a real service-account token', (built) => {
  let cluster: KubeCluster;
  let rendered: Rendered;
  let before: HostSnapshot;

  beforeAll(async () => {
    before = await hostSnapshot();
    cluster = await startKubeCluster();
    rendered = await renderChart(built, { mode: 'kube' }, { release: 'tunkeeper', namespace: NAMESPACE });
    const ns = await cluster.kubectl(['create', 'namespace', NAMESPACE]);
    if (ns.code !== 0) throw new Error(`kubectl create namespace: ${ns.stderr}`);
    // Everything the chart installs but the DaemonSet itself, which this harness runs as the node's kubelet would.
    const objects = rendered.objects.filter((o) => o.kind !== 'DaemonSet');
    const applied = await cluster.kubectl(['apply', '-f', '-'], { input: objects.map((o) => JSON.stringify(o)).join('\n---\n') });
    if (applied.code !== 0) throw new Error(`applying the chart's objects: ${applied.stderr}`);
  }, CLUSTER_START_MS);

  afterAll(async () => {
    await cluster?.close();
  });

  it('a TunDevice applied with kubectl appears in the node\'s namespace and its TunNodeState says Ready', async () => {
    await withNode('kube', async (node) => {
      const ds = rendered.one('DaemonSet');
      const serviceAccount = podSpec(ds).serviceAccountName!;
      const nodeName = 'node-runtime';
      await cluster.createNode(nodeName);

      // A token of the chart's own ServiceAccount, from the TokenRequest API, bound to nothing
      // but its expiry: what the kubelet's projected volume holds.
      const token = await cluster.kubectl(['create', 'token', serviceAccount, '-n', NAMESPACE, '--duration=1h']);
      if (token.code !== 0) throw new Error(`kubectl create token: ${token.stderr}`);
      const upstream = new URL(cluster.server);
      const relay = await startApiRelay(node.ns, { host: upstream.hostname, port: Number(upstream.port) });
      try {
        const context = node.context(rendered, {
          nodeName,
          serviceAccount: { token: token.stdout.trim(), caCrt: readFileSync(join(cluster.dir, 'ca.crt'), 'utf8') },
          // The test API server's certificate names kubernetes.default.svc (and loopback), not the
          // relay's address: the pod resolves that name to the relay, as cluster DNS would.
          apiServer: { host: 'kubernetes.default.svc', port: relay.port, address: relay.address },
        });
        const plan = podmanPlan(ds, built.image, context);
        expect(plan.createArgs).toContain(`--volume=${join(context.workDir, 'serviceaccount')}:${SERVICE_ACCOUNT_DIR}:ro`);
        const pod = await Pod.start(built, plan, 'runc-1.1');
        node.pods.push(pod);

        const source = await pod.waitForLog('the cluster source starting', (l) => typeof l.credentials === 'string');
        expect(source).toMatchObject({ node: nodeName, credentials: 'in-cluster service account', server: `https://kubernetes.default.svc:${relay.port}` });

        const p2p = readFileSync(join(ROOT, 'examples', 'point-to-point.yaml'), 'utf8');
        const applied = await cluster.kubectl(['apply', '-f', '-'], { input: p2p });
        if (applied.code !== 0) throw new Error(`kubectl apply: ${applied.stderr}`);

        const device = await pollUntil('tk-p2p Ready in the node\'s TunNodeState', async () => {
          const r = await cluster.kubectl(['get', 'tunnodestate', nodeName, '-o', 'json']);
          if (r.code !== 0) return undefined;
          const d = (JSON.parse(r.stdout) as NodeState).status?.devices?.find((x) => x.name === 'tk-p2p');
          return d?.conditions.some((c) => c.type === 'Ready' && c.status === 'True') ? d : undefined;
        });
        expect(device.ifname).toBe('tk-p2p0');
        const link = (await node.ns.ipJson<Array<{ mtu: number; ifalias?: string }>>('link', 'show', 'dev', 'tk-p2p0'))[0];
        expect(link).toMatchObject({ mtu: 1420, ifalias: 'tunkeeper:tk-p2p' });

        for (const probe of [plan.liveness, plan.readiness]) {
          const answer = await pollUntil(`${probe.path} answering 200`, async () => {
            const a = await httpGetInNetns(node.ns.path, `http://127.0.0.1:${probe.port}${probe.path}`);
            return a.status === 200 ? a : undefined;
          });
          expect(answer.body).toMatch(/^ok/);
        }

        expect(await pod.stop()).toBe(0);
        expect((await node.ns.ipJson<Array<{ ifname: string }>>('link', 'show', 'dev', 'tk-p2p0'))[0]?.ifname).toBe('tk-p2p0');
      } finally {
        await relay.close();
      }
    });
  });

  it('leaves the host\'s own namespace as it was: links, addresses, routes and rules', async () => {
    // The relay's namespace and veth, the node's namespace and the pod are gone; the API server
    // listened on loopback only.
    expect(await hostSnapshot()).toEqual(before);
  });
});
