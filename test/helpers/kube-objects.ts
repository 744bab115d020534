/**
 * What the Kubernetes-tier stories do with objects through kubectl: run it (failing with its
 * stderr), apply YAML and get the stored object back, read a TunDevice, and wait until its status
 * says something at the object's current generation (the event a step is about, never a time).
 */
import type { KubeCluster } from './kube-cluster.js';
import { pollUntil } from './poll.js';

/** The part of a TunDevice every wait reads. */
export interface DeviceWithStatus {
  metadata: { name: string; generation: number; resourceVersion: string };
  status?: { observedGeneration?: number };
}

export function kubeObjects<D extends DeviceWithStatus>(cluster: () => KubeCluster, patienceMs: number) {
  const kubectl = async (...args: string[]): Promise<string> => {
    const r = await cluster().kubectl(args);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const apply = async (yaml: string): Promise<D> => {
    const r = await cluster().kubectl(['apply', '-o', 'json', '-f', '-'], { input: yaml });
    if (r.code !== 0) throw new Error(`kubectl apply: ${r.stderr}`);
    return JSON.parse(r.stdout) as D;
  };
  const device = async (name: string): Promise<D> => JSON.parse(await kubectl('get', 'tundevice', name, '-o', 'json')) as D;
  /** Waits until the device's status says `pred`, at the object's current generation. */
  const statusOf = async (name: string, what: string, pred: (d: D) => boolean): Promise<D> => {
    let last: D | undefined;
    try {
      return await pollUntil(
        `${name}: ${what}`,
        async () => {
          const d = (last = await device(name));
          return d.status?.observedGeneration === d.metadata.generation && pred(d) ? d : undefined;
        },
        patienceMs,
      );
    } catch (e) {
      throw new Error(`${(e as Error).message}; last seen: generation ${last?.metadata.generation}, status ${JSON.stringify(last?.status)}`);
    }
  };
  return { kubectl, apply, device, statusOf };
}
