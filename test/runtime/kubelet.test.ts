/**
 * The harness's kubelet (kubelet.ts) on the chart as `helm template` renders it, without running
 * anything: each rendered setting becomes the podman argument a runtime would need, and a field
 * it does not know, or a resource nothing provides, is an error instead of being dropped.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentContainer, podSpec, type K8sObject, type Rendered } from '../chart/chart-render.js';
import { describeKube } from '../helpers/kube-cluster.js';
import { podmanPlan, SERVICE_ACCOUNT_DIR, type NodeContext } from './kubelet.js';
import { renderChart } from './node.js';

const IMAGE = 'localhost/tunkeeper:0.1.0-test';

describeKube('the runtime tier\'s kubelet', () => {
  let kube: Rendered;
  // The kubelet writes the volumes' contents (ConfigMap files, the token) under workDir.
  const dir = mkdtempSync(join(tmpdir(), 'tunkeeper-kubelet-test-'));
  const node = (rendered: Rendered, extra: Partial<NodeContext> = {}): NodeContext => ({
    nodeName: 'node-a',
    netnsPath: '/run/netns/node-a',
    namespace: 'tunkeeper-system',
    podName: 'agent-a',
    configMaps: rendered.objects.filter((o) => o.kind === 'ConfigMap'),
    hostPaths: { '/dev/net/tun': '/dev/net/tun', '/var/lib/tunkeeper': join(dir, 'state') },
    workDir: join(dir, 'kubelet'),
    serviceAccount: { token: 'token', caCrt: 'ca' },
    apiServer: { host: 'kubernetes.default.svc', port: 443, address: '198.18.1.2' },
    ...extra,
  });
  const edited = (ds: K8sObject, edit: (copy: K8sObject) => void): K8sObject => {
    const copy = JSON.parse(JSON.stringify(ds)) as K8sObject;
    edit(copy);
    return copy;
  };

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  beforeAll(async () => {
    kube = await renderChart({ image: IMAGE }, { mode: 'kube' }, { namespace: 'tunkeeper-system' });
  });

  it('turns the rendered pod into podman arguments, setting for setting', () => {
    const ds = kube.one('DaemonSet');
    const plan = podmanPlan(ds, IMAGE, node(kube));
    const args = plan.createArgs;
    for (const a of [
      '--network=ns:/run/netns/node-a',
      '--user=0:0',
      '--security-opt=no-new-privileges',
      '--read-only',
      '--read-only-tmpfs=false',
      '--cap-drop=ALL',
      '--cap-add=NET_ADMIN',
      '--env=NODE_NAME=node-a',
      '--env=POD_NAMESPACE=tunkeeper-system',
      `--memory=${384 * 1024 * 1024}`,
      '--volume=/dev/net/tun:/dev/net/tun',
      `--volume=${join(dir, 'state')}:/var/lib/tunkeeper`,
      `--volume=${join(dir, 'kubelet', 'serviceaccount')}:${SERVICE_ACCOUNT_DIR}:ro`,
      '--env=KUBERNETES_SERVICE_HOST=kubernetes.default.svc',
      '--env=KUBERNETES_SERVICE_PORT=443',
    ]) expect(args).toContain(a);
    expect(args.some((a) => a === '--privileged' || a.startsWith('--device'))).toBe(false);
    // The image, then exactly the container's arguments, end the command.
    expect(args.slice(-1 - agentContainer(ds).args.length)).toEqual([IMAGE, ...agentContainer(ds).args]);
    expect(plan.liveness).toEqual({ path: '/healthz', port: 9464 });
    expect(plan.readiness).toEqual({ path: '/readyz', port: 9464 });
    expect(plan.gracePeriodSeconds).toBe((podSpec(ds) as unknown as { terminationGracePeriodSeconds: number }).terminationGracePeriodSeconds);
  });

  it('refuses what it does not know, instead of running the pod without it', () => {
    const ds = kube.one('DaemonSet');
    expect(() => podmanPlan(edited(ds, (c) => ((podSpec(c) as unknown as Record<string, unknown>).hostPID = true)), IMAGE, node(kube))).toThrow(/spec\.hostPID/);
    expect(() => podmanPlan(edited(ds, (c) => ((agentContainer(c) as unknown as Record<string, unknown>).lifecycle = {})), IMAGE, node(kube))).toThrow(/container\.lifecycle/);
    expect(() => podmanPlan(edited(ds, (c) => (agentContainer(c).securityContext.procMount = 'Unmasked')), IMAGE, node(kube))).toThrow(/securityContext\.procMount/);
    expect(() => podmanPlan(ds, 'localhost/tunkeeper:other', node(kube))).toThrow(/renders image/);
  });

  it('a device plugin resource needs a plugin on the node, and then brings its device', async () => {
    const rendered = await renderChart({ image: IMAGE }, { mode: 'kube', tunDevice: { resourceName: 'squat.ai/tun' } }, { namespace: 'tunkeeper-system' });
    expect(() => podmanPlan(rendered.one('DaemonSet'), IMAGE, node(rendered))).toThrow(/no device plugin on this node provides squat\.ai\/tun/);
    const args = podmanPlan(rendered.one('DaemonSet'), IMAGE, node(rendered, { devicePlugins: { 'squat.ai/tun': ['/dev/net/tun'] } })).createArgs;
    expect(args).toContain('--device=/dev/net/tun:/dev/net/tun:rw');
    expect(args).not.toContain('--volume=/dev/net/tun:/dev/net/tun');
  });
});
