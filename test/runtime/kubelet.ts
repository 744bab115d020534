/**
 * The harness's kubelet: turns the DaemonSet's pod template exactly as `helm template` rendered it
 * into `podman create` arguments (podman then drives runc), the way a kubelet and its container
 * runtime would on a node. Nothing about the agent's container is restated here: every setting
 * comes from the rendered object, and a field this translation does not know is an error, so a
 * chart change the tier cannot honour fails the tier instead of being silently dropped.
 *
 * What stands in for the node: `node.netns` is the node's network namespace (hostNetwork),
 * `node.hostPaths` maps the node's paths to this machine's (the state directory to a temporary
 * one; /dev/net/tun to the real device node), `node.configMaps` are the rendered ConfigMaps, a
 * service-account token is mounted where Kubernetes mounts it, and `node.devicePlugins` says which
 * devices an extended resource brings (what a device plugin would answer the kubelet).
 */
import { lstatSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { K8sObject } from '../chart/chart-render.js';

/** Where Kubernetes mounts a pod's service-account credentials. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface NodeContext {
  nodeName: string;
  /** /run/netns/NAME of the node's network namespace. */
  netnsPath: string;
  /** metadata.namespace of the pod (the release namespace). */
  namespace: string;
  podName: string;
  /** The ConfigMaps the chart rendered (the pod's configMap volumes name them). */
  configMaps: K8sObject[];
  /** The node's hostPath → the path on this machine that plays it. */
  hostPaths: Record<string, string>;
  /** Mounted at SERVICE_ACCOUNT_DIR when the pod automounts its token. */
  serviceAccount?: { token: string; caCrt: string };
  /** KUBERNETES_SERVICE_HOST/PORT, and the address the host name resolves to inside the pod. */
  apiServer?: { host: string; port: number; address: string };
  /** Extended resource name → device nodes its device plugin hands out. */
  devicePlugins?: Record<string, string[]>;
  /** Where this kubelet writes volume contents (ConfigMap files, the token). */
  workDir: string;
}

export interface HttpProbe {
  path: string;
  port: number;
}

export interface PodPlan {
  /** Arguments after `podman create`, image and container args included. */
  createArgs: string[];
  liveness: HttpProbe;
  readiness: HttpProbe;
  /** terminationGracePeriodSeconds: SIGTERM, then SIGKILL after this long. */
  gracePeriodSeconds: number;
}

type Obj = Record<string, unknown>;

function only(where: string, o: Obj, handled: readonly string[]): void {
  const unknown = Object.keys(o).filter((k) => !handled.includes(k));
  if (unknown.length > 0) throw new Error(`the runtime tier does not know ${where}.${unknown.join(`, ${where}.`)}: teach test/runtime/kubelet.ts what a node does with it`);
}

// Scheduling and registry settings: decided before a pod reaches its node, or about pulling an
// image that is already in the store. The harness is the node the pod was scheduled to.
const POD_SCHEDULING = ['nodeSelector', 'affinity', 'tolerations', 'priorityClassName', 'imagePullSecrets'];

