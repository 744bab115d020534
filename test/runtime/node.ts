/**
 * The harness's node: a network namespace of the test's own (the node's "host network"), a
 * temporary folder standing in for its filesystem (the state directory, the kubelet's volume
 * contents), the real /dev/net/tun, and the chart rendered as `helm template` renders it with
 * image.repository and image.tag naming the image `npm run image` built. withNode() removes all of it
 * however the test ends; the pod is removed first.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HelmRunner, type Rendered } from '../chart/chart-render.js';
import { kubeToolPaths } from '../helpers/kube-tools.js';
import { createNetns, type Netns } from '../helpers/netns.js';
import type { NodeContext } from './kubelet.js';
import type { Pod } from './pod.js';

/** `helm template` of the chart with these values, image.repository and image.tag set to the locally built image. */
export async function renderChart(built: { image: string }, values: object, opts: { release?: string; namespace?: string } = {}): Promise<Rendered> {
  const tools = kubeToolPaths();
  if (!tools) throw new Error('helm is missing: run `node scripts/kube-tools.mjs`');
  const helm = new HelmRunner(tools.helm);
  try {
    const colon = built.image.lastIndexOf(':');
    const image = { repository: built.image.slice(0, colon), tag: built.image.slice(colon + 1) };
    return await helm.template({ ...opts, values: { ...values, image } });
  } finally {
    helm.close();
  }
}

export interface TestNode {
  ns: Netns;
  dir: string;
  /** The NodeContext for the kubelet, with these additions. */
  context(rendered: Rendered, extra?: Partial<NodeContext>): NodeContext;
  /** Pods to remove before the namespace goes. */
  pods: Pod[];
}

export async function withNode<T>(tag: string, fn: (node: TestNode) => Promise<T>): Promise<T> {
  const ns = await createNetns(tag);
  const dir = mkdtempSync(join(tmpdir(), `tunkeeper-runtime-${tag}-`));
  const pods: Pod[] = [];
  const node: TestNode = {
    ns,
    dir,
    pods,
    context: (rendered, extra = {}) => ({
      nodeName: `node-${tag}`,
      netnsPath: ns.path,
      namespace: 'tunkeeper-system',
      podName: `${ns.name}-agent`,
      configMaps: rendered.objects.filter((o) => o.kind === 'ConfigMap'),
      hostPaths: { '/dev/net/tun': '/dev/net/tun', '/var/lib/tunkeeper': join(dir, 'node', 'var', 'lib', 'tunkeeper') },
      workDir: join(dir, 'kubelet'),
      ...extra,
    }),
  };
  try {
    return await fn(node);
  } finally {
    for (const p of pods) await p.remove();
    await ns.delete();
    rmSync(dir, { recursive: true, force: true });
  }
}
