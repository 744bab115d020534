/**
 * The shapes of the Kubernetes objects the agent reads and writes, as far as it looks at them.
 */
export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  labels?: Record<string, string>;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
}

export interface NodeObject extends KubeObject {
  metadata?: ObjectMeta;
}

export interface TunDeviceObject extends KubeObject {
  spec?: unknown;
}

export const TUNKEEPER_API_PATH = '/apis/tunkeeper.io/v1alpha1';
export const TUN_DEVICES_PATH = `${TUNKEEPER_API_PATH}/tundevices`;
export const TUN_NODE_STATES_PATH = `${TUNKEEPER_API_PATH}/tunnodestates`;
export const NODES_PATH = '/api/v1/nodes';
/** TunDevices and Nodes are cluster-scoped; their Events live here (as kubelet's Node events do). */
export const EVENTS_NAMESPACE = 'default';
export const EVENTS_PATH = `/apis/events.k8s.io/v1/namespaces/${EVENTS_NAMESPACE}/events`;
export const FIELD_MANAGER = 'tunkeeper-agent';
/** Where the status Lease is when the agent runs outside a Pod and no --namespace is given (the chart's usual release namespace). */
export const DEFAULT_NAMESPACE = 'tunkeeper-system';
export const LEADER_LEASE_NAME = 'tunkeeper-status-leader';
export const REPORTING_CONTROLLER = 'tunkeeper.io/agent';