export function podmanPlan(daemonSet: K8sObject, image: string, node: NodeContext): PodPlan {
  const pod = (daemonSet.spec as { template: { spec: Obj } }).template.spec;
  only('spec', pod, [...POD_SCHEDULING, 'serviceAccountName', 'automountServiceAccountToken', 'hostNetwork', 'dnsPolicy', 'terminationGracePeriodSeconds', 'securityContext', 'containers', 'volumes']);
  const containers = pod.containers as Obj[];
  if (containers.length !== 1) throw new Error(`expected one container, rendered ${containers.length}`);
  const c = containers[0]!;
  only('container', c, ['name', 'image', 'imagePullPolicy', 'args', 'env', 'ports', 'livenessProbe', 'readinessProbe', 'resources', 'securityContext', 'volumeMounts']);
  if (c.image !== image) throw new Error(`the chart renders image ${String(c.image)}, the tier built ${image}`);

  const args: string[] = ['--pull=never'];
  // Host network: the node's own namespace. dnsPolicy ClusterFirstWithHostNet needs cluster DNS,
  // which this harness has none of; the agent reaches the API server by KUBERNETES_SERVICE_HOST.
  if (pod.hostNetwork !== true) throw new Error('the runtime tier runs host-network pods only');
  args.push(`--network=ns:${node.netnsPath}`);

  args.push(...securityArgs(pod.securityContext as Obj | undefined, c.securityContext as Obj | undefined));
  args.push(...envArgs(c.env as Obj[] | undefined, node));
  args.push(...resourceArgs(c.resources as Obj | undefined, node));
  args.push(...volumeArgs(pod.volumes as Obj[], c.volumeMounts as Obj[], node));

  // What a kubelet adds to every pod that automounts its service account's token.
  if (pod.automountServiceAccountToken !== false) {
    if (!node.serviceAccount || !node.apiServer) throw new Error('the pod mounts a service-account token: give the node a token and an API server');
    const dir = join(node.workDir, 'serviceaccount');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'token'), node.serviceAccount.token);
    writeFileSync(join(dir, 'ca.crt'), node.serviceAccount.caCrt);
    writeFileSync(join(dir, 'namespace'), node.namespace);
    args.push(`--volume=${dir}:${SERVICE_ACCOUNT_DIR}:ro`);
    args.push(`--env=KUBERNETES_SERVICE_HOST=${node.apiServer.host}`, `--env=KUBERNETES_SERVICE_PORT=${node.apiServer.port}`);
    args.push(`--add-host=${node.apiServer.host}:${node.apiServer.address}`);
  }

  const ports = (c.ports as Array<{ name: string; containerPort: number }> | undefined) ?? [];
  const probe = (p: Obj | undefined, which: string): HttpProbe => {
    const get = p?.httpGet as { path: string; port: string | number } | undefined;
    if (!get) throw new Error(`${which}: only httpGet probes are known to the runtime tier`);
    const port = typeof get.port === 'number' ? get.port : ports.find((x) => x.name === get.port)?.containerPort;
    if (port === undefined) throw new Error(`${which}: port ${get.port} is not a container port`);
    return { path: get.path, port };
  };

  args.push(`--name=${node.podName}`, image, ...((c.args as string[] | undefined) ?? []));
  return {
    createArgs: args,
    liveness: probe(c.livenessProbe as Obj | undefined, 'livenessProbe'),
    readiness: probe(c.readinessProbe as Obj | undefined, 'readinessProbe'),
    gracePeriodSeconds: (pod.terminationGracePeriodSeconds as number | undefined) ?? 30,
  };
}

function securityArgs(podSc: Obj | undefined, sc: Obj | undefined): string[] {
  const merged: Obj = { ...(podSc ?? {}), ...(sc ?? {}) };
  only('securityContext', merged, ['runAsUser', 'runAsGroup', 'runAsNonRoot', 'privileged', 'allowPrivilegeEscalation', 'readOnlyRootFilesystem', 'capabilities', 'seccompProfile']);
  const args: string[] = [];
  const uid = merged.runAsUser as number | undefined;
  if (merged.runAsNonRoot === true && (uid ?? 0) === 0) throw new Error('runAsNonRoot with uid 0: a kubelet refuses to start this container');
  if (uid !== undefined) args.push(`--user=${uid}:${(merged.runAsGroup as number | undefined) ?? 0}`);
  if (merged.privileged === true) args.push('--privileged');
  if (merged.allowPrivilegeEscalation === false) args.push('--security-opt=no-new-privileges');
  // Kubernetes adds no tmpfs of its own to a read-only root (podman would, by default).
  if (merged.readOnlyRootFilesystem === true) args.push('--read-only', '--read-only-tmpfs=false');
  const caps = (merged.capabilities as { drop?: string[]; add?: string[] } | undefined) ?? {};
  only('capabilities', caps as Obj, ['drop', 'add']);
  for (const d of caps.drop ?? []) args.push(`--cap-drop=${d}`);
  for (const a of caps.add ?? []) args.push(`--cap-add=${a}`);
  const seccomp = (merged.seccompProfile as { type?: string } | undefined)?.type;
  // RuntimeDefault is the runtime's own profile: podman's default (containers-common's seccomp.json).
  if (seccomp === 'Unconfined') args.push('--security-opt=seccomp=unconfined');
  else if (seccomp !== undefined && seccomp !== 'RuntimeDefault') throw new Error(`seccompProfile ${seccomp} is not known to the runtime tier`);
  return args;
}

