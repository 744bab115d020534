/** The objects fleet-converge needs in its API server: the release namespace, Nodes, the TunDevice. */
import type { KubeApi } from '../../controller/kube/api-client.js';
import { KubeApiError } from '../../controller/kube/api-client.js';
import { TUN_DEVICES_PATH } from '../../controller/kube/types.js';

export const FLEET_DEVICE = 'fleet';
export const FLEET_IFNAME = 'tk-fleet0';

export async function createNamespace(api: KubeApi, name: string): Promise<void> {
  await api.request({ method: 'POST', path: '/api/v1/namespaces', body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name } } });
}

/** Creates Nodes, `concurrency` requests at a time (a Node that exists already is fine). */
export async function createNodes(api: KubeApi, names: readonly string[], concurrency = 16): Promise<void> {
  const queue = [...names];
  const lane = async (): Promise<void> => {
    for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
      try {
        await api.request({ method: 'POST', path: '/api/v1/nodes', body: { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'tunkeeper.io/fleet': 'bench' } } } });
      } catch (e) {
        if (!(e instanceof KubeApiError && e.statusCode === 409)) throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
}

/** The benchmark's TunDevice: every Node (no selector), one address, one route. */
export async function createFleetDevice(api: KubeApi, mtu: number): Promise<number> {
  const obj = await api.request<{ metadata: { generation: number } }>({
    method: 'POST',
    path: TUN_DEVICES_PATH,
    body: {
      apiVersion: 'tunkeeper.io/v1alpha1',
      kind: 'TunDevice',
      metadata: { name: FLEET_DEVICE },
      spec: { ifname: FLEET_IFNAME, mtu, addresses: ['192.0.2.1/24'], routes: [{ to: '198.51.100.0/24' }] },
    },
  });
  return obj.metadata.generation;
}

/** A spec change (the MTU): returns the new generation. */
export async function setFleetMtu(api: KubeApi, mtu: number): Promise<number> {
  const obj = await api.request<{ metadata: { generation: number } }>({
    method: 'PATCH',
    path: `${TUN_DEVICES_PATH}/${FLEET_DEVICE}`,
    body: { spec: { mtu } },
    contentType: 'application/merge-patch+json',
  });
  return obj.metadata.generation;
}