function envArgs(env: Obj[] | undefined, node: NodeContext): string[] {
  const fields: Record<string, string> = { 'spec.nodeName': node.nodeName, 'metadata.namespace': node.namespace, 'metadata.name': node.podName };
  return (env ?? []).map((e) => {
    only(`env[${String(e.name)}]`, e, ['name', 'value', 'valueFrom']);
    if (typeof e.value === 'string') return `--env=${String(e.name)}=${e.value}`;
    const path = (e.valueFrom as { fieldRef?: { fieldPath?: string } } | undefined)?.fieldRef?.fieldPath;
    const value = path === undefined ? undefined : fields[path];
    if (value === undefined) throw new Error(`env ${String(e.name)}: only fieldRef ${Object.keys(fields).join(', ')} are known to the runtime tier`);
    return `--env=${String(e.name)}=${value}`;
  });
}

/** Kubernetes quantities the limits use: 384Mi, 1Gi, 500m, 1. */
function bytes(q: string): number {
  const m = /^(\d+)(Ki|Mi|Gi)?$/.exec(q);
  if (!m) throw new Error(`memory quantity ${q} is not known to the runtime tier`);
  return Number(m[1]) * ({ Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 }[m[2] as 'Ki'] ?? 1);
}

function resourceArgs(resources: Obj | undefined, node: NodeContext): string[] {
  if (!resources) return [];
  only('resources', resources, ['requests', 'limits']);
  const args: string[] = [];
  // Requests only place the pod; limits are what the runtime enforces.
  for (const [name, value] of Object.entries((resources.limits as Obj | undefined) ?? {})) {
    if (name === 'memory') args.push(`--memory=${bytes(String(value))}`);
    else if (name === 'cpu') args.push(`--cpus=${String(value).endsWith('m') ? Number(String(value).slice(0, -1)) / 1000 : Number(value)}`);
    else if (name.includes('/')) {
      // An extended resource: the kubelet asks its device plugin, and the runtime gets the
      // plugin's device nodes as devices (node created, allowed in the device cgroup).
      const devices = node.devicePlugins?.[name];
      if (!devices) throw new Error(`no device plugin on this node provides ${name}: the pod would stay Pending`);
      for (const d of devices) args.push(`--device=${d}:${d}:rw`);
    } else throw new Error(`resource limit ${name} is not known to the runtime tier`);
  }
  return args;
}

function volumeArgs(volumes: Obj[], mounts: Obj[], node: NodeContext): string[] {
  const args: string[] = [];
  for (const m of mounts) {
    only(`volumeMounts[${String(m.name)}]`, m, ['name', 'mountPath', 'readOnly', 'subPath']);
    const v = volumes.find((x) => x.name === m.name);
    if (!v) throw new Error(`volumeMount ${String(m.name)} has no volume`);
    only(`volumes[${String(v.name)}]`, v, ['name', 'configMap', 'hostPath']);
    let source: string;
    let readOnly = m.readOnly === true;
    if (v.configMap) {
      const ref = v.configMap as Obj;
      only(`volumes[${String(v.name)}].configMap`, ref, ['name']);
      const cm = node.configMaps.find((o) => o.kind === 'ConfigMap' && o.metadata.name === ref.name);
      if (!cm) throw new Error(`ConfigMap ${String(ref.name)} was not rendered`);
      source = join(node.workDir, 'configmaps', String(ref.name));
      mkdirSync(source, { recursive: true });
      for (const [file, text] of Object.entries((cm.data as Record<string, string> | undefined) ?? {})) writeFileSync(join(source, file), text);
      // The kubelet mounts ConfigMap volumes read-only, whatever the mount says.
      readOnly = true;
    } else if (v.hostPath) {
      const hp = v.hostPath as { path: string; type?: string };
      only(`volumes[${String(v.name)}].hostPath`, hp as unknown as Obj, ['path', 'type']);
      const local = node.hostPaths[hp.path];
      if (local === undefined) throw new Error(`hostPath ${hp.path}: this node has no stand-in for it`);
      if (hp.type === 'DirectoryOrCreate') mkdirSync(local, { recursive: true });
      else if (hp.type === 'CharDevice') {
        if (!lstatSync(local).isCharacterDevice()) throw new Error(`hostPath ${hp.path} (CharDevice): ${local} is not a character device`);
      } else if (hp.type !== undefined) throw new Error(`hostPath type ${hp.type} is not known to the runtime tier`);
      source = local;
    } else {
      throw new Error(`volume ${String(v.name)}: only configMap and hostPath volumes are known to the runtime tier`);
    }
    if (typeof m.subPath === 'string') source = join(source, m.subPath);
    args.push(`--volume=${source}:${String(m.mountPath)}${readOnly ? ':ro' : ''}`);
  }
  return args;
}
